"""`okrsync status`, `history`, `restatements` and `reopen` on a closed and restated period (issue 17,
part 1): the labels leadership reads, the records of a restatement, and admin-only decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from okrsync import cli
from okrsync.access import NotAllowed
from tests.okr_store.test_closing import erp, run, write_project


@pytest.fixture
def restated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KR-REV closed at 600 on 2026-10-11, restated to 607 by two late changes."""
    for var in ("OKRSYNC_STORE_URL", "PREFECT_API_URL", "OKRSYNC_ROLE", "OKRSYNC_ACTOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    source = erp(tmp_path / "erp.db")
    pf = write_project(tmp_path)
    run(pf, "2026-10-05T12:00")
    run(pf, "2026-10-11T00:00")
    with source.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE sale SET amount = 150.00, write_date = '2026-10-14 09:00:00' WHERE id = 2"
        )
        conn.exec_driver_sql(
            "INSERT INTO sale VALUES (4, 57.00, '2026-09-30 16:00:00', '2026-10-14 09:05:00')"
        )
    run(pf, "2026-10-15T06:00")
    return pf


def okrsync(pf: Path, *args: str, role: str | None = None) -> str:
    env = {"OKRSYNC_ROLE": role, "OKRSYNC_ACTOR": "ada"} if role else {}
    result = CliRunner().invoke(cli.app, ["-p", str(pf), *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_history_and_restatements_show_the_close(restated: Path) -> None:
    # words, not lines: the console's width is the process's (set once, whichever test came first)
    text = " ".join(okrsync(restated, "status").split())
    kr_line = text.split("└── KR-REV ")[1].split("└──")[0]  # the KR's line, however it wrapped
    assert kr_line.startswith("Q3 revenue: 600 (")
    assert kr_line.strip().endswith("restated after close (+1.2 %)")
    (kr,) = json.loads(okrsync(restated, "status", "--json"))["objectives"][0]["key_results"]
    assert (kr["value"], kr["close"]["state"], kr["close"]["closed"]["value"]) == (
        "600.00",
        "restated",
        "600.00",
    )
    assert kr["close"]["restatement"]["value"] == "607.00" and kr["close"]["restatement"]["percent"] == "1.2"

    hist = json.loads(okrsync(restated, "history", "KR-REV", "--json"))
    assert [v["value"] for v in hist["values"]] == ["600.00", "600.00"]
    assert [(c["period"], c["value"], c["as_of"]) for c in hist["closes"]] == [
        ("2026-Q3", "600.00", "2026-10-11T00:00:00Z")
    ]
    assert [(r["closed_value"], r["value"], r["change"]) for r in hist["restatements"]] == [
        ("600.00", "607.00", "+1.2 %")
    ]
    text = " ".join(okrsync(restated, "history", "KR-REV").split())  # words: see above
    assert "period 2026-Q3 closed at 600.00" in text
    assert "600.00 → 607.00 (+1.2 %, 2 records; pending)" in text

    listed = json.loads(okrsync(restated, "restatements", "--json"))["restatements"]
    assert [r["kr_id"] for r in listed] == ["KR-REV"]
    shown = json.loads(okrsync(restated, "restatements", "show", str(listed[0]["id"]), "--json"))
    assert sorted((c["record_id"], c["kind"]) for c in shown["changes"]) == [("2", "changed"), ("4", "added")]


def test_only_an_admin_acknowledges_and_reopens(restated: Path) -> None:
    rid = json.loads(okrsync(restated, "restatements", "--json"))["restatements"][0]["id"]
    with pytest.raises(NotAllowed, match="role 'leadership' may not acknowledge restatements"):
        okrsync(restated, "restatements", "ack", str(rid), "--reason", "seen it")
    with pytest.raises(NotAllowed, match="may not reopen closed periods"):
        okrsync(restated, "reopen", "KR-REV", "--reason", "again", role="leadership")
    out = okrsync(restated, "restatements", "ack", str(rid), "--reason", "credit note 4711", role="admin")
    assert f"restatement #{rid} of KR-REV acknowledged as ada" in " ".join(out.split())
    assert "No restatements waiting for an admin." in " ".join(okrsync(restated, "restatements").split())
    out = okrsync(restated, "reopen", "KR-REV", "--reason", "finance reopened Q3", role="admin")
    assert "reopened period 2026-Q3 of KR-REV (final value 600.00) as ada" in " ".join(out.split())
    events = json.loads(okrsync(restated, "audit", "--json", "--verify"))
    assert [(e["actor"], e["action"], e["reason"]) for e in events["events"]] == [
        ("ada", "period.reopen", "finance reopened Q3"),
        ("ada", "restatement.ack", "credit note 4711"),
    ]
    assert events["chain"]["ok"] is True
    run(restated, None)  # the next run recomputes and closes it again
    (kr,) = json.loads(okrsync(restated, "status", "--json"))["objectives"][0]["key_results"]
    assert (kr["value"], kr["close"]["state"]) == ("607.00", "final")
