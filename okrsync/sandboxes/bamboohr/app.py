"""BambooHR's API as the sandbox speaks it: routes, auth, content negotiation and error answers.

Under ``/api/gateway.php/{company_domain}/v1/``:

* ``POST reports/custom?format=JSON&onlyCurrent=…`` with a JSON body ``{"title", "fields": [...],
  "filters": {"lastChanged": {"includeNull", "value"}, "employeeIds": [...]}}`` answers
  ``{"title", "fields": [{"id", "type", "name"}], "employees": [{"id": "12", field: value, ...}]}``. As in
  BambooHR, the body must be sent with ``Content-Type: application/json`` exactly (anything else is read
  as XML: 400 "Malformed XML"), field ids that are unknown or hidden from the key's user are silently
  left out, and every employee is included, active or not. Reports are not paged.
* ``GET employees/changed?since=ISO8601[&type=inserted|updated|deleted]`` answers
  ``{"latest": ..., "employees": {"12": {"id": "12", "action": "Updated", "lastChanged": ...}}}``.
* ``GET meta/fields`` lists the fields; ``GET employees/{id}?fields=a,b`` one employee.
* Applicant tracking (JSON only): ``GET applicant_tracking/applications?page=N[&applicationStatus=ALL|
  ALL_ACTIVE|NEW|ACTIVE|INACTIVE|HIRED][&jobStatusGroups=ALL|DRAFT_AND_OPEN|Open|Filled|…][&jobId=…]``
  answers ``{"paginationComplete", "nextPageUrl", "applications": [...]}``, ``applications_page_size`` per
  page (pages count from 1; without the filters every application of every job);
  ``GET applicant_tracking/applications/{id}`` the details (``status.dateChanged``);
  ``GET applicant_tracking/jobs[?statusGroups=…]`` the job summaries (not paged).

Without ``Accept: application/json`` the GET endpoints answer XML, as BambooHR does. Errors carry BambooHR's
``X-BambooHR-Error-Message`` header; 401 also ``WWW-Authenticate``. Nothing is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from .ats import ACTIVE, INACTIVE, Application, Ats
from .faults import Faults
from .model import FIELDS, Org

PREFIX = re.compile(r"^/api/gateway\.php/(?P<domain>[^/]+)/v1/(?P<rest>.*)$")
JSON = "application/json; charset=utf-8"
MAX_FIELDS = 400


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def parse_query_string(text: str) -> dict[str, list[str]]:
    return parse_qs(text, keep_blank_values=True)


def _error(status: int, message: str, extra: dict[str, str] | None = None) -> Response:
    headers = {"Content-Type": "text/html; charset=utf-8", "X-BambooHR-Error-Message": message}
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
    body = f"<html><body><h1>{status} {reason.get(status, 'Error')}</h1></body></html>".encode()
    return Response(status, body, headers | (extra or {}))


def _json(data: Any) -> Response:
    return Response(200, json.dumps(data, ensure_ascii=False).encode(), {"Content-Type": JSON})


def _parse_since(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class BambooHrApp:
    """Answers requests for one company (``company_domain``) and one API key."""

    def __init__(self, org: Org, faults: Faults, company_domain: str, api_key: str, ats: Ats | None = None
                 ) -> None:
        self.org, self.faults = org, faults
        self.ats = ats if ats is not None else Ats.generate(org)
        self.applications_page_size = 25
        self.company_domain, self.api_key = company_domain, api_key
        self.hidden_fields: set[str] = set()  # fields the key's user may not see (left out of reports)
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> Response:
        m = PREFIX.match(path)
        if m is None:
            return _error(404, "Not found")
        if m.group("domain") != self.company_domain:
            return _error(404, "Company not found")
        fault = self.faults.next(path)
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            if fault.status == 401:
                extra["WWW-Authenticate"] = 'Basic realm="BambooHR API"'
            return _error(fault.status, fault.message, extra)
        if not self._authorized(headers.get("authorization", "")):
            return _error(401, "Invalid API key", {"WWW-Authenticate": 'Basic realm="BambooHR API"'})
        rest = m.group("rest").rstrip("/")
        if rest == "reports/custom":
            return self._custom_report(method, query, headers, body) if method == "POST" \
                else _error(405, "Method not allowed")
        if method != "GET":
            return _error(405, "Method not allowed")
        wants_json = "application/json" in headers.get("accept", "")
        if rest == "employees/changed":
            return self._changed(query, wants_json)
        if rest == "meta/fields":
            data = [{"id": i, "name": name, "type": kind, "alias": alias}
                    for i, (alias, (kind, name)) in enumerate(FIELDS.items(), start=4000)]
            return _json(data) if wants_json else _xml("fields", len(data))
        if (e := re.match(r"^employees/(\d+)$", rest)) is not None:
            return self._employee(int(e.group(1)), query, wants_json)
        if rest.startswith("applicant_tracking/"):
            return self._ats(rest.removeprefix("applicant_tracking/"), query)
        return _error(404, "Not found")

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _ = base64.b64decode(header[6:], validate=True).decode("latin-1").partition(":")
        except (binascii.Error, ValueError):
            return False
        return user == self.api_key

    def _custom_report(self, method: str, query: dict[str, list[str]], headers: dict[str, str],
                       body: bytes) -> Response:
        fmt = (query.get("format") or [""])[0].lower()
        accept = headers.get("accept", "")
        if not fmt:
            if accept != "application/json":
                return _error(404, "Unsupported Accept header")
            fmt = "json"
        if fmt != "json":
            return _error(400, "The sandbox serves format=JSON only")
        if headers.get("content-type", "") != "application/json":
            return _error(400, "Malformed XML")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "Malformed JSON")
        if not isinstance(request, dict) or not isinstance(request.get("fields", []), list):
            return _error(400, "fields must be a list")
        wanted = [str(f) for f in request.get("fields", [])]
        if len(wanted) > MAX_FIELDS:
            return _error(400, f"At most {MAX_FIELDS} fields")
        only_current = (query.get("onlyCurrent") or ["true"])[0].lower() != "false"
        filters = request.get("filters") or {}
        ids: set[int] | None = None
        since: datetime | None = None
        if "employeeIds" in filters:
            try:
                ids = {int(i) for i in filters["employeeIds"]}
            except (TypeError, ValueError):
                return _error(400, "employeeIds must be integers")
        if "lastChanged" in filters:
            since = _parse_since(str((filters["lastChanged"] or {}).get("value", "")))
            if since is None:
                return _error(400, "Invalid lastChanged filter")
        visible = [f for f in dict.fromkeys(wanted) if f in FIELDS and f not in self.hidden_fields]
        employees = []
        with self.org.lock:
            for emp in self.org.live():
                if ids is not None and emp.id not in ids:
                    continue
                if since is not None and emp.lastChanged < since:
                    continue
                row: dict[str, Any] = {"id": str(emp.id)}
                for f in visible:
                    row[f] = self.org.report_value(emp, f, only_current)
                employees.append(row)
        return _json({
            "title": str(request.get("title") or "Report"),
            "fields": [{"id": f, "type": FIELDS[f][0], "name": FIELDS[f][1]} for f in visible],
            "employees": employees,
        })

    def _changed(self, query: dict[str, list[str]], wants_json: bool) -> Response:
        raw = (query.get("since") or [""])[0]
        since = _parse_since(raw) if raw else None
        if since is None:
            return _error(400, "Invalid or missing since parameter")
        kind = (query.get("type") or [""])[0].lower()
        if kind and kind not in ("inserted", "updated", "deleted"):
            return _error(400, "type must be inserted, updated or deleted")
        changes = [c for c in self.org.changes_since(since) if not kind or c[1].lower() == kind]
        latest = max((at for _, _, at in changes), default=self.org.now)
        data = {
            "latest": latest.isoformat(),
            "employees": {str(i): {"id": str(i), "action": action, "lastChanged": at.isoformat()}
                          for i, action, at in changes},
        }
        return _json(data) if wants_json else _xml("employees", len(changes))

    def _employee(self, emp_id: int, query: dict[str, list[str]], wants_json: bool) -> Response:
        with self.org.lock:
            emp = self.org.employees.get(emp_id)
            if emp is None:
                return _error(404, "Employee not found")
            wanted = [f for f in (query.get("fields") or [""])[0].split(",") if f]
            row: dict[str, Any] = {"id": str(emp.id)}
            for f in wanted:
                if f in FIELDS and f not in self.hidden_fields:
                    row[f] = self.org.report_value(emp, f, True)
        return _json(row) if wants_json else _xml("employee", 1)


    # -- applicant tracking ------------------------------------------------------------------------

    def _ats(self, rest: str, query: dict[str, list[str]]) -> Response:
        with self.org.lock:
            if rest == "applications":
                return self._applications(query)
            if (a := re.match(r"^applications/(\d+)$", rest)) is not None:
                app = self.ats.applications.get(int(a.group(1)))
                if app is None:
                    return _error(404, "Application not found")
                return _json(self.ats.details(app))
            if rest == "jobs":
                groups = _groups(query, "statusGroups")
                return _json([self.ats.summary(j) for j in self.ats.jobs.values()
                              if _job_in(j.status, groups)])
        return _error(404, "Not found")

    def _applications(self, query: dict[str, list[str]]) -> Response:
        try:
            page = int((query.get("page") or ["1"])[0])
            job_id = int(query["jobId"][0]) if query.get("jobId") else None
        except ValueError:
            return _error(400, "page and jobId must be integers")
        if page < 1:
            return _error(400, "page must be 1 or more")
        wanted = _groups(query, "applicationStatus")
        unknown = wanted - {"ALL", "ALL_ACTIVE", "NEW", "ACTIVE", "INACTIVE", "HIRED"}
        if unknown:
            return _error(400, f"Unknown applicationStatus {sorted(unknown)[0]}")
        jobs = _groups(query, "jobStatusGroups")
        picked = [a for _, a in sorted(self.ats.applications.items())
                  if (job_id is None or a.jobId == job_id) and _app_in(a, wanted)
                  and _job_in(self.ats.jobs[a.jobId].status, jobs)]
        size = self.applications_page_size
        chunk = picked[(page - 1) * size:page * size]
        complete = page * size >= len(picked)
        base = f"/api/gateway.php/{self.company_domain}/v1/applicant_tracking/applications"
        nxt = None if complete else f"{base}?page={page + 1}"
        return _json({"paginationComplete": complete, "nextPageUrl": nxt,
                      "applications": [self.ats.listed(a) for a in chunk]})


def _groups(query: dict[str, list[str]], key: str) -> set[str]:
    return {g.strip() for v in query.get(key, []) for g in v.split(",") if g.strip()}


def _app_in(app: Application, groups: set[str]) -> bool:
    if not groups or "ALL" in groups:
        return True
    status_groups = {"ALL_ACTIVE"} if app.status in ACTIVE else set()
    status_groups |= {"NEW"} if app.status == "New" else set()
    status_groups |= {"ACTIVE"} if app.status in ACTIVE and app.status != "New" else set()
    status_groups |= {"INACTIVE"} if app.status in INACTIVE else set()
    status_groups |= {"HIRED"} if app.status == "Hired" else set()
    return bool(groups & status_groups)


def _job_in(status: str, groups: set[str]) -> bool:
    if not groups or "ALL" in groups:
        return True
    return status in groups or ("DRAFT_AND_OPEN" in groups and status in ("Draft", "Open"))


def _xml(root: str, count: int) -> Response:
    body = f'<?xml version="1.0"?>\n<{root} count="{count}"/>\n'.encode()
    return Response(200, body, {"Content-Type": "text/xml; charset=utf-8"})
