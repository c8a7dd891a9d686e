"""Money shows at its currency's places, in the CLI's text and JSON alike, and stays exact.

Seen on the Tryton pack: ``status --json`` gave booked revenue as ``103870.260000`` (the store's scale)
on PostgreSQL and ``109683.0`` on SQLite, and the tree showed ``0 USD`` beside ``150,000.00 USD``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from okr_store.queries import KrStatus
from okrsync import render


@pytest.mark.parametrize(("value", "unit", "json", "text"), [
    ("103870.260000", "USD", "103870.26", "103,870.26 USD"),
    ("109683.0", "USD", "109683.00", "109,683.00 USD"),
    ("0", "USD", "0.00", "0.00 USD"),
    ("-12.5", "EUR", "-12.50", "-12.50 EUR"),
    ("1234.5678", "EUR", "1234.5678", "1,234.57 EUR"),  # exact in JSON (an average), rounded to read
    ("1500.000", "JPY", "1500", "1,500 JPY"),
    ("12.3450", "KWD", "12.345", "12.345 KWD"),
    ("0.777777777778", "percent", "0.777777777778", "77.8 %"),
    ("9.272727272727", "days", "9.272727272727", "9.27 days"),
    ("12.000", "ABC", "12.000", "12 ABC"),  # three letters, but no currency
    ("12.000", None, "12.000", "12"),
])
def test_money_at_its_currency_places(value: str, unit: str | None, json: str, text: str) -> None:
    v = Decimal(value)
    assert str(render.exact(v, unit)) == json
    assert render.exact(v, unit) == v  # never a different number
    assert render.fmt_value(v, unit) == text


def test_status_json_shows_money_at_its_places() -> None:
    kr = KrStatus(id="KR-BOOKED", title="Booked", owner=None, metric="booked_revenue", period="2026-Q4",
                  unit="USD", direction="increase", weight=Decimal(1), baseline=Decimal("0"),
                  target=Decimal("150000"), value=None, held_reason=None, held_since=None, fresh_at=None,
                  warnings={}, streams=[])
    out = render.kr_json(kr, datetime(2026, 11, 20), timedelta(hours=1))
    assert (str(out["baseline"]), str(out["target"])) == ("0.00", "150000.00")
