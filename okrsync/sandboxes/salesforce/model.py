"""In-memory org: records of User, Account, Opportunity, Lead, Case and DatedConversionRate.

Records are plain dicts keyed by canonical field names holding Python values (``str``, ``float``,
``bool``, ``date``, timezone-aware ``datetime`` in UTC, or ``None``). Every mutation *replaces* a
record's dict (copy-on-write) so that open query cursors and bulk results keep their snapshot.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .errors import ApiError
from .ids import KEY_PREFIXES, IdFactory
from .schema import CURRENCIES, OPP_TYPES, REGIONS, STAGE_PROBABILITY, STAGES, ObjectDef, build_schema

DEFAULT_NOW = datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
ORG_ID = "00D5g0000012345EAA"


class Clock:
    """A controllable clock for SystemModstamp/LastModifiedDate (UTC, millisecond precision)."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("clock needs a timezone-aware datetime")
        self._now = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


class Org:
    """The data of one sandbox org, plus a mutation API for tests."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        self.schema: dict[str, ObjectDef] = build_schema()
        self.clock = Clock(now)
        self.ids = IdFactory()
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._case_number = 1000
        self.org_id = ORG_ID

    # -- reading ---------------------------------------------------------------------------------------
    def object_def(self, name: str) -> ObjectDef:
        for obj in self.schema.values():
            if obj.name.lower() == name.lower():
                return obj
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def records(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """A snapshot list of the object's records (the dicts are shared: treat them as read-only)."""
        with self.lock:
            rows = list(self.tables[self.object_def(obj).name].values())
        if include_deleted:
            return rows
        return [r for r in rows if not r.get("IsDeleted")]

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        table = self.tables[self.object_def(obj).name]
        rec = table.get(record_id) or (
            table.get(_find_15(table, record_id)) if len(record_id) == 15 else None
        )
        if rec is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return rec

    # -- mutating --------------------------------------------------------------------------------------
    def insert(self, obj: str, fields: dict[str, Any] | None = None, **kw: Any) -> str:
        odef = self.object_def(obj)
        values = {**(fields or {}), **kw}
        self._check_fields(odef, values)
        now = self.clock.now()
        with self.lock:
            rec_id = values.pop("Id", None) or self.ids.new(odef.key_prefix)
            rec: dict[str, Any] = {f.name: None for f in odef.fields}
            rec.update({"Id": rec_id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now})
            if "IsDeleted" in rec:
                rec["IsDeleted"] = False
            if "CurrencyIsoCode" in rec:
                rec["CurrencyIsoCode"] = "USD"
            if odef.name == "Case":
                self._case_number += 1
                rec["CaseNumber"] = f"{self._case_number:08d}"
            rec.update(values)
            _derive(odef.name, rec)
            self.tables[odef.name][rec_id] = rec
        return rec_id

    def update(self, obj: str, record_id: str, fields: dict[str, Any] | None = None, **kw: Any) -> None:
        odef = self.object_def(obj)
        values = {**(fields or {}), **kw}
        self._check_fields(odef, values)
        with self.lock:
            old = self.get(odef.name, record_id)
            if old.get("IsDeleted"):
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
            now = self.clock.now()
            rec = {**old, **values, "LastModifiedDate": now, "SystemModstamp": now}
            _derive(odef.name, rec)
            self.tables[odef.name][old["Id"]] = rec

    def delete(self, obj: str, record_id: str) -> None:
        """Soft delete: the record moves to the recycle bin (visible through queryAll only)."""
        self._set_deleted(obj, record_id, True)

    def undelete(self, obj: str, record_id: str) -> None:
        self._set_deleted(obj, record_id, False)

    def purge(self, obj: str, record_id: str) -> None:
        """Hard delete (emptied from the recycle bin): gone even from queryAll."""
        with self.lock:
            rec = self.get(obj, record_id)
            del self.tables[self.object_def(obj).name][rec["Id"]]

    def _set_deleted(self, obj: str, record_id: str, deleted: bool) -> None:
        odef = self.object_def(obj)
        if not odef.deletable:
            raise ApiError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {odef.name}")
        with self.lock:
            old = self.get(odef.name, record_id)
            if bool(old["IsDeleted"]) == deleted:
                code = "ENTITY_IS_DELETED" if deleted else "UNDELETE_FAILED"
                raise ApiError(
                    404 if deleted else 400, code, "entity is deleted" if deleted else "not deleted"
                )
            now = self.clock.now()
            self.tables[odef.name][old["Id"]] = {
                **old,
                "IsDeleted": deleted,
                "LastModifiedDate": now,
                "SystemModstamp": now,
            }

    def mutate(
        self,
        obj: str,
        fraction: float,
        seed: int,
        delete_share: float = 0.2,
        advance_seconds: float = 60,
    ) -> tuple[list[str], list[str]]:
        """Change a deterministic sample of the live records, as users would between two syncs.

        The clock first moves ``advance_seconds`` on; then ``round(fraction * live records)`` live records
        are picked with ``random.Random(seed)``; ``round(picked * delete_share)`` of them are soft-deleted
        and the rest updated (Opportunity: a new non-null ``Amount``, sometimes a new ``StageName``;
        Account: ``AnnualRevenue``; Lead: ``LeadSource``; Case: ``Priority``; other objects are saved
        unchanged). The clock moves 1 ms before each record, so every change has its own SystemModstamp,
        later than any before the call. Returns ``(updated_ids, deleted_ids)``, each in the order applied.
        """
        if not 0 <= fraction <= 1 or not 0 <= delete_share <= 1:
            raise ValueError("fraction and delete_share must be between 0 and 1")
        odef = self.object_def(obj)
        rng = random.Random(seed)
        with self.lock:
            self.clock.advance(seconds=advance_seconds)
            live = [r["Id"] for r in self.tables[odef.name].values() if not r.get("IsDeleted")]
            picked = rng.sample(live, round(fraction * len(live)))
            n_delete = round(len(picked) * delete_share)
            if n_delete and not odef.deletable:
                raise ValueError(f"{odef.name} records cannot be deleted: pass delete_share=0")
            to_delete = set(rng.sample(range(len(picked)), n_delete))
            updated: list[str] = []
            deleted: list[str] = []
            for i, rec_id in enumerate(picked):
                self.clock.advance(milliseconds=1)
                if i in to_delete:
                    self._set_deleted(odef.name, rec_id, True)
                    deleted.append(rec_id)
                else:
                    self.update(odef.name, rec_id, _changes(odef.name, self.tables[odef.name][rec_id], rng))
                    updated.append(rec_id)
        return updated, deleted

    @staticmethod
    def _check_fields(odef: ObjectDef, values: dict[str, Any]) -> None:
        for name in values:
            if name.lower() not in odef.by_lower or odef.by_lower[name.lower()].name != name:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {odef.name}"
                )

    # -- seeded data -----------------------------------------------------------------------------------
    def generate(
        self,
        seed: int = 7,
        users: int = 25,
        accounts: int = 500,
        opportunities: int = 2000,
        leads: int = 300,
        cases: int = 300,
        deleted_fraction: float = 0.02,
    ) -> Org:
        """Fill the org deterministically for ``seed`` (200,000 opportunities take a few seconds)."""
        rng = random.Random(seed)
        now = self.clock.now()
        start = datetime(2024, 1, 1, tzinfo=UTC)
        span_ms = int((now - start).total_seconds() * 1000)

        def stamps() -> tuple[datetime, datetime]:
            created = start + timedelta(milliseconds=rng.randrange(span_ms))
            modified = created + timedelta(
                milliseconds=rng.randrange(int((now - created).total_seconds() * 1000) + 1)
            )
            return created, modified

        def base(prefix: str) -> dict[str, Any]:
            created, modified = stamps()
            return {
                "Id": self.ids.new(prefix),
                "IsDeleted": False,
                "CreatedDate": created,
                "LastModifiedDate": modified,
                "SystemModstamp": modified,
            }

        first = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Linus", "Margaret", "Donald", "Frances")
        last = (
            "Lovelace",
            "Hopper",
            "Turing",
            "Dijkstra",
            "Liskov",
            "Thompson",
            "Torvalds",
            "Hamilton",
            "Knuth",
            "Allen",
            "Müller",
            "O'Brien",
        )
        user_ids: list[str] = []
        for i in range(users):
            rec = base(KEY_PREFIXES["User"])
            del rec["IsDeleted"]
            fn, ln = first[i % len(first)], last[(i // len(first) + i) % len(last)]
            rec.update(
                {
                    "FirstName": fn,
                    "LastName": ln,
                    "Name": f"{fn} {ln}",
                    "Username": f"user{i}@okrsync.test",
                    "Email": f"user{i}@okrsync.test",
                    "IsActive": i % 10 != 9,
                    "Region__c": REGIONS[i % 4],
                    "CurrencyIsoCode": "USD",
                }
            )
            self.tables["User"][rec["Id"]] = rec
            user_ids.append(rec["Id"])

        acct_ids: list[str] = []
        acct_types = ("Prospect", "Customer - Direct", "Partner")
        industries = ("Technology", "Finance", "Healthcare", "Retail", "Manufacturing")
        for i in range(accounts):
            rec = base(KEY_PREFIXES["Account"])
            rec.update(
                {
                    "Name": f"Account {i:05d} {rng.choice(('Ltd', 'GmbH', 'Inc', 'S.A.', 'KK'))}",
                    "Type": rng.choice(acct_types),
                    "Industry": rng.choice(industries),
                    "AnnualRevenue": None if rng.random() < 0.2 else float(rng.randrange(10**5, 10**9)),
                    "OwnerId": rng.choice(user_ids),
                    "CurrencyIsoCode": rng.choice(CURRENCIES),
                    "Region__c": None if rng.random() < 0.05 else rng.choice(REGIONS),
                }
            )
            self.tables["Account"][rec["Id"]] = rec
            acct_ids.append(rec["Id"])

        quarters = [date(y, m, 1) for y in (2025, 2026, 2027) for m in (1, 4, 7, 10)]
        table = self.tables["Opportunity"]
        for i in range(opportunities):
            rec = base(KEY_PREFIXES["Opportunity"])
            stage = rng.choice(STAGES)
            q = rng.choice(quarters)
            rec.update(
                {
                    "Name": f"Opportunity {i:06d}",
                    "AccountId": None if rng.random() < 0.01 else rng.choice(acct_ids),
                    "OwnerId": rng.choice(user_ids),
                    "StageName": stage,
                    "Amount": None if rng.random() < 0.03 else round(rng.uniform(500, 250_000), 2),
                    "Probability": STAGE_PROBABILITY[stage],
                    "CloseDate": q + timedelta(days=rng.randrange(90)),
                    "Type": None if rng.random() < 0.05 else rng.choice(OPP_TYPES),
                    "ForecastCategoryName": "Closed" if stage.startswith("Closed") else "Pipeline",
                    "CurrencyIsoCode": "EUR" if rng.random() < 0.3 else "USD",
                    "Region__c": None if rng.random() < 0.05 else rng.choice(REGIONS),
                }
            )
            if rng.random() < deleted_fraction:
                rec["IsDeleted"] = True
            _derive("Opportunity", rec)
            table[rec["Id"]] = rec

        statuses = (
            "Open - Not Contacted",
            "Working - Contacted",
            "Closed - Converted",
            "Closed - Not Converted",
        )
        for i in range(leads):
            rec = base(KEY_PREFIXES["Lead"])
            fn, ln = rng.choice(first), rng.choice(last)
            status = rng.choice(statuses)
            rec.update(
                {
                    "FirstName": fn,
                    "LastName": ln,
                    "Company": f"Prospect {i:05d}",
                    "Email": None if rng.random() < 0.1 else f"lead{i}@example.com",
                    "Status": status,
                    "LeadSource": rng.choice(("Web", "Phone Inquiry", "Partner", "Event")),
                    "ConvertedDate": rec["LastModifiedDate"].date()
                    if status == "Closed - Converted"
                    else None,
                    "OwnerId": rng.choice(user_ids),
                    "CurrencyIsoCode": "USD",
                    "Region__c": rng.choice(REGIONS),
                    "IsDeleted": rng.random() < deleted_fraction,
                }
            )
            _derive("Lead", rec)
            self.tables["Lead"][rec["Id"]] = rec

        for _ in range(cases):
            rec = base(KEY_PREFIXES["Case"])
            self._case_number += 1
            status = rng.choice(("New", "Working", "Escalated", "Closed"))
            rec.update(
                {
                    "CaseNumber": f"{self._case_number:08d}",
                    "Subject": rng.choice(("Login", "Billing", "Bug")),
                    "Status": status,
                    "Priority": rng.choice(("High", "Medium", "Low")),
                    "Origin": rng.choice(("Email", "Phone", "Web")),
                    "ClosedDate": rec["LastModifiedDate"] if status == "Closed" else None,
                    "AccountId": rng.choice(acct_ids),
                    "OwnerId": rng.choice(user_ids),
                    "CurrencyIsoCode": "USD",
                    "Region__c": rng.choice(REGIONS),
                    "IsDeleted": rng.random() < deleted_fraction,
                }
            )
            _derive("Case", rec)
            self.tables["Case"][rec["Id"]] = rec

        self._generate_rates(rng)
        return self

    def _generate_rates(self, rng: random.Random) -> None:
        created = datetime(2024, 1, 1, tzinfo=UTC)
        rows = [("USD", 1.0, date(1, 1, 1), date(9999, 12, 31))]
        starts = [date(y, m, 1) for y in (2024, 2025, 2026, 2027) for m in (1, 4, 7, 10)]
        for i, start in enumerate(starts):
            nxt = starts[i + 1] if i + 1 < len(starts) else date(9999, 12, 31)
            rows.append(("EUR", round(rng.uniform(0.85, 0.95), 6), start, nxt))
        for iso, rate, start, nxt in rows:
            rid = self.ids.new(KEY_PREFIXES["DatedConversionRate"])
            self.tables["DatedConversionRate"][rid] = {
                "Id": rid,
                "CreatedDate": created,
                "LastModifiedDate": created,
                "SystemModstamp": created,
                "IsoCode": iso,
                "ConversionRate": rate,
                "StartDate": start,
                "NextStartDate": nxt,
            }

    def conversion_rate(self, iso_code: str, on: date) -> float:
        for r in self.tables["DatedConversionRate"].values():
            if r["IsoCode"] == iso_code and r["StartDate"] <= on < r["NextStartDate"]:
                return float(r["ConversionRate"])
        raise KeyError((iso_code, on))


def _find_15(table: dict[str, Any], id15: str) -> str:
    return next((k for k in table if k.startswith(id15)), "")


def _changes(obj: str, rec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """What :meth:`Org.mutate` changes in one record."""
    if obj == "Opportunity":
        old = rec.get("Amount")
        amount = round(rng.uniform(500, 250_000) if old is None else old * rng.uniform(0.5, 1.5), 2)
        if amount == old:
            amount = round(amount + 1, 2)
        out: dict[str, Any] = {"Amount": amount}
        if rng.random() < 0.3:
            stage = rng.choice([s for s in STAGES if s != rec.get("StageName")])
            out.update(
                StageName=stage,
                Probability=STAGE_PROBABILITY[stage],
                ForecastCategoryName="Closed" if stage.startswith("Closed") else "Pipeline",
            )
        return out
    if obj == "Account":
        return {"AnnualRevenue": float(rng.randrange(10**5, 10**9))}
    if obj == "Lead":
        return {"LeadSource": rng.choice(("Web", "Phone Inquiry", "Partner", "Event"))}
    if obj == "Case":
        return {"Priority": rng.choice(("High", "Medium", "Low"))}
    return {}


def _derive(obj: str, rec: dict[str, Any]) -> None:
    """Formula/system fields Salesforce computes itself."""
    if obj == "Opportunity":
        stage = rec.get("StageName")
        rec["IsClosed"] = bool(stage and stage.startswith("Closed"))
        rec["IsWon"] = stage == "Closed Won"
        amount, prob = rec.get("Amount"), rec.get("Probability")
        rec["ExpectedRevenue"] = None if amount is None or prob is None else round(amount * prob / 100.0, 2)
    elif obj in ("Lead", "User"):
        rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if obj == "Lead":
            rec["IsConverted"] = rec.get("Status") == "Closed - Converted"
    elif obj == "Case":
        rec["IsClosed"] = rec.get("Status") == "Closed"


def ids_of(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [r["Id"] for r in rows]
