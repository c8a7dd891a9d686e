"""The connector kit: what every source needs and no connector writes again.

* :mod:`connectors.kit.values` — naive UTC, exact ``Decimal`` and booleans, one way for every source.
"""
