"""The HR example pack (examples/hr) end to end, as a company would run it.

* The BambooHR project (examples/hr/okrsync.yaml), pointed at the loopback sandbox, and the CSV-exports
  project (examples/hr/okrsync-files.yaml), fed with an export of the same employees, give every key result
  the value computed here, independently, from the sandbox company's own records (plain Python over
  ``box.org``, never through okrsync) — before and after a hire and a voluntary leaver, of which the next
  sync reads exactly those two rows.
* A malformed export (an undecodable byte, a missing column, a repeated id) fails the stream naming the
  file and the line/column; the record tables, the watermark and the KR values stay as they were, and the
  KRs are held with the reason.
* Personal fields are never in clear: not in the store's files, not in a check sample (also through
  ``okrsync checks show --json``), not in the logs at DEBUG. Canary employees get unique names, birth dates
  and pay before the first run, canary candidates unique names.
* Time to hire (``days_between`` of the applications stream, BambooHR's applicant tracking API or an
  applications export) is the mean of the days computed here from the sandbox's applications, before and after
  a new hire; its drill contributions average to the value.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from flows import compute, pipeline
from okr_store import checks, lineage, queries
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync import access, cli
from okrsync.errors import OkrsyncError
from okrsync.pii import MASK, PREFIX
from okrsync.project import Project, load_project
from okrsync.sandboxes.bamboohr import Application, Ats, BambooHrSandbox, Employee, Org
from okrsync.sandboxes.bamboohr.model import INVOLUNTARY_TYPE, VOLUNTARY_TYPE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr"
KEY_ENV = "BAMBOOHR_API_KEY"  # the variable the example names
AS_OF = datetime(2026, 10, 15, 12, 0)  # naive UTC: the sandbox company's "today" (its clock starts 08:00)
PERIODS = {"2026-Q3": (date(2026, 7, 1), date(2026, 9, 30)),  # closed: every event of the quarter
           "2026-Q4": (date(2026, 10, 1), date(2026, 12, 31))}  # to date: capped at the as-of day
PLACES = Decimal("0.000000000001")  # ratios are kept to 12 places (docs: metrics/evaluate.py)
T0 = 1_790_000_000_000_000_000  # the first export's modification time (ns), 2026-09-21
KRS = ("KR-HEADCOUNT", "KR-HIRES", "KR-ENG-HEADCOUNT", "KR-AVG-HEADCOUNT", "KR-VOL-LEAVERS",
       "KR-VOL-ATTRITION", "KR-TIME-TO-HIRE")
ATS_KRS = ("KR-TIME-TO-HIRE",)  # the KRs reading the applications stream; the others read employees
PERSONAL = ("firstName", "lastName", "dateOfBirth", "payRate", "terminationReason", "terminationKind")
LOGGERS = ("", "connectors", "okrsync", "flows", "okr_store", "metrics", "urllib3", "requests",
           "great_expectations")
# Names the sandbox draws that cp1252 (the export's encoding) cannot write, as an HR system would export them.
CP1252 = str.maketrans({"Ł": "L", "ł": "l", "ễ": "e", "ń": "n"})


# -- the sandbox company, and what the key results must be ---------------------------------------------


def kind_of(e: Employee) -> str | None:
    if e.terminationType is None:
        return None
    return {VOLUNTARY_TYPE: "voluntary", INVOLUNTARY_TYPE: "involuntary"}.get(e.terminationType, "other")


def employed(e: Employee, day: date) -> bool:
    """On the payroll at the end of ``day``: hired by then, and the last day employed not yet reached."""
    return e.hireDate <= day and (e.terminationDate is None or e.terminationDate > day)


def window(period: str, timezone: str) -> tuple[date, date]:
    """The period's first day, and its last one as seen at AS_OF: the as-of day (company time) if earlier."""
    start, end = PERIODS[period]
    return start, min(AS_OF.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone)).date(), end)


def local_day(at: datetime, timezone: str) -> date:
    return at.astimezone(ZoneInfo(timezone)).date()


def hires_in(ats: Ats, period: str, timezone: str) -> dict[str, int]:
    """Application id → days from application to hire (company dates), of the hires inside the window."""
    start, last = window(period, timezone)
    return {str(a.id): (local_day(a.statusChanged, timezone) - local_day(a.appliedDate, timezone)).days
            for a in ats.applications.values()
            if a.status == "Hired" and start <= local_day(a.statusChanged, timezone) <= last}


def golden(employees: Iterable[Employee], ats: Ats, period: str, timezone: str,
           department: str) -> dict[str, Decimal | None]:
    """Every KR of the example, from the company's own records."""
    start, last = window(period, timezone)
    eve = start - timedelta(days=1)
    people = list(employees)
    at_end = [e for e in people if employed(e, last)]
    at_start = [e for e in people if employed(e, eve)]
    days = hires_in(ats, period, timezone)
    average = Decimal(len(at_start) + len(at_end)) / 2
    leavers = [e for e in people if e.terminationDate is not None and start <= e.terminationDate <= last
               and kind_of(e) == "voluntary"]
    return {
        "KR-HEADCOUNT": Decimal(len(at_end)),
        "KR-HIRES": Decimal(sum(1 for e in people if start <= e.hireDate <= last)),
        "KR-ENG-HEADCOUNT": Decimal(sum(1 for e in at_end if e.department == department)),
        "KR-AVG-HEADCOUNT": average,
        "KR-VOL-LEAVERS": Decimal(len(leavers)),
        "KR-VOL-ATTRITION": (Decimal(len(leavers)) / average).quantize(PLACES),
        "KR-TIME-TO-HIRE": (Decimal(sum(days.values())) / len(days)).quantize(PLACES) if days else None,
    }


def voluntary_leavers(employees: Iterable[Employee], period: str, timezone: str) -> set[str]:
    start, last = window(period, timezone)
    return {str(e.id) for e in employees if e.terminationDate is not None
            and start <= e.terminationDate <= last and kind_of(e) == "voluntary"}


def cp1252_names(org: Org, ats: Ats) -> None:
    """Give the few names cp1252 cannot write their export spelling (Łukasz → Lukasz), in the company."""
    for e in org.live():
        first, last = e.firstName.translate(CP1252), e.lastName.translate(CP1252)
        if (first, last) != (e.firstName, e.lastName):
            org.change(e.id, firstName=first, lastName=last)
        (first + last).encode("cp1252")  # any other name would fail here, not in the export
    for a in ats.applications.values():
        a.firstName, a.lastName = a.firstName.translate(CP1252), a.lastName.translate(CP1252)
        (a.firstName + a.lastName).encode("cp1252")


def plant_canaries(org: Org, ats: Ats) -> list[int]:
    """Unique, greppable personal data on four employees (one of them a voluntary leaver of 2026-Q3), and
    unique names on three candidates (two of them hired in 2026-Q3: in the time-to-hire drill)."""
    tag = secrets.token_hex(4)
    hired = [a for a in ats.applications.values() if a.status == "Hired"
             and PERIODS["2026-Q3"][0] <= a.statusChanged.date() <= PERIODS["2026-Q3"][1]][:2]
    rejected = next(a for a in ats.applications.values() if a.status != "Hired")
    for i, a in enumerate([*hired, rejected]):
        a.firstName, a.lastName = f"Renée{tag}Cand{i}", f"Dvorák-Cand{tag}{i}"
    assert len(hired) == 2
    staying = [e for e in org.live()  # past Anna Müller and Seán O'Brien, whom the sandbox always has
               if e.id > 2 and e.terminationDate is None and e.hireDate < date(2026, 1, 1)][:3]
    leaver = next(e for e in org.live() if kind_of(e) == "voluntary" and e.terminationDate is not None
                  and PERIODS["2026-Q3"][0] <= e.terminationDate <= PERIODS["2026-Q3"][1])
    ids = []
    for i, e in enumerate([*staying, leaver]):
        org.change(e.id, firstName=f"Zoë{tag}Canary{i}", lastName=f"Müller-Canary{tag}{i}",
                   dateOfBirth=date(1957, 3, 14 + i), payRate=Decimal(f"{314159 + i}.27"),
                   **({"terminationReason": f"Canary reason {tag}"} if e is leaver else {}))
        ids.append(e.id)
    return ids


def personal_texts(employees: Iterable[Employee], applications: Iterable[Application] = ()) -> dict[str, str]:
    """Text forms of every employee's personal data that must appear nowhere in clear.

    Names are taken when they cannot occur by chance: sealed values are base64 text and the store's pages
    binary, so a short ASCII name (Kim, Anna) could turn up inside them at random; a name of six or more
    characters, or one with a character base64 lacks (ë, space, apostrophe), cannot. Pay rates from 1,000
    on (an hourly 28.50 could be part of a KR value's text such as 228.500000). Sealing is also checked
    column by column, for every value (:func:`assert_sealed`)."""
    found: dict[str, str] = {}
    for e in employees:
        for what, value in (("first name", e.firstName), ("last name", e.lastName),
                            ("termination reason", e.terminationReason)):
            if value and (len(value) >= 6 or not re.fullmatch(r"[A-Za-z0-9_-]+", value)):
                found[value] = what
        if e.dateOfBirth is not None:
            found[e.dateOfBirth.isoformat()] = found[e.dateOfBirth.strftime("%d.%m.%Y")] = "date of birth"
        if e.payRate is not None and e.payRate >= 1000:
            found[f"{e.payRate:.2f}"] = found[f"{e.payRate:.2f}".replace(".", ",")] = "pay rate"
    for a in applications:
        for what, value in (("candidate's first name", a.firstName), ("candidate's last name", a.lastName)):
            if value and (len(value) >= 6 or not re.fullmatch(r"[A-Za-z0-9_-]+", value)):
                found[value] = what
    return found


# -- the example projects, adapted to the sandbox and to a temporary folder ----------------------------


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return doc


def write_project(d: Path, doc: dict[str, Any]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "okrsync.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def bamboohr_project(d: Path, box: BambooHrSandbox, period: str, **stream: Any) -> Path:
    doc = example("okrsync.yaml")
    doc["settings"]["default_period"] = period
    (source,) = doc["sources"].values()
    assert source["system"] == "bamboohr" and source["api_key_env"] == KEY_ENV
    source.update(company_domain=box.company_domain, base_url=box.base_url, ca_bundle=str(box.cert_path),
                  retry_backoff_seconds=0)
    doc["streams"]["employees"].update(stream)
    return write_project(d, doc)


def files_project(d: Path, period: str) -> Path:
    doc = example("okrsync-files.yaml")
    doc["settings"]["default_period"] = period
    for source in doc["sources"].values():
        (d / source["folder"]).mkdir(parents=True)
    return write_project(d, doc)


def applications_bytes(ats: Ats, timezone: str) -> bytes:
    """The ATS export the files example declares: company dates, Hired Date only for hires, `;`, cp1252."""
    source = example("okrsync-files.yaml")["sources"]["ats_exports"]
    columns: dict[str, dict[str, str]] = source["columns"]

    def cell(a: Application, name: str, spec: dict[str, str]) -> str:
        value: Any = {"jobTitle": ats.jobs[a.jobId].title, "appliedDate": local_day(a.appliedDate, timezone),
                      "hiredDate": local_day(a.statusChanged, timezone) if a.status == "Hired" else None
                      }.get(name, getattr(a, name, None))
        if value is None:
            return ""
        return value.strftime(spec["format"]) if isinstance(value, date) else str(value)

    out = io.StringIO()
    writer = csv.writer(out, delimiter=source["delimiter"], lineterminator="\r\n")
    writer.writerow([spec["header"] for spec in columns.values()])
    for a in sorted(ats.applications.values(), key=lambda a: a.id):
        writer.writerow([cell(a, name, spec) for name, spec in columns.items()])
    return out.getvalue().encode("cp1252")


def export_bytes(employees: Iterable[Employee]) -> bytes:
    """An export as the files example declares it: headings, `;`, date format, decimal comma, cp1252."""
    source = example("okrsync-files.yaml")["sources"]["hr_exports"]
    columns: dict[str, dict[str, str]] = source["columns"]
    assert source["delimiter"] == ";"

    def cell(e: Employee, name: str, spec: dict[str, str]) -> str:
        value = kind_of(e) if name == "terminationKind" else getattr(e, name)
        if value is None:
            return ""
        if isinstance(value, date):
            return value.strftime(spec.get("format", "%Y-%m-%d"))
        if isinstance(value, Decimal):
            return f"{value:.2f}".replace(".", source["decimal_separator"])
        return str(value)

    out = io.StringIO()
    writer = csv.writer(out, delimiter=source["delimiter"], lineterminator="\r\n")
    writer.writerow([spec["header"] for spec in columns.values()])
    for e in employees:
        writer.writerow([cell(e, name, spec) for name, spec in columns.items()])
    return out.getvalue().encode("cp1252")  # strict: Müller is one byte, as Excel on Windows writes it


def drop(project: Path, name: str, data: bytes, at: int) -> Path:
    """Put an export in its folder as the README asks: a hidden temporary name, then a rename."""
    source = example("okrsync-files.yaml")["sources"]["ats_exports" if name.startswith("applications") else
                                                       "hr_exports"]
    folder = project.parent / source["folder"]
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    ns = T0 + at * 1_000_000_000
    os.utime(tmp, ns=(ns, ns))
    return tmp.rename(folder / name)


# -- running a project as a run does (without Prefect's scheduling around it) ---------------------------


Synced = dict[str, tuple[SyncCounts | None, str | None]]  # stream → (counts, error)


class Runner:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.project: Project = load_project(path)
        self.store = Store(self.project.store_url())
        compute.register_okrs(self.project, self.store)
        assert set(self.project.streams) == {"employees", "applications"}
        assert {b.spec.id for b in self.project.key_results()} == set(KRS)

    def run(self) -> Synced:
        """Sync every stream (each with its own connector, so API calls count per stream), then compute."""
        run_id = self.store.start_run(AS_OF, None)
        failed: dict[str, str] = {}
        out: Synced = {}
        for stream in self.project.streams:
            connector = self.project.connector(self.project.streams[stream].source)
            try:
                counts = pipeline.sync_stream(self.project, self.store, connector, run_id, stream)
                out[stream] = (counts, None)
            except OkrsyncError as exc:
                failed[stream] = exc.message
                out[stream] = (None, exc.message)
            finally:
                connector.close()
        compute.compute_values(self.project, self.store, run_id, None, AS_OF, failed)
        self.store.finish_run(run_id, "partial" if failed else "succeeded", None)
        return out

    @property
    def department(self) -> str:
        return str(self.project.key_result("KR-ENG-HEADCOUNT").spec.dimensions["department"])

    def values(self) -> dict[str, Decimal | None]:
        with self.store.engine.connect() as conn:
            return {kr: queries.value_at(conn, kr).value for kr in KRS}

    def held(self) -> dict[str, str | None]:
        with self.store.engine.connect() as conn:
            return {k.id: k.held_reason for o in queries.status_tree(conn) for k in o.key_results}

    def state(self, stream: str) -> dict[str, Any]:
        """What a failed sync of ``stream`` must not change: every stored record version (of both streams:
        the other one read nothing new), its watermark and state, and the values of the KRs reading it. The
        other stream's sync and KRs run as usual (a sync row, a success time, values)."""
        krs = ATS_KRS if stream == "applications" else tuple(set(KRS) - set(ATS_KRS))
        with self.store.engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            versions = {t: conn.execute(sa.text(f'SELECT _rid, _from, _to, _hash FROM "{t}" ORDER BY 1, 2'))
                        .all() for t in names if t.startswith("rec_")}
            counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar()
                      for t in names if t not in ("run", "sync_run", "kr_value", "kr_value_top")}
            state = conn.execute(sa.text("SELECT watermark, last_sync_id, last_success_at FROM stream_state "
                                         "WHERE name = :s"), {"s": stream})
            values = {kr: (v.id, v.value) for kr in krs for v in [queries.value_at(conn, kr)]}
        return {"versions": versions, "counts": counts, "stream_state": state.all(), "values": values,
                "watermark": self.store.watermark(stream)}

    def close(self) -> None:
        self.store.close()


def assert_sealed(runner: Runner) -> None:
    """Every stored value of every personal field, in record and staging tables alike, is sealed."""
    with runner.store.engine.connect() as conn:
        inspector = sa.inspect(conn)
        seen = 0
        for table in inspector.get_table_names():
            columns = {c["name"] for c in inspector.get_columns(table)}
            for field in columns & set(PERSONAL):
                clear = conn.execute(sa.text(f'SELECT count(*) FROM "{table}" WHERE "{field}" IS NOT NULL '
                                             f"AND \"{field}\" NOT LIKE '{PREFIX}%'")).scalar()
                assert clear == 0, f"{table}.{field} holds {clear} values in clear"
                seen += conn.execute(sa.text(f'SELECT count("{field}") FROM "{table}"')).scalar() or 0
    assert seen > 0


def store_bytes(*runners: Runner) -> bytes:
    for r in runners:
        r.close()
    raw = b"".join(p.read_bytes() for r in runners for p in (r.path.parent / ".okrsync").glob("store.db*"))
    assert raw and PREFIX.encode() in raw  # the store is there, with sealed values in it
    return raw


def assert_nowhere(texts: dict[str, str], raw: bytes, where: str) -> None:
    for text, what in texts.items():
        for encoding in ("utf-8", "cp1252", "utf-16-le"):
            try:
                needle = text.encode(encoding)
            except UnicodeEncodeError:
                continue
            assert needle not in raw, f"a {what} ({encoding}) is in clear in {where}"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No store, key or role from the machine: each project keeps SQLite and its key file in its folder."""
    for var in ("OKRSYNC_STORE_URL", "OKRSYNC_PII_KEY", "OKRSYNC_ROLE", "OKRSYNC_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def company(make_bamboohr_sandbox: Callable[..., BambooHrSandbox],
            clean_env: pytest.MonkeyPatch) -> Iterator[tuple[BambooHrSandbox, list[int]]]:
    """The sandbox's seeded company (300 employees), with export-able names and four canary employees."""
    box = make_bamboohr_sandbox(employees=300, seed=7)
    cp1252_names(box.org, box.ats)
    canaries = plant_canaries(box.org, box.ats)
    clean_env.setenv(KEY_ENV, box.api_key)
    yield box, canaries


# -- the same numbers from the API and from exports ----------------------------------------------------


@pytest.mark.parametrize("period", list(PERIODS))
def test_bamboohr_and_csv_exports_give_every_kr_its_independent_value(
    period: str, company: tuple[BambooHrSandbox, list[int]], tmp_path: Path, clean_env: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    box, canaries = company
    org, ats = box.org, box.ats
    rest = Runner(bamboohr_project(tmp_path / "rest", box, period))
    files = Runner(files_project(tmp_path / "files", period))
    tz, dept = rest.project.settings.timezone, rest.department

    synced = rest.run()
    counts, error = synced["employees"]
    assert error is None and counts is not None
    assert (counts.rows_read, counts.inserted, counts.api_calls) == (300, 300, 1)  # one custom report
    apps, error = synced["applications"]
    hired = sum(a.status == "Hired" for a in ats.applications.values())
    pages = math.ceil(len(ats.applications) / box.app.applications_page_size)
    assert error is None and apps is not None and apps.inserted == len(ats.applications) > 300
    assert pages > 1 and apps.api_calls == pages + hired + 1  # the pages, each hire's status date, the jobs
    first_export = export_bytes(org.live())
    assert b"M\xfcller;" in first_export and b"O'Brien;" in first_export  # Müller in cp1252: not UTF-8
    with pytest.raises(UnicodeDecodeError):
        first_export.decode("utf-8")
    drop(files.path, "employees_2026-10-15.csv", first_export, at=0)
    drop(files.path, "applications_2026-10-15.csv", applications_bytes(ats, tz), at=0)
    fsynced = files.run()
    assert all(e is None for _, e in fsynced.values()), fsynced
    assert fsynced["employees"][0].inserted == 300  # type: ignore[union-attr]
    assert fsynced["applications"][0].inserted == len(ats.applications)  # type: ignore[union-attr]
    before = golden(org.live(), ats, period, tz, dept)
    assert rest.values() == before == files.values()
    assert before["KR-HIRES"] and before["KR-VOL-LEAVERS"] and before["KR-ENG-HEADCOUNT"]
    assert period != "2026-Q3" or before["KR-TIME-TO-HIRE"] is not None
    assert all(h is None for h in (*rest.held().values(), *files.held().values()))

    # One hire (in Engineering) and one voluntary leaver (elsewhere), both dated inside the period; a new
    # application hired in the period, late in the evening UTC (the next day in Berlin), 40 days after it
    # came.
    start, end = PERIODS[period]
    day = min(end, AS_OF.date()) - timedelta(days=5)
    hired_emp = org.hire(hireDate=day, department=dept, firstName="Søren", lastName="Ó Súilleabháin")
    leaver = next(e for e in org.live() if e.terminationDate is None and e.hireDate < start
                  and e.department != dept and e.id not in canaries)
    org.terminate(leaver.id, day, voluntary=True)
    job = ats.open_job("Staff Engineer", dept)
    noon = datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)
    app = ats.apply(job.id, "Søren", "Ó Súilleabháin", at=noon - timedelta(days=41, hours=2, minutes=30))
    ats.set_status(app.id, "Hired", at=noon - timedelta(days=1) + timedelta(hours=11, minutes=15))
    assert hires_in(ats, period, tz)[str(app.id)] == 41  # 40 days in UTC; the hire is a Berlin day later
    synced = rest.run()
    counts, error = synced["employees"]
    assert error is None and counts is not None
    assert (counts.rows_read, counts.inserted, counts.updated, counts.deleted) == (2, 1, 1, 0)
    assert counts.api_calls == 2  # employees/changed, then the report restricted to those two ids
    assert sorted(box.requests.matching("reports/custom")[-1].body["filters"]["employeeIds"]) == sorted(
        [hired_emp.id, leaver.id])
    apps, error = synced["applications"]
    assert error is None and apps is not None and (apps.inserted, apps.updated, apps.deleted) == (1, 0, 0)
    drop(files.path, "employees_2026-10-16.csv", export_bytes(org.live()), at=100)
    drop(files.path, "applications_2026-10-16.csv", applications_bytes(ats, tz), at=100)
    fsynced = files.run()
    fcounts, ferror = fsynced["employees"]
    assert ferror is None and fcounts is not None
    assert (fcounts.rows_read, fcounts.inserted, fcounts.updated, fcounts.deleted) == (2, 1, 1, 0)
    fapps, ferror = fsynced["applications"]
    assert ferror is None and fapps is not None and (fapps.rows_read, fapps.inserted) == (1, 1)
    after = golden(org.live(), ats, period, tz, dept)
    assert rest.values() == after == files.values()
    assert (after["KR-HIRES"], after["KR-VOL-LEAVERS"], after["KR-ENG-HEADCOUNT"]) == (
        before["KR-HIRES"] + 1, before["KR-VOL-LEAVERS"] + 1, before["KR-ENG-HEADCOUNT"] + 1)  # type: ignore[operator]
    assert after["KR-TIME-TO-HIRE"] is not None and after["KR-TIME-TO-HIRE"] != before["KR-TIME-TO-HIRE"]

    # Drill: the voluntary leavers are found on the sealed terminationKind; leadership (the default role)
    # sees their ids and •••, hr their names. Time to hire: the hires of the period, each contributing its
    # days, which average to the value.
    for runner in (rest, files):
        with runner.store.engine.connect() as conn:
            value = queries.value_at(conn, "KR-VOL-LEAVERS")
            tth = queries.value_at(conn, "KR-TIME-TO-HIRE")
        d = lineage.drill(runner.store, value, limit=1000)
        assert {r.record_id for r in d.records} == voluntary_leavers(org.live(), period, tz)
        t = lineage.drill(runner.store, tth, limit=1000)
        assert {r.record_id: r.contribution for r in t.records} == hires_in(ats, period, tz)
        assert (sum(r.contribution for r in t.records) / len(t.records)).quantize(PLACES) == tth.value
        clean_env.delenv("OKRSYNC_ROLE", raising=False)
        seen = access.drill_as(runner.project, access.records_role(runner.project), d)
        assert {r.fields[f] for r in seen.records for f in PERSONAL} <= {MASK, None}  # None: no value
        assert {r.fields[f] for r in seen.records for f in ("firstName", "terminationKind")} == {MASK}
        assert {r.fields["department"] for r in seen.records} != {MASK}  # not personal: readable
        seen = access.drill_as(runner.project, access.records_role(runner.project), t)
        assert {r.fields[f] for r in seen.records for f in ("firstName", "lastName")} == {MASK}
        clean_env.setenv("OKRSYNC_ROLE", "hr")
        seen = access.drill_as(runner.project, access.records_role(runner.project), d)
        leavers = voluntary_leavers(org.live(), period, tz)
        assert {r.record_id: (r.fields["firstName"], r.fields["lastName"], r.fields["terminationKind"])
                for r in seen.records} == {str(e.id): (e.firstName, e.lastName, "voluntary")
                                           for e in org.live() if str(e.id) in leavers}
        seen = access.drill_as(runner.project, access.records_role(runner.project), t)
        assert {r.record_id: r.fields["lastName"] for r in seen.records} == {
            str(a.id): a.lastName for a in ats.applications.values()
            if str(a.id) in hires_in(ats, period, tz)}
        assert_sealed(runner)

    # No personal data in clear in either store's files, nor in the logs at DEBUG.
    pii = personal_texts(org.live(), ats.applications.values())
    assert len(pii) > 600 and sum("Canary" in t for t in pii) >= 9 and sum("Cand" in t for t in pii) >= 6
    raw = store_bytes(rest, files)
    assert_nowhere(pii, raw, "the stores")
    assert b"involuntary" not in raw  # terminationKind is sealed too
    logs = debug_logs.text
    assert "reports/custom" in logs and "employees/changed" in logs  # the traffic really was logged
    assert "applicant_tracking/applications" in logs
    assert_nowhere(pii, logs.encode(), "the logs")


# -- a malformed export ---------------------------------------------------------------------------------


def _bad_byte(data: bytes) -> tuple[bytes, str]:
    lines = data.split(b"\r\n")
    at = sum(len(line) + 2 for line in lines[:6]) + len(lines[6].split(b";")[0]) + 2  # line 7, a first name
    return data[:at] + b"\x81" + data[at:], f"byte offset {at} (line 7)"


def _missing_column(data: bytes) -> tuple[bytes, str]:
    rows = list(csv.reader(io.StringIO(data.decode("cp1252"), newline=""), delimiter=";"))
    gone = rows[0].index("Department")
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows([r[:gone] + r[gone + 1:] for r in rows])
    return out.getvalue().encode("cp1252"), "line 1, column 'Department': the declared column is missing"


def _duplicate_id(data: bytes) -> tuple[bytes, str]:
    lines = data.split(b"\r\n")
    lines.insert(8, lines[3])  # line 4's employee again, as line 9
    return b"\r\n".join(lines), "line 9: the primary key (id) repeats line 4"


def _bad_hired_date(data: bytes) -> tuple[bytes, str]:
    """The first hire's Hired Date written as 31.09. (a day September does not have)."""
    lines = data.split(b"\r\n")
    header = lines[0].split(b";")
    at = header.index(b"Hired Date")
    n = next(i for i, line in enumerate(lines[1:], start=1) if line and line.split(b";")[at])
    cells = lines[n].split(b";")
    cells[at] = b"31.09.2026"
    lines[n] = b";".join(cells)
    return b"\r\n".join(lines), f"line {n + 1}, column 'Hired Date': not a date (%d.%m.%Y)"


def _duplicate_application(data: bytes) -> tuple[bytes, str]:
    lines = data.split(b"\r\n")
    lines.insert(5, lines[2])  # line 3's application again, as line 6
    return b"\r\n".join(lines), "line 6: the primary key (id) repeats line 3"


# case → (the export it breaks, how)
MALFORMED: dict[str, tuple[str, Callable[[bytes], tuple[bytes, str]]]] = {
    "bad encoding byte": ("employees", _bad_byte), "missing column": ("employees", _missing_column),
    "duplicate ids": ("employees", _duplicate_id),
    "applications: impossible date": ("applications", _bad_hired_date),
    "applications: duplicate ids": ("applications", _duplicate_application)}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_export_fails_the_stream_changes_nothing_and_holds_the_krs(
    case: str, tmp_path: Path, clean_env: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture,
) -> None:
    org = Org.generate(seed=7, employees=300)
    ats = Ats.generate(org, seed=7)
    cp1252_names(org, ats)
    plant_canaries(org, ats)
    runner = Runner(files_project(tmp_path, "2026-Q3"))
    tz = runner.project.settings.timezone
    good = {"employees": export_bytes(org.live()), "applications": applications_bytes(ats, tz)}
    for kind, data in good.items():
        drop(runner.path, f"{kind}_2026-10-01.csv", data, at=0)
    synced = runner.run()
    assert all(e is None for _, e in synced.values()), synced
    assert synced["employees"][0].inserted == 300  # type: ignore[union-attr]
    want = golden(org.live(), ats, "2026-Q3", tz, runner.department)
    assert runner.values() == want and want["KR-TIME-TO-HIRE"] is not None
    kind, breaking = MALFORMED[case]
    before = runner.state(kind)

    bad, where = breaking(good[kind])
    name = f"{kind}_2026-10-02.csv"
    drop(runner.path, name, bad, at=100)
    synced = runner.run()
    counts, error = synced[kind]
    assert counts is None and error is not None
    assert f"{name}: {where}" in error, error
    assert all(e is None for s, (_, e) in synced.items() if s != kind)  # the other stream read nothing new
    assert runner.state(kind) == before  # no version, watermark or value moved
    held = {kr: reason for kr, reason in runner.held().items() if reason is not None}
    assert set(held) == (set(ATS_KRS) if kind == "applications" else set(KRS) - set(ATS_KRS))
    for kr, reason in held.items():
        assert name in reason and where in reason, kr
    pii = personal_texts(org.live(), ats.applications.values())
    assert_nowhere(pii, "\n".join([error, *held.values()]).encode(), "the error")

    # The fix: take the file out. Nothing newer than the export already read: nothing is read, and the
    # KRs are released with the same values.
    (runner.path.parent / "exports" / ("ats" if kind == "applications" else "hr") / name).unlink()
    synced = runner.run()
    counts, error = synced[kind]
    assert error is None and counts is not None and counts.rows_read == 0
    assert runner.values() == want and all(h is None for h in runner.held().values())
    assert_sealed(runner)
    assert_nowhere(pii, store_bytes(runner), "the store")
    assert_nowhere(pii, debug_logs.text.encode(), "the logs")


# -- check samples --------------------------------------------------------------------------------------


def test_a_failed_check_sample_shows_personal_fields_masked_to_every_role(
    company: tuple[BambooHrSandbox, list[int]], tmp_path: Path, clean_env: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    box, canaries = company
    nameless = canaries[0]  # a canary employee whose last name is missing: the check fails on them
    box.org.change(nameless, lastName=None)
    path = bamboohr_project(tmp_path, box, "2026-Q3",
                            checks=[{"expect_column_values_to_not_be_null": {"column": "lastName"}}])
    runner = Runner(path)
    counts, error = runner.run()["employees"]
    assert counts is None and error is not None and "blocked" in error
    held = runner.held()
    assert all(held[kr] is not None and "blocked" in held[kr] for kr in set(KRS) - set(ATS_KRS))  # type: ignore[operator]
    assert all(held[kr] is None for kr in ATS_KRS)  # the applications stream passed
    with runner.store.engine.connect() as conn:
        (row,) = [r for r in checks.list_checks(conn) if r.status == "blocked"]
    assert row.label == "expect_column_values_to_not_be_null(lastName)" and row.unexpected_count == 1
    (sample,) = row.sample
    emp = box.org.employees[nameless]
    assert str(sample["record_id"]) == str(nameless)
    assert {f: sample["fields"][f] for f in PERSONAL} == dict.fromkeys(PERSONAL, MASK)
    assert sample["fields"]["department"] == emp.department  # not personal: shown

    # `okrsync checks show --json`, even as hr: the sample was masked before it was stored
    clean_env.setenv("OKRSYNC_ROLE", "hr")
    shown = CliRunner().invoke(cli.app, ["-p", str(path), "checks", "show", str(row.id), "--json"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["sample"][0]["fields"]["firstName"] == MASK and body["status"] == "blocked"
    pii = personal_texts(box.org.live())
    assert emp.firstName in pii
    assert_nowhere(pii, shown.stdout.encode(), "`checks show --json`")
    assert_nowhere(pii, json.dumps(row.result, default=str).encode(), "the check's result")
    assert_nowhere(pii, error.encode(), "the error")

    # the blocked batch is kept for review, sealed like committed records
    assert_sealed(runner)
    assert_nowhere(pii, store_bytes(runner), "the store")
    assert_nowhere(pii, debug_logs.text.encode(), "the logs")
