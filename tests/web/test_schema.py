"""schemathesis against the app's own OpenAPI spec, over HTTP on loopback: generated requests (valid
and invalid) for every operation, as an admin with an API token and as a viewer, find no server error,
no undeclared status code, and no answer that breaks its declared schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.web.conftest import Site


@pytest.fixture(scope="module")
def schema_site(web_template: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from tests.web.conftest import serving

    with serving(web_template, tmp_path_factory.mktemp("schema") / "demo") as site:
        yield site


def _token(site: Site, role: str) -> str:
    name, pw = site.users[role]
    with httpx.Client(base_url=site.url) as c:
        r = c.post("/api/session", json={"username": name, "password": pw})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return str(c.post("/api/tokens", json={"label": "schemathesis"}).json()["token"])


@pytest.fixture(scope="module")
def tokens(schema_site: Site) -> dict[str, str]:
    return {role: _token(schema_site, role) for role in ("admin", "viewer")}


@pytest.fixture(scope="module")
def api_schema(schema_site: Site) -> schemathesis.schemas.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{schema_site.url}/api/openapi.json")
    # a re-run starts a real Prefect flow run: tests/web/test_api.py covers it once, on its own copy
    return loaded.exclude(path_regex=r"/rerun$")


def _fuzz(api_schema: schemathesis.schemas.BaseSchema, token: str, examples: int) -> list[str]:
    """Every operation, ``examples`` generated requests each; returns the operations tried."""
    tried = []
    for result in api_schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/session" and op.method.upper() == "DELETE":
            continue  # ends nothing with a bearer token; test_api covers signing out

        @given(case=op.as_strategy())
        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: schemathesis.Case) -> None:
            # Business rules beyond the spec (a role the project defines, a user that exists) answer
            # 400/404/409 to schema-valid requests: that check is off, every other default check is on.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, excluded_checks=[positive_data_acceptance]
            )

        run()
        tried.append(f"{op.method.upper()} {op.path}")
    return tried


def test_generated_requests_as_an_admin_find_no_server_error(
    api_schema: object, tokens: dict[str, str]
) -> None:
    tried = _fuzz(api_schema, tokens["admin"], 25)  # type: ignore[arg-type]
    assert len(tried) >= 18 and "GET /api/krs/{kr_id}/values/{value_id}/records" in tried


def test_generated_requests_as_a_viewer_find_no_server_error(
    api_schema: object, tokens: dict[str, str]
) -> None:
    assert _fuzz(api_schema, tokens["viewer"], 10)  # type: ignore[arg-type]
