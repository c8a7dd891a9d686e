"""Validating the batches of one stream with GX: :class:`BatchValidator`.

See :mod:`metrics.gx` for how a batch is validated and why.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from metrics.gx.problems import expectation_problems
from metrics.gx.results import (
    RID,
    bound,
    exception_of,
    failing_ids,
    jsonable,
    observed_value,
    plain,
    strip_values,
)
from metrics.gx.runtime import SEVERITY, ephemeral_context, expectation_classes, slug
from metrics.quality import CheckSpec, Outcome
from okrsync.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


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
        ctx = ephemeral_context()
        classes = expectation_classes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx

            tag = f"okrsync-{slug(self.stream)}-{uuid.uuid4().hex[:10]}"
            expectations = []
            for tally in self._tallies:
                check = tally.check
                cls = classes.get(check.kind)
                problem = None if cls else f"`{check.kind}` is not a Great Expectations expectation"
                problem = problem or next(iter(expectation_problems(check, None)), None)
                if problem or cls is None:
                    raise ConfigError(
                        f"stream {self.stream!r}: check {check.label}: {problem}",
                        hint="run `okrsync check` to see every problem of the project file",
                    )
                expectations.append(cls(**check.kwargs, severity=SEVERITY[check.severity]))
            source = ctx.data_sources.add_pandas(name=tag)
            asset = source.add_dataframe_asset(name=slug(self.stream))
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
        raised, message = exception_of(result)
        success = bool(result.success) and not raised
        ids = failing_ids(body, self.sample_size)
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
        observed = observed_value(body, tally.sensitive, raised, message)
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
        values = {c: [plain(v) for v in rows[c].tolist()] for c in columns}
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
        raw = jsonable(raw)
        return strip_values(raw) if tally.sensitive else bound(raw, self.sample_size)

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
