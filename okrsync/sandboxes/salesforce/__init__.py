"""A Salesforce-REST-compatible local server (like stripe-mock for Stripe) for the real
simple-salesforce client: what ``okrsync sandbox salesforce`` and the demo serve, and what the tests use.

See :class:`.server.SalesforceSandbox` for the knobs (faults included), :meth:`.model.Org.mutate` for
changing an org between syncs, :mod:`.runner` for running it as a long-lived local service, and
``tests/sandboxes/salesforce_fixtures.py`` for the pytest fixtures.
"""

from .errors import ApiError
from .faults import Faults, RequestLog, RequestRecord
from .model import Org
from .server import SalesforceSandbox

__all__ = ["ApiError", "Faults", "Org", "RequestLog", "RequestRecord", "SalesforceSandbox"]
