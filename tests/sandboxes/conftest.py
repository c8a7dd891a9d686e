"""Fixtures of the loopback sandboxes (test servers that real client libraries talk to)."""

from .salesforce.fixtures import make_salesforce_sandbox, salesforce_sandbox

__all__ = ["make_salesforce_sandbox", "salesforce_sandbox"]
