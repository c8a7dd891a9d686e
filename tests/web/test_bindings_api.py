"""The binding API: an editor previews (value, masked top records, back-filled history) and binds a
key result; a viewer cannot; the tree shows it and the audit log holds it (issue 16)."""

from __future__ import annotations

from decimal import Decimal

from okr_store import audit
from okr_store import users as stored
from okr_store.store import Store
from okrsync import users
from okrsync.pii import MASK
from okrsync.project import load_project
from tests.web.conftest import Site
from tests.web.test_api import client

BODY = {
    "kr_id": "KR-EMEA-OPS",
    "objective_id": "O-GROWTH-EMEA",
    "title": "EMEA revenue (ops)",
    "metric": "revenue",
    "dimensions": {"region": "EMEA"},
    "target": "1400000",
    "period": "2026-Q4",
}


def _editor(site: Site) -> None:
    store = Store(load_project(site.project_file).store_url())
    with store.engine.begin() as conn:
        stored.add_user(conn, "eddie", "editor", users.hash_password("eddie-secret-pw-1"), users.utcnow())
    store.close()
    site.users["editor"] = ("eddie", "eddie-secret-pw-1")


def test_an_editor_previews_and_binds_a_viewer_cannot(web_server_rw: Site) -> None:
    site = web_server_rw
    site.users = dict(site.users)
    _editor(site)
    with client(site, "viewer") as c:
        for method, path, body in (
            ("POST", "/api/bindings/preview", BODY),
            ("POST", "/api/bindings", BODY),
            ("GET", "/api/bindings/library", None),
        ):
            r = c.request(method, path, json=body)
            assert r.status_code == 403 and "may not bind" in r.json()["detail"], (path, r.text)
        assert c.get("/api/bindings").json() == {"bindings": []}
    with client(site, "editor") as c:
        lib = c.get("/api/bindings/library").json()
        revenue = next(m for m in lib["metrics"] if m["name"] == "revenue")
        assert "EMEA" in revenue["dimensions"]["region"] and "O-GROWTH-EMEA" in lib["objectives"]
        assert not any("salesperson" in m["dimensions"] for m in lib["metrics"])  # sensitive: never offered

        shown = c.post("/api/bindings/preview", json=BODY)
        assert shown.status_code == 200, shown.text
        p = shown.json()
        file_kr = c.get("/api/krs/KR-REV-EMEA").json()  # the project file's KR with the same definition
        assert (
            Decimal(p["value"]) > 0
            and p["records"] > 0
            and p["status"] in ("on_track", "at_risk", "off_track")
        )
        assert p["top_records"] and all(r["fields"]["salesperson"] == MASK for r in p["top_records"])
        contributions = [Decimal(r["contribution"]) for r in p["top_records"]]
        assert contributions == sorted(contributions, reverse=True)
        ran = {h["as_of"]: h["value"] for h in file_kr["history"]}
        assert p["history"] and {h["as_of"]: h["value"] for h in p["history"]}.items() <= ran.items()
        assert all(h["pace_value"] is not None for h in p["history"])

        clash = c.post("/api/bindings", json={**BODY, "kr_id": "KR-REV-EMEA"})
        assert clash.status_code == 400 and "is defined in okrsync.yaml" in clash.json()["detail"]
        made = c.post("/api/bindings", json=BODY)
        assert made.status_code == 201, made.text
        assert made.json()["version"] == 1 and made.json()["status"] == "active"
    with client(site, "viewer") as c:
        tree = c.get("/api/tree").json()
        flat = [k["id"] for o in _walk(tree["objectives"]) for k in o["key_results"]]
        assert "KR-EMEA-OPS" in flat
    store = Store(load_project(site.project_file).store_url())
    with store.engine.connect() as conn:
        (event,) = audit.audit_log(conn, kr_id="KR-EMEA-OPS")
        assert (event.actor, event.action) == ("eddie", "kr.bind") and "region" in event.reason
        assert audit.verify_audit_chain(conn) is None
    store.close()


def _walk(objectives: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for o in objectives:
        out.append(o)
        out += _walk(o["objectives"])  # type: ignore[arg-type]
    return out
