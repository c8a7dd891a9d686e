"""``okrsync kr``: bind, preview, edit, retire and export key results; roles, audit, id clashes."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from flows.run import LocalSteps, run_project
from okr_store import audit, bindings
from okr_store import models as m
from okr_store.store import Store
from okrsync.cli.app import app
from okrsync.errors import ConfigError
from okrsync.project import load_project

AS_OF = [datetime(2026, 11, 19, 10), datetime(2026, 11, 20, 10)]
ADD = [
    "kr",
    "add",
    "KR-EMEA-OPS",
    "--objective",
    "O-GROWTH-EMEA",
    "--metric",
    "revenue",
    "--pin",
    "region=EMEA",
    "--target",
    "900000",
    "--period",
    "2026-Q4",
    "--title",
    "EMEA revenue (ops)",
]


def kr(pf: Path, *args: str, role: str = "editor") -> object:
    result = CliRunner().invoke(
        app, ["--project", str(pf), *args], env={"OKRSYNC_ROLE": role, "COLUMNS": "200"}
    )
    return result


def failure(result: object) -> str:
    """The error a command stopped with (the CLI's main() prints it with its hint, exit status 2)."""
    exc = result.exception  # type: ignore[attr-defined]
    assert isinstance(exc, ConfigError), result
    return exc.message


def emea_values(store: Store, kr_id: str) -> list[tuple[datetime, str | None]]:
    v = m.kr_value.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(v.as_of, v.value).where(v.kr_id == kr_id).order_by(v.as_of, v.id))
        return [(r.as_of, r.value) for r in rows]


def test_bind_edit_retire_audit_and_export(demo_dir: Path) -> None:
    pf = demo_dir / "okrsync.yaml"
    assert run_project(pf, LocalSteps(), as_of=AS_OF[0]).status == "succeeded"

    viewer = kr(pf, *ADD, role="viewer")
    assert "may not bind key results" in failure(viewer)
    clash = kr(pf, *[("KR-REV-EMEA" if a == "KR-EMEA-OPS" else a) for a in ADD])
    assert "is defined in okrsync.yaml" in failure(clash)
    wrong = kr(pf, *ADD[:-4], "--pin", "salesperson=x", *ADD[-4:])
    assert "offers no dimension 'salesperson'" in failure(wrong)

    shown = kr(pf, "kr", "preview", *ADD[2:], "--json")
    assert shown.exit_code == 0, shown.output  # type: ignore[attr-defined]
    added = kr(pf, *ADD, "--reason", "EMEA ops review")
    assert added.exit_code == 0, added.output  # type: ignore[attr-defined]

    project = load_project(pf)
    store = Store(project.store_url())
    try:
        # the tree holds it at once; the next run computes it with the file's KRs, equal to KR-REV-EMEA
        with store.engine.connect() as conn:
            assert (
                conn.execute(
                    sa.select(m.key_result.c.active).where(m.key_result.c.id == "KR-EMEA-OPS")
                ).scalar()
                is True
            )
        assert run_project(pf, LocalSteps(), as_of=AS_OF[1]).status == "succeeded"
        ops, rev = emea_values(store, "KR-EMEA-OPS"), emea_values(store, "KR-REV-EMEA")
        assert ops == [rev[-1]]

        edited = kr(pf, "kr", "edit", "KR-EMEA-OPS", "--target", "950000", "--reason", "raised")
        assert edited.exit_code == 0, edited.output  # type: ignore[attr-defined]
        with store.engine.connect() as conn:
            events = [e for e in audit.audit_log(conn, kr_id="KR-EMEA-OPS")]
            versions = bindings.versions(conn, "KR-EMEA-OPS")
            assert audit.verify_audit_chain(conn) is None
        assert [e.action for e in events] == ["kr.bind", "kr.edit"]
        assert events[1].reason == "raised — target: 900000 → 950000"
        assert all(e.actor.startswith("cli:") for e in events)
        assert [(v.version, v.spec["target"]) for v in versions] == [(1, "900000"), (2, "950000")]
        assert [v.audit_hash for v in versions] == [e.hash for e in events]

        exported = yaml.safe_load(kr(pf, "kr", "export").output)  # type: ignore[attr-defined]
        (o,) = exported["objectives"]
        assert o["id"] == "O-GROWTH-EMEA" and o["key_results"][0]["id"] == "KR-EMEA-OPS"
        assert (
            o["key_results"][0]["dimensions"] == {"region": "EMEA"}
            and o["key_results"][0]["target"] == "950000"
        )

        retired = kr(pf, "kr", "retire", "KR-EMEA-OPS", "--reason", "merged into KR-REV-EMEA")
        assert retired.exit_code == 0, retired.output  # type: ignore[attr-defined]
        assert run_project(pf, LocalSteps(), as_of=datetime(2026, 11, 20, 12)).status == "succeeded"
        assert emea_values(store, "KR-EMEA-OPS") == ops  # no new value, the old one kept
        with store.engine.connect() as conn:
            active = conn.execute(
                sa.select(m.key_result.c.active).where(m.key_result.c.id == "KR-EMEA-OPS")
            ).scalar()
            assert active is False
            assert [e.action for e in audit.audit_log(conn, kr_id="KR-EMEA-OPS")][-1] == "kr.retire"
        drilled = kr(pf, "drill", "KR-EMEA-OPS", "--limit", "all", "--format", "json")
        assert drilled.exit_code == 0, drilled.output  # type: ignore[attr-defined]
        behind = json.loads(drilled.output)  # type: ignore[attr-defined]
        assert len(behind["records"]) == behind["total"] > 0  # the retired KR's value keeps its records
        assert sum(Decimal(r["contribution"]) for r in behind["records"]) == Decimal(ops[0][1] or 0)
        again = kr(pf, "kr", "edit", "KR-EMEA-OPS", "--target", "1")
        assert "is retired" in failure(again)
        reuse = kr(pf, *ADD)
        assert "already bound" in failure(reuse)
    finally:
        store.close()


def test_a_project_file_kr_taking_a_bound_id_is_a_clear_error(demo_dir: Path) -> None:
    pf = demo_dir / "okrsync.yaml"
    assert run_project(pf, LocalSteps(), as_of=AS_OF[0]).status == "succeeded"
    assert kr(pf, *ADD).exit_code == 0
    pf.write_text(pf.read_text().replace("id: KR-REV-EMEA", "id: KR-EMEA-OPS"))
    with pytest.raises(ConfigError, match="'KR-EMEA-OPS' is defined in okrsync.yaml"):
        run_project(pf, LocalSteps(), as_of=AS_OF[1])


def test_baseline_from_the_value_at_the_period_start(demo_dir: Path) -> None:
    """``--baseline start`` takes the KR's value as of its period start from the store as it was then:
    checked against independent SQL over the record versions of the sync that run read."""
    pf = demo_dir / "okrsync.yaml"
    assert run_project(pf, LocalSteps(), as_of=datetime(2026, 10, 31, 23)).status == "succeeded"
    assert run_project(pf, LocalSteps(), as_of=AS_OF[0]).status == "succeeded"
    from okrsync import binding

    project = load_project(pf)
    store = Store(project.store_url())
    try:
        req = binding.Request(
            "KR-X",
            "O-GROWTH-EMEA",
            {"title": "x", "metric": "revenue", "target": "5", "baseline": "0", "period": "2026-11"},
        )
        with store.engine.connect() as conn:
            first = conn.execute(sa.select(m.run.c.id).order_by(m.run.c.started_at)).scalars().first()
            sync = conn.execute(
                sa.select(sa.func.max(m.sync_run.c.id)).where(
                    m.sync_run.c.run_id == first, m.sync_run.c.stream == "orders"
                )
            ).scalar()
            rec = store.streams.tables("orders").records  # type: ignore[union-attr]
            # period_to_date on a date field at 1 November 00:00: the orders of 1 November (a day that
            # has begun counts in full), as the first run's sync held them
            amounts = (
                conn.execute(
                    sa.select(rec.c.untaxed_amount).where(
                        rec.c._from <= sync,
                        sa.or_(rec.c._to.is_(None), rec.c._to > sync),
                        rec.c.state.in_(["confirmed", "done"]),
                        rec.c.order_date == datetime(2026, 11, 1).date(),
                        rec.c.untaxed_amount.is_not(None),
                    )
                )
                .scalars()
                .all()
            )
        assert len(amounts) > 0
        want = sum(amounts, Decimal(0))
        assert binding.baseline_at_start(project, store, req) == want
        shown = kr(pf, "kr", "preview", "KR-X", "--objective", "O-GROWTH-EMEA", "--metric", "revenue",
                   "--target", "5000000", "--period", "2026-11", "--baseline", "start")
        assert shown.exit_code == 0, shown.output  # type: ignore[attr-defined]
        assert f"baseline: {want} (the value at the period start)" in shown.output  # type: ignore[attr-defined]

        # an edit takes it too (the web page's edit, `kr edit --baseline start`), and clears pins with {}
        added = kr(pf, "kr", "add", "KR-X", "--objective", "O-GROWTH-EMEA", "--metric", "revenue",
                   "--target", "5000000", "--period", "2026-11")
        assert added.exit_code == 0, added.output  # type: ignore[attr-defined]
        edited = kr(pf, "kr", "edit", "KR-X", "--baseline", "start", "--reason", "from the start")
        assert edited.exit_code == 0, edited.output  # type: ignore[attr-defined]
        with store.engine.connect() as conn:
            assert bindings.get(conn, "KR-X").spec["baseline"] == str(want)
        assert kr(pf, "kr", "edit", "KR-X", "--pin", "region=EMEA").exit_code == 0
        unpinned = binding.Request("KR-X", "", {"dimensions": {}, "target": "6000000"})
        said = binding.preview_edit(project, store, unpinned, project.settings.roles["editor"], now=AS_OF[0])
        assert said["changes"] == 'dimensions: {"region": "EMEA"} → –; target: 5000000 → 6000000'
        b = binding.edit(project, store, unpinned, "eddie")
        assert (b.version, "dimensions" in b.spec, b.spec["target"]) == (4, False, "6000000")
        assert kr(pf, "kr", "retire", "KR-X").exit_code == 0
        with pytest.raises(ConfigError, match="'KR-X' is retired"):
            binding.preview_edit(project, store, unpinned, project.settings.roles["editor"], now=AS_OF[0])
    finally:
        store.close()
