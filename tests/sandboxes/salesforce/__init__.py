"""A Salesforce-REST-compatible test server (like stripe-mock for Stripe) for the real
simple-salesforce client.

See :mod:`.fixtures` for the pytest fixtures, :class:`.server.SalesforceSandbox` for the test knobs,
:meth:`.model.Org.mutate` for changing an org between syncs, and :mod:`.runner` for running it as a
long-lived local service.
"""

from .errors import ApiError
from .faults import Faults, RequestLog, RequestRecord
from .model import Org
from .server import SalesforceSandbox

__all__ = ["ApiError", "Faults", "Org", "RequestLog", "RequestRecord", "SalesforceSandbox"]
