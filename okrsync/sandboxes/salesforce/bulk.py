"""Bulk API 2.0 query jobs: create, poll (UploadComplete -> InProgress -> JobComplete/Failed), CSV results."""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, not_found
from .faults import Faults
from .model import Org
from .render import csv_header, csv_rows, json_value
from .soql_eval import QueryResult, execute

_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


@dataclass
class BulkJob:
    info: dict[str, Any]
    soql: str
    polls: int = 0
    fail_message: str | None = None
    polls_in_progress: int = 1
    result: QueryResult | None = None
    results_fetched: int = field(default=0)


@dataclass
class CsvPage:
    body: bytes
    locator: str
    count: int
    damage: str | None  # None | "abort" | "truncate"


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        value = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except ValueError:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
    if value < 0:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
    return value


class BulkJobs:
    def __init__(self, org: Org, faults: Faults, user_id: str) -> None:
        self.org, self.faults, self.user_id = org, faults, user_id
        self.jobs: dict[str, BulkJob] = {}
        self.default_max_records = 50_000

    def create(self, body: dict[str, Any], version: str) -> dict[str, Any]:
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise ApiError(400, "INVALIDJOB", "Query is required for query jobs")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        # validate now, as Salesforce does on create; the records are read when the job completes
        probe = execute(self.org, soql, validate_only=True)
        if probe.aggregate or probe.query.offset is not None:
            raise ApiError(
                400, "INVALIDJOB", "Aggregate queries and OFFSET are not supported by Bulk API 2.0 query jobs"
            )
        now = json_value(self.org.clock.now())
        job_id = self.org.ids.new("750")
        info = {
            "id": job_id,
            "operation": operation,
            "object": probe.odef.name,
            "createdById": self.user_id,
            "createdDate": now,
            "systemModstamp": now,
            "state": "UploadComplete",
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "lineEnding": line_ending,
            "columnDelimiter": delimiter,
        }
        self.jobs[job_id] = BulkJob(
            dict(info),
            soql,
            fail_message=self.faults.bulk_fail_message,
            polls_in_progress=self.faults.bulk_polls_in_progress,
        )
        return info

    def _job(self, job_id: str) -> BulkJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found()
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """Each poll moves the job along: UploadComplete -> InProgress (n polls) -> JobComplete or Failed."""
        job = self._job(job_id)
        info = job.info
        if info["state"] in ("UploadComplete", "InProgress"):
            job.polls += 1
            if job.polls > job.polls_in_progress:
                self._finish(job)
            else:
                info["state"] = "InProgress"
            info["systemModstamp"] = json_value(self.org.clock.now())
        out = dict(info)
        out.update(
            {
                "jobType": "V2Query",
                "numberRecordsProcessed": info.get("numberRecordsProcessed", 0),
                "retries": 0,
                "totalProcessingTime": 7 * (job.polls + 1),
                "isPkChunkingSupported": True,
            }
        )
        return out

    def _finish(self, job: BulkJob) -> None:
        if job.fail_message:
            job.info["state"] = "Failed"
            job.info["errorMessage"] = job.fail_message
            return
        job.result = execute(self.org, job.soql, include_deleted=job.info["operation"] == "queryAll")
        job.info["state"] = "JobComplete"
        job.info["numberRecordsProcessed"] = job.result.total_size

    def abort(self, job_id: str, state: str | None) -> dict[str, Any]:
        job = self._job(job_id)
        if state != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state for a query job: {state}")
        if job.info["state"] in ("JobComplete", "Failed", "Aborted"):
            raise ApiError(400, "INVALIDJOBSTATE", f"Job is already {job.info['state']}")
        job.info["state"] = "Aborted"
        return dict(job.info)

    def delete(self, job_id: str) -> None:
        self._job(job_id)
        del self.jobs[job_id]

    def list(self) -> dict[str, Any]:
        return {"done": True, "records": [dict(j.info) for j in self.jobs.values()], "nextRecordsUrl": None}

    def results(self, job_id: str, locator: str | None, max_records: str | None) -> CsvPage:
        job = self._job(job_id)
        if job.info["state"] != "JobComplete" or job.result is None:
            raise ApiError(
                400,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed "
                f"bulk job with status: JOB_COMPLETE. Current status: {job.info['state']}",
            )
        try:
            size = int(max_records) if max_records else self.default_max_records
        except ValueError:
            raise ApiError(400, "INVALIDPARAMETER", f"Invalid maxRecords: {max_records}") from None
        if size <= 0:
            raise ApiError(400, "INVALIDPARAMETER", f"Invalid maxRecords: {max_records}")
        offset = decode_locator(locator) if locator else 0
        result = job.result
        rows = result.rows[offset : offset + size]
        buf = io.StringIO()
        writer = csv.writer(
            buf,
            delimiter=_DELIMITERS[job.info["columnDelimiter"]],
            lineterminator=_LINE_ENDINGS[job.info["lineEnding"]],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(csv_header(result))
        writer.writerows(csv_rows(result, rows))
        nxt = offset + size
        page_no = offset // size + 1
        return CsvPage(
            buf.getvalue().encode("utf-8"),
            encode_locator(nxt) if nxt < result.total_size else "null",
            len(rows),
            self.faults.bulk_results_damage.get(page_no),
        )
