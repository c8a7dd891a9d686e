"""Amounts in the company currency: the org's dated exchange rates, or rates the user gives.

Rates follow Salesforce's convention: units of a currency per one unit of the company (corporate)
currency, so ``converted = amount / rate``, rounded half-even to the amount field's scale.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

from connectors.base import StreamSpec
from connectors.salesforce import soql
from connectors.salesforce.client import SfClient
from okrsync.errors import SourceError


class Rates:
    """Conversion for one source; the dated rates are read once (one API call) when first needed."""

    def __init__(self, name: str, client: SfClient) -> None:
        self.name, self.client, self.options = name, client, client.options
        self._rates: list[tuple[str, Decimal, date, date]] | None = None

    def convert(self, stream: StreamSpec, df: pd.DataFrame, amount: str, scale: int, currency: str | None,
                date_field: str | None) -> pd.Series:
        """``df[amount]`` in the company currency; ``currency`` names the column of ISO codes (None:
        a single-currency org, amounts already in the company currency)."""
        company = self.options.currency
        quantum = Decimal(1).scaleb(-scale)
        codes = df[currency] if currency else pd.Series(company, index=df.index)
        today = datetime.now(UTC).date()
        dates = df[date_field] if date_field else pd.Series(today, index=df.index)
        out: list[Decimal | None] = []
        found: dict[tuple[str, date], Decimal] = {}  # a few currencies and days serve a whole batch
        for rid, value, code, on in zip(df["Id"], df[amount], codes, dates, strict=True):
            if value is None or (isinstance(value, float) and value != value):
                out.append(None)
                continue
            day = on.date() if isinstance(on, datetime) else on if isinstance(on, date) else today
            if code == company:
                rate = Decimal(1)
            else:
                if (str(code), day) not in found:
                    found[str(code), day] = self.rate(stream, str(code), day, rid)
                rate = found[str(code), day]
            out.append((value / rate).quantize(quantum, rounding=ROUND_HALF_EVEN))
        return pd.Series(out, index=df.index, dtype=object)

    def rate(self, stream: StreamSpec, code: str, day: date, rid: str) -> Decimal:
        rates = self.options.rates
        if isinstance(rates, dict):
            if code in rates:
                return rates[code]
        else:
            for iso, rate, start, end in self.dated_rates(stream):
                if iso == code and start <= day < end:
                    return rate
        raise SourceError(f"source {self.name!r}, stream {stream.name!r}: record {rid}: no conversion rate "
                          f"for {code} on {day.isoformat()}",
                          hint="add the rate to the source's `rates`, or to the org's dated exchange rates")

    def dated_rates(self, stream: StreamSpec) -> list[tuple[str, Decimal, date, date]]:
        if self._rates is None:
            columns = ["IsoCode", "ConversionRate", "StartDate", "NextStartDate"]
            text = soql.select("DatedConversionRate", columns, [], [])
            records = self.client.call("reading DatedConversionRate", lambda sf: sf.query_all(text))
            self._rates = [(r["IsoCode"], Decimal(repr(float(r["ConversionRate"]))),
                            date.fromisoformat(r["StartDate"]), date.fromisoformat(r["NextStartDate"]))
                           for r in records["records"]]
        return self._rates
