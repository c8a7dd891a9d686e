"""The store's own tables (SQLAlchemy Core). Alembic migrations in ``okr_store/migrations`` create
them; per-stream record tables are made at run time from source schemas (see :mod:`okr_store.records`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Decimal values of key results are kept as their exact text: a KR may be a ratio with many places or
# a revenue in a currency without cents, and text keeps both exact on every backend.
DecimalText = sa.String(64)

objective = sa.Table(
    "objective",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("parent_id", sa.String(100), nullable=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("weight", DecimalText, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
)

key_result = sa.Table(
    "key_result",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("objective_id", sa.String(100), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("period_label", sa.String(64), nullable=False),
    sa.Column("baseline", DecimalText, nullable=False),
    sa.Column("target", DecimalText, nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("weight", DecimalText, nullable=False),
    sa.Column("unit", sa.String(32)),
    sa.Column("streams", sa.Text, nullable=False),  # JSON list of stream names it reads
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("last_value_id", sa.BigInteger),
    sa.Column("held_reason", sa.Text),  # why the latest run did not update it (PII-free)
    sa.Column("held_since", sa.DateTime),
    # The definition it is registered with: set by the run that first computes it, by `okrsync plan
    # --apply`, and by a run computing it with another (that run audits the change: okr_store.definitions).
    sa.Column("definition_hash", sa.String(64)),
    # Closing (okr_store.closing): when the period ends (naive UTC), the first as-of time at which a run
    # closes it (NULL: it never closes) and that day in the company timezone (for "closes on …").
    sa.Column("period_end", sa.DateTime),
    sa.Column("closes_on", sa.Date),
    sa.Column("closes_at", sa.DateTime),
)

definition = sa.Table(
    "definition",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("kr_id", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # canonical JSON of the resolved KR computation
    sa.Column("created_at", sa.DateTime, nullable=False),
)

stream_state = sa.Table(
    "stream_state",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("record_table", sa.String(63), nullable=False, unique=True),
    sa.Column("primary_key", sa.Text, nullable=False),  # JSON list
    sa.Column("schema", sa.Text, nullable=False),  # JSON list of fields (okrsync.schema.Field)
    sa.Column("watermark", sa.Text),  # JSON, advanced only when a sync commits
    sa.Column("last_sync_id", sa.BigInteger),  # the snapshot KR values are computed against
    sa.Column("last_success_at", sa.DateTime),
    sa.Column("last_attempt_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_sync_id", sa.BigInteger),  # a sync in progress holds the stream
    sa.Column("last_reconcile_at", sa.DateTime),  # the last sync that compared every key (deletes)
    sa.Column("lease_until", sa.DateTime),
    # What the last committed sync warned about (records dated in the future, hidden transactions).
    sa.Column("read_warning", sa.Text),
)

sync_run = sa.Table(
    "sync_run",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("stream", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False),  # running | committed | failed
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("keys_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("inserted", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated", sa.BigInteger, nullable=False, default=0),
    sa.Column("deleted", sa.BigInteger, nullable=False, default=0),
    sa.Column("api_calls", sa.BigInteger),  # requests the source counts against a budget (Salesforce)
    sa.Column("watermark_before", sa.Text),
    sa.Column("watermark_after", sa.Text),
    sa.Column("error", sa.Text),
)

run = sa.Table(
    "run",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | partial | failed
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255)),  # where the run's process ran, and its PID (crash take-over)
    sa.Column("pid", sa.Integer),
)

# The project's run lease (one row, name = "project"): the run holding it, until when, and the fencing
# token that every commit and value recording checks in its own transaction (okr_store.lease).
run_lease = sa.Table(
    "run_lease",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),  # the fencing token
    sa.Column("run_id", sa.String(64)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("acquired_at", sa.DateTime),
    sa.Column("until", sa.DateTime),
)

kr_value = sa.Table(
    "kr_value",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kr_id", sa.String(100), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("value", DecimalText),
    sa.Column("reason", sa.Text),  # why there is no value (e.g. empty denominator)
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("baseline", DecimalText, nullable=False),
    sa.Column("target", DecimalText, nullable=False),
    sa.Column("progress_raw", DecimalText),
    sa.Column("progress", DecimalText),
    sa.Column("expected", DecimalText, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
    sa.Column("definition_hash", sa.String(64), nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),  # JSON {stream: sync id}
    # A restatement (`okrsync plan --apply --restate`): the value it recomputes under a newer
    # definition, at that value's own snapshot and as-of. The original is kept as it was.
    sa.Column("restated_from", sa.BigInteger),
    # A value computed after its period closed (the kr_close id): a restatement, never current.
    sa.Column("restates", sa.BigInteger),
    sa.Index("ix_kr_value_kr_computed", "kr_id", "computed_at"),
)

# ---- closing periods (okr_store.closing) ---------------------------------------------------------
# One row per closing of a KR's period: the frozen value. Reopening (an admin, audited) fills the
# reopen columns; the next run due closes it again with seq + 1.
kr_close = sa.Table(
    "kr_close",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kr_id", sa.String(100), nullable=False),
    sa.Column("period_label", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("value_id", sa.BigInteger, nullable=False),  # the final value
    sa.Column("closes_at", sa.DateTime, nullable=False),  # when it was due to close
    sa.Column("as_of", sa.DateTime, nullable=False),  # the as-of time of the run that closed it
    sa.Column("closed_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("reopened_at", sa.DateTime),
    sa.Column("reopened_by", sa.Text),
    sa.Column("reopen_reason", sa.Text),
    sa.Column("reopen_until", sa.DateTime),  # it closes again at the first run as of this time or later
    sa.UniqueConstraint("kr_id", "period_label", "seq", name="uq_kr_close_seq"),
)

# A late change that would move a closed value: the value it would be, and the records that moved it
# (a diff against the closed value: stream, record id, kind, contributions, why, changed field names).
kr_restatement = sa.Table(
    "kr_restatement",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("close_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("kr_id", sa.String(100), nullable=False, index=True),
    sa.Column("value_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("closed_value_id", sa.BigInteger, nullable=False),
    sa.Column("value", DecimalText),
    sa.Column("closed_value", DecimalText),
    sa.Column("changes", sa.Text, nullable=False),  # JSON list, PII-free (no field values)
    sa.Column("total_changes", sa.BigInteger, nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("acknowledge_reason", sa.Text),
)

check_result = sa.Table(
    "check_result",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("sync_id", sa.BigInteger),  # stream checks: the sync whose staged rows they judged
    sa.Column("stream", sa.String(200)),
    sa.Column("kr_id", sa.String(100)),  # KR checks (max_jump_percent)
    sa.Column("kind", sa.String(200), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON of the check as declared
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # passed|warned|blocked|accepted|superseded
    sa.Column("element_count", sa.BigInteger, nullable=False),
    sa.Column("unexpected_count", sa.BigInteger, nullable=False),
    sa.Column("observed", sa.Text),
    sa.Column("sample", sa.Text, nullable=False),  # JSON: failing rows, sensitive fields masked
    sa.Column("result", sa.Text, nullable=False),  # JSON: the machine-readable (GX) result, PII-free
    sa.Column("held_krs", sa.Text, nullable=False),  # JSON list
    sa.Column("proposed_value", DecimalText),  # a KR value held back by a jump check
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("resolved_by", sa.Text),
    sa.Index("ix_check_result_created", "created_at"),
)

# Append-only: admin decisions and access changes (okr_store.audit), each chained to the previous one
# by hash (tamper evidence).
audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("check_id", sa.BigInteger),
    sa.Column("kr_id", sa.String(100)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("target", sa.Text),  # access events: the user (or token) acted on
    sa.Column("address", sa.String(64)),  # access events: the client address of the request
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# ---- the web app's users (okrsync serve) --------------------------------------------------------
# Passwords are kept as argon2 hashes; session and API tokens only as their SHA-256 (a stolen copy of
# the store opens nothing). Roles are names from the project's settings.roles.
web_user = sa.Table(
    "web_user",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

web_session = sa.Table(
    "web_session",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(100), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

api_token = sa.Table(
    "api_token",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_name", sa.String(100), nullable=False, index=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime),
    sa.Column("last_used_at", sa.DateTime),
)

# ---- drill: each value's first contributions, in drill order ---------------------------------------
# Written when a value is recorded (values never change, so these rows never go stale): a drill's first
# pages, sorted by contribution, are an index lookup instead of a sort over every contributing record.
kr_value_top = sa.Table(
    "kr_value_top",
    metadata,
    sa.Column("value_id", sa.BigInteger, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # 1-based: contribution desc, then record id
    sa.Column("record_id", sa.String(512), nullable=False),
)

# ---- alerts (okr_store.alerts): what each event source last saw, the events, their deliveries -------
# One row per watched subject (a KR's status, a KR's held flag, a check): an event is recorded only when
# the state changes, so a run that changes nothing notifies nobody.
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("subject", sa.String(300), primary_key=True),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

alert_event = sa.Table(
    "alert_event",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("kr_ids", sa.Text, nullable=False),  # JSON list: whom it concerns (owners, subscriptions)
    sa.Column("facts", sa.Text, nullable=False),  # JSON: PII-free (no record, field or sample values)
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_alert_event_created", "created_at"),
)

# One row per (event, channel, recipient): pending → sent, or failed (retried by the next run until
# alerts.max_attempts, then abandoned). ``error`` never holds a URL, a secret or a response body.
alert_delivery = sa.Table(
    "alert_delivery",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),  # an email address, or "" for a webhook
    sa.Column("status", sa.String(16), nullable=False),  # pending | sending | sent | failed | abandoned
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("last_attempt_at", sa.DateTime),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("event_id", "channel", "recipient", name="uq_alert_delivery_target"),
    sa.Index("ix_alert_delivery_status", "status"),
    sa.Index("ix_alert_delivery_channel_sent", "channel", "sent_at"),
)

# ---- key results bound outside the project file (okrsync kr add, the web app's binding page) --------
# The project file keeps the metrics library; these tables keep the KRs bound to it. ``spec`` is the
# KR as the project file would write it (JSON); every change adds a version (before/after) whose audit
# event is in audit_event (its hash in ``audit_hash``).
kr_binding = sa.Table(
    "kr_binding",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("objective_id", sa.String(100), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | retired
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

kr_binding_version = sa.Table(
    "kr_binding_version",
    metadata,
    sa.Column("binding_id", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),  # bind | edit | retire
    sa.Column("objective_id", sa.String(100), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("audit_hash", sa.String(64), nullable=False),
)

bound_objective = sa.Table(
    "bound_objective",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("parent_id", sa.String(100), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# Key-range digests of each stream's live record ids (okr_store.digests): kept up to date by every
# commit, so delete detection costs the store in proportion to the change. ``digest_scheme`` says how
# ids map to buckets: position (the integer key itself, or h1 of the id) ``(pos - origin) // width``.
digest_scheme = sa.Table(
    "digest_scheme",
    metadata,
    sa.Column("stream", sa.String(200), primary_key=True),
    sa.Column("positional", sa.Boolean, nullable=False),
    sa.Column("origin", sa.BigInteger, nullable=False),
    sa.Column("width", sa.BigInteger, nullable=False),
)

record_digest = sa.Table(
    "record_digest",
    metadata,
    sa.Column("stream", sa.String(200), primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),  # live records in the bucket
    sa.Column("s1", sa.BigInteger, nullable=False),  # Σ h1 of their ids
    sa.Column("s2", sa.BigInteger, nullable=False),  # Σ h2
)
