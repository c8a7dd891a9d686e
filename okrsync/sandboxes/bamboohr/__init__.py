"""A BambooHR-API-compatible local server (custom reports, employees/changed, errors and throttling) over
a seeded company, to run the ``kind: hr`` connector against (its tests do).

See :class:`.server.BambooHrSandbox` for the knobs, :class:`.model.Org` for changing the company between
syncs, :class:`.faults.Faults` for errors, and ``tests/sandboxes/bamboohr_fixtures.py`` for the pytest
fixtures.
"""

from .ats import Application, Ats, Job
from .faults import Faults, RequestLog, RequestRecord
from .model import Employee, Org
from .server import BambooHrSandbox

__all__ = ["Application", "Ats", "BambooHrSandbox", "Employee", "Faults", "Job", "Org", "RequestLog",
           "RequestRecord"]
