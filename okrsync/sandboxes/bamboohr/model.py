"""The sandbox's company: employees with BambooHR's fields, a clock, and the changes tests make.

:meth:`Org.generate` seeds a deterministic org (``random.Random(seed)``): departments, divisions and
locations, hires spread over the years before the clock with more in the last quarters, terminations over
the last seven quarters (voluntary, involuntary and retirements, each with a BambooHR-style type and
reason), a few future-dated terminations, some nulls, names such as Müller and O'Brien, and a few
employees deleted before the clock starts.

Every change (:meth:`Org.hire`, :meth:`Org.change`, :meth:`Org.terminate`, :meth:`Org.delete`,
:meth:`Org.mutate`) moves the clock one second on first (or sets ``at``), and stamps ``lastChanged``
with it, so a change is always later than every one before it.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

START = datetime(2026, 10, 15, 8, 0, 0, tzinfo=UTC)  # the clock when an org is generated
IMPORT_AT = datetime(2024, 1, 2, 9, 0, 0, tzinfo=UTC)  # one bulk import: many employees share it

DEPARTMENTS: dict[str, tuple[int, tuple[str, ...], tuple[int, int]]] = {
    # name: (weight, job titles, yearly pay range)
    "Engineering": (30, ("Software Engineer", "Senior Software Engineer", "Staff Engineer",
                         "Engineering Manager", "QA Engineer"), (62_000, 185_000)),
    "Sales": (20, ("Account Executive", "Sales Development Representative", "Sales Manager"),
              (48_000, 150_000)),
    "Customer Success": (14, ("Customer Success Manager", "Support Specialist", "Support Lead"),
                         (42_000, 98_000)),
    "Marketing": (10, ("Marketing Manager", "Content Strategist", "Product Marketing Manager"),
                  (50_000, 125_000)),
    "Product": (8, ("Product Manager", "Product Designer", "UX Researcher"), (70_000, 160_000)),
    "Finance": (6, ("Accountant", "Financial Analyst", "Controller"), (52_000, 140_000)),
    "People": (5, ("HR Business Partner", "Recruiter", "People Operations Specialist"), (48_000, 118_000)),
    "Operations": (7, ("Operations Analyst", "Office Manager", "IT Administrator"), (40_000, 105_000)),
}
DIVISIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "North America": (("New York", "Austin", "Toronto"), "USD"),
    "EMEA": (("Berlin", "London", "Dublin", "Kraków", "Remote - EMEA"), "EUR"),
    "APAC": (("Singapore", "Sydney"), "SGD"),
}
CURRENCY_BY_LOCATION = {"London": "GBP", "Toronto": "CAD", "Sydney": "AUD"}
FIRST_NAMES = (
    "Anna", "Seán", "Zoë", "José", "Łukasz", "Søren", "Chloé", "Björn", "Ana María", "François", "Siobhán",
    "Jürgen", "Małgorzata", "Aisha", "Hiroshi", "Priya", "Mateo", "Olivia", "Liam", "Noah", "Emma", "Mia",
    "Lucas", "Amélie", "Kwame", "Ngozi", "Dmitri", "Ingrid", "Rafael", "Yuki", "Fatima", "Oskar", "Elif",
    "Thandiwe", "Giulia", "Marek", "Nora", "Tomás", "Leila", "Sven",
)
LAST_NAMES = (
    "Müller", "O'Brien", "García", "Nguyễn", "Kowalski", "Schröder", "Dubois", "Østergaard", "Smith",
    "Johnson", "Okafor", "Tanaka", "Patel", "Rossi", "Novak", "Fernández", "Lindqvist", "Mensah", "Kim",
    "Ivanova", "Brennan", "Haddad", "Jensen", "Walsh", "Ünal", "Da Silva", "McAllister", "Zieliński",
    "Bergström", "Nakamura", "Van der Berg", "D'Angelo", "Ó Súilleabháin", "Weiß", "Chen",
)
VOLUNTARY_TYPE = "Resignation (Voluntary)"
INVOLUNTARY_TYPE = "Termination (Involuntary)"
RETIREMENT_TYPE = "Retirement"
VOLUNTARY_REASONS = ("Better Opportunity", "Career Change", "Relocation", "Compensation", "Work-Life Balance",
                     "Returning to School", "Personal Reasons")
INVOLUNTARY_REASONS = ("Performance", "Attendance", "Restructuring", "Policy Violation",
                       "Position Eliminated")
# The BambooHR fields the sandbox knows, with the type and name its custom reports announce.
FIELDS: dict[str, tuple[str, str]] = {
    "employeeNumber": ("text", "Employee #"), "firstName": ("text", "First Name"),
    "lastName": ("text", "Last Name"), "department": ("list", "Department"), "division": ("list", "Division"),
    "location": ("list", "Location"), "jobTitle": ("list", "Job Title"), "status": ("status", "Status"),
    "hireDate": ("date", "Hire Date"), "terminationDate": ("date", "Termination Date"),
    "terminationTypeId": ("list", "Termination Type"), "terminationReasonId": ("list", "Termination Reason"),
    "dateOfBirth": ("date", "Birth Date"), "payRate": ("currency", "Pay rate"), "payPer": ("list", "Pay Per"),
    "workEmail": ("email", "Work Email"), "lastChanged": ("timestamp", "Last Changed"),
}
# Fields that only hold what is current unless a report asks for onlyCurrent=false (future-dated rows).
_TERMINATION_FIELDS = ("terminationDate", "terminationTypeId", "terminationReasonId")


@dataclass
class Employee:
    """One employee as BambooHR keeps it (Python values; :meth:`Org.report_value` renders them)."""

    id: int
    employeeNumber: str  # noqa: N815 - BambooHR's field names
    firstName: str  # noqa: N815
    lastName: str  # noqa: N815
    department: str | None
    division: str | None
    location: str | None
    jobTitle: str | None  # noqa: N815
    hireDate: date  # noqa: N815
    terminationDate: date | None = None  # noqa: N815
    terminationType: str | None = None  # noqa: N815 - served as terminationTypeId
    terminationReason: str | None = None  # noqa: N815 - served as terminationReasonId
    dateOfBirth: date | None = None  # noqa: N815
    payRate: Decimal | None = None  # noqa: N815
    currency: str | None = None
    payPer: str | None = None  # noqa: N815
    workEmail: str | None = None  # noqa: N815
    created: datetime = START
    lastChanged: datetime = START  # noqa: N815
    # render an unset date as BambooHR's "0000-00-00" (True) or as null (False)
    zero_dates: bool = True

    def status(self, today: date) -> str:
        return "Inactive" if self.terminationDate is not None and self.terminationDate <= today else "Active"

    @property
    def voluntary(self) -> bool | None:
        if self.terminationType is None:
            return None
        return self.terminationType == VOLUNTARY_TYPE


@dataclass
class Org:
    """Employees by id, the ids deleted (with when) and the clock. Thread-safe through ``lock``."""

    employees: dict[int, Employee] = field(default_factory=dict)
    deleted: dict[int, datetime] = field(default_factory=dict)
    now: datetime = START
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    next_id: int = 1

    # -- generation --------------------------------------------------------------------------------
    @classmethod
    def generate(cls, seed: int = 7, employees: int = 300, deleted: int = 3) -> Org:
        """A deterministic org of ``employees`` people (plus ``deleted`` more, deleted before the clock)."""
        rng = random.Random(seed)
        org = cls()
        today = START.date()
        depts = list(DEPARTMENTS)
        weights = [DEPARTMENTS[d][0] for d in depts]
        total = employees + deleted
        tied = set(rng.sample(range(1, total + 1), min(total, max(2, total // 15))))
        for n in range(1, total + 1):
            dept = rng.choices(depts, weights)[0]
            _, titles, (low, high) = DEPARTMENTS[dept]
            division = rng.choice(list(DIVISIONS)) if rng.random() > 0.04 else None
            locations, currency = DIVISIONS[division] if division else (("Remote",), "USD")
            location = rng.choice(locations) if rng.random() > 0.04 else None
            currency = CURRENCY_BY_LOCATION.get(location or "", currency)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if n == 1:
                first, last = "Anna", "Müller"
            elif n == 2:
                first, last = "Seán", "O'Brien"
            hire = _hire_date(rng, today)
            emp = Employee(
                id=n, employeeNumber=f"E{n:05d}", firstName=first, lastName=last, department=dept,
                division=division, location=location, jobTitle=rng.choice(titles), hireDate=hire,
                dateOfBirth=(_birth_date(rng, hire) if rng.random() > 0.05 else None),
                workEmail=f"employee{n}@example.test" if rng.random() > 0.1 else None,
                zero_dates=rng.random() > 0.3,
            )
            if rng.random() > 0.03:
                if rng.random() < 0.12:
                    emp.payPer = "Hour"
                    emp.payRate = Decimal(rng.randrange(1800, 5500)) / 100
                else:
                    emp.payPer = "Year"
                    emp.payRate = Decimal(rng.randrange(low * 100, high * 100, 50)) / 100
                emp.currency = currency
            roll = rng.random()
            if roll < 0.2 and hire < today - timedelta(days=60):
                _terminate(emp, rng, _termination_date(rng, hire, today))
            elif roll < 0.215:  # announced, effective after the clock (future-dated)
                _terminate(emp, rng, today + timedelta(days=rng.randrange(5, 60)))
            latest = max(hire, emp.terminationDate or hire)
            if latest > today:
                latest = today
            if n in tied:
                stamp = IMPORT_AT if latest <= IMPORT_AT.date() else _stamp(latest)
                emp.created = emp.lastChanged = min(stamp, START - timedelta(seconds=1))
            else:
                emp.created = _stamp(hire if hire <= today else today) - timedelta(days=rng.randrange(1, 20))
                emp.lastChanged = _changed_after(rng, latest, START)
            org.employees[n] = emp
        org.next_id = total + 1
        for victim in rng.sample(sorted(org.employees)[2:], min(deleted, max(0, total - 2))):
            gone_at = org.employees.pop(victim).lastChanged + timedelta(hours=1)
            org.deleted[victim] = min(gone_at, START - timedelta(seconds=1))
        return org

    # -- reading -----------------------------------------------------------------------------------
    @property
    def today(self) -> date:
        return self.now.date()

    def live(self) -> list[Employee]:
        with self.lock:
            return [self.employees[i] for i in sorted(self.employees)]

    def changes_since(self, since: datetime) -> list[tuple[int, str, datetime]]:
        """``(id, action, lastChanged)`` of every employee changed or deleted at or after ``since``."""
        with self.lock:
            out = [(e.id, "Inserted" if e.created >= since else "Updated", e.lastChanged)
                   for e in self.employees.values() if e.lastChanged >= since]
            out += [(i, "Deleted", at) for i, at in self.deleted.items() if at >= since]
        return sorted(out)

    def report_value(self, emp: Employee, field_id: str, only_current: bool) -> Any:
        """A field as BambooHR's JSON reports write it: text, "YYYY-MM-DD" (or "0000-00-00"), null."""
        future = emp.terminationDate is not None and emp.terminationDate > self.today
        if field_id in _TERMINATION_FIELDS and future and only_current:
            return "0000-00-00" if field_id == "terminationDate" and emp.zero_dates else None
        if field_id == "status":
            return emp.status(self.today)
        if field_id == "terminationTypeId":
            return emp.terminationType
        if field_id == "terminationReasonId":
            return emp.terminationReason
        if field_id == "payRate":
            if emp.payRate is None:
                return ""
            return f"{emp.payRate:.2f} {emp.currency}" if emp.currency else f"{emp.payRate:.2f}"
        if field_id == "lastChanged":
            return emp.lastChanged.isoformat()
        value = getattr(emp, field_id)
        if field_id in ("hireDate", "terminationDate", "dateOfBirth"):
            if value is None:
                return "0000-00-00" if emp.zero_dates else None
            return value.isoformat()
        return value

    # -- changes -----------------------------------------------------------------------------------
    def tick(self, at: datetime | None = None, seconds: float = 1) -> datetime:
        """Move the clock ``seconds`` on (or to ``at``) and return it."""
        with self.lock:
            if at is not None:
                self.now = at if at.tzinfo else at.replace(tzinfo=UTC)
            else:
                self.now = self.now + timedelta(seconds=seconds)
            return self.now

    def hire(self, *, at: datetime | None = None, **fields: Any) -> Employee:
        """A new employee (defaults: Engineering, hired today, 90,000.00 USD a year)."""
        with self.lock:
            stamp = self.tick(at)
            n = self.next_id
            self.next_id += 1
            base: dict[str, Any] = {
                "id": n, "employeeNumber": f"E{n:05d}", "firstName": "New", "lastName": f"Hire{n}",
                "department": "Engineering", "division": "EMEA", "location": "Berlin",
                "jobTitle": "Software Engineer", "hireDate": self.today, "dateOfBirth": date(1994, 5, 17),
                "payRate": Decimal("90000.00"), "currency": "USD", "payPer": "Year",
            }
            emp = Employee(**(base | fields), created=stamp, lastChanged=stamp)
            self.employees[n] = emp
            return emp

    def change(self, emp_id: int, *, at: datetime | None = None, **fields: Any) -> Employee:
        """Change some fields of a live employee (``lastChanged`` moves, even with no field given)."""
        with self.lock:
            emp = self._live(emp_id)
            stamp = self.tick(at)
            updated = replace(emp, **fields, lastChanged=stamp)
            self.employees[emp_id] = updated
            return updated

    def terminate(self, emp_id: int, on: date | None = None, *, voluntary: bool = True,
                  reason: str | None = None, at: datetime | None = None) -> Employee:
        """Terminate an employee on ``on`` (default: today), voluntarily or not."""
        kind = VOLUNTARY_TYPE if voluntary else INVOLUNTARY_TYPE
        default = VOLUNTARY_REASONS[0] if voluntary else INVOLUNTARY_REASONS[0]
        return self.change(emp_id, at=at, terminationDate=on or self.today, terminationType=kind,
                           terminationReason=reason if reason is not None else default)

    def delete(self, emp_id: int, *, at: datetime | None = None) -> None:
        """Delete an employee (BambooHR lists it with action Deleted in employees/changed)."""
        with self.lock:
            self._live(emp_id)
            self.deleted[emp_id] = self.tick(at)
            del self.employees[emp_id]

    def mutate(self, fraction: float, seed: int, delete_share: float = 0.1,
               terminate_share: float = 0.3) -> tuple[list[int], list[int]]:
        """Change a deterministic sample of the live employees: some deleted, some terminated, the rest
        given a new job title. Returns ``(changed_ids, deleted_ids)``, in the order applied."""
        rng = random.Random(seed)
        with self.lock:
            live = sorted(self.employees)
            picked = rng.sample(live, round(fraction * len(live)))
            changed: list[int] = []
            gone: list[int] = []
            for emp_id in picked:
                roll = rng.random()
                if roll < delete_share:
                    self.delete(emp_id)
                    gone.append(emp_id)
                elif roll < delete_share + terminate_share and self.employees[emp_id].terminationDate is None:
                    voluntary = rng.random() < 0.65
                    reasons = VOLUNTARY_REASONS if voluntary else INVOLUNTARY_REASONS
                    self.terminate(emp_id, voluntary=voluntary, reason=rng.choice(reasons))
                    changed.append(emp_id)
                else:
                    dept = self.employees[emp_id].department or "Operations"
                    titles = DEPARTMENTS.get(dept, DEPARTMENTS["Operations"])[1]
                    self.change(emp_id, jobTitle=rng.choice(titles))
                    changed.append(emp_id)
            return changed, gone

    def _live(self, emp_id: int) -> Employee:
        if emp_id not in self.employees:
            raise KeyError(f"no live employee {emp_id}")
        return self.employees[emp_id]


def _hire_date(rng: random.Random, today: date) -> date:
    if rng.random() < 0.45:  # recent quarters hire more
        start, days = date(2025, 1, 1), (today - date(2025, 1, 1)).days
    else:
        start, days = date(2016, 1, 1), (date(2025, 1, 1) - date(2016, 1, 1)).days
    return start + timedelta(days=rng.randrange(days))


def _birth_date(rng: random.Random, hire: date) -> date:
    return date(hire.year - rng.randrange(21, 60), rng.randrange(1, 13), rng.randrange(1, 29))


def _termination_date(rng: random.Random, hire: date, today: date) -> date:
    start = max(hire + timedelta(days=30), date(2025, 1, 1))
    if start >= today:
        return today
    return start + timedelta(days=rng.randrange((today - start).days))


def _terminate(emp: Employee, rng: random.Random, on: date) -> None:
    emp.terminationDate = on
    roll = rng.random()
    if roll < 0.62:
        emp.terminationType = VOLUNTARY_TYPE
        emp.terminationReason = rng.choice(VOLUNTARY_REASONS) if rng.random() > 0.08 else None
    elif roll < 0.93:
        emp.terminationType = INVOLUNTARY_TYPE
        emp.terminationReason = rng.choice(INVOLUNTARY_REASONS)
    else:
        emp.terminationType = RETIREMENT_TYPE


def _stamp(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


def _changed_after(rng: random.Random, day: date, limit: datetime) -> datetime:
    earliest = _stamp(day)
    span = int((limit - earliest).total_seconds())
    if span <= 0:
        return limit - timedelta(seconds=rng.randrange(1, 3600))
    # most records were last touched around their latest event; some much later (edits)
    offset = rng.randrange(min(span, 30 * 86400)) if rng.random() < 0.7 else rng.randrange(span)
    return earliest + timedelta(seconds=offset)
