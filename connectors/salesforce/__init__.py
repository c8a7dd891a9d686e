"""Salesforce as a source (``kind: salesforce``): see :mod:`connectors.salesforce.connector`."""

from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector"]
