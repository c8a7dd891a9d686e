"""The connector kit: what every source needs and no connector writes again.

* :mod:`connectors.kit.http` — one retrying HTTP session for API sources (Retry-After, jittered backoff,
  retriable vs fatal answers, secrets kept out of its logs);
* :mod:`connectors.kit.cursor` — :class:`~connectors.kit.cursor.Incremental`: where an incremental read
  starts (watermark, lookback) and the ``(cursor, key)`` tie-break;
* :mod:`connectors.kit.values` — naive UTC, exact ``Decimal`` and booleans, one way for every source;
* :mod:`connectors.kit.options` — a connector's options models, with errors that name the key.
"""
