"""BambooHR's applicant tracking (ATS) as streams: ``report: applications`` and ``report: jobs``.

How a sync reads (docs/hr.md has the user's view):

* ``applications``: ``GET applicant_tracking/applications?applicationStatus=ALL&jobStatusGroups=ALL&page=N``,
  page after page until the answer says ``paginationComplete``. The list carries each application's
  ``appliedDate``, ``status`` ``{id, label}``, ``applicant`` and ``job`` ``{id, title: {label}}``, but not
  when the status was set: for the applications whose status is hired (``hired_statuses``, BambooHR's
  default label is "Hired") ``GET applicant_tracking/applications/{id}`` gives it (``status.dateChanged``),
  which becomes ``hiredDate``. ``jobOpenedDate`` and ``department`` come from one ``GET
  applicant_tracking/jobs?statusGroups=ALL``. Each call is made only when a kept column needs it.
* ``jobs``: that one jobs call.

Neither list has a change cursor, so ATS streams take no ``cursor``: every sync reads the whole list (the
store keeps a new version only of what changed), and what is no longer listed is deleted by comparing keys.
Timestamps (``appliedDate``, ``dateChanged``, ``postedDate``) become dates in the stream's timezone (the
company's), the day HR would write down. Candidates' names and e-mail addresses are personal data: list
them under ``sensitive:``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connectors.base import StreamSpec, stream_zone
from connectors.hr.bamboohr_client import BambooHrClient
from connectors.kit.values import Unconvertible, id_frame, naive_utc, typed_frame
from okrsync.errors import ConfigError, SourceError, did_you_mean
from okrsync.schema import Field, FieldType, StreamSchema

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd

_T = FieldType
APPLICATION_FIELDS = (
    Field("id", _T.INTEGER), Field("appliedDate", _T.DATE), Field("status", _T.STRING),
    Field("hiredDate", _T.DATE), Field("jobId", _T.INTEGER), Field("jobTitle", _T.STRING),
    Field("jobOpenedDate", _T.DATE), Field("department", _T.STRING), Field("applicantId", _T.INTEGER),
    Field("firstName", _T.STRING), Field("lastName", _T.STRING), Field("email", _T.STRING),
    Field("source", _T.STRING), Field("rating", _T.INTEGER),
)
JOB_FIELDS = (
    Field("id", _T.INTEGER), Field("title", _T.STRING), Field("status", _T.STRING),
    Field("department", _T.STRING), Field("location", _T.STRING), Field("postedDate", _T.DATE),
    Field("totalApplicantsCount", _T.INTEGER),
)
REPORTS = {"applications": APPLICATION_FIELDS, "jobs": JOB_FIELDS}
MAX_PAGES = 100_000


class _BadValue(ValueError):
    pass


class BambooHrAts:
    """The ATS reports of a ``system: bamboohr`` source, over the source's client."""

    def __init__(self, name: str, client: BambooHrClient, hired_statuses: Sequence[str]) -> None:
        self.name, self.client = name, client
        self.hired = {s.casefold() for s in hired_statuses}

    def schema(self, stream: StreamSpec, report: str) -> StreamSchema:
        self._check(stream, report)
        return StreamSchema(REPORTS[report])

    def read(self, stream: StreamSpec, report: str) -> Iterator[pd.DataFrame]:
        kept = stream.kept_fields(self.schema(stream, report))
        zone = stream_zone(self.name, stream)
        if report == "jobs":
            rows = [self._job_row(stream, j, zone) for j in self._jobs(stream)]
        else:
            jobs = {}
            if {"jobOpenedDate", "department"} & set(kept):
                jobs = {self._id(stream, j, "job"): j for j in self._jobs(stream)}
            rows = [self._application_row(stream, a, jobs, zone, "hiredDate" in kept)
                    for a in self._applications(stream)]
        by_id = {row["id"]: row for row in rows}
        ordered = [by_id[k] for k in sorted(by_id)]
        fields = [f for f in REPORTS[report] if f.name in kept]
        for start in range(0, len(ordered), stream.batch_size):
            batch = ordered[start:start + stream.batch_size]
            yield typed_frame(fields, [[row[f.name] for row in batch] for f in fields])

    def keys(self, stream: StreamSpec, report: str) -> Iterator[pd.DataFrame]:
        self._check(stream, report)
        listed = self._jobs(stream) if report == "jobs" else self._applications(stream)
        ids = sorted({self._id(stream, r, report[:-1]) for r in listed})
        yield id_frame(ids)

    # -- calls -------------------------------------------------------------------------------------

    def _applications(self, stream: StreamSpec) -> list[dict[str, Any]]:
        what = f"stream {stream.name!r}: applications"
        out: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"applicationStatus": "ALL", "jobStatusGroups": "ALL", "page": str(page)}
            data = self.client.get("applicant_tracking/applications", f"{what} (page {page})", params=params)
            listed = data.get("applications") if isinstance(data, dict) else None
            if not isinstance(listed, list) or not all(isinstance(a, dict) for a in listed):
                raise SourceError(f"source {self.name!r}: {what}: page {page} has no list of applications",
                                  hint="check base_url, and that the API key's user has access to hiring")
            out += listed
            if data.get("paginationComplete") is not False:
                return out
            if not listed:  # "more to come" with nothing on this page would never end
                raise SourceError(f"source {self.name!r}: {what}: page {page} is empty but not the last",
                                  transient=True, hint="the next run tries again")
        raise SourceError(f"source {self.name!r}: {what}: more than {MAX_PAGES} pages",
                          hint="report it: the listing does not end")

    def _jobs(self, stream: StreamSpec) -> list[dict[str, Any]]:
        what = f"stream {stream.name!r}: job openings"
        data = self.client.get("applicant_tracking/jobs", what, params={"statusGroups": "ALL"})
        if not isinstance(data, list) or not all(isinstance(j, dict) for j in data):
            raise SourceError(f"source {self.name!r}: {what}: the answer is not a list of jobs",
                              hint="check base_url, and that the API key's user has access to hiring")
        return data

    def _hired_on(self, stream: StreamSpec, app_id: int) -> Any:
        what = f"stream {stream.name!r}: application {app_id}"
        data = self.client.get(f"applicant_tracking/applications/{app_id}", what)
        status = data.get("status") if isinstance(data, dict) else None
        return status.get("dateChanged") if isinstance(status, dict) else None

    # -- values ------------------------------------------------------------------------------------

    def _application_row(self, stream: StreamSpec, a: dict[str, Any], jobs: dict[int, dict[str, Any]],
                         zone: ZoneInfo, with_hired: bool) -> dict[str, Any]:
        app_id = self._id(stream, a, "application")
        column = "id"
        try:
            status, job, person = _obj(a, "status"), _obj(a, "job"), _obj(a, "applicant")
            label = _label(status)
            job_id = _int(job.get("id"))
            opening = jobs.get(job_id) if job_id is not None else None
            row: dict[str, Any] = {"id": app_id}
            for column, value in (
                ("appliedDate", lambda: _day(a.get("appliedDate"), zone)),
                ("status", lambda: label),
                ("hiredDate", lambda: _day(self._hired_on(stream, app_id), zone)
                 if with_hired and label is not None and label.casefold() in self.hired else None),
                ("jobId", lambda: job_id),
                ("jobTitle", lambda: _label(job.get("title"))),
                ("jobOpenedDate", lambda: _day(opening.get("postedDate"), zone) if opening else None),
                ("department", lambda: _label(opening.get("department")) if opening else None),
                ("applicantId", lambda: _int(person.get("id"))),
                ("firstName", lambda: _text(person.get("firstName"))),
                ("lastName", lambda: _text(person.get("lastName"))),
                ("email", lambda: _text(person.get("email"))),
                ("source", lambda: _text(person.get("source"))),
                ("rating", lambda: _int(a.get("rating"))),
            ):
                row[column] = value()
        except _BadValue:
            raise self._bad(stream, f"application {app_id}", column) from None
        return row

    def _job_row(self, stream: StreamSpec, j: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
        job_id = self._id(stream, j, "job")
        column = "id"
        try:
            row: dict[str, Any] = {"id": job_id}
            for column, value in (
                ("title", lambda: _label(j.get("title"))),
                ("status", lambda: _label(j.get("status"))),
                ("department", lambda: _label(j.get("department"))),
                ("location", lambda: _label(j.get("location"))),
                ("postedDate", lambda: _day(j.get("postedDate"), zone)),
                ("totalApplicantsCount", lambda: _int(j.get("totalApplicantsCount"))),
            ):
                row[column] = value()
        except _BadValue:
            raise self._bad(stream, f"job {job_id}", column) from None
        return row

    def _id(self, stream: StreamSpec, record: Any, what: str) -> int:
        try:
            value = _int(record.get("id")) if isinstance(record, dict) else None
        except _BadValue:
            value = None
        if value is None:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: a {what} in the answer has no "
                              "numeric id", hint="check base_url: it must be the BambooHR API")
        return value

    def _bad(self, stream: StreamSpec, record: str, column: str) -> SourceError:
        return SourceError(f"source {self.name!r}, stream {stream.name!r}: {record}: field {column!r} does "
                           "not hold a value of its type",
                           hint="fix it in BambooHR, or leave the field out of the stream's `fields`")

    def _check(self, stream: StreamSpec, report: str) -> None:
        where = f"source {self.name!r}, stream {stream.name!r}"
        names = [f.name for f in REPORTS[report]]
        if stream.primary_key != ("id",):
            raise ConfigError(f"{where}: the primary key of the BambooHR {report} report is id",
                              hint="write `primary_key: id`")
        if stream.cursor:
            raise ConfigError(f"{where}: BambooHR's {report} list has no change cursor",
                              hint="leave `cursor` out: every sync reads the list whole and the store keeps "
                              "only what changed")
        for name in stream.fields or ():
            if name not in names:
                raise ConfigError(f"{where}: the {report} report has no field {name!r}"
                                  f"{did_you_mean(name, names)}",
                                  hint=f"fields: {', '.join(names)}")


def _obj(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _BadValue
    return value


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, dict | list | bool):
        raise _BadValue
    text = str(raw).strip()
    if "\x00" in text:
        raise _BadValue
    return text or None


def _label(raw: Any) -> str | None:
    """BambooHR's ``{"id": …, "label": "Hired"}`` (or a bare text) → its label."""
    return _text(raw.get("label")) if isinstance(raw, dict) else _text(raw)


def _int(raw: Any) -> int | None:
    text = _text(raw)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 18:
        raise _BadValue
    return int(text)


def _day(raw: Any, zone: ZoneInfo) -> date | None:
    """An ATS timestamp (``2026-09-03T14:12:00+00:00``; naive ones are UTC) or date as the local date."""
    text = _text(raw)
    if text is None or text == "0000-00-00":
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        stamp = naive_utc(text)
    except (Unconvertible, ValueError):
        raise _BadValue from None
    return stamp.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).date()
