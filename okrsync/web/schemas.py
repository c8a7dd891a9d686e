"""The API's answers, as pydantic models: they make the OpenAPI spec exact. Decimal numbers are
exact strings and times UTC ISO 8601 strings ending in ``Z``, as in the CLI's JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from okrsync.users import MAX_TOKEN_DAYS, TOKEN_DAYS

Num = str | None  # an exact decimal, as text
Time = str | None  # 2026-11-20T18:00:00Z
Scalar = str | int | float | bool | None


class Problem(BaseModel):
    detail: str
    hint: str | None = None


class Health(BaseModel):
    ok: bool


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class UserRef(BaseModel):
    name: str
    role: str


class LoggedIn(BaseModel):
    user: UserRef
    csrf_token: str


class Can(BaseModel):
    records: bool
    sensitive: bool
    admin: bool
    bind: bool  # bind key results (/bind, /api/bindings)


class Me(BaseModel):
    name: str
    role: str
    can: Can
    csrf_token: str | None


class ClosedValue(BaseModel):
    close_id: int
    value_id: int
    value: Num
    as_of: str
    closed_at: str


class RestatementLine(BaseModel):
    id: int
    kr_id: str
    close_id: int
    value_id: int
    closed_value_id: int
    value: Num
    closed_value: Num
    delta: Num
    percent: Num
    change: str  # "+1.2 %"
    as_of: str
    created_at: str
    run_id: str
    total_changes: int
    acknowledged_at: Time
    acknowledged_by: str | None
    acknowledge_reason: str | None


class CloseState(BaseModel):
    """Final, provisional (closes on …) or restated after close (docs/web.md, "Closing periods")."""

    state: Literal["open", "provisional", "final", "restated"]
    label: str
    closes_at: Time
    closes_on: str | None
    closed: ClosedValue | None = None
    restatement: RestatementLine | None = None
    pending_restatements: int | None = None


class KR(BaseModel):
    id: str
    title: str
    owner: str | None
    metric: str
    period: str
    unit: str | None
    direction: str
    weight: str
    value: Num
    baseline: str
    target: str
    progress: Num
    progress_raw: Num
    expected: Num
    status: str
    reason: str | None
    computed_at: Time
    as_of: Time
    records: int | None  # null when the value is suppressed (small group)
    flow_run_id: str | None
    flow_run_url: str | None
    value_id: int | None
    held: bool
    held_reason: str | None
    held_since: Time
    data_fresh_at: Time
    stale: bool
    streams: list[str]
    close: CloseState


class Objective(BaseModel):
    id: str
    title: str
    owner: str | None
    weight: str
    progress: Num
    held: bool
    stale: bool
    key_results: list[KR]
    objectives: list[Objective]


class Tree(BaseModel):
    now: str
    objectives: list[Objective]


class Value(BaseModel):
    value_id: int
    value: Num
    reason: str | None
    progress: Num
    expected: str
    pace_value: Num
    status: str
    records: int | None  # null when the value is suppressed (small group)
    as_of: str
    computed_at: str
    run_id: str
    flow_run_id: str | None
    flow_run_url: str | None
    restated_from: int | None = None  # the value this one restates under a newer definition


class Decision(BaseModel):
    at: str
    actor: str
    action: str
    check_id: int | None
    check: str
    reason: str


class BindingRef(BaseModel):
    status: str  # active | retired
    version: int


class KrDetail(BaseModel):
    kr: KR
    active: bool  # false: retired or gone from the project file (values and drill-down stay)
    binding: BindingRef | None  # bound in the store (docs/binding.md), not in the project file
    history: list[Value]
    decisions: list[Decision]


class Record(BaseModel):
    source: str
    stream: str
    record_id: str
    contribution: str
    denominator_contribution: Num
    role: str
    url: str | None
    fields: dict[str, Scalar]


class Records(BaseModel):
    kr: str
    value: Value
    metric: str
    total: int
    limit: int
    offset: int
    sort: str
    desc: bool
    columns: dict[str, list[str]]
    sensitive: dict[str, list[str]]
    records: list[Record]


class SummaryLine(BaseModel):
    records: int
    contribution_delta: str


class Change(BaseModel):
    kind: Literal["added", "removed", "changed"]
    stream: str
    record_id: str
    before: Num
    after: Num
    delta: str
    reason: str
    fields: dict[str, list[Scalar]]


class Diff(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    kr: str
    from_: Value = Field(alias="from")
    to: Value
    delta: Num
    definition_changed: bool
    summary: dict[str, SummaryLine]
    total_changes: int
    changes: list[Change]


class Check(BaseModel):
    id: int
    created_at: str
    run_id: str
    sync_id: int | None
    stream: str | None
    kr_id: str | None
    check: str
    kind: str
    spec: dict[str, Any] | None = None  # the check as declared (a reconciliation: its sides and key)
    severity: str
    status: str
    element_count: int | None
    unexpected_count: int | None
    observed: str | None
    held_krs: list[str]
    proposed_value: Num
    resolved_at: Time
    resolved_by: str | None


class Held(BaseModel):
    kr_id: str
    title: str
    reason: str
    since: Time
    value_id: int | None


class Checks(BaseModel):
    checks: list[Check]
    held: list[Held]


class SampleRow(BaseModel):
    record_id: str
    fields: dict[str, Any]


class AuditLine(BaseModel):
    at: str
    actor: str
    action: str
    reason: str


class CheckDetail(Check):
    sample: list[SampleRow]
    audit: list[AuditLine]
    # a reconciliation's finding (okrsync.reconcile_view.detail); None for other checks
    reconciliation: dict[str, Any] | None = None


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, pattern=r"\S.*\S")  # as the CLI: a real reason


class Accepted(BaseModel):
    check_ids: list[int]
    stream: str | None
    rows_committed: int
    values: dict[str, Num]
    held: dict[str, str]


class Job(BaseModel):
    id: str
    kind: Literal["rerun"]
    check_id: int
    status: Literal["running", "succeeded", "partial", "failed"]
    started_at: str
    finished_at: Time
    summary: dict[str, Any] | None
    error: str | None


class User(BaseModel):
    name: str
    role: str
    created_at: str
    disabled: bool


class Users(BaseModel):
    users: list[User]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=10, max_length=1024)


class NewRole(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1, max_length=64)


class AuditEvent(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    address: str | None
    check_id: int | None
    kr_id: str | None
    reason: str


class Audit(BaseModel):
    events: list[AuditEvent]
    next_before: int | None  # pass as ``before`` for the page of older events (null: no more)


class TokenInfo(BaseModel):
    id: int
    label: str
    created_at: str
    expires_at: Time
    last_used_at: Time


class Tokens(BaseModel):
    tokens: list[TokenInfo]


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=200)
    days: int = Field(default=TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS)


class IssuedToken(BaseModel):
    id: int
    label: str
    token: str
    expires_at: Time
