"""HR systems as a source (``kind: hr``): BambooHR's API or exports in a folder. See docs/hr.md."""

from connectors.hr.connector import HrConnector
from connectors.hr.options import BambooHrOptions, ColumnSpec, HrFilesOptions, HrOptions, HrStreamOptions

__all__ = ["BambooHrOptions", "ColumnSpec", "HrConnector", "HrFilesOptions", "HrOptions", "HrStreamOptions"]
