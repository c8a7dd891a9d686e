"""The OKR store: key-result definitions, every computed value with its lineage, and the versioned
copies of source records that lineage points at. SQLite by default, PostgreSQL in production.

It knows nothing of connectors or flows: it is handed DataFrames and metric definitions.
"""

from okr_store.store import Store

__all__ = ["Store"]
