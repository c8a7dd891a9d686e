"""A BambooHR-API-compatible test server (custom reports, employees/changed, errors and throttling) over
a seeded company, for the ``kind: hr`` connector's tests.

See :mod:`.fixtures` for the pytest fixtures, :class:`.server.BambooHrSandbox` for the test knobs,
:class:`.model.Org` for changing the company between syncs and :class:`.faults.Faults` for errors.
"""

from .ats import Application, Ats, Job
from .faults import Faults, RequestLog, RequestRecord
from .model import Employee, Org
from .server import BambooHrSandbox

__all__ = ["Application", "Ats", "BambooHrSandbox", "Employee", "Faults", "Job", "Org", "RequestLog",
           "RequestRecord"]
