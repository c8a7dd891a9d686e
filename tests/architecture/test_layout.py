"""The layout is the architecture: imports point one way, and the store's schema is its migrations."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connectors", "metrics", "okr_store", "flows", "okrsync")
# package → packages it must never import
FORBIDDEN = {
    "connectors": {"flows", "okr_store", "metrics"},
    "metrics": {"flows", "okr_store", "connectors"},
    "okr_store": {"flows", "connectors"},
    "flows": set(),
}
# the kernel every package may use; the rest of okrsync/ (CLI, web, project file) is user-facing
KERNEL = {"okrsync.errors", "okrsync.schema", "okrsync"}
# kept off the read-only commands' paths (alembic: a read checks the store's schema without it)
HEAVY = ("prefect", "great_expectations", "pandas", "simple_salesforce", "alembic")
DIALECTS = "sqlalchemy.dialects"  # imported where SQL for one database is built, never at module level


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for mod in imports_of(path):
            top = mod.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
            if top == "okrsync" and mod not in KERNEL and package != "flows":
                bad.append(f"{path.relative_to(ROOT)} imports the user-facing {mod}")
    assert not bad, "\n".join(bad)


# what loading a project file and the store loads: `status`, `history`, `drill` and `--help` go through it
READ_PATH_MODULES = (
    "okrsync/cli/app.py", "okrsync/cli/context.py", "okrsync/cli/running.py", "okrsync/cli/values.py",
    "okrsync/render.py", "okr_store/lineage.py", "okr_store/queries.py", "okr_store/store.py",
    "okr_store/records.py", "okr_store/staging.py", "okr_store/statistics.py", "okrsync/project.py",
    "okrsync/project_model.py", "okr_store/opening.py", "okr_store/digests.py", "okr_store/checks.py",
    "okrsync/users.py", "okrsync/cli/users.py", "connectors/sql_digest.py",
    "connectors/base.py", "connectors/horizon.py", "connectors/sql.py", "connectors/sql_values.py",
    "connectors/sql_horizon.py", "connectors/sql_range.py", "connectors/salesforce/connector.py",
    "connectors/salesforce/options.py", "connectors/salesforce/soql.py", "connectors/salesforce/values.py",
    "connectors/hr/connector.py", "connectors/hr/ats.py", "connectors/hr/bamboohr.py",
    "connectors/hr/files.py", "connectors/hr/parse.py", "connectors/kit/values.py",
    "connectors/kit/cursor.py", "connectors/kit/options.py", "connectors/registry.py",
    "connectors/protocol.py",
)


def test_heavy_libraries_are_not_imported_at_module_level_of_read_paths() -> None:
    """status, drill, history and --help must stay fast: no prefect / great_expectations (seconds each),
    pandas or simple_salesforce (a third of a cold `status`), alembic, or a database dialect's module
    (sqlalchemy.dialects.*: a SQLite store and source need none) on import; TYPE_CHECKING blocks and
    imports inside functions are fine."""
    for rel in READ_PATH_MODULES:
        tree = ast.parse((ROOT / rel).read_text())
        top_level = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
                     for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
        heavy = {m for m in top_level if m and (m.split(".")[0] in HEAVY or m.startswith(DIALECTS))}
        assert not heavy, f"{rel} imports {heavy} at module level"


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from okr_store.models import metadata
    from okr_store.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"models.py and the migrations disagree: {diff}"


def test_sql_connector_is_registered_as_an_entry_point() -> None:
    from connectors.registry import connector_kind
    from connectors.sql import SqlConnector

    assert connector_kind("sql") is SqlConnector


def test_prefect_yaml_deployments_point_at_the_flow_with_valid_schedules() -> None:
    """Module-path entrypoints (no file path: they work from any working directory of a worker where
    okrsync is installed) and a pull step that names no path of the deployer's machine. That they
    deploy and run is tests/prefect_server's job."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.utilities.importtools import import_object

    from flows.okr_flow import okrsync_run
    from okrsync.deploy import check_installed

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["pull"] == [{"okrsync.deploy.check_installed": {}}] and check_installed()
    assert {dep["name"] for dep in spec["deployments"]} == {"hourly", "nightly-full"}
    for dep in spec["deployments"]:
        assert ":" not in dep["entrypoint"] and import_object(dep["entrypoint"]) is okrsync_run
        assert set(dep.get("parameters") or {}) <= set(okrsync_run.parameters.properties)
        for sched in dep["schedules"]:
            CronSchedule(cron=sched["cron"], timezone=sched["timezone"])


def test_store_tables_hold_no_secret_columns() -> None:
    """Lineage and run records never have a column for credentials or connection strings; the web
    app's users keep only hashes of passwords and tokens (argon2id, SHA-256)."""
    from okr_store.models import metadata

    names = {(t.name, c.name.lower()) for t in metadata.tables.values() for c in t.columns}
    risky = {(t, n) for t, n in names if any(w in n for w in ("password", "secret", "token", "url"))}
    hashes = {("web_user", "password_hash"), ("web_session", "token_hash"), ("api_token", "token_hash")}
    assert risky == hashes
    assert isinstance(metadata, sa.MetaData)


def test_tasks_touching_source_data_do_not_persist_results() -> None:
    """Prefect's default result storage pickles to a shared folder: never for source data (S13)."""
    from flows.okr_flow import compute_task, okrsync_run, sync_task

    for t in (sync_task, compute_task):
        assert t.persist_result is False, t.name
    assert okrsync_run.persist_result is False


def test_great_expectations_has_one_seam() -> None:
    """Only metrics/gx imports great_expectations, and the rest of okrsync uses that package's public
    names (``from metrics.gx import …``), never its modules or underscore names."""
    bad = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            inside = path.is_relative_to(ROOT / "metrics" / "gx")
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods, names = [node.module], [a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    mods, names = [a.name for a in node.names], []
                else:
                    continue
                for mod in mods:
                    where = f"{path.relative_to(ROOT)}:{node.lineno} imports {mod}"
                    if mod.split(".")[0] == "great_expectations" and not inside:
                        bad.append(where)
                    if not inside and (mod.startswith("metrics.gx.")
                                       or (mod == "metrics.gx" and any(n.startswith("_") for n in names))):
                        bad.append(f"{where} {names}")
                    if inside and any(n.startswith("_") for n in names) and mod.startswith("metrics.gx"):
                        bad.append(f"{where} {names}: underscore names stay in their module")
    assert not bad, "\n".join(bad)


MAX_LINES = 500  # a module a reader holds in their head; a longer one is two modules (STYLE.md)


def test_no_shipped_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
