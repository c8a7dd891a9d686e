"""The demo CRM's deals as the demo ERP books them (``okrsync demo``): the two systems share references
(an order's ``crm_reference`` is the Salesforce Opportunity Id it books), so the demo's reconciliation
``won_vs_booked`` finds a real, explainable difference (docs/project-file.md, "Reconciliations")."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from metrics.periods import current_period
from okrsync.demo_erp import Booking
from okrsync.sandboxes.salesforce.model import Org

BOOKING_LAG_DAYS = 3  # the ERP books a won deal this many days after it closes
DISCOUNT_EVERY = 9  # every 9th booked deal is invoiced with a 3 % discount the CRM never heard of


def crm_bookings(org_time: datetime, seed: int, opportunities: int, today: date) -> list[Booking]:
    """The ERP's orders from the CRM's deals this quarter, with the differences a real pair of systems
    shows: the newest won deal (and any won in the last days) is not booked yet, every 9th booking
    carries a discount, and one order books a deal that the CRM lists as lost."""
    org = Org(org_time).generate(seed=seed, opportunities=opportunities)
    quarter = current_period("quarter", today)
    deals = sorted((r for r in org.records("Opportunity") if r["IsClosed"] and r["Amount"] is not None
                    and quarter.start <= r["CloseDate"] <= today), key=lambda r: (r["CloseDate"], r["Id"]))
    won = [r for r in deals if r["IsWon"]]
    out, booked = [], 0
    for r in won[:-1]:  # the newest won deal is never booked yet, nor those won in the last days
        on = r["CloseDate"] + timedelta(days=BOOKING_LAG_DAYS)
        if on > today:
            continue
        booked += 1
        amount = Decimal(repr(r["Amount"]))
        if booked % DISCOUNT_EVERY == 0:
            amount = (amount * Decimal("0.97")).quantize(Decimal("0.01"))
        out.append(Booking(r["Id"], amount, r["CurrencyIsoCode"], on))
    lost = next((r for r in deals if not r["IsWon"]), None)
    if lost is not None:  # booked by mistake, or lost after the order was placed
        out.append(Booking(lost["Id"], Decimal(repr(lost["Amount"])), lost["CurrencyIsoCode"],
                           min(today, lost["CloseDate"] + timedelta(days=1))))
    return out
