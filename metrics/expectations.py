"""Run the project's Great Expectations checks on sync batches, and render their results.

Three entry points:

* :func:`check_problems` — what is wrong with a list of checks (unknown expectation, arguments GX
  rejects, columns the stream does not have, bad arguments to okrsync's own builtins), as
  ``(index, text)`` pairs for the project-file loader to report.
* :class:`BatchValidator` — validates every batch of one stream (a pandas frame plus the record id
  column ``_rid``) with GX and aggregates the results into one :class:`~metrics.quality.Outcome` per
  GX check. Values of ``sensitive`` columns never leave it: results keep counts and record ids only.
* :func:`validation_record` / :func:`build_data_docs` — a JSON-storable record of one stream's
  outcomes, and GX Data Docs rebuilt from such records.

``import great_expectations`` costs seconds, so it happens only inside the functions that run GX;
importing this module (and checking builtin-only check lists) never loads it.

How a batch is validated (measured on GX 1.24.1 / pandas 3): the frame is indexed by ``_rid`` and
run through GX's ``Validator`` with the SUMMARY result format, ``unexpected_index_column_names=
["_rid"]`` and ``exclude_unexpected_values=True``. GX then returns the ids of *all* failing rows
without copying a single value (its per-row loop for values takes ~10 µs a row: seconds for a batch
with many failures). Value samples for non-sensitive columns are then looked up, vectorised, for the
first ``sample_size`` failing ids only. ``ValidationDefinition.run`` is not used for batches: it
also serialises every result into the context's results store (deep copies of the whole id list,
16 s for 500k failing rows, and memory that grows with every batch).
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import logging
import math
import re
import threading
import uuid
import warnings
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metrics.quality import BUILTIN_ARGS, METRIC_BUILTINS, STREAM_BUILTINS, CheckSpec, Outcome
from okrsync.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

RID = "_rid"
RECORD_FORMAT = 1
_BUILTIN_SPECS = {**{k: next(iter(v)) for k, v in BUILTIN_ARGS.items()}, "max_jump_percent": "percent"}
_BUILTIN_UNITS = {"max_age_hours": "hours", "max_percent": "percent", "percent": "percent"}
# Expectation fields okrsync sets itself; a check may not pass them as arguments.
_RESERVED_ARGS = {
    "severity": "write `severity: warn|error` next to the check, not among its arguments",
    "result_format": "okrsync chooses the result format (record ids, no values of sensitive columns)",
    "batch_id": "okrsync validates each sync batch itself",
    "id": "okrsync assigns expectation ids",
    "rendered_content": "set by GX",
}
# What a result of a check on a sensitive column may keep: counts and record ids, never values.
_SAFE_RESULT_KEYS = {
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
    "unexpected_index_column_names",
    "partial_unexpected_index_list",
}
_SEVERITY = {"error": "critical", "warn": "warning"}
_HIDDEN = "hidden: the column is sensitive"
_BEACON = re.compile(r"(https://great-expectations-web-assets\.[^\"'?]+\.png)\?[^\"']*dataContextId=[^\"']*")

_context: Any = None
_context_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# GX loading, quietly
# ---------------------------------------------------------------------------------------------


def _quiet_gx() -> None:
    # GX's INFO lines (temporary docs folders…) would reach the user through Prefect's root handler;
    # okrsync reports what matters itself.
    gx_logger = logging.getLogger("great_expectations")
    gx_logger.setLevel(logging.ERROR)
    gx_logger.propagate = False
    if not gx_logger.handlers:
        gx_logger.addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module=r"great_expectations(\.|$)")


@functools.cache
def _gx_classes() -> dict[str, type]:
    """snake_case expectation name → class, derived from the classes GX exports."""
    _quiet_gx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations.expectations as gxe
        from great_expectations.expectations.expectation import Expectation
    found: dict[str, type] = {}
    for attr in dir(gxe):
        cls = getattr(gxe, attr)
        if isinstance(cls, type) and issubclass(cls, Expectation) and cls is not Expectation:
            name = getattr(cls, "expectation_type", "") or _camel_to_snake(attr)
            found[name] = cls
    return found


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _ephemeral_context() -> Any:
    """The one in-memory GX context of this process (created on first use)."""
    global _context
    with _context_lock:
        if _context is None:
            _quiet_gx()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import great_expectations as gx
                from great_expectations.data_context.types.base import ProgressBarsConfig

                ctx = gx.get_context(mode="ephemeral")
                ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            _context = ctx
        return _context


# ---------------------------------------------------------------------------------------------
# check_problems
# ---------------------------------------------------------------------------------------------


def check_problems(checks: Sequence[CheckSpec], fields: Collection[str] | None) -> list[tuple[int, str]]:
    """``(index, problem)`` for every check that cannot run; ``fields`` = the stream's columns, if known.

    Builtin checks are judged without GX; a list with only builtins never imports it.
    """
    problems: list[tuple[int, str]] = []
    for i, check in enumerate(checks):
        if check.builtin:
            problem = _builtin_problem(check)
            if problem:
                problems.append((i, problem))
            continue
        problems.extend((i, p) for p in _gx_problems(check, fields))
    return problems


def _builtin_problem(check: CheckSpec) -> str | None:
    arg = _BUILTIN_SPECS[check.kind]
    unit = _BUILTIN_UNITS[arg]
    want = f"`{check.kind}` needs exactly `{arg}` (a number of {unit} > 0)"
    extra = sorted(set(check.kwargs) - {arg})
    if extra:
        return f"{want}; unknown argument{'s' if len(extra) > 1 else ''} {_ticks(extra)}"
    if arg not in check.kwargs:
        return f"{want}; it is missing"
    value = check.kwargs[arg]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        return f"{want}; got {value!r}"
    return None


def _gx_problems(check: CheckSpec, fields: Collection[str] | None) -> list[str]:
    classes = _gx_classes()
    cls = classes.get(check.kind)
    if cls is None:
        close = difflib.get_close_matches(check.kind, [*classes, *STREAM_BUILTINS, *METRIC_BUILTINS], n=1)
        hint = f" — did you mean `{close[0]}`?" if close else " (see the expectation gallery of GX)"
        return [f"`{check.kind}` is not a Great Expectations expectation{hint}"]
    problems = [
        f"`{check.kind}`: argument `{k}` is not allowed — {why}"
        for k, why in _RESERVED_ARGS.items()
        if k in check.kwargs
    ]
    if not problems:
        error = _instantiate_error(cls, check.kwargs)
        if error:
            problems.append(f"`{check.kind}`: {error}")
    if fields is not None:
        missing = sorted(check.columns - set(fields))
        if missing:
            problems.append(
                f"`{check.label}`: column{'s' if len(missing) > 1 else ''} {_ticks(missing)} "
                f"not in the stream (its fields: {', '.join(sorted(fields)) or 'none'})"
            )
    return problems


def _instantiate_error(cls: type, kwargs: dict[str, Any]) -> str | None:
    """GX's complaint about ``cls(**kwargs)`` as one readable line, or None if it accepts them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**kwargs)
    except Exception as exc:  # GX raises pydantic (v1) ValidationError, sometimes plain ValueError
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _describe_errors(errors(), sorted(getattr(cls, "__fields__", {})))
    return None


def _describe_errors(errors: list[dict[str, Any]], known: list[str]) -> str:
    by_arg: dict[str, list[dict[str, Any]]] = {}
    for err in errors:
        by_arg.setdefault(str(err["loc"][0]) if err.get("loc") else "__root__", []).append(err)
    parts: list[str] = []
    for arg, errs in by_arg.items():
        if arg == "__root__":
            continue
        types = {e.get("type", "") for e in errs}
        if "value_error.extra" in types:
            close = difflib.get_close_matches(arg, known, n=1)
            parts.append(f"unknown argument `{arg}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
        elif "value_error.missing" in types:
            parts.append(f"missing argument `{arg}`")
        else:
            # A field typed as a union reports one error per alternative; GX's suite-parameter
            # alternative ({"$PARAMETER": ...}) and date parsing are noise for a config author.
            useful = [
                e
                for e in errs
                if e.get("type") not in ("type_error.dict", "value_error.date", "value_error.datetime")
            ] or errs
            parts.append(f"argument `{arg}`: {useful[0]['msg']}")
    if not parts:  # only model-level errors count when every argument was fine on its own
        parts = [str(e["msg"]) for e in by_arg.get("__root__", [])]
    return "; ".join(parts) or "GX rejects the arguments"


def _ticks(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


# ---------------------------------------------------------------------------------------------
# BatchValidator
# ---------------------------------------------------------------------------------------------


class _Tally:
    """Everything one check accumulates over the batches of a sync."""

    def __init__(self, check: CheckSpec, sensitive: bool) -> None:
        self.check = check
        self.sensitive = sensitive
        self.batches = 0
        self.failed_batches = 0
        self.element_count = 0
        self.unexpected_count = 0
        self.row_level = False  # a map expectation (counts rows), not an aggregate (observed_value)
        self.ids: list[str] = []
        self.first_failure: dict[str, Any] | None = None
        self.last: Any = None  # the last batch's (bounded) GX result, converted on demand
        self.observed_first_failure: str | None = None
        self.observed_last: str | None = None


class BatchValidator:
    """Validates the batches of one stream against its GX checks (builtins are skipped).

    Call :meth:`validate` once per batch, then :meth:`outcomes`. GX is imported and its objects
    (data source, asset, batch definition, suite, validation definition, uniquely named, in the
    process-wide ephemeral context) are created at the first non-empty batch.
    """

    def __init__(
        self,
        stream: str,
        checks: Sequence[CheckSpec],
        *,
        sensitive: Collection[str] = (),
        sample_size: int = 20,
    ) -> None:
        self.stream = stream
        self.sample_size = max(0, sample_size)
        self._sensitive = frozenset(sensitive)
        self._tallies = [_Tally(c, bool(c.columns & self._sensitive)) for c in checks if not c.builtin]
        self._by_id: dict[str, _Tally] = {}
        self._gx: dict[str, Any] | None = None
        self._result_format = {
            "result_format": "SUMMARY",
            "unexpected_index_column_names": [RID],
            "partial_unexpected_count": max(1, self.sample_size),
            "return_unexpected_index_query": False,
            "exclude_unexpected_values": True,  # values are looked up below, for non-sensitive checks only
            "include_unexpected_rows": False,
        }

    # -- set-up / tear-down ---------------------------------------------------------------------

    def _setup(self) -> dict[str, Any]:
        if self._gx is not None:
            return self._gx
        ctx = _ephemeral_context()
        classes = _gx_classes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx

            tag = f"okrsync-{_slug(self.stream)}-{uuid.uuid4().hex[:10]}"
            expectations = []
            for tally in self._tallies:
                check = tally.check
                cls = classes.get(check.kind)
                problem = None if cls else f"`{check.kind}` is not a Great Expectations expectation"
                problem = problem or next(iter(_gx_problems(check, None)), None)
                if problem or cls is None:
                    raise ConfigError(
                        f"stream {self.stream!r}: check {check.label}: {problem}",
                        hint="run `okrsync check` to see every problem of the project file",
                    )
                expectations.append(cls(**check.kwargs, severity=_SEVERITY[check.severity]))
            source = ctx.data_sources.add_pandas(name=tag)
            asset = source.add_dataframe_asset(name=_slug(self.stream))
            batch_definition = asset.add_batch_definition_whole_dataframe(name="whole batch")
            suite = ctx.suites.add(gx.ExpectationSuite(name=tag))
            for tally, exp in zip(self._tallies, expectations, strict=True):
                added = suite.add_expectation(exp)
                self._by_id[str(added.id)] = tally
            definition = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=tag, data=batch_definition, suite=suite)
            )
        self._gx = {
            "context": ctx,
            "tag": tag,
            "batch_definition": batch_definition,
            "suite": suite,
            "definition": definition,
        }
        return self._gx

    def close(self) -> None:
        """Remove this validator's objects from the shared context (its data source holds the last batch)."""
        if self._gx is None:
            return
        ctx, tag = self._gx["context"], self._gx["tag"]
        for remove in (
            lambda: ctx.validation_definitions.delete(tag),
            lambda: ctx.suites.delete(tag),
            lambda: ctx.data_sources.delete(tag),
        ):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    remove()
            except Exception:  # noqa: S112 - best effort: a leftover only costs memory
                continue
        self._gx = None

    def __enter__(self) -> BatchValidator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- validation -------------------------------------------------------------------------------

    def validate(self, df: pd.DataFrame) -> None:
        """Validate one batch: the stream's fields plus the string record id column ``_rid``."""
        if not self._tallies or len(df) == 0:
            return
        if RID not in df.columns:
            raise ValueError(f"stream {self.stream!r}: the batch has no {RID!r} (record id) column")
        gx_objects = self._setup()
        frame = df.set_index(RID)  # GX then lists failing ids from the index: no per-row value copies
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from great_expectations.validator.v1_validator import Validator

            suite_result = Validator(
                batch_definition=gx_objects["batch_definition"],
                batch_parameters={"dataframe": frame},
                result_format=self._result_format,
            ).validate_expectation_suite(gx_objects["suite"])
        for result in suite_result.results:
            tally = self._by_id.get(str(getattr(result.expectation_config, "id", None)))
            if tally is not None:
                self._absorb(tally, result, frame)

    def _absorb(self, tally: _Tally, result: Any, frame: pd.DataFrame) -> None:
        tally.batches += 1
        body: dict[str, Any] = result.result if isinstance(result.result, dict) else {}
        raised, message = _exception(result)
        success = bool(result.success) and not raised
        ids = _failing_ids(body, self.sample_size)
        if "unexpected_count" in body:
            tally.row_level = True
            tally.element_count += int(body.get("element_count") or 0)
            tally.unexpected_count += int(body.get("unexpected_count") or 0)
        else:
            tally.element_count += len(frame)
        need = self.sample_size - len(tally.ids)
        if need > 0 and ids:
            tally.ids.extend(ids[:need])
        # bound the result before GX converts it (its converter walks every list element)
        sample = ids[: self.sample_size]
        if "partial_unexpected_index_list" in body or ids:
            body["partial_unexpected_index_list"] = [{RID: i} for i in sample]
            # values are looked up by record id: only when the ids of this batch are unique
            if not tally.sensitive and sample and frame.index.is_unique:
                self._add_value_samples(tally.check, body, frame, sample)
        observed = _observed_value(body, tally.sensitive, raised, message)
        if not success:
            tally.failed_batches += 1
        if not success and tally.first_failure is None:
            tally.first_failure = self._to_json(tally, result)
            tally.observed_first_failure = observed
        tally.last = result
        tally.observed_last = observed

    def _add_value_samples(
        self, check: CheckSpec, body: dict[str, Any], frame: pd.DataFrame, sample: list[str]
    ) -> None:
        """GX's SUMMARY value fields for the sampled failing rows of a non-sensitive check."""
        columns = [
            c
            for c in (check.kwargs.get("column"), check.kwargs.get("column_A"), check.kwargs.get("column_B"))
            if isinstance(c, str)
        ]
        listed = check.kwargs.get("column_list")
        columns += [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else []
        columns = [c for c in dict.fromkeys(columns) if c in frame.columns]
        if not columns:
            return
        rows = frame.loc[frame.index.isin(sample), columns].reindex(sample)
        values = {c: [_plain(v) for v in rows[c].tolist()] for c in columns}
        body["partial_unexpected_index_list"] = [
            {**{c: values[c][n] for c in columns}, RID: rid} for n, rid in enumerate(sample)
        ]
        if len(columns) == 1 and "column" in check.kwargs:
            listed_values = values[columns[0]]
            body["partial_unexpected_list"] = listed_values
            counts: dict[Any, int] = {}
            for v in listed_values:
                counts[v] = counts.get(v, 0) + 1
            body["partial_unexpected_counts"] = [
                {"value": v, "count": n}
                for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            ]

    def _to_json(self, tally: _Tally, result: Any) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = result.to_json_dict()
        raw = _jsonable(raw)
        return _strip_values(raw) if tally.sensitive else _bound(raw, self.sample_size)

    def outcomes(self) -> list[Outcome]:
        """One outcome per GX check, aggregated over every batch validated so far."""
        out = []
        for tally in self._tallies:
            if tally.batches == 0:
                out.append(Outcome(check=tally.check, success=True, observed="no rows to validate"))
                continue
            result = tally.first_failure
            if result is None:
                result = self._to_json(tally, tally.last)
            out.append(
                Outcome(
                    check=tally.check,
                    success=tally.failed_batches == 0,
                    element_count=tally.element_count,
                    unexpected_count=tally.unexpected_count,
                    failing_record_ids=tuple(tally.ids),
                    observed=_summary(tally),
                    result=result,
                )
            )
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "stream"


def _exception(result: Any) -> tuple[bool, str | None]:
    """Whether GX raised evaluating the expectation, and its message."""
    info = getattr(result, "exception_info", None) or {}
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in candidates:
        if item.get("raised_exception"):
            return True, str(item.get("exception_message") or "error")
    return False, None


def _failing_ids(body: dict[str, Any], limit: int) -> list[str]:
    """The first ``limit`` record ids of GX's index list: ``[{"_rid": [ids…]}]`` (values excluded)
    or ``[{"_rid": id}, …]``."""
    found: list[str] = []
    for item in body.get("partial_unexpected_index_list") or body.get("unexpected_index_list") or []:
        if len(found) >= limit:
            break
        if isinstance(item, dict):
            value = item.get(RID)
            if isinstance(value, list):
                found.extend(str(v) for v in value[: limit - len(found)])
            elif value is not None:
                found.append(str(value))
    return found


def _plain(value: Any) -> Any:
    """A value fit for JSON: NaN/NA/NaT → None, numpy scalars → Python."""
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists and the like
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON (after GX's own conversion): plain dicts, lists, str, numbers."""

    def default(obj: Any) -> Any:
        plain = _plain(obj)
        return plain if plain is not obj else str(obj)

    return json.loads(json.dumps(value, default=default))


def _strip_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A GX result of a check on a sensitive column, with nothing left that could hold a source value."""
    out = dict(raw)
    body = raw.get("result") or {}
    kept: dict[str, Any] = {k: v for k, v in body.items() if k in _SAFE_RESULT_KEYS}
    if "partial_unexpected_index_list" in kept:
        kept["partial_unexpected_index_list"] = [
            {RID: item[RID]}
            for item in kept["partial_unexpected_index_list"]
            if isinstance(item, dict) and isinstance(item.get(RID), str)
        ]
    if "observed_value" in body:
        kept["observed_value"] = _HIDDEN  # the renderer shows this instead of the value
    out["result"] = kept
    info = raw.get("exception_info")
    if isinstance(info, dict) and info:
        raised = bool(info.get("raised_exception")) or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()
        )
        out["exception_info"] = {
            "raised_exception": raised,
            "exception_traceback": None,
            "exception_message": _HIDDEN if raised else None,
        }
    out.pop("rendered_content", None)
    return out


def _bound(value: Any, limit: int) -> Any:
    """At most ``limit`` items in any list, recursively."""
    if isinstance(value, list):
        return [_bound(v, limit) for v in value[:limit]]
    if isinstance(value, dict):
        return {k: _bound(v, limit) for k, v in value.items() if k != "rendered_content"}
    return value


def _observed_value(body: dict[str, Any], sensitive: bool, raised: bool, message: str | None) -> str | None:
    if raised:
        text = " ".join((message or "").split())[:200]
        return "GX could not evaluate it" + ("" if sensitive else f": {text}")
    if "observed_value" not in body:
        return None
    if sensitive:
        return f"observed value {_HIDDEN}"
    text = json.dumps(_jsonable(body["observed_value"]), ensure_ascii=False)
    return f"observed {text if len(text) <= 80 else text[:77] + '…'}"


def _summary(t: _Tally) -> str:
    """One line: "3 of 1,200 rows (0.25 %) failed" or "observed 12 (1 of 3 batches failed)"."""
    batches = f"{t.failed_batches} of {t.batches} batches failed" if t.batches > 1 else ""
    if t.row_level and not (t.observed_first_failure or "").startswith("GX could not"):
        if t.element_count == 0:
            return "no rows to validate"
        pct = t.unexpected_count / t.element_count * 100
        pct_text = f"{pct:.2f}" if pct >= 0.01 or pct == 0 else f"{pct:.2g}"
        return f"{t.unexpected_count:,} of {t.element_count:,} rows ({pct_text} %) failed"
    if t.failed_batches:
        observed = t.observed_first_failure or "failed"
        return f"{observed} ({batches}; first failing batch)" if batches else observed
    observed = t.observed_last or "passed"
    return f"{observed} (last of {t.batches} batches)" if t.batches > 1 else observed


# ---------------------------------------------------------------------------------------------
# Stored records and Data Docs
# ---------------------------------------------------------------------------------------------


def validation_record(stream: str, outcomes: Sequence[Outcome], run_time: datetime) -> dict[str, Any]:
    """The JSON-storable record of one stream's checks in one sync, from which Data Docs are rebuilt.

    ``{"format": 1, "stream", "suite", "run_time" (ISO, UTC), "success" (every GX check passed),
    "expectations": [{"type", "kwargs", "severity", "meta"}],
    "results": [GX ExpectationValidationResult dicts: success, expectation_config, result (counts over
    all batches; samples of the first failing batch), meta.okrsync (severity, observed, failing ids,
    blocking), exception_info],
    "builtins": [{"kind", "kwargs", "severity", "success", "observed"}]}``.
    Results come from the outcomes as they are (sensitive values were never in them).
    """
    if run_time.tzinfo is None:
        run_time = run_time.replace(tzinfo=UTC)
    expectations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    builtins: list[dict[str, Any]] = []
    for outcome in outcomes:
        check = outcome.check
        if check.builtin:
            builtins.append(
                {
                    "kind": check.kind,
                    "kwargs": _jsonable(check.kwargs),
                    "severity": check.severity,
                    "success": outcome.success,
                    "observed": outcome.observed,
                }
            )
            continue
        config = {
            "type": check.kind,
            "kwargs": _jsonable(check.kwargs),
            "severity": _SEVERITY[check.severity],
            "meta": {"okrsync_severity": check.severity},
        }
        expectations.append(config)
        stored = copy.deepcopy(outcome.result)
        body = dict(stored.get("result") or {})
        if "unexpected_count" in body:
            body["element_count"] = outcome.element_count
            body["unexpected_count"] = outcome.unexpected_count
            percent = outcome.unexpected_count / outcome.element_count * 100 if outcome.element_count else 0.0
            body["unexpected_percent"] = percent
            body["unexpected_percent_total"] = percent
        results.append(
            {
                "success": outcome.success,
                "expectation_config": config,
                "result": body,
                "meta": {
                    "okrsync": {
                        "severity": check.severity,
                        "blocking": outcome.blocking,
                        "observed": outcome.observed,
                        "failing_record_ids": list(outcome.failing_record_ids),
                    }
                },
                "exception_info": stored.get("exception_info")
                or {"raised_exception": False, "exception_traceback": None, "exception_message": None},
            }
        )
    return {
        "format": RECORD_FORMAT,
        "stream": stream,
        "suite": f"okrsync-{_slug(stream)}",
        "run_time": run_time.astimezone(UTC).isoformat(),
        "success": all(r["success"] for r in results),
        "expectations": expectations,
        "results": results,
        "builtins": builtins,
    }


def build_data_docs(validations: Sequence[dict[str, Any]], directory: Path) -> Path:
    """Render GX Data Docs for stored :func:`validation_record` dicts; returns the site's index.html.

    ``directory`` becomes (or already is) a GX File data context (``directory/gx``); its stored
    suites and validation results are replaced by the given ones, then GX's own site builder renders
    ``gx/uncommitted/data_docs/local_site``.
    """
    _quiet_gx()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.core import ExpectationSuite
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        ctx = gx.get_context(mode="file", project_root_dir=str(directory))
        site_name, site = _local_site(ctx)
        results_store = ctx.validation_results_store
        for key in results_store.list_keys():  # the site shows exactly the given validations
            results_store.remove_key(key)
        for name in [s.name for s in ctx.suites.all()]:
            ctx.suites.delete(name)

        suites: dict[str, list[Any]] = {}
        for record in validations:
            suites[record["suite"]] = [ExpectationConfiguration(**_config(e)) for e in record["expectations"]]
        for name, configs in suites.items():
            ctx.suites.add(ExpectationSuite(name=name, expectations=[c.to_domain_obj() for c in configs]))

        for record in validations:
            run_time = datetime.fromisoformat(record["run_time"])
            run_id = RunIdentifier(run_name=f"okrsync {record['stream']}", run_time=run_time)
            results = [
                ExpectationValidationResult(
                    success=r["success"],
                    expectation_config=ExpectationConfiguration(**_config(r["expectation_config"])),
                    result=r.get("result") or {},
                    meta=r.get("meta") or {},
                    exception_info=r.get("exception_info"),
                )
                for r in record["results"]
            ]
            passed = sum(1 for r in results if r.success)
            suite_result = ExpectationSuiteValidationResult(
                success=bool(record["success"]),
                results=results,
                suite_name=record["suite"],
                statistics={
                    "evaluated_expectations": len(results),
                    "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": passed / len(results) * 100 if results else None,
                },
                meta={
                    "run_id": run_id,
                    "validation_time": run_time,
                    "active_batch_definition": {
                        "datasource_name": "okrsync",
                        "data_connector_name": "sync",
                        "data_asset_name": record["stream"],
                        "batch_identifiers": {},
                    },
                    "okrsync": {"stream": record["stream"], "builtins": record.get("builtins", [])},
                },
            )
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=record["suite"]),
                run_id=run_id,
                batch_identifier=_slug(record["stream"]),
            )
            results_store.set(key, suite_result)

        ctx.clean_data_docs(site_name=site_name)
        ctx.build_data_docs(site_names=[site_name])
    site_dir = (directory / "gx" / site["store_backend"]["base_directory"]).resolve()
    _drop_beacons(site_dir)
    return site_dir / "index.html"


def _drop_beacons(site_dir: Path) -> None:
    """GX pages load its logo from S3 with `?d=<now>&dataContextId=<id>`: keep the logo, drop the id."""
    for page in site_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        cleaned = _BEACON.sub(r"\1", text)
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": raw["type"],
        "kwargs": dict(raw.get("kwargs") or {}),
        "meta": dict(raw.get("meta") or {}),
        "severity": raw.get("severity") or "critical",
    }


def _local_site(ctx: Any) -> tuple[str, dict[str, Any]]:
    """The context's filesystem site, with GX's how-to buttons and newsletter footer off."""
    sites = ctx.list_data_docs_sites()
    name = "local_site" if "local_site" in sites else next(iter(sites), "local_site")
    site = dict(
        sites.get(name)
        or {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": "uncommitted/data_docs/local_site/",
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    )
    if site.get("show_how_to_buttons", True):
        site["show_how_to_buttons"] = False
        if name in sites:
            ctx.update_data_docs_site(name, site)
        else:
            ctx.add_data_docs_site(name, site)
    return name, site
