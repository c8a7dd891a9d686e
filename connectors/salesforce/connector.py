"""Salesforce objects as streams, through simple-salesforce.

How a sync reads (docs/salesforce.md has the user's view):

* ``schema`` comes from the object's ``describe`` (and its parents' for ``Account.Name``-style fields);
  every name that reaches SOQL was found there first.
* ``read`` sends one SOQL query ordered by (cursor, Id) — ``SystemModstamp >= watermark − lookback`` on
  incremental runs; :mod:`.extraction` pages it over REST or runs it as a Bulk API 2.0 job.
* ``deleted`` asks ``queryAll`` for records with ``IsDeleted = true`` changed since the watermark: the
  store closes their versions (tombstones), one query per sync instead of reading every Id. Records purged
  from the recycle bin are caught by the periodic key reconciliation (``keys``), weekly by default.
* ``excluded`` finds records a ``where`` no longer selects after an edit (changed Ids read without the
  filter, minus those read with it): the store closes them on the same sync, not at the next reconciliation.
* ``api_calls`` counts requests to ``/services/data/`` (what the org counts against its daily limit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from connectors.base import SourceConnector, StreamSpec, Watermark
from connectors.kit.cursor import Incremental
from connectors.kit.options import validated
from connectors.salesforce import soql
from connectors.salesforce.options import VALIDATE, SalesforceOptions, SalesforceStreamOptions
from connectors.salesforce.values import BadValue, SfField, field_of, frame
from okrsync.errors import ConfigError, SourceError, did_you_mean
from okrsync.schema import Field, FieldType, StreamSchema

if TYPE_CHECKING:  # simple-salesforce and pandas load on the first read: `status` and `drill` need neither
    import pandas as pd
    from simple_salesforce import Salesforce

    from connectors.salesforce.client import SfClient
    from connectors.salesforce.currency import Rates
    from connectors.salesforce.extraction import Extractor


@dataclass(frozen=True)
class _Plan:
    obj: str
    fields: dict[str, SfField]  # every column the stream may keep, by name
    converted: dict[str, str]  # converted column → source amount field
    date_field: str | None
    where: str | None
    has_currency: bool
    deletable: bool

    @property
    def schema(self) -> StreamSchema:
        return StreamSchema(tuple(f.field for f in self.fields.values()))


class SalesforceConnector(SourceConnector):
    """One org. Cheap to create; logs in on first use."""

    kind: ClassVar[str] = "salesforce"
    Options: ClassVar[type[BaseModel]] = SalesforceOptions
    StreamOptions: ClassVar[type[BaseModel]] = SalesforceStreamOptions
    options_hint: ClassVar[str] = "see the salesforce source keys in docs/salesforce.md"
    # Deleted records are reported by the source (queryAll); every Id is compared once a week.
    reports_deletions = True
    default_deletes = "tombstones"
    default_reconcile_every_hours = 168
    options: SalesforceOptions

    def __init__(self, name: str, options: SalesforceOptions | Mapping[str, Any], base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, options, base_dir)
        self._base_dir, self._sleep = base_dir, sleep
        self._describes: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, _Plan] = {}

    @cached_property
    def client(self) -> SfClient:
        """The org's API client (logs in on its first call)."""
        from connectors.salesforce.client import SfClient

        return SfClient(self.name, self.options, self._base_dir, self._sleep)

    @cached_property
    def extractor(self) -> Extractor:
        from connectors.salesforce.extraction import Extractor

        return Extractor(self.name, self.client)

    @cached_property
    def rates(self) -> Rates:
        from connectors.salesforce.currency import Rates

        return Rates(self.name, self.client)

    @property
    def api_calls(self) -> int:
        return self.client.calls

    @property
    def bulk_jobs(self) -> int:
        return self.extractor.bulk_jobs

    @property
    def notes(self) -> list[str]:
        """What the reads decided (Bulk fallbacks, resumed cursors), for the run's log."""
        return self.extractor.notes

    # -- the Connector protocol -------------------------------------------------------------------------

    def check(self) -> None:
        """Log in and read the org's limits (one API call)."""
        self.client.call("checking the connection", lambda sf: sf.limits())

    def schema(self, stream: StreamSpec) -> StreamSchema:
        self._plans.pop(stream.name, None)
        return self._plan(stream).schema

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        from connectors.salesforce.extraction import Read

        plan = self._plan(stream)
        kept = stream.kept_fields(plan.schema)
        paths = self._query_paths(plan, kept)
        window = Incremental.of(stream, since, FieldType.DATETIME)
        conditions = [plan.where] if plan.where else []
        if not window.full:
            conditions.append(self._changed_since(stream, window))
        order = [*stream.cursor[:1], "Id"]
        read = Read(soql.select(plan.obj, paths, conditions, order), paths, order)
        if window.exact:
            # SOQL datetimes stop at the second: skip what was read up to the watermark itself.
            read.last = window.position
        for rows in self.extractor.extract(stream, read):
            yield self._frame(stream, plan, paths, rows, kept)

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """Ids of records deleted (recycle bin) since the watermark; nothing on a full read."""
        from connectors.salesforce.extraction import Read

        plan = self._plan(stream)
        window = Incremental.of(stream, since, FieldType.DATETIME)
        if window.full or not plan.deletable:
            return
        cursor = stream.cursor[0]
        conditions = ["IsDeleted = true", self._changed_since(stream, window)]
        read = Read(soql.select(plan.obj, ["Id", cursor], conditions, [cursor, "Id"]), ["Id", cursor],
                     [cursor, "Id"], include_deleted=True)
        for rows in self.extractor.extract(stream, read):
            yield _ids(rows)

    def excluded(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """Ids of records changed since the watermark that the stream's ``where`` no longer selects
        (an edit moved a deal out of Closed Won): the incremental read cannot see them, so the store
        closes them. The changed Ids are read with the filter and without it: those only the second finds."""
        from connectors.salesforce.extraction import Read

        plan = self._plan(stream)
        window = Incremental.of(stream, since, FieldType.DATETIME)
        if window.full or not plan.where:
            return
        cursor = stream.cursor[0]
        changed = self._changed_since(stream, window)
        order = [cursor, "Id"]

        def changed_ids(conditions: list[str]) -> Iterator[pd.DataFrame]:
            read = Read(soql.select(plan.obj, ["Id", cursor], conditions, order), ["Id", cursor], order)
            for rows in self.extractor.extract(stream, read):
                yield _ids(rows)

        selected = {i for ids in changed_ids([plan.where, changed]) for i in ids["Id"]}
        for ids in changed_ids([changed]):
            yield ids[~ids["Id"].isin(selected)]

    @staticmethod
    def _changed_since(stream: StreamSpec, window: Incremental) -> str:
        """``SystemModstamp >= start`` (SOQL compares datetimes to the whole second)."""
        return f"{stream.cursor[0]} >= {soql.literal(window.start.replace(microsecond=0))}"

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        from connectors.salesforce.extraction import Read

        plan = self._plan(stream)
        text = soql.select(plan.obj, ["Id"], [plan.where] if plan.where else [], ["Id"])
        read = Read(text, ["Id"], ["Id"])
        for rows in self.extractor.extract(stream, read):
            yield _ids(rows)

    def needs_full_refresh(self, stream: StreamSpec) -> bool:
        """Formula fields change without moving SystemModstamp (a parent's edit, TODAY()): a stream
        that keeps one is read in full whenever its keys are reconciled (weekly by default)."""
        plan = self._plan(stream)
        kept = stream.kept_fields(plan.schema)
        return any(plan.fields[k].calculated or "." in k for k in kept if k in plan.fields)

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        """``{instance}/lightning/r/{Object}/{Id}/view`` (the instance from ``instance_url`` or
        ``login_url``; for a My Domain login, ``https://{domain}.salesforce.com``)."""
        o = self.options
        base = o.instance_url or o.login_url or (
            f"https://{o.domain}.salesforce.com" if o.domain not in ("login", "test") else None)
        if base is None:
            return None
        return f"{base}/lightning/r/{stream.options.get('object')}/{record_id}/view"

    def close(self) -> None:
        if "client" in self.__dict__:  # never created: nothing to close
            self.client.close()

    # -- describing ---------------------------------------------------------------------------------------

    def _describe(self, obj: str, stream: StreamSpec) -> dict[str, Any]:
        if obj not in self._describes:
            def describe(sf: Salesforce) -> Any:
                return getattr(sf, obj).describe()

            try:
                self._describes[obj] = self.client.call(f"describing {obj}", describe)
            except SourceError as exc:
                if "NOT_FOUND" in exc.message:
                    raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: the org has no object "
                                      f"{obj!r} (or the integration user cannot see it)",
                                      hint="use the object's API name (custom objects end in __c)") from None
                raise
        return self._describes[obj]

    def _plan(self, stream: StreamSpec) -> _Plan:
        if stream.name in self._plans:
            return self._plans[stream.name]
        where = f"source {self.name!r}, stream {stream.name!r}"
        so = validated(SalesforceStreamOptions, stream.options, where=where, hint="a salesforce stream takes "
                       "`object`, and optionally `where` and `convert_currency`")
        if stream.primary_key != ("Id",):
            raise ConfigError(f"{where}: the primary key of a Salesforce stream is Id",
                              hint="write `primary_key: Id`")
        desc = self._describe(so.object, stream)
        own = {d["name"]: d for d in desc["fields"]}
        fields: dict[str, SfField] = {}
        for name, d in own.items():
            if (found := field_of(name, d)) is not None:
                fields[name] = found
        for path in [p for p in (stream.fields or ()) if "." in p]:
            fields[path] = self._related(stream, so.object, own, path)
        names = list(fields)
        for name in (*(stream.fields or ()), *stream.primary_key, *stream.cursor):
            if name not in fields and name not in self._converted_names(so):
                raise ConfigError(f"{where}: {so.object} has no field {name!r}{did_you_mean(name, names)}",
                                  hint=VALIDATE)
        if len(stream.cursor) > 1 or (stream.cursor and fields[stream.cursor[0]].field.type
                                      is not FieldType.DATETIME):
            raise ConfigError(f"{where}: the cursor of a Salesforce stream is one datetime field",
                              hint="write `cursor: SystemModstamp` (it changes with every edit)")
        converted: dict[str, str] = {}
        date_field = None
        if so.convert_currency:
            cc = so.convert_currency
            for amount in cc.fields:
                if amount not in fields or fields[amount].field.type is not FieldType.DECIMAL:
                    raise ConfigError(f"{where}: convert_currency: {amount!r} is not a number field of "
                                      f"{so.object}{did_you_mean(amount, names)}", hint=VALIDATE)
                col = f"{amount}_{self.options.currency}"
                converted[col] = amount
                scale = fields[amount].field.scale
                fields[col] = SfField(col, Field(col, FieldType.DECIMAL, scale), "currency")
            if cc.date_field is not None:
                if cc.date_field not in fields or not fields[cc.date_field].field.type.temporal:
                    raise ConfigError(f"{where}: convert_currency: date_field {cc.date_field!r} is not a "
                                      f"date or datetime field of {so.object}", hint=VALIDATE)
                date_field = cc.date_field
        clause = None
        if so.where is not None:
            try:
                clause = soql.where_clause(so.where, lambda n: _source_field(so.object, fields, converted, n))
            except soql.FilterError as exc:
                raise ConfigError(f"{where}: where: {exc}", hint="a `where` filter has the shape of a "
                                  "metric's `filter`") from None
        plan = _Plan(so.object, fields, converted, date_field, clause, "CurrencyIsoCode" in own,
                     "IsDeleted" in own)
        self._plans[stream.name] = plan
        return plan

    def _converted_names(self, so: SalesforceStreamOptions) -> set[str]:
        cc = so.convert_currency
        return {f"{f}_{self.options.currency}" for f in cc.fields} if cc else set()

    def _related(self, stream: StreamSpec, obj: str, own: dict[str, Any], path: str) -> SfField:
        """``Account.Name``: follow the relationship through the parent object's describe."""
        where = f"source {self.name!r}, stream {stream.name!r}"
        rel, _, rest = path.partition(".")
        by_rel = {d["relationshipName"]: d for d in own.values() if d.get("relationshipName")}
        ref = by_rel.get(rel)
        if ref is None or not ref.get("referenceTo"):
            raise ConfigError(f"{where}: {obj} has no relationship {rel!r}{did_you_mean(rel, list(by_rel))}",
                              hint="relationship fields are written Relationship.Field, e.g. Account.Name")
        parent = self._describe(ref["referenceTo"][0], stream)
        parent_fields = {d["name"]: d for d in parent["fields"]}
        if "." in rest:
            inner = self._related(stream, parent["name"], parent_fields, rest)
            return SfField(path, Field(path, inner.field.type, inner.field.scale), inner.sf_type)
        d = parent_fields.get(rest)
        f = field_of(path, d) if d else None
        if f is None:
            raise ConfigError(f"{where}: {parent['name']} has no field {rest!r}"
                              f"{did_you_mean(rest, list(parent_fields))}", hint=VALIDATE)
        return f

    def _query_paths(self, plan: _Plan, kept: Sequence[str]) -> list[str]:
        paths = [k for k in kept if k not in plan.converted]
        extra = list(plan.converted.values())
        if plan.converted:
            extra += ["CurrencyIsoCode"] if plan.has_currency else []
            extra += [plan.date_field] if plan.date_field else []
        return list(dict.fromkeys([*paths, *extra]))

    # -- extracting -----------------------------------------------------------------------------------

    def _frame(self, stream: StreamSpec, plan: _Plan, paths: list[str], rows: list[list[Any]],
               kept: Sequence[str]) -> pd.DataFrame:
        sf_fields = [plan.fields[p] for p in paths]
        try:
            df = frame(rows, sf_fields, paths.index("Id"))
        except BadValue as exc:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: {exc}",
                              hint=f"fix the record in Salesforce or leave the field out of `fields`; "
                              f"{VALIDATE}") from None
        for col, amount in plan.converted.items():
            df[col] = self.rates.convert(stream, df, amount, plan.fields[amount].field.scale or 0,
                                         "CurrencyIsoCode" if plan.has_currency else None, plan.date_field)
        return df[list(kept)]


def _ids(rows: list[list[Any]]) -> pd.DataFrame:
    """The ``Id`` column of rows whose first value is the Id."""
    import pandas as pd

    return pd.DataFrame({"Id": pd.Series([r[0] for r in rows], dtype="str")})


def _source_field(obj: str, fields: dict[str, SfField], converted: dict[str, str], name: str) -> str:
    """A field a ``where`` filter may name: one of the object's (converted columns exist only here)."""
    if name not in fields or name in converted:
        raise soql.FilterError(f"{obj} has no field {name!r}{did_you_mean(name, list(fields))}")
    return name

