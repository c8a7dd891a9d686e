"""From the loaded project document to a :class:`~okrsync.project.Project`, collecting every problem.

Each section is validated entry by entry (so one bad entry does not hide the problems of others), then
names are cross-checked: streams → sources, metrics → streams, ratios → simple metrics, key results →
metrics and their dimensions, unique objective/KR ids, and periods that parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from connectors.base import ConnectorFactory, StreamSpec
from connectors.registry import connector_kind, installed_kinds
from metrics.measures import Measure
from metrics.periods import parse_period
from metrics.quality import METRIC_BUILTINS, RECONCILE, CheckSpec
from metrics.spec import KeyResultSpec, ObjectiveSpec, RatioMetric, SimpleMetric
from okrsync.errors import ConfigError
from okrsync.pii import sensitive_uses
from okrsync.project_alerts import build_alerts
from okrsync.project_model import Project, Settings, SourceSpec, check_timezone
from okrsync.project_problems import KeyPath, Marks, Problems, describe, did_you_mean, display_path
from okrsync.project_reconcile import reconciliations_of

M = TypeVar("M", bound=BaseModel)

SOURCE_KEYS = ("kind", "close_after_days")  # a source's keys beside its connector's options
TOP_LEVEL = ("version", "include", "settings", "sources", "streams", "metrics", "objectives",
             "reconciliations", "alerts")
MEASURES = (*(m.value for m in Measure), "ratio")
STREAM_KEYS = tuple(k for k in StreamSpec.model_fields if k not in ("name", "options", "partition_range"))
METRIC_KEYS = tuple(sorted((set(SimpleMetric.model_fields) | set(RatioMetric.model_fields)) - {"name"}))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PASSWORD = "keep secrets out of the project file: use url_env, url_secret or password_env"


def build_project(doc: dict[str, Any], marks: Marks) -> Project:
    """Validate the document of :func:`~okrsync.project_file.load_document`; raise every problem found."""
    return _Builder(doc, marks).build()


class _Builder:
    def __init__(self, doc: dict[str, Any], marks: Marks) -> None:
        self.doc = doc
        self.marks = marks
        self.problems = Problems(marks)
        self.settings = Settings()
        self.sources: dict[str, SourceSpec] = {}
        self.factories: dict[str, ConnectorFactory] = {}
        self.streams: dict[str, StreamSpec] = {}
        self.metrics: dict[str, SimpleMetric | RatioMetric] = {}
        self.objectives: list[ObjectiveSpec] = []
        self.key_results: list[tuple[dict[str, Any], KeyPath, str | None]] = []  # raw, path, inherited
        self.ids: dict[str, KeyPath] = {}

    def build(self) -> Project:
        self._top_level()
        raw_settings = self.doc.get("settings") or {}
        settings = self._validate(Settings, raw_settings, ("settings",))
        self.settings = settings or Settings()
        default = settings.default_period if settings else None
        if settings is None and isinstance(raw_settings, dict):
            default = _period_as_text(raw_settings).get("default_period")
        if isinstance(default, str):  # checked even when other settings are wrong
            self._period_ok(default, ("settings", "default_period"))
        self._sources()
        self._streams()
        self._metrics()
        objectives = self.doc.get("objectives")
        if objectives is not None and not isinstance(objectives, list):
            self.problems.add(("objectives",), f"expected a list of objectives, got {describe(objectives)}")
        for i, raw in enumerate(objectives if isinstance(objectives, list) else []):
            if (objective := self._objective(raw, ("objectives", i), None)) is not None:
                self.objectives.append(objective)
        self._key_result_references(default if isinstance(default, str) else None)
        self._kept_fields()
        self._sensitive_uses()
        reconciliations = reconciliations_of(self, default if isinstance(default, str) else None)
        alerts = build_alerts(self.doc.get("alerts"), self.problems, self.ids, self._validate)
        self.problems.raise_if_any()
        path = self.marks[()][0]
        return Project(path, path.parent, self.settings, self.sources, self.streams, self.metrics,
                       tuple(self.objectives), self.marks, reconciliations, alerts)

    def _validate(self, model: type[M], data: Any, path: KeyPath, **kw: Iterable[str]) -> M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.problems.add_validation(exc, path, data, model, **kw)
            return None

    def _top_level(self) -> None:
        for key in self.doc:
            if key not in TOP_LEVEL:
                self.problems.add((key,), f"unknown key {key!r}{did_you_mean(key, TOP_LEVEL)} "
                                          f"(allowed: {', '.join(TOP_LEVEL)})")
        version = self.doc.get("version")
        if "version" not in self.doc:
            self.problems.add((), "missing required key 'version' (start the file with `version: 1`)")
        elif version != 1 or isinstance(version, bool):
            self.problems.add(("version",), f"version must be 1, got {describe(version)}")

    def _declared(self, name: str) -> dict[str, Any]:
        """The raw entries of a section, valid or not (for "unknown name" checks)."""
        raw = self.doc.get(name)
        return raw if isinstance(raw, dict) else {}

    def _section(self, name: str) -> dict[str, dict[str, Any]]:
        """The entries of a name → entry section that are mappings with valid names."""
        raw = self.doc.get(name)
        if raw is not None and not isinstance(raw, dict):
            self.problems.add((name,), f"expected a mapping of name → entry, got {describe(raw)}")
        out = {}
        for key, entry in self._declared(name).items():
            if not NAME.match(key):
                why = "start with a letter or digit; use letters, digits, '_', '.', '-'"
                self.problems.add((name, key), f"{key!r} is not a valid name ({why})")
            elif not isinstance(entry, dict):
                self.problems.add((name, key), f"expected a mapping of keys, got {describe(entry)}")
            else:
                out[key] = entry
        return out

    def _unknown(
        self, path: KeyPath, what: str, name: Any, known: Iterable[str], listed_as: str = "defined"
    ) -> None:
        names = sorted(known)
        listed = ", ".join(names[:20]) + (", …" if len(names) > 20 else "") or "none"
        guess = did_you_mean(name, names) if isinstance(name, str) else ""
        self.problems.add(path, f"unknown {what} {name!r}{guess} ({listed_as}: {listed})")

    def _misspelt(self, raw: dict[str, Any], path: KeyPath, known: tuple[str, ...], *,
                  listed: bool = False) -> None:
        """When a required key is missing, the unknown keys that may be it misspelt (``measur``).

        With ``listed`` every key outside ``known`` is named (``known`` is all that is allowed there);
        else only keys close to one of ``known``, as the other keys depend on what is missing."""
        for key in raw:
            if key in known:
                continue
            guess = did_you_mean(key, known)
            if listed:
                allowed = ", ".join(sorted(known))
                self.problems.add((*path, key), f"unknown key {key!r}{guess} (allowed: {allowed})")
            elif guess:
                self.problems.add((*path, key), f"unknown key {key!r}{guess}")

    def _sources(self) -> None:
        for name, raw in self._section("sources").items():
            path: KeyPath = ("sources", name)
            kind = raw.get("kind")
            kinds = installed_kinds()
            if kind is None:
                self.problems.add(path, f"missing required key 'kind' (installed kinds: {', '.join(kinds)})")
                self._misspelt(raw, path, ("kind",))
                continue
            try:
                factory = connector_kind(kind) if isinstance(kind, str) else None
            except ConfigError:
                factory = None
            except ImportError as exc:
                self.problems.add((*path, "kind"), f"the {kind!r} connector could not be loaded: {exc}")
                continue
            if factory is None:
                self._unknown((*path, "kind"), "source kind", kind, kinds, "installed")
                continue
            self.factories[name] = factory  # its streams' keys can be checked even if the source is wrong
            raw_options = {k: v for k, v in raw.items() if k not in SOURCE_KEYS}
            grace = self._close_after_days(raw, path)
            options = self._validate(factory.Options, raw_options, path, also_allowed=SOURCE_KEYS)
            if options is not None and not self._has_password(raw_options, path):
                self.sources[name] = SourceSpec(name, kind, options, grace)

    def _close_after_days(self, raw: dict[str, Any], path: KeyPath) -> int | None:
        """A source's ``close_after_days``: whole days from 0 to 366, as for settings and KRs."""
        if "close_after_days" not in raw:
            return None
        value = raw["close_after_days"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 366:
            self.problems.add((*path, "close_after_days"), f"expected whole days from 0 to 366 after the "
                              f"period ends, got {describe(value)} (e.g. close_after_days: 10)")
            return None
        return value

    def _has_password(self, raw: dict[str, Any], path: KeyPath) -> bool:
        """Whether a ``…url`` option holds a password (a guard for every kind, not only sql)."""
        found = False
        for key, value in raw.items():
            if key.endswith("url") and isinstance(value, str) and "://" in value:
                try:
                    password = urlsplit(value).password
                except ValueError:
                    continue
                if password:
                    self.problems.add((*path, key), f"the URL holds a password; {_PASSWORD}")
                    found = True
        return found

    def _streams(self) -> None:
        for name, raw in self._section("streams").items():
            path: KeyPath = ("streams", name)
            source = raw.get("source")
            common = {k: v for k, v in raw.items() if k in STREAM_KEYS}
            options: dict[str, Any] = {}
            if isinstance(source, str) and source in self.factories:
                rest = {k: v for k, v in raw.items() if k not in STREAM_KEYS}
                model = self.factories[source].StreamOptions
                validated = self._validate(model, rest, path, also_allowed=STREAM_KEYS)
                options = validated.model_dump() if validated is not None else {}
            elif isinstance(source, str) and source not in self._declared("sources"):
                self._unknown((*path, "source"), "source", source, self._declared("sources"))
            elif source is None:  # the connector's keys are unknown: name only a misspelt `source`
                self._misspelt(raw, path, ("source",))
            spec = self._validate(StreamSpec, {**common, "name": name, "options": options}, path,
                                  hidden=("name", "options"))
            if spec is not None and spec.checks:
                checks = [
                    self._validate(CheckSpec, c, (*path, "checks", i)) for i, c in enumerate(spec.checks)
                ]
                for i, c in enumerate(checks):
                    if c is not None and c.kind in METRIC_BUILTINS:
                        self.problems.add((*path, "checks", i), f"{c.kind} checks a metric's values: put it "
                                          "under the metric's `checks`")
                    elif c is not None and c.kind == RECONCILE:
                        self.problems.add((*path, "checks", i), "a reconciliation compares two metrics: "
                                          "declare it in the top-level `reconciliations:` section")
                spec = spec.model_copy(update={"checks": tuple(c for c in checks if c is not None)})
            if spec is not None and spec.timezone is not None:
                try:
                    check_timezone(spec.timezone)
                except ValueError as exc:
                    self.problems.add((*path, "timezone"), str(exc))
            if spec is not None:
                self.streams[name] = spec

    def _metrics(self) -> None:
        declared = self._declared("metrics")
        for name, raw in self._section("metrics").items():
            path: KeyPath = ("metrics", name)
            measure = raw.get("measure")
            if "name" in raw:
                self.problems.add((*path, "name"), "unknown key 'name': a metric's name is its key")
            stream = raw.get("stream")
            if isinstance(stream, str) and stream not in self._declared("streams"):
                self._unknown((*path, "stream"), "stream", stream, self._declared("streams"))
            for part in ("numerator", "denominator"):
                other = raw.get(part)
                if not isinstance(other, str) or measure != "ratio":
                    continue
                if other not in declared:
                    self._unknown((*path, part), "metric", other, declared)
                elif isinstance(declared[other], dict) and declared[other].get("measure") == "ratio":
                    why = f"{other!r} is a ratio; a ratio's parts must be simple metrics"
                    self.problems.add((*path, part), why)
            if measure is None:
                self.problems.add(path, f"missing required key 'measure' (one of {', '.join(MEASURES)})")
                self._misspelt({k: v for k, v in raw.items() if k != "name"}, path, METRIC_KEYS, listed=True)
            elif measure not in MEASURES:
                guess = did_you_mean(measure, MEASURES) if isinstance(measure, str) else ""
                why = f"{measure!r} is not one of {', '.join(MEASURES)}{guess}"
                self.problems.add((*path, "measure"), why)
            else:
                model: type[SimpleMetric | RatioMetric] = RatioMetric if measure == "ratio" else SimpleMetric
                data = {**{k: v for k, v in raw.items() if k != "name"}, "name": name}
                if (metric := self._validate(model, data, path, hidden=("name",))) is not None:
                    self.metrics[name] = metric

    def _kept_fields(self) -> None:
        """A metric may use only the fields its stream keeps (when the stream lists them): found here,
        not as a KeyError once the run has read everything. Streams keeping all fields are checked
        against the source's schema by ``validate --check-sources`` and before each run reads."""
        for name, metric in self.metrics.items():
            stream = self.streams.get(metric.stream) if isinstance(metric, SimpleMetric) else None
            if stream is None or stream.fields is None:
                continue
            assert isinstance(metric, SimpleMetric)
            kept = list(dict.fromkeys((*stream.primary_key, *stream.fields, *stream.cursor)))
            for field in sorted(metric.fields_used() - set(kept)):
                why = (f"stream {metric.stream!r} does not keep field {field!r}{did_you_mean(field, kept)} "
                       f"(its fields: {', '.join(kept)}; add it to streams.{metric.stream}.fields)")
                self.problems.add(("metrics", name, metric_key(metric, field)), why)

    def _sensitive_uses(self) -> None:
        """Sensitive fields are stored sealed: refuse what cannot work on sealed values."""
        hidden = {name: s.sensitive for name, s in self.streams.items() if s.sensitive}
        for name, s in self.streams.items():
            for key in ("primary_key", "cursor"):
                for f in getattr(s, key):
                    if f in s.sensitive:
                        self.problems.add(("streams", name, "sensitive"),
                                          f"{f!r} is the stream's {key.replace('_', ' ')}: it cannot be "
                                          "sensitive (it is needed in clear to sync)")
        for name, metric in self.metrics.items():
            for path, why in sensitive_uses(hidden, metric):
                self.problems.add(("metrics", name, *path), why)

    def _objective(self, raw: Any, path: KeyPath, inherited: str | None) -> ObjectiveSpec | None:
        """Validate one objective, its key results and children separately, so all problems surface."""
        if not isinstance(raw, dict):
            self.problems.add(path, f"expected an objective (a mapping with id, title…), got {describe(raw)}")
            return None
        self._claim_id(raw.get("id"), path)
        raw = _period_as_text(raw)
        period = raw.get("period")
        if isinstance(period, str):
            self._period_ok(period, (*path, "period"))  # a bad one is reported here, not at each KR
        own_period = period if isinstance(period, str) else inherited
        parts: dict[str, list[Any]] = {"key_results": [], "objectives": []}
        ok = True
        for key in parts:
            items = raw.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                self.problems.add((*path, key), f"expected a list, got {describe(items)}")
                ok = False
                continue
            for j, item in enumerate(items):
                if key == "key_results":
                    built: Any = self._key_result(item, (*path, key, j), own_period)
                else:
                    built = self._objective(item, (*path, key, j), own_period)
                ok = ok and built is not None
                parts[key].append(built)
        objective = self._validate(ObjectiveSpec, {k: v for k, v in raw.items() if k not in parts}, path)
        if objective is None or not ok:
            return None
        return objective.model_copy(update={k: tuple(v) for k, v in parts.items()})

    def _key_result(self, raw: Any, path: KeyPath, inherited: str | None) -> KeyResultSpec | None:
        if isinstance(raw, dict):
            self._claim_id(raw.get("id"), path)
            raw = _period_as_text(raw)
            self.key_results.append((raw, path, inherited))
        return self._validate(KeyResultSpec, raw, path)

    def _claim_id(self, raw_id: Any, path: KeyPath) -> None:
        if not isinstance(raw_id, str):
            return
        if raw_id in self.ids:
            first = self.marks.locate((*self.ids[raw_id], "id"))
            where = f" (first used at {display_path(first[0])}:{first[1]})" if first else ""
            self.problems.add((*path, "id"), f"duplicate id {raw_id!r}{where}; objective and key result ids "
                                             "must be unique across the project")
        else:
            self.ids[raw_id] = path

    def _period_ok(self, text: str, path: KeyPath) -> bool:
        s = self.settings
        try:
            parse_period(text, timezone=s.timezone, fiscal_year_start_month=s.fiscal_year_start_month,
                         fiscal_year_named_by=s.fiscal_year_named_by)
        except ValueError as exc:
            self.problems.add(path, str(exc))
            return False
        return True

    def _key_result_references(self, default: str | None) -> None:
        declared = self._declared("metrics")
        for raw, path, inherited in self.key_results:
            period, metric, dimensions = raw.get("period"), raw.get("metric"), raw.get("dimensions")
            if isinstance(period, str):
                self._period_ok(period, (*path, "period"))
            elif period is None and inherited is None and default is None:
                self.problems.add(path, "no period: set `period` on this key result or an enclosing "
                                        "objective, or set settings.default_period")
            if isinstance(metric, str) and metric not in declared:
                self._unknown((*path, "metric"), "metric", metric, declared)
            allowed = self._dimensions(metric) if isinstance(metric, str) else None
            if allowed is None or not isinstance(dimensions, dict):
                continue
            for key in dimensions:
                if key not in allowed:
                    if allowed:
                        why = f"(its dimensions: {', '.join(sorted(allowed))})"
                    else:
                        why = f"(it declares none: add `dimensions: [{key}]` to the metric)"
                    guess = did_you_mean(key, allowed)
                    self.problems.add((*path, "dimensions", key),
                                      f"metric {metric!r} has no dimension {key!r}{guess} {why}")

    def _dimensions(self, name: str) -> set[str] | None:
        """The dimensions a KR may pin on a metric (common to both parts of a ratio); None: unknown."""
        metric = self.metrics.get(name)
        if isinstance(metric, SimpleMetric):
            return set(metric.dimensions)
        if isinstance(metric, RatioMetric):
            parts = [self.metrics.get(metric.numerator), self.metrics.get(metric.denominator)]
            if all(isinstance(p, SimpleMetric) for p in parts):
                return set.intersection(*(set(p.dimensions) for p in parts if isinstance(p, SimpleMetric)))
        return None


def metric_key(metric: SimpleMetric, field: str) -> str:
    """The key of ``metric`` that names ``field`` (for the line of a message about it)."""
    for key in ("field", "time_field", "until_field"):
        if getattr(metric, key) == field:
            return key
    if metric.days_between and field in metric.days_between:
        return "days_between"
    return "dimensions" if field in metric.dimensions else "filter"


def _period_as_text(raw: dict[str, Any]) -> dict[str, Any]:
    """``period: 2026`` is read by YAML as a number; it means the year."""
    period = raw.get("period")
    if isinstance(period, int) and not isinstance(period, bool):
        return {**raw, "period": str(period)}
    return raw
