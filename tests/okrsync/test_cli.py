"""The ``okrsync`` command line, driven as a user drives it: the real console script in a subprocess,
a working directory, an environment (the session's Prefect API), stdout/stderr and the exit status.

Exit status contract: 0 ok, 1 failure (a run failed or held key results), 2 usage or validation error.
JSON output is parsed and checked for the keys the product issue promises.

The tests that need no Prefect API come first: they run while the API boots and ``okrsync demo``
builds in the background (see conftest.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import shutil
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from okrsync.demo_erp import change_order_amount
from tests.okrsync.conftest import OKRSYNC, Cli, DemoBuild, PrefectApi, Result, api_cli, stop_demo_sandbox

pytestmark = pytest.mark.usefixtures("demo_started", "unreachable_started")  # start the slow parts now

COMMANDS = ("init", "validate", "run", "status", "history", "drill", "diff", "demo", "restatements", "reopen")
OBJECTIVE_KEYS = {"id", "title", "progress", "key_results", "objectives"}
KR_KEYS = {"id", "title", "value", "baseline", "target", "progress", "status", "computed_at", "metric"}
DRILL_KEYS = {"kr", "value", "computed_at", "total", "records"}
RECORD_KEYS = {"source", "stream", "record_id", "contribution", "role", "fields"}
LATER = datetime(2100, 1, 1)  # naive, after every timestamp the demo ERP generated (ErpSummary.as_of)
CANARY = "S3cretCanary"
SECRET_URL = f"postgresql+psycopg://okr:{CANARY}@127.0.0.1:1/erp"  # port 1: nobody listens


def leaks(text: str) -> bool:
    """The canary in ``text``, also if rich wrapped a line in the middle of it."""
    return CANARY in text or CANARY in "".join(text.split())


def ok(r: Result) -> Result:
    assert r.code == 0, r
    assert "Traceback" not in r.err, r
    return r


def usage_error(r: Result, *needles: str) -> str:
    """Exit status 2 and a message (no traceback) containing every needle; returns stderr unwrapped."""
    assert r.code == 2, r
    assert "Traceback" not in r.err, r
    text = " ".join(r.err.split())  # rich wraps long messages at 80 columns when not on a terminal
    for needle in needles:
        assert needle in text, r
    return text


def as_json(r: Result) -> Any:
    return json.loads(ok(r).out)


def walk_objectives(objectives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for o in objectives:
        out += [o, *walk_objectives(o["objectives"])]
    return out


def kr_of(status: dict[str, Any], kr_id: str) -> dict[str, Any]:
    (kr,) = [k for o in walk_objectives(status["objectives"]) for k in o["key_results"] if k["id"] == kr_id]
    return kr


def project(d: Path) -> tuple[str, str]:
    return "-p", str(d / "okrsync.yaml")


# ---- help, init: no Prefect API needed ---------------------------------------------------------
def test_help_lists_every_command(cli: Cli, tmp_path: Path) -> None:
    r = ok(cli("--help", cwd=tmp_path))
    for command in COMMANDS:
        assert f" {command} " in r.out, r
    assert "--project" in r.out and "--debug" in r.out


def test_init_writes_a_file_validate_accepts(cli: Cli, tmp_path: Path) -> None:
    r = ok(cli("init", cwd=tmp_path))
    assert "okrsync.yaml" in r.out
    text = (tmp_path / "okrsync.yaml").read_text()
    report = as_json(cli("validate", "--json", cwd=tmp_path))
    assert report["ok"] is True and report["problems"] == [] and report["key_results"] >= 1, report

    (tmp_path / "okrsync.yaml").write_text("# mine\n" + text)
    usage_error(cli("init", cwd=tmp_path), "already exists", "--force")
    assert (tmp_path / "okrsync.yaml").read_text().startswith("# mine"), "init must not overwrite"
    ok(cli("init", "--force", cwd=tmp_path))
    assert (tmp_path / "okrsync.yaml").read_text() == text
    ok(cli("init", "custom.yaml", cwd=tmp_path))
    assert (tmp_path / "custom.yaml").read_text() == text


def test_init_into_a_missing_folder(cli: Cli, tmp_path: Path) -> None:
    r = cli("init", "okr/okrsync.yaml", cwd=tmp_path)
    assert "Traceback" not in r.err, r
    assert r.code == 2 or (r.code == 0 and (tmp_path / "okr" / "okrsync.yaml").is_file()), r


TITLED = textwrap.dedent("""\
    version: 1
    settings: {{timezone: UTC, default_period: 2026-Q4}}
    sources:
      erp: {{kind: sql, url: "sqlite:///erp.db"}}
    streams:
      orders: {{source: erp, table: orders, primary_key: id}}
    metrics:
      revenue: {{stream: orders, measure: sum, field: untaxed_amount, time_field: order_date}}
    objectives:
      - id: O1
        title: "{title}"
        key_results:
          - {{id: KR1, title: "{title}", metric: revenue, target: 100}}
    """)


def test_status_shows_titles_verbatim(cli: Cli, tmp_path: Path) -> None:
    from flows.compute import register_okrs  # the first step of every run: the tree into the store
    from okr_store.store import Store
    from okrsync.project import load_project

    title = "Launch v2 [beta] at 3 EUR [/unit]"  # either bracket alone shows the bug (see the report)
    (tmp_path / "okrsync.yaml").write_text(TITLED.format(title=title))
    store = Store(f"sqlite:///{tmp_path / '.okrsync' / 'store.db'}")
    try:
        register_okrs(load_project(tmp_path / "okrsync.yaml"), store)
    finally:
        store.close()
    r = cli("status", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "Traceback" not in r.err, r
    assert r.code == 0, r
    assert r.out.count(title) == 2, r  # the objective and its key result


# ---- the demo: the README's first command ------------------------------------------------------
def test_demo_end_to_end(
    demo_build: DemoBuild, demo_dir: Path, cli_api: Cli, demo_again_started: Future[DemoAgain]
) -> None:
    built = demo_build.result
    ok(built)
    assert "Objectives and key results" in built.out, built
    for node in ("O-GROWTH", "O-DELIVERY", "KR-REV", "KR-LATE", "KR-REV-EMEA", "O-SALES", "KR-SF-WON",
                 "KR-SF-WINRATE", "KR-SF-PIPE"):
        assert node in built.out, built
    assert "Try next" in built.out and "rows pulled" in built.out and "succeeded" in built.out, built
    assert re.search(r"opportunities: \d+ rows pulled.*?\d+\s+API\s+calls", built.out, re.S), built

    cwd, p = demo_dir.parent, ("-p", "demo/okrsync.yaml")  # a copy, reached as `demo/` like the original
    drill, status, history, late, won = cli_api.many(
        ((*p, "drill", "KR-REV", "--format", "json", "--limit", "100000"), cwd),
        ((*p, "status", "--json"), cwd),
        ((*p, "history", "KR-REV", "--json"), cwd),
        ((*p, "drill", "KR-LATE", "--format", "csv"), cwd),
        ((*p, "drill", "KR-SF-WON", "--format", "json", "--limit", "100000"), cwd),
    )

    # Salesforce: the opportunities behind closed-won revenue add up, each with its link
    w = as_json(won)
    assert w["total"] == len(w["records"]) > 0
    assert sum((Decimal(r["contribution"]) for r in w["records"]), Decimal(0)) == Decimal(w["value"])
    for rec in w["records"]:
        assert (rec["source"], rec["stream"]) == ("crm", "opportunities")
        assert rec["fields"]["IsWon"] is True and rec["fields"]["Amount_USD"] == rec["contribution"]
        assert re.fullmatch(rf"https://127\.0\.0\.1:\d+/lightning/r/Opportunity/{rec['record_id']}/view",
                            rec["url"]), rec["url"]

    # drill: every record behind KR-REV, contributions adding up to the value exactly
    d = as_json(drill)
    assert DRILL_KEYS <= d.keys(), d.keys()
    assert d["kr"] == "KR-REV" and isinstance(d["value"], str)
    assert len(d["records"]) == d["total"] > 0
    for rec in d["records"]:
        assert RECORD_KEYS <= rec.keys(), rec
        assert isinstance(rec["fields"], dict) and rec["fields"], rec
        assert (rec["source"], rec["stream"]) == ("erp", "orders") and isinstance(rec["contribution"], str)
    assert sum((Decimal(rec["contribution"]) for rec in d["records"]), Decimal(0)) == Decimal(d["value"])

    # status: the contract keys at every level, nested objectives included
    s = as_json(status)
    objectives = walk_objectives(s["objectives"])
    assert {o["id"] for o in s["objectives"]} == {"O-GROWTH", "O-DELIVERY", "O-SALES"}
    assert len(objectives) > len(s["objectives"]), "the demo has nested objectives"
    for o in objectives:
        assert OBJECTIVE_KEYS <= o.keys(), o.keys()
        for kr in o["key_results"]:
            assert KR_KEYS <= kr.keys(), kr.keys()
    assert kr_of(s, "KR-REV")["value"] == d["value"]
    assert kr_of(s, "KR-REV")["metric"] == "revenue" and kr_of(s, "KR-REV")["status"] != "no_data"

    h = as_json(history)
    assert h["kr"] == "KR-REV" and [v["value"] for v in h["values"]] == [d["value"]]

    # drill as CSV: a header, then one row per record, readable by the csv module
    header, *body = list(csv.reader(io.StringIO(ok(late).out)))
    assert header[:6] == ["source", "stream", "record_id", "contribution", "denominator_contribution",
                          "role"], header
    assert {"is_late", "state", "effective_date"} <= set(header)
    # every record, not one page (the export streams them all unless --limit says otherwise)
    assert len(body) > 50 and all(len(row) == len(header) for row in body)
    assert len({row[2] for row in body}) == len(body)
    assert {row[1] for row in body} == {"shipments"}

    # the demo again (on another copy, see demo_again): refused without --force, rebuilt with it
    demo_again = demo_again_started.result(timeout=400)
    usage_error(demo_again.refused, "already holds a demo", "--force")
    ok(demo_again.rebuilt)
    assert "Objectives and key results" in demo_again.rebuilt.out, demo_again.rebuilt
    assert "Try next" in demo_again.rebuilt.out, demo_again.rebuilt
    assert not (demo_again.dir / "notes.txt").exists(), "--force rebuilds the folder from scratch"
    assert "orders: 0 rows pulled" not in demo_again.rebuilt.out, "a rebuilt demo starts with an empty store"


@dataclass
class DemoAgain:
    cwd: Path
    refused: Result  # `okrsync demo --dir demo` over an existing demo
    rebuilt: Result  # then with --force

    @property
    def dir(self) -> Path:
        return self.cwd / "demo"


@pytest.fixture(scope="module")
def demo_again_started(
    demo_build: DemoBuild,
    cli_api: Cli,
    background: Callable[[Callable[[], Any]], Future[Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Future[DemoAgain]]:
    """`okrsync demo` over a copy of the built demo, without then with --force, in the background."""
    cwd = tmp_path_factory.mktemp("demo-again")
    shutil.copytree(demo_build.dir, cwd / "demo")

    def again() -> DemoAgain:
        refused = cli_api("demo", "--dir", "demo", cwd=cwd)
        assert (cwd / "demo" / ".okrsync").is_dir() and (cwd / "demo" / "erp.db").is_file(), "untouched"
        (cwd / "demo" / "notes.txt").write_text("left by a user")
        return DemoAgain(cwd, refused, cli_api("demo", "--dir", "demo", "--force", cwd=cwd, timeout=300))

    future = background(again)
    yield future
    future.result(timeout=400)
    stop_demo_sandbox(cwd / "demo")


@pytest.fixture
def demo_again(demo_again_started: Future[DemoAgain]) -> DemoAgain:
    return demo_again_started.result(timeout=400)


def suggested_commands(text: str) -> list[str]:
    """The `okrsync …` command lines of the demo's "Try next" table (a command, then what it does)."""
    lines = (line.strip() for line in text.splitlines())
    return [line.split("  ")[0] for line in lines if is_okrsync(line)]


def is_okrsync(command: str) -> bool:
    """Whether a printed command calls okrsync: by name when it is on PATH, else by its path (the
    demo prints the program as it was started: this session's console script, not on PATH)."""
    first = command.split(" ", 1)[0]
    return " " in command and (first == "okrsync" or first == str(OKRSYNC))


def test_demo_next_steps_run_as_printed(demo_build: DemoBuild, demo_dir: Path, cli_api: Cli) -> None:
    """The commands the demo suggests work when typed as printed, from where the demo was built."""
    commands = suggested_commands(demo_build.result.out)
    assert len(commands) >= 5, demo_build.result
    for wanted in (" drill KR-REV", " history KR-REV", " run", " diff KR-REV", " status --json"):
        assert any(wanted in c for c in commands), commands
    # The read-only ones are run here; `run` and `diff` must be spelt the same way (their behaviour is
    # covered below), which an unknown option or misplaced -p would break.
    prefixes = {c.split(" drill ")[0] for c in commands if " drill " in c}
    assert len(prefixes) == 1, commands
    prefix = prefixes.pop() + " "
    assert all(c.startswith(prefix) for c in commands), commands
    # `users add` asks for a password and `serve` runs until stopped: parsed as typed, with --help
    interactive = [c for c in commands if " users add " in c or c.endswith(" serve")]
    assert len(interactive) == 2, commands
    read_only = [c for c in commands if c.split()[-1] != "run" and " diff " not in c and c not in interactive]
    calls = [shlex.split(c)[1:] for c in read_only] + [[*shlex.split(c)[1:], "--help"] for c in interactive]
    for r in cli_api.many(*((args, demo_dir.parent) for args in calls)):
        ok(r)


def hint_commands(err: str) -> list[str]:
    text = " ".join(err.split())
    return [c for c in text.split("`")[1::2] if is_okrsync(c)]


def test_demo_again_hint_status_command_works(demo_again: DemoAgain, cli_api: Cli) -> None:
    usage_error(demo_again.refused, "already holds a demo")
    (status,) = [c for c in hint_commands(demo_again.refused.err) if " status" in c]
    ok(cli_api(*shlex.split(status)[1:], cwd=demo_again.cwd))


def test_demo_again_hint_rebuilds_the_same_directory(demo_again: DemoAgain) -> None:
    usage_error(demo_again.refused, "already holds a demo")
    (rebuild,) = [c for c in hint_commands(demo_again.refused.err) if " demo" in c and "--force" in c]
    assert "--dir demo" in rebuild or "--dir=demo" in rebuild, rebuild


def test_demo_project_file_comments_give_valid_commands(demo_dir: Path, cli: Cli) -> None:
    comments = [line for line in (demo_dir / "okrsync.yaml").read_text().splitlines() if line.startswith("#")]
    commands = [c for line in comments for c in line.split("`")[1::2] if c.startswith("okrsync ")]
    assert any(" run" in c for c in commands), comments
    for command in commands:  # --help: parsed as typed, without running anything
        r = cli(*shlex.split(command)[1:], "--help", cwd=demo_dir.parent)
        assert r.code == 0, r


# ---- read-only commands stay light -------------------------------------------------------------
# seconds each (prefect, great_expectations), a third of a cold `status` (pandas, simple_salesforce), or
# a tenth (alembic: the store's schema is checked against the migration files' revisions as text)
HEAVY = ("prefect", "great_expectations", "pandas", "simple_salesforce", "alembic")
CHECK_IMPORTS = f"""
import json, sys
HEAVY = {HEAVY!r}
from typer.testing import CliRunner
from okrsync.cli import app
p = sys.argv[1]
runs = [["--help"], ["-p", p, "status"], ["-p", p, "status", "--json"], ["-p", p, "history", "KR-REV"],
        ["-p", p, "drill", "KR-REV", "--limit", "3"], ["-p", p, "drill", "KR-REV", "--format", "json"]]
codes = [CliRunner().invoke(app, args).exit_code for args in runs]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({{"codes": codes, "heavy": heavy[:10]}}))
"""


def test_read_only_commands_do_not_import_heavy_libraries(cli: Cli, demo_dir: Path) -> None:
    """--help, status, history and drill never import prefect, great_expectations, pandas,
    simple_salesforce or alembic; --help not even the store (sqlalchemy)."""
    checked, timed, status = (
        cli.python("-c", CHECK_IMPORTS, str(demo_dir / "okrsync.yaml"), cwd=demo_dir),
        cli.python("-X", "importtime", "-m", "okrsync.cli", "--help", cwd=demo_dir),
        cli.python("-X", "importtime", "-m", "okrsync.cli", "-p", str(demo_dir / "okrsync.yaml"), "status",
                   cwd=demo_dir),
    )
    report = json.loads(ok(checked).out)
    assert report == {"codes": [0] * 6, "heavy": []}, checked
    ok(timed)
    imported = {line.rsplit("|", 1)[-1].strip() for line in timed.err.splitlines() if "|" in line}
    assert {"typer", "okrsync.errors"} <= imported, timed.err[-2000:]
    assert not {m for m in imported if m.split(".")[0] in (*HEAVY, "sqlalchemy", "okr_store")}
    # status reads stored values: nor the evaluator (metrics.reconcile's project models need none of it)
    ok(status)
    imported = {line.rsplit("|", 1)[-1].strip() for line in status.err.splitlines() if "|" in line}
    assert {"okr_store.queries", "metrics.reconcile"} <= imported, status.err[-2000:]
    assert not imported & {"metrics.evaluate", "metrics.compile", "metrics.grouped", "okr_store.lineage"}


# ---- incremental runs, and diff ----------------------------------------------------------------
def test_second_run_pulls_nothing_and_a_changed_order_is_the_one_diff(demo_dir: Path, cli_api: Cli) -> None:
    p = project(demo_dir)
    before = as_json(cli_api(*p, "drill", "KR-REV", "--format", "json", "--limit", "1", cwd=demo_dir))

    # `okrsync demo` was the first run; a second one finds nothing new
    second = ok(cli_api(*p, "run", cwd=demo_dir))
    for stream in ("orders", "shipments"):
        assert f"{stream}: 0 rows pulled" in second.out, second
    assert "succeeded" in second.out, second

    # one order is edited in the ERP (later than anything it holds): only that row is pulled
    order_id = int(before["records"][0]["record_id"])
    change_order_amount(demo_dir / "erp.db", order_id, Decimal("120.00"), at=LATER)
    third = as_json(cli_api(*p, "run", "--json", cwd=demo_dir))
    assert third["status"] == "succeeded", third
    assert third["streams"]["orders"]["rows_read"] == 1, third["streams"]
    assert third["streams"]["orders"]["updated"] == 1, third["streams"]
    assert third["streams"]["shipments"]["rows_read"] == 0, third["streams"]

    diff = as_json(cli_api(*p, "diff", "KR-REV", "--json", cwd=demo_dir))
    assert diff["kr"] == "KR-REV" and diff["definition_changed"] is False
    assert diff["total_changes"] == 1 and len(diff["changes"]) == 1, diff["changes"]
    (change,) = diff["changes"]
    assert (change["kind"], change["stream"], change["record_id"]) == ("changed", "orders", str(order_id))
    assert "untaxed_amount" in change["fields"], change
    moved = Decimal(diff["to"]["value"]) - Decimal(diff["from"]["value"])
    assert moved != 0 and Decimal(diff["delta"]) == moved == Decimal(change["delta"])
    assert diff["from"]["value"] == before["value"]
    assert diff["to"]["value"] == third["values"]["KR-REV"]
    assert Decimal(change["before"]) == Decimal(before["records"][0]["contribution"])


def test_drill_and_diff_argument_errors(demo_dir: Path, cli: Cli) -> None:
    p, d = project(demo_dir), demo_dir
    too_early, bad_time, unknown, near, xml, one_value = cli.many(
        ((*p, "drill", "KR-REV", "--at", "2000-01-01"), d),  # before the first run
        ((*p, "drill", "KR-REV", "--at", "last tuesday"), d),
        ((*p, "drill", "NOPE"), d),
        ((*p, "drill", "KR-RV"), d),
        ((*p, "drill", "KR-REV", "--format", "xml"), d),
        ((*p, "diff", "KR-REV"), d),
    )
    usage_error(too_early, "KR-REV", "no computed value", "--at")
    usage_error(bad_time, "'last tuesday'")
    usage_error(unknown, "no key result 'NOPE'")
    text = usage_error(near, "no key result 'KR-RV'", "did you mean")
    assert "KR-REV" in text.split("did you mean", 1)[1], near
    usage_error(xml, "--format", "table, csv or json")
    usage_error(one_value, "only one value")


# ---- a failed run keeps the last good values ---------------------------------------------------
def test_failed_run_holds_the_last_good_value(demo_dir: Path, cli_api: Cli) -> None:
    p = project(demo_dir)
    good = kr_of(as_json(cli_api(*p, "status", "--json", cwd=demo_dir)), "KR-REV")
    assert good["held"] is False and good["held_reason"] is None

    shutil.move(demo_dir / "erp.db", demo_dir / "erp.db.away")
    (demo_dir / "erp.db").mkdir()  # SQLite cannot open a directory: the source is unreadable
    r = cli_api(*p, "run", cwd=demo_dir)
    assert r.code == 1, r
    assert "Traceback" not in r.err, r
    assert "✗ orders" in r.out and "held" in r.out and "partial" in r.out, r

    status = as_json(cli_api(*p, "status", "--json", cwd=demo_dir))
    kr = kr_of(status, "KR-REV")
    assert (kr["value"], kr["value_id"], kr["computed_at"]) == (
        good["value"], good["value_id"], good["computed_at"])
    assert kr["held"] is True and "orders" in kr["held_reason"], kr
    (growth,) = [o for o in status["objectives"] if o["id"] == "O-GROWTH"]
    assert growth["held"] is True
    for o in walk_objectives(status["objectives"]):  # every KR but the CRM's reads the broken ERP
        assert o["held"] is (o["id"] != "O-SALES"), o["id"]


# ---- secrets never leak ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def unreachable_started(
    base_env: dict[str, str],
    prefect_api: PrefectApi,
    background: Callable[[Callable[[], Any]], Future[Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Future[tuple[Path, Result]]:
    """`okrsync run` of a project whose source URL (with a password) is in ERP_URL, on a port where
    nobody listens. Started in the background: it spends ~15 s retrying the transient failure."""
    d = tmp_path_factory.mktemp("secret")

    def run() -> tuple[Path, Result]:
        cli = api_cli(base_env, prefect_api)
        ok(cli("init", cwd=d))
        text = (d / "okrsync.yaml").read_text()
        (d / "okrsync.yaml").write_text(text.replace("url: sqlite:///erp.db", "url_env: ERP_URL", 1))
        return d, cli("run", cwd=d, env={"ERP_URL": SECRET_URL})

    return background(run)


@pytest.fixture
def unreachable(unreachable_started: Future[tuple[Path, Result]]) -> tuple[Path, Result]:
    return unreachable_started.result(timeout=300)


def test_the_source_password_never_leaks(
    unreachable: tuple[Path, Result], cli: Cli, prefect_api: PrefectApi
) -> None:
    d, run = unreachable
    assert "url_env: ERP_URL" in (d / "okrsync.yaml").read_text()
    assert run.code == 1, run  # a partial run: every KR held
    assert "cannot reach" in " ".join(run.out.split()) and "partial" in run.out, run
    assert not leaks(run.out) and not leaks(run.err)

    shell = Cli({**cli.env, "ERP_URL": SECRET_URL})  # the variable set in the user's shell
    status_r, checked = shell.many((("status", "--json"), d), (("validate", "--check-sources"), d))
    status = as_json(status_r)
    assert not leaks(status_r.out + status_r.err)
    krs = [k for o in walk_objectives(status["objectives"]) for k in o["key_results"]]
    assert krs and all(k["held"] and k["value"] is None for k in krs), krs
    assert all("orders" in k["held_reason"] for k in krs), krs
    assert checked.code == 2, checked
    assert "cannot reach" in checked.err and "***" in checked.err, checked
    assert not leaks(checked.out + checked.err)

    written = [f for f in d.rglob("*") if f.is_file()]
    assert any(f.name == "store.db" for f in written), written
    for f in written:  # the store (with its -wal/-shm/-journal, if any) and everything else
        assert CANARY.encode() not in f.read_bytes(), f
    assert prefect_api.database is not None
    api_files = list(prefect_api.database.parent.glob(prefect_api.database.name + "*"))  # incl. -wal
    assert prefect_api.database in api_files
    for f in api_files:  # the Prefect API's database: flow and task runs, their states and messages
        assert CANARY.encode() not in f.read_bytes(), f


def test_unreachable_source_run_prints_no_traceback(unreachable: tuple[Path, Result]) -> None:
    _, run = unreachable
    assert run.code == 1, run
    assert "Traceback" not in run.err, run
