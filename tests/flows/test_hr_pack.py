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
  and pay before the first run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
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

from flows import pipeline
from okr_store import checks, lineage, queries
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync import access, cli
from okrsync.errors import OkrsyncError
from okrsync.pii import MASK, PREFIX
from okrsync.project import Project, load_project
from tests.sandboxes.bamboohr import BambooHrSandbox, Employee, Org
from tests.sandboxes.bamboohr.model import INVOLUNTARY_TYPE, VOLUNTARY_TYPE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr"
KEY_ENV = "BAMBOOHR_API_KEY"  # the variable the example names
AS_OF = datetime(2026, 10, 15, 12, 0)  # naive UTC: the sandbox company's "today" (its clock starts 08:00)
PERIODS = {"2026-Q3": (date(2026, 7, 1), date(2026, 9, 30)),  # closed: every event of the quarter
           "2026-Q4": (date(2026, 10, 1), date(2026, 12, 31))}  # to date: capped at the as-of day
PLACES = Decimal("0.000000000001")  # ratios are kept to 12 places (docs: metrics/evaluate.py)
T0 = 1_790_000_000_000_000_000  # the first export's modification time (ns), 2026-09-21
KRS = ("KR-HEADCOUNT", "KR-HIRES", "KR-ENG-HEADCOUNT", "KR-AVG-HEADCOUNT", "KR-VOL-LEAVERS",
       "KR-VOL-ATTRITION")
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


def golden(employees: Iterable[Employee], period: str, timezone: str, department: str) -> dict[str, Decimal]:
    """Every KR of the example, from the company's own records."""
    start, last = window(period, timezone)
    eve = start - timedelta(days=1)
    people = list(employees)
    at_end = [e for e in people if employed(e, last)]
    at_start = [e for e in people if employed(e, eve)]
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
    }


def voluntary_leavers(employees: Iterable[Employee], period: str, timezone: str) -> set[str]:
    start, last = window(period, timezone)
    return {str(e.id) for e in employees if e.terminationDate is not None
            and start <= e.terminationDate <= last and kind_of(e) == "voluntary"}


def cp1252_names(org: Org) -> None:
    """Give the few names cp1252 cannot write their export spelling (Łukasz → Lukasz), in the company."""
    for e in org.live():
        first, last = e.firstName.translate(CP1252), e.lastName.translate(CP1252)
        if (first, last) != (e.firstName, e.lastName):
            org.change(e.id, firstName=first, lastName=last)
        (first + last).encode("cp1252")  # any other name would fail here, not in the export


def plant_canaries(org: Org) -> list[int]:
    """Unique, greppable personal data on four employees (one of them a voluntary leaver of 2026-Q3)."""
    tag = secrets.token_hex(4)
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


def personal_texts(employees: Iterable[Employee]) -> dict[str, str]:
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
    (source,) = doc["sources"].values()
    (d / source["folder"]).mkdir(parents=True)
    return write_project(d, doc)


def export_bytes(employees: Iterable[Employee]) -> bytes:
    """An export as the files example declares it: headings, `;`, date format, decimal comma, cp1252."""
    (source,) = example("okrsync-files.yaml")["sources"].values()
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
    """Put an export in the folder as the README asks: a hidden temporary name, then a rename."""
    (source,) = example("okrsync-files.yaml")["sources"].values()
    folder = project.parent / source["folder"]
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    ns = T0 + at * 1_000_000_000
    os.utime(tmp, ns=(ns, ns))
    return tmp.rename(folder / name)


# -- running a project as a run does (without Prefect's scheduling around it) ---------------------------


class Runner:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.project: Project = load_project(path)
        self.store = Store(self.project.store_url())
        pipeline.register_okrs(self.project, self.store)
        (self.stream,) = self.project.streams
        assert {b.spec.id for b in self.project.key_results()} == set(KRS)

    def run(self) -> tuple[SyncCounts | None, str | None]:
        run_id = self.store.start_run(AS_OF, None)
        connector = self.project.connector(self.project.streams[self.stream].source)
        failed: dict[str, str] = {}
        counts = None
        try:
            counts = pipeline.sync_stream(self.project, self.store, connector, run_id, self.stream)
        except OkrsyncError as exc:
            failed[self.stream] = exc.message
        finally:
            connector.close()
        pipeline.compute_values(self.project, self.store, run_id, None, AS_OF, failed)
        self.store.finish_run(run_id, "partial" if failed else "succeeded", None)
        return counts, failed.get(self.stream)

    @property
    def department(self) -> str:
        return str(self.project.key_result("KR-ENG-HEADCOUNT").spec.dimensions["department"])

    def values(self) -> dict[str, Decimal | None]:
        with self.store.engine.connect() as conn:
            return {kr: queries.value_at(conn, kr).value for kr in KRS}

    def held(self) -> dict[str, str | None]:
        with self.store.engine.connect() as conn:
            return {k.id: k.held_reason for o in queries.status_tree(conn) for k in o.key_results}

    def state(self) -> dict[str, Any]:
        """What a failed sync must not change: every stored version, the watermark, the KR values."""
        with self.store.engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            versions = {t: conn.execute(sa.text(f'SELECT _rid, _from, _to, _hash FROM "{t}" ORDER BY 1, 2'))
                        .all() for t in names if t.startswith("rec_")}
            counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar()
                      for t in names if t not in ("run", "sync_run")}
            stream = conn.execute(sa.text("SELECT watermark, last_sync_id, last_success_at "
                                          "FROM stream_state"))
            values = {kr: (v.id, v.value) for kr in KRS for v in [queries.value_at(conn, kr)]}
        return {"versions": versions, "counts": counts, "stream_state": stream.all(), "values": values,
                "watermark": self.store.watermark(self.stream)}

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
    cp1252_names(box.org)
    canaries = plant_canaries(box.org)
    clean_env.setenv(KEY_ENV, box.api_key)
    yield box, canaries


# -- the same numbers from the API and from exports ----------------------------------------------------


@pytest.mark.parametrize("period", list(PERIODS))
def test_bamboohr_and_csv_exports_give_every_kr_its_independent_value(
    period: str, company: tuple[BambooHrSandbox, list[int]], tmp_path: Path, clean_env: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    box, canaries = company
    org = box.org
    rest = Runner(bamboohr_project(tmp_path / "rest", box, period))
    files = Runner(files_project(tmp_path / "files", period))
    tz, dept = rest.project.settings.timezone, rest.department

    counts, error = rest.run()
    assert error is None and counts is not None
    assert (counts.rows_read, counts.inserted, counts.api_calls) == (300, 300, 1)  # one custom report
    first_export = export_bytes(org.live())
    assert b"M\xfcller;" in first_export and b"O'Brien;" in first_export  # Müller in cp1252: not UTF-8
    with pytest.raises(UnicodeDecodeError):
        first_export.decode("utf-8")
    drop(files.path, "employees_2026-10-15.csv", first_export, at=0)
    fcounts, ferror = files.run()
    assert ferror is None and fcounts is not None and fcounts.inserted == 300
    before = golden(org.live(), period, tz, dept)
    assert rest.values() == before == files.values()
    assert before["KR-HIRES"] > 0 and before["KR-VOL-LEAVERS"] > 0 and before["KR-ENG-HEADCOUNT"] > 0
    assert all(h is None for h in (*rest.held().values(), *files.held().values()))

    # One hire (in Engineering) and one voluntary leaver (elsewhere), both dated inside the period.
    start, end = PERIODS[period]
    day = min(end, AS_OF.date()) - timedelta(days=5)
    hired = org.hire(hireDate=day, department=dept, firstName="Søren", lastName="Ó Súilleabháin")
    leaver = next(e for e in org.live() if e.terminationDate is None and e.hireDate < start
                  and e.department != dept and e.id not in canaries)
    org.terminate(leaver.id, day, voluntary=True)
    counts, error = rest.run()
    assert error is None and counts is not None
    assert (counts.rows_read, counts.inserted, counts.updated, counts.deleted) == (2, 1, 1, 0)
    assert counts.api_calls == 2  # employees/changed, then the report restricted to those two ids
    assert sorted(box.requests.matching("reports/custom")[-1].body["filters"]["employeeIds"]) == sorted(
        [hired.id, leaver.id])
    drop(files.path, "employees_2026-10-16.csv", export_bytes(org.live()), at=100)
    fcounts, ferror = files.run()
    assert ferror is None and fcounts is not None
    assert (fcounts.rows_read, fcounts.inserted, fcounts.updated, fcounts.deleted) == (2, 1, 1, 0)
    after = golden(org.live(), period, tz, dept)
    assert rest.values() == after == files.values()
    assert (after["KR-HIRES"], after["KR-VOL-LEAVERS"], after["KR-ENG-HEADCOUNT"]) == (
        before["KR-HIRES"] + 1, before["KR-VOL-LEAVERS"] + 1, before["KR-ENG-HEADCOUNT"] + 1)

    # Drill: the voluntary leavers are found on the sealed terminationKind; leadership (the default role)
    # sees their ids and •••, hr their names.
    for runner in (rest, files):
        with runner.store.engine.connect() as conn:
            value = queries.value_at(conn, "KR-VOL-LEAVERS")
        d = lineage.drill(runner.store, value, limit=1000)
        assert {r.record_id for r in d.records} == voluntary_leavers(org.live(), period, tz)
        clean_env.delenv("OKRSYNC_ROLE", raising=False)
        seen = access.drill_as(runner.project, access.records_role(runner.project), d)
        assert {r.fields[f] for r in seen.records for f in PERSONAL} <= {MASK, None}  # None: no value
        assert {r.fields[f] for r in seen.records for f in ("firstName", "terminationKind")} == {MASK}
        assert {r.fields["department"] for r in seen.records} != {MASK}  # not personal: readable
        clean_env.setenv("OKRSYNC_ROLE", "hr")
        seen = access.drill_as(runner.project, access.records_role(runner.project), d)
        leavers = voluntary_leavers(org.live(), period, tz)
        assert {r.record_id: (r.fields["firstName"], r.fields["lastName"], r.fields["terminationKind"])
                for r in seen.records} == {str(e.id): (e.firstName, e.lastName, "voluntary")
                                           for e in org.live() if str(e.id) in leavers}
        assert_sealed(runner)

    # No personal data in clear in either store's files, nor in the logs at DEBUG.
    pii = personal_texts(org.live())
    assert len(pii) > 600 and sum("Canary" in t for t in pii) >= 9
    raw = store_bytes(rest, files)
    assert_nowhere(pii, raw, "the stores")
    assert b"involuntary" not in raw  # terminationKind is sealed too
    logs = debug_logs.text
    assert "reports/custom" in logs and "employees/changed" in logs  # the traffic really was logged
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


MALFORMED: dict[str, Callable[[bytes], tuple[bytes, str]]] = {
    "bad encoding byte": _bad_byte, "missing column": _missing_column, "duplicate ids": _duplicate_id}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_export_fails_the_stream_changes_nothing_and_holds_the_krs(
    case: str, tmp_path: Path, clean_env: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture,
) -> None:
    org = Org.generate(seed=7, employees=300)
    cp1252_names(org)
    plant_canaries(org)
    runner = Runner(files_project(tmp_path, "2026-Q3"))
    good = export_bytes(org.live())
    drop(runner.path, "employees_2026-10-01.csv", good, at=0)
    counts, error = runner.run()
    assert error is None and counts is not None and counts.inserted == 300
    want = golden(org.live(), "2026-Q3", runner.project.settings.timezone, runner.department)
    assert runner.values() == want
    before = runner.state()

    bad, where = MALFORMED[case](good)
    drop(runner.path, "employees_2026-10-02.csv", bad, at=100)
    counts, error = runner.run()
    assert counts is None and error is not None
    assert f"employees_2026-10-02.csv: {where}" in error, error
    assert runner.state() == before  # no version, watermark or value moved
    held = runner.held()
    assert set(held) == set(KRS)
    for kr, reason in held.items():
        assert reason is not None and "employees_2026-10-02.csv" in reason and where in reason, kr
    pii = personal_texts(org.live())
    assert_nowhere(pii, "\n".join([error, *(r or "" for r in held.values())]).encode(), "the error")

    # The fix: take the file out. Nothing newer than the export already read: nothing is read, and the
    # KRs are released with the same values.
    (runner.path.parent / "exports" / "hr" / "employees_2026-10-02.csv").unlink()
    counts, error = runner.run()
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
    counts, error = runner.run()
    assert counts is None and error is not None and "blocked" in error
    assert all(h is not None and "blocked" in h for h in runner.held().values())
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
