"""Metrics: spec → compile → evaluate → score. Pure: no I/O of its own.

* :mod:`metrics.spec` — the typed metric, filter and key-result declarations (pydantic, frozen).
* :mod:`metrics.periods` — calendar/fiscal periods in the company timezone.
* :mod:`metrics.compile` — filters and aggregates to SQLAlchemy Core (bound parameters only).
* :mod:`metrics.score` — progress, expected pace, status and weighted roll-up.
"""
