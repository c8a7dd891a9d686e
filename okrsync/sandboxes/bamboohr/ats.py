"""The sandbox company's applicant tracking: job openings and applications, as BambooHR's ATS keeps them.

:meth:`Ats.generate` seeds them from an :class:`~.model.Org` with its own ``random.Random`` (so the
employees stay exactly those of the org's seed): one job opening for each recent hire (hired since
2025-01-01) with that employee as the hired applicant, other applicants on it (rejected, declined, hired
elsewhere, still in the pipeline), and a few openings still open. Timestamps are UTC, some late in the
evening (the next day in Berlin). Tests add applications and hire them between syncs
(:meth:`Ats.apply`, :meth:`Ats.set_status`), which move the org's clock like every change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .model import FIRST_NAMES, LAST_NAMES, Org

# BambooHR's default applicant statuses: (id, label).
STATUSES: dict[str, int] = {
    "New": 1, "Reviewed": 2, "Schedule Phone Screen": 3, "Phone Screened": 4, "Schedule Interview": 5,
    "Interviewed": 6, "Put on Hold": 7, "Checking References": 8, "Offer Sent": 9, "Not a Fit": 10,
    "Declined Offer": 11, "Not Qualified": 12, "Over Qualified": 13, "Hired Elsewhere": 14, "Hired": 15,
}
ACTIVE = ("New", "Reviewed", "Schedule Phone Screen", "Phone Screened", "Schedule Interview", "Interviewed",
          "Put on Hold", "Checking References", "Offer Sent")
INACTIVE = ("Not a Fit", "Declined Offer", "Not Qualified", "Over Qualified", "Hired Elsewhere")
SOURCES = ("LinkedIn", "Indeed", "Referral", "Careers page", "Glassdoor", None)
RECENT = date(2025, 1, 1)


@dataclass
class Job:
    id: int
    title: str
    department: str | None
    location: str | None
    status: str  # Open, Filled, Draft, On Hold, Canceled
    postedDate: datetime  # noqa: N815 - BambooHR's names


@dataclass
class Application:
    id: int
    jobId: int  # noqa: N815
    applicantId: int  # noqa: N815
    firstName: str  # noqa: N815
    lastName: str  # noqa: N815
    email: str | None
    source: str | None
    appliedDate: datetime  # noqa: N815
    status: str
    statusChanged: datetime  # noqa: N815 - served as status.dateChanged (details only)
    rating: int | None = None
    employeeId: int | None = None  # noqa: N815 - the employee a hired applicant became (not served)


@dataclass
class Ats:
    org: Org
    jobs: dict[int, Job] = field(default_factory=dict)
    applications: dict[int, Application] = field(default_factory=dict)
    next_applicant: int = 1

    @classmethod
    def generate(cls, org: Org, seed: int = 7) -> Ats:
        rng = random.Random(seed * 7919 + 17)
        ats = cls(org)
        today = org.today
        for emp in org.live():
            if emp.hireDate < RECENT or emp.hireDate > today:
                continue
            hired_at = _at(rng, emp.hireDate - timedelta(days=rng.randrange(3, 35)))
            posted = hired_at - timedelta(days=rng.randrange(25, 90), hours=rng.randrange(0, 9))
            job = ats._job(emp.jobTitle or "Generalist", emp.department, emp.location, "Filled", posted)
            applied = posted + timedelta(days=rng.randrange(1, max(2, (hired_at - posted).days - 5)),
                                         hours=rng.randrange(0, 12))
            ats._add(job, emp.firstName, emp.lastName, rng, applied, "Hired", hired_at, employee=emp.id)
            for _ in range(rng.randrange(1, 5)):
                when = posted + timedelta(days=rng.randrange(0, max(1, (hired_at - posted).days)),
                                          hours=rng.randrange(0, 23))
                ats._add(job, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng, when,
                         rng.choice(INACTIVE), when + timedelta(days=rng.randrange(1, 20)))
        for n in range(6):  # still open: applicants in the pipeline, nobody hired yet
            posted = _at(rng, today - timedelta(days=rng.randrange(10, 70)))
            job = ats._job(f"Open Role {n + 1}", rng.choice(["Engineering", "Sales", "Product"]), "Berlin",
                           "Open" if n < 5 else "On Hold", posted)
            for _ in range(rng.randrange(2, 7)):
                when = posted + timedelta(days=rng.randrange(0, max(1, (today - posted.date()).days)))
                ats._add(job, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng, when,
                         rng.choice(ACTIVE + INACTIVE), when + timedelta(hours=rng.randrange(1, 48)))
        return ats

    # -- changes -----------------------------------------------------------------------------------
    def apply(self, job_id: int, first: str, last: str, *, at: datetime | None = None,
              source: str | None = "LinkedIn") -> Application:
        """A new application to ``job_id`` (status New), applied ``at`` (default: the clock, moved on; ATS
        records have no change cursor, so a past ``at`` leaves the clock alone)."""
        with self.org.lock:
            stamp = at or self.org.tick()
            return self._add(self.jobs[job_id], first, last, None, stamp, "New", stamp, source=source)

    def set_status(self, app_id: int, status: str, *, at: datetime | None = None) -> Application:
        """Move an application to ``status`` (e.g. Hired); ``dateChanged`` is ``at``, or the clock."""
        with self.org.lock:
            app = self.applications[app_id]
            app.status, app.statusChanged = status, at or self.org.tick()
            return app

    def open_job(self, title: str, department: str, *, at: datetime | None = None) -> Job:
        with self.org.lock:
            return self._job(title, department, "Berlin", "Open", at or self.org.tick())

    # -- BambooHR's JSON ---------------------------------------------------------------------------
    def listed(self, app: Application) -> dict[str, Any]:
        """An application as ``GET applicant_tracking/applications`` lists it."""
        job = self.jobs[app.jobId]
        return {
            "id": app.id, "appliedDate": app.appliedDate.isoformat(),
            "status": {"id": STATUSES[app.status], "label": app.status}, "rating": app.rating,
            "applicant": {"id": app.applicantId, "firstName": app.firstName, "lastName": app.lastName,
                          "avatar": None, "email": app.email, "source": app.source},
            "job": {"id": job.id, "title": {"id": None, "label": job.title}},
        }

    def details(self, app: Application) -> dict[str, Any]:
        """``GET applicant_tracking/applications/{id}``: the listing plus ``status.dateChanged`` and more."""
        body = self.listed(app)
        body["status"] |= {"dateChanged": app.statusChanged.isoformat(), "changedByUser": 1}
        body |= {"resumeFileId": None, "coverLetterFileId": None, "referredBy": None, "desiredSalary": None,
                 "commentCount": 0, "emailCount": 0, "eventCount": 0, "questionsAndAnswers": []}
        return body

    def summary(self, job: Job) -> dict[str, Any]:
        """A job as ``GET applicant_tracking/jobs`` lists it."""
        apps = [a for a in self.applications.values() if a.jobId == job.id]
        return {
            "id": job.id, "title": {"id": None, "label": job.title}, "postedDate": job.postedDate.isoformat(),
            "location": {"id": None, "label": job.location} if job.location else None,
            "department": {"id": None, "label": job.department} if job.department else None,
            "status": {"id": None, "label": job.status}, "hiringLead": None,
            "newApplicantsCount": sum(a.status == "New" for a in apps),
            "activeApplicantsCount": sum(a.status in ACTIVE for a in apps), "totalApplicantsCount": len(apps),
            "postingUrl": None,
        }

    # -- internals ---------------------------------------------------------------------------------
    def _job(self, title: str, department: str | None, location: str | None, status: str,
             posted: datetime) -> Job:
        job = Job(len(self.jobs) + 1, title, department, location, status, posted)
        self.jobs[job.id] = job
        return job

    def _add(self, job: Job, first: str, last: str, rng: random.Random | None, applied: datetime, status: str,
             changed: datetime, *, employee: int | None = None, source: str | None = None) -> Application:
        n = self.next_applicant
        self.next_applicant += 1
        app = Application(
            id=1000 + len(self.applications) + 1, jobId=job.id, applicantId=n, firstName=first, lastName=last,
            email=f"candidate{n}@example.test", source=rng.choice(SOURCES) if rng else source,
            appliedDate=applied, status=status, statusChanged=max(changed, applied),
            rating=rng.choice([None, 1, 2, 3, 4, 5]) if rng else None, employeeId=employee)
        self.applications[app.id] = app
        return app


def _at(rng: random.Random, day: date) -> datetime:
    """A moment of ``day`` in UTC; one in five late in the evening (already the next day in Berlin)."""
    hour = rng.choice([22, 23]) if rng.random() < 0.2 else rng.randrange(6, 18)
    return datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=UTC)
