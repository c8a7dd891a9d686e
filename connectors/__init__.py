"""Connectors: one small class per kind of source, behind :class:`connectors.base.Connector`.

A connector says what a stream's schema is and yields its records as pandas DataFrames. Watermarks,
staging, retries and lineage are shared machinery elsewhere. Connectors know nothing of flows or of
the OKR store. New kinds register through the ``okrsync.connectors`` entry-point group.
"""
