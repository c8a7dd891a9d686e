"""Prefect wiring: sync every stream, evaluate every key result, record the values. Thin on purpose:
the work is done by connectors, metrics and the store; this package only connects them."""
