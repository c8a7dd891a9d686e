"""What is wrong with a list of checks, judged before anything runs: :func:`check_problems`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from typing import Any

from metrics.gx.runtime import expectation_classes
from metrics.quality import BUILTIN_ARGS, METRIC_BUILTINS, STREAM_BUILTINS, CheckSpec
from okrsync.errors import close_matches

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
        problems.extend((i, p) for p in expectation_problems(check, fields))
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


def expectation_problems(check: CheckSpec, fields: Collection[str] | None) -> list[str]:
    classes = expectation_classes()
    cls = classes.get(check.kind)
    if cls is None:
        close = close_matches(check.kind, [*classes, *STREAM_BUILTINS, *METRIC_BUILTINS], n=1)
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
            close = close_matches(arg, known, n=1)
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
