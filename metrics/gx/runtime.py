"""Loading Great Expectations quietly, the process-wide ephemeral GX context, and okrsync's naming.

``import great_expectations`` costs seconds, so it happens only inside these functions; importing
this module never loads it.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from typing import Any

# okrsync's severity → GX's.
SEVERITY = {"error": "critical", "warn": "warning"}

_context: Any = None
_context_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# GX loading, quietly
# ---------------------------------------------------------------------------------------------


def quiet_gx() -> None:
    # GX's INFO lines (temporary docs folders…) would reach the user through Prefect's root handler;
    # okrsync reports what matters itself.
    gx_logger = logging.getLogger("great_expectations")
    gx_logger.setLevel(logging.ERROR)
    gx_logger.propagate = False
    if not gx_logger.handlers:
        gx_logger.addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module=r"great_expectations(\.|$)")


@functools.cache
def expectation_classes() -> dict[str, type]:
    """snake_case expectation name → class, derived from the classes GX exports."""
    quiet_gx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations.expectations as gxe
        from great_expectations.expectations.expectation import Expectation
    found: dict[str, type] = {}
    for attr in dir(gxe):
        cls = getattr(gxe, attr)
        if isinstance(cls, type) and issubclass(cls, Expectation) and cls is not Expectation:
            name = getattr(cls, "expectation_type", "") or _camel_to_snake(attr)
            found[name] = cls
    return found


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def ephemeral_context() -> Any:
    """The one in-memory GX context of this process (created on first use)."""
    global _context
    with _context_lock:
        if _context is None:
            quiet_gx()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import great_expectations as gx
                from great_expectations.data_context.types.base import ProgressBarsConfig

                ctx = gx.get_context(mode="ephemeral")
                ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            _context = ctx
        return _context


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "stream"
