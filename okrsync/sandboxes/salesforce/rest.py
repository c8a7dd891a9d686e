"""The request router: auth, API budget, faults, and the REST / Bulk 2.0 / login resources."""

from __future__ import annotations

import html
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

from .auth import Credentials, JwtKeyPair, Sessions, oauth_token_response, soap_login_response
from .bulk import BulkJobs
from .errors import ApiError, not_found
from .faults import Faults
from .model import Org
from .render import json_value, render_json
from .soql_eval import QueryResult, execute

VERSIONS = [f"{v}.0" for v in range(31, 63)]
DEFAULT_BATCH = 2000
_SEASONS = ("Winter", "Spring", "Summer")
_DATA = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")
_LOCATOR = re.compile(r"^(?P<cursor>01g[0-9A-Za-z]{15})-(?P<offset>\d+)$")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    abort_after: int | None = None  # send only this many body bytes, then drop the connection


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, indent=None).encode()
    return Response(status, body, {"Content-Type": "application/json;charset=UTF-8", **(headers or {})})


def version_label(version: str) -> str:
    idx = int(float(version)) - 59
    return f"{_SEASONS[idx % 3]} '{24 + idx // 3:02d}"


@dataclass
class ApiUsage:
    max: int = 15_000
    used: int = 0


@dataclass
class Cursor:
    result: QueryResult
    batch: int
    version: str


class SandboxApp:
    def __init__(self, org: Org, faults: Faults, jwt_private_key_pem: str | bytes | None = None) -> None:
        self.org = org
        self.faults = faults
        self.lock = threading.RLock()
        self.sessions = Sessions(org.org_id)
        self.credentials = Credentials("integration@okrsync.test", "sandbox-password", "SANDBOXTOKEN")
        self.jwt_keys = JwtKeyPair(jwt_private_key_pem)
        self.api = ApiUsage()
        self.cursors: dict[str, Cursor] = {}
        self.user_id = "0055g00000INTEGAAA"
        self.bulk = BulkJobs(org, faults, self.user_id)
        self.base_url = ""
        self.default_batch_size = DEFAULT_BATCH

    # ------------------------------------------------------------------------------------------ entry
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Response:
        with self.lock:
            rule = self.faults.next_request()
            if rule is not None:
                return json_response(rule.status, [{"message": rule.message, "errorCode": rule.error_code}])
            try:
                return self._route(method, path, query, headers, body)
            except ApiError as exc:
                return json_response(exc.status, exc.body(), self._limit_header(path))

    def _record_page(self, obj: str, record_id: str) -> Response:
        """The record's page in "Lightning" (a plain HTML table: where okrsync's drill links lead)."""
        rec = self.org.get(obj, record_id)
        name = html.escape(str(rec.get("Name") or rec["Id"]))
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape('' if v is None else str(v))}</td></tr>"
            for k, v in rec.items()
        )
        deleted = " (in the recycle bin)" if rec.get("IsDeleted") else ""
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{name} | Salesforce sandbox</title>"
            f"</head><body><h1>{html.escape(self.org.object_def(obj).name)}: {name}{deleted}</h1>"
            f"<table>{rows}</table></body></html>"
        )
        return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _limit_header(self, path: str) -> dict[str, str]:
        if _DATA.match(path):
            return {"Sforce-Limit-Info": f"api-usage={self.api.used}/{self.api.max}"}
        return {}

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Response:
        path = path.rstrip("/") or "/"
        if path == "/services/data" and method == "GET":
            return json_response(
                200,
                [{"label": version_label(v), "url": f"/services/data/v{v}", "version": v} for v in VERSIONS],
            )
        if m := re.match(r"^/services/Soap/u/(\d+\.\d)$", path):
            if method != "POST":
                raise not_found()
            status, xml = soap_login_response(
                body,
                self.credentials,
                self.sessions,
                self.base_url,
                m.group(1),
                self.org.org_id,
                self.user_id,
                rejection=self.faults.token_rejection,
            )
            return Response(status, xml, {"Content-Type": "text/xml; charset=utf-8"})
        if path == "/services/oauth2/token" and method == "POST":
            status, payload = oauth_token_response(
                body,
                headers,
                self.credentials,
                self.sessions,
                self.base_url,
                self.org.org_id,
                self.user_id,
                jwt_keys=self.jwt_keys,
                rejection=self.faults.token_rejection,
            )
            return json_response(status, payload)
        if (m := re.match(r"^/lightning/r/(\w+)/(\w+)/view$", path)) and method == "GET":
            return self._record_page(m.group(1), m.group(2))
        m = _DATA.match(path)
        if not m:
            raise not_found()
        version = m.group("version")
        if version not in VERSIONS:
            raise not_found()
        self._authenticate(headers)
        if self.api.used >= self.api.max:
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.api.used += 1
        resp = self._resource(
            method, version, (m.group("rest") or "").strip("/").split("/"), query, headers, body
        )
        resp.headers.update(self._limit_header(path))
        return resp

    def _authenticate(self, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not self.sessions.is_valid(token.strip()):
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        left = self.faults.session_expires_after
        if left is not None:
            if left <= 0:
                self.sessions.expire_all()
                self.faults.session_expires_after = None
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self.faults.session_expires_after = left - 1

    # -------------------------------------------------------------------------------------- resources
    def _resource(
        self,
        method: str,
        version: str,
        parts: list[str],
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        head = parts[0] if parts else ""
        base = f"/services/data/v{version}"
        if head == "" and method == "GET":
            return json_response(
                200, {k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "limits", "jobs/query")}
            )
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) == 1:
                return self._query(version, query, headers, include_deleted=head == "queryAll")
            return self._query_more(version, parts[1])
        if head == "limits" and method == "GET":
            return json_response(200, self._limits())
        if head == "sobjects":
            return self._sobjects(method, version, parts[1:], query, body)
        if head == "jobs" and len(parts) >= 2 and parts[1] == "query":
            return self._jobs(method, version, parts[2:], query, body)
        raise not_found()

    def _batch_size(self, headers: dict[str, str]) -> int:
        opts = headers.get("sforce-query-options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", opts)
        if not m:
            return self.default_batch_size
        return max(200, min(2000, int(m.group(1))))

    def _query(
        self, version: str, query: dict[str, list[str]], headers: dict[str, str], include_deleted: bool
    ) -> Response:
        soql = (query.get("q") or [""])[0]
        if not soql:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        self._page_fault(1)
        result = execute(self.org, soql, include_deleted=include_deleted)
        cursor = Cursor(result, self._batch_size(headers), version)
        return self._page(cursor, None, 0)

    def _page(self, cursor: Cursor, cursor_id: str | None, offset: int) -> Response:
        result = cursor.result
        if result.query.count_only:
            return json_response(200, {"totalSize": result.total_size, "done": True, "records": []})
        rows = result.rows[offset : offset + cursor.batch]
        payload: dict[str, Any] = {
            "totalSize": result.total_size,
            "done": offset + cursor.batch >= len(result.rows),
        }
        if not payload["done"]:
            if cursor_id is None:
                cursor_id = self.org.ids.new("01g")
                self.cursors[cursor_id] = cursor
            payload["nextRecordsUrl"] = (
                f"/services/data/v{cursor.version}/query/{cursor_id}-{offset + cursor.batch}"
            )
        payload["records"] = render_json(result, rows, cursor.version)
        return json_response(200, payload)

    def _query_more(self, version: str, locator: str) -> Response:
        m = _LOCATOR.match(locator)
        cursor = self.cursors.get(m.group("cursor")) if m else None
        if m is None or cursor is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        offset = int(m.group("offset"))
        page = offset // cursor.batch + 1
        if self.faults.locator_expires_on_page == page:
            self.cursors.pop(m.group("cursor"), None)
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self._page_fault(page)
        return self._page(cursor, m.group("cursor"), offset)

    def _page_fault(self, page: int) -> None:
        rule = self.faults.for_page(page)
        if rule is not None:
            raise ApiError(rule.status, rule.error_code, rule.message)

    def expire_query_locators(self) -> None:
        self.cursors.clear()

    def _limits(self) -> dict[str, Any]:
        jobs = len(self.bulk.jobs)
        return {
            "DailyApiRequests": {"Max": self.api.max, "Remaining": max(0, self.api.max - self.api.used)},
            "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000 - jobs},
            "DailyBulkV2QueryFileStorageMB": {"Max": 1_000_000, "Remaining": 1_000_000},
            "DailyAsyncApexExecutions": {"Max": 250_000, "Remaining": 250_000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        }

    # ---------------------------------------------------------------------------------------- sobjects
    def _sobjects(
        self, method: str, version: str, parts: list[str], query: dict[str, list[str]], body: bytes
    ) -> Response:
        if not parts or parts == [""]:
            return json_response(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [o.describe_global_entry(version) for o in self.org.schema.values()],
                },
            )
        odef = self.org.object_def(parts[0])
        rest = parts[1:]
        if not rest:
            if method == "GET":
                return json_response(
                    200, {"objectDescribe": odef.describe_global_entry(version), "recentItems": []}
                )
            if method == "POST":
                values = self._writable(odef.name, json.loads(body or b"{}"), "createable")
                self._tick()
                new_id = self.org.insert(odef.name, values)
                return json_response(201, {"id": new_id, "success": True, "errors": []})
            raise ApiError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,POST"
            )
        if rest == ["describe"] and method == "GET":
            return json_response(200, odef.describe(version))
        if rest[0] in ("updated", "deleted") and method == "GET":
            return self._changes(odef.name, rest[0], query)
        record_id = rest[0]
        if method == "GET":
            rec = self.org.get(odef.name, record_id)
            if rec.get("IsDeleted"):
                raise not_found()
            wanted = (query.get("fields") or [""])[0]
            names = [f.name for f in odef.fields]
            if wanted:
                names = [
                    odef.by_lower[w.strip().lower()].name
                    for w in wanted.split(",")
                    if w.strip().lower() in odef.by_lower
                ]
            doc = {
                "attributes": {
                    "type": odef.name,
                    "url": f"/services/data/v{version}/sobjects/{odef.name}/{rec['Id']}",
                }
            }
            doc.update({n: json_value(rec.get(n)) for n in names})
            return json_response(200, doc)
        if method == "PATCH":
            values = self._writable(odef.name, json.loads(body or b"{}"), "updateable")
            self._tick()
            self.org.update(odef.name, record_id, values)
            return Response(204)
        if method == "DELETE":
            self._tick()
            self.org.delete(odef.name, record_id)
            return Response(204)
        raise not_found()

    def _tick(self) -> None:
        """Writes through the API happen one after another in real time: each gets a SystemModstamp 1 ms
        later than anything before it (the org's clock is otherwise frozen)."""
        self.org.clock.advance(milliseconds=1)

    def _writable(self, obj: str, payload: dict[str, Any], flag: str) -> dict[str, Any]:
        odef = self.org.object_def(obj)
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if key == "attributes":
                continue
            fdef = odef.by_lower.get(key.lower())
            if fdef is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {odef.name}")
            if not getattr(fdef, flag):
                verb = "create" if flag == "createable" else "update"
                raise ApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to {verb} fields: {fdef.name}. "
                    "Please check the security settings of this field and verify that it is read/write "
                    "for your profile or permission set.",
                    [fdef.name],
                )
            if value is not None and fdef.type == "date":
                value = date.fromisoformat(value)
            elif value is not None and fdef.type == "datetime":
                value = _parse_datetime(value)
            elif value is not None and fdef.type in ("currency", "double", "percent"):
                value = float(value)
            out[fdef.name] = value
        return out

    def _changes(self, obj: str, kind: str, query: dict[str, list[str]]) -> Response:
        try:
            start = _parse_datetime(query["start"][0])
            end = _parse_datetime(query["end"][0])
        except (KeyError, ValueError):
            raise ApiError(400, "INVALID_REPLICATION_DATE", "start and end must be dateTimes") from None
        rows = self.org.records(obj, include_deleted=True)
        if kind == "updated":
            ids = [r["Id"] for r in rows if not r.get("IsDeleted") and start <= r["SystemModstamp"] <= end]
            return json_response(200, {"ids": ids, "latestDateCovered": json_value(end)})
        deleted = [
            {"id": r["Id"], "deletedDate": json_value(r["SystemModstamp"])}
            for r in rows
            if r.get("IsDeleted") and start <= r["SystemModstamp"] <= end
        ]
        return json_response(
            200,
            {
                "deletedRecords": deleted,
                "earliestDateAvailable": json_value(start),
                "latestDateCovered": json_value(end),
            },
        )

    # -------------------------------------------------------------------------------------------- bulk
    def _jobs(
        self, method: str, version: str, parts: list[str], query: dict[str, list[str]], body: bytes
    ) -> Response:
        if not parts or parts == [""]:
            if method == "POST":
                return json_response(200, self.bulk.create(json.loads(body or b"{}"), version))
            if method == "GET":
                return json_response(200, self.bulk.list())
            raise not_found()
        job_id = parts[0]
        if len(parts) == 1:
            if method == "GET":
                return json_response(200, self.bulk.get(job_id))
            if method == "PATCH":
                return json_response(200, self.bulk.abort(job_id, json.loads(body or b"{}").get("state")))
            if method == "DELETE":
                self.bulk.delete(job_id)
                return Response(204)
        if parts[1:] == ["results"] and method == "GET":
            page = self.bulk.results(job_id, _first(query, "locator"), _first(query, "maxRecords"))
            resp = Response(
                200,
                page.body,
                {
                    "Content-Type": "text/csv",
                    "Sforce-Locator": page.locator,
                    "Sforce-NumberOfRecords": str(page.count),
                },
            )
            if page.damage == "abort":
                resp.abort_after = len(page.body) // 2
            elif page.damage == "truncate":
                resp.body = page.body[: len(page.body) // 2]
            return resp
        raise not_found()


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value.astimezone(UTC)


def parse_query_string(qs: str) -> dict[str, list[str]]:
    return parse_qs(qs, keep_blank_values=True)


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None
