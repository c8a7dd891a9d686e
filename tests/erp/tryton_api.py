"""Tryton's own API for tests: change a Tryton database as a user would, or compute expected values.

    python -m tests.erp.tryton_api advance-draft --sqlite PATH [--day 2026-11-20]
    python -m tests.erp.tryton_api cancel-sale --sqlite PATH --day 2026-11-20
    python -m tests.erp.tryton_api late-shipments --sqlite PATH --day 2026-11-20
    python -m tests.erp.tryton_api facts --postgres URL --start 2026-10-01 --end 2026-11-20
    python -m tests.erp.tryton_api cancel-sale --sqlite PATH --day 2026-11-20 --facts 2026-10-01 2026-11-20

Each command runs in a process of its own (Tryton's configuration and sqlite3 adapters are process-wide)
and prints one JSON line; :func:`call` runs one and returns the parsed result. A change command given
``--facts START END`` also returns the facts after it (key ``facts``), from the same process: a
Tryton process costs seconds of start-up, and a test usually wants both. Expected values are
computed from Tryton's model reads (``sale.sale``, ``stock.shipment.out``, ``account.invoice``): never
from SQL and never through okrsync, so they check okrsync's reading of Tryton's tables independently.
Decimals are strings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from tests.erp.tryton_build import Clock, Target, connect, run_tryton

BOOKED = ("confirmed", "processing", "done")  # sale states whose untaxed amount counts as booked revenue


def call(command: str, target: Target, *args: str) -> dict[str, Any]:
    """Run a command of this module against ``target`` in a Tryton process; its JSON result."""
    flag = ["--sqlite", str(target.path)] if target.path else ["--postgres", target.sqlalchemy_url]
    return run_tryton("tests.erp.tryton_api", [command, *flag, *args], timeout=600)


def advance_draft(day: date) -> dict[str, Any]:
    """Take the oldest draft sale through quote, confirm, shipment and posted invoice, all on ``day``."""
    from proteus import Model

    Clock().day = day
    sale_model = Model.get("sale.sale")
    sale = sale_model.find([("state", "=", "draft")], order=[("id", "ASC")], limit=1)[0]
    sale.sale_date = day  # the order is (re)dated the day it is finally quoted and confirmed
    sale.click("quote")
    sale.click("confirm")
    (shipment,), (invoice,) = sale.shipments, sale.invoices
    for button in ("assign_try", "pick", "pack", "do"):
        shipment.click(button)
    invoice.click("post")
    sale.reload()
    return {"sale": sale.id, "sale_date": sale.sale_date.isoformat(), "state": sale.state,
            "untaxed_amount": str(sale.untaxed_amount), "party": sale.party.id,
            "shipment": shipment.id, "invoice": invoice.id, "invoice_date": invoice.invoice_date.isoformat()}


def cancel_sale(day: date) -> dict[str, Any]:
    """Cancel the oldest sale in process the Tryton way, on ``day``.

    Its waiting shipment and draft invoice are cancelled, then both exceptions are handled by ignoring
    the cancelled moves and invoice: Tryton ends the sale ``done``, its cached amounts intact and the
    actual quantities of its lines 0.
    """
    from proteus import Model, Wizard

    Clock().day = day
    sale_model = Model.get("sale.sale")
    sale = next(s for s in sale_model.find([("state", "=", "processing"), ("sale_date", "<=", day)],
                                           order=[("sale_date", "DESC"), ("id", "DESC")])
                if all(sh.state in ("waiting", "assigned") for sh in s.shipments)
                and all(i.state == "draft" for i in s.invoices))
    for shipment in sale.shipments:
        shipment.click("cancel")
    for invoice in sale.invoices:
        invoice.click("cancel")
    sale.reload()
    handle = Wizard("sale.handle.shipment.exception", [sale])
    handle.form.ignore_moves.extend(handle.form.domain_moves.find())
    handle.execute("handle")
    sale.reload()
    handle = Wizard("sale.handle.invoice.exception", [sale])
    handle.form.ignore_invoices.extend(handle.form.domain_invoices.find())
    handle.execute("handle")
    sale.reload()
    return {"sale": sale.id, "sale_date": sale.sale_date.isoformat(), "state": sale.state,
            "untaxed_amount": str(sale.untaxed_amount), "party": sale.party.id,
            "actual_quantities": [line.actual_quantity for line in sale.lines]}


def foreign_sale(day: date) -> dict[str, Any]:
    """A sale in EUR on ``day``, confirmed: EUR rates dated before, on no day of it, and after ``day``.

    Tryton converts with the latest rate dated on or before the sale date; the later rate must not be
    used. Returns the sale's EUR amount and the rate of its day.
    """
    from proteus import Model
    from trytond.modules.currency.tests.tools import get_currency

    Clock().day = day
    eur = get_currency("EUR")  # Tryton's test helper: EUR at rate 2.0 since the beginning of time
    rate_model = Model.get("currency.currency.rate")
    for when, rate in ((day - timedelta(days=10), Decimal("0.8")),
                       (day + timedelta(days=1), Decimal("1.25"))):
        rate_model(currency=eur, date=when, rate=rate).save()
    sale = Model.get("sale.sale")(party=Model.get("party.party").find([("id", "=", 5)])[0], sale_date=day,
                                  currency=eur, invoice_method="order", shipment_method="order")
    line = sale.lines.new()
    line.product = Model.get("product.product").find([], order=[("id", "ASC")], limit=1)[0]
    line.quantity = 3.0
    line.unit_price = Decimal("333.3333")
    sale.click("quote")
    sale.click("confirm")
    return {"sale": sale.id, "sale_date": sale.sale_date.isoformat(), "state": sale.state,
            "untaxed_amount": str(sale.untaxed_amount), "currency": "EUR", "rate": "0.8"}


def credit_invoice(day: date) -> dict[str, Any]:
    """Credit the latest posted, unpaid customer invoice with refund on ``day``, as Tryton's wizard does:
    Tryton posts a credit note and cancels the invoice (the credit note's move is its cancel move)."""
    from proteus import Model, Wizard

    Clock().day = day
    invoice_model = Model.get("account.invoice")
    invoice = next(i for i in invoice_model.find([("type", "=", "out"), ("state", "=", "posted")],
                                                 order=[("invoice_date", "DESC"), ("id", "DESC")])
                   if not i.payment_lines and i.invoice_date <= day)
    credit = Wizard("account.invoice.credit", [invoice])
    credit.form.with_refund = True
    credit.form.invoice_date = day
    credit.execute("credit")
    invoice.reload()
    note, = invoice_model.find([("type", "=", "out"), ("lines.origin.invoice", "=", invoice.id,
                                                        "account.invoice.line")])
    sale = Model.get("sale.sale").find([("invoices", "=", invoice.id)])[0]
    return {"invoice": invoice.id, "state": invoice.state, "invoice_date": invoice.invoice_date.isoformat(),
            "untaxed_amount": str(invoice.untaxed_amount), "credit_note": note.id,
            "credit_note_state": note.state, "credit_note_amount": str(note.untaxed_amount),
            "sale": sale.id, "sale_date": sale.sale_date.isoformat()}


def late_shipments(day: date) -> dict[str, Any]:
    """Two sales confirmed 5 days before ``day`` whose shipments miss their planned date: on ``day``
    Tryton's reschedule action moves both to ``day``; one then ships that day, the other stays waiting.

    By its rescheduled planned date the first left on time; by the original one it is 4 days late (the
    product's lead time is a day), and the second is overdue."""
    from proteus import Model

    clock = Clock()
    clock.day = day - timedelta(days=5)
    party = Model.get("party.party").find([("id", "=", 7)])[0]
    product = Model.get("product.product").find([], order=[("id", "ASC")], limit=1)[0]
    sales = []
    for _ in range(2):
        sale = Model.get("sale.sale")(party=party, sale_date=clock.day, invoice_method="order",
                                      shipment_method="order")
        line = sale.lines.new()
        line.product = product
        line.quantity = 2.0
        sale.click("quote")
        sale.click("confirm")
        sales.append(sale)
    clock.day = day
    cron, = Model.get("ir.cron").find([("method", "=", "stock.shipment.out|reschedule")])
    cron.click("run_once")
    (shipped,), (waiting,) = (s.shipments for s in sales)
    shipped.click("assign_try")
    for button in ("pick", "pack", "do"):
        shipped.click(button)
    out = {}
    for name, shipment in (("shipped", shipped), ("waiting", waiting)):
        shipment.reload()
        out[name] = {"id": shipment.id, "state": shipment.state,
                     "planned_date": shipment.planned_date.isoformat(),
                     "origin_planned_date": shipment.origin_planned_date.isoformat(),
                     "effective_date": shipment.effective_date and shipment.effective_date.isoformat(),
                     "delay_days": shipment.delay.days}
    return out


def facts(start: date, end: date) -> dict[str, Any]:
    """What the metric pack's key results should be for dates ``start``..``end`` (inclusive).

    Booked revenue is Tryton's own sale reporting (``sale.reporting.customer``): actual quantities
    (what was shipped or invoiced once a sale is processed) at the company currency's rate of each
    sale's date.
    """
    from proteus import Model
    from proteus.config import get_config

    def within(d: date | None) -> bool:
        return d is not None and start <= d <= end

    booked: Counter[int] = Counter()
    company = Model.get("company.company").find([])[0]
    with get_config().set_context(company=company.id, from_date=start, to_date=end):
        for row in Model.get("sale.reporting.customer").find([]):
            booked[row.customer.id] += row.revenue
    days: list[int] = []
    for sale in Model.get("sale.sale").find([("state", "in", BOOKED)]):
        # invoiced: posted (or paid), or posted then cancelled (credited with refund: it keeps its move)
        dates = [i.invoice_date for i in sale.invoices if i.type == "out"
                 and (i.state in ("posted", "paid") or (i.state == "cancelled" and i.move))]
        if dates and within(min(dates)):
            days.append((min(dates) - sale.sale_date).days)
    # On-time shipment by Tryton's own `delay` (effective, rescheduled or today's date − the original
    # planned date): shipments due in the period, shipped (late if delay > 0) or overdue (delay > 0).
    # A pending shipment's delay counts from its rescheduled planned date, which Tryton's daily
    # reschedule action keeps current: run it the morning of `end`, as a Tryton server would have.
    # (It moves no due date, origin_planned_date, so okrsync's values do not depend on it.)
    Clock().day = end
    cron, = Model.get("ir.cron").find([("method", "=", "stock.shipment.out|reschedule")])
    cron.click("run_once")
    shipments = [s for s in Model.get("stock.shipment.out").find([("state", "!=", "cancelled")])
                 if within(s.origin_planned_date or s.planned_date)
                 and (s.state == "done" or s.delay > timedelta(0))]
    # Invoiced revenue from the ledger: the revenue accounts' credit - debit over the period's moves
    # (a credit note is a debit; an invoice cancelled by it keeps its own move).
    with get_config().set_context(company=company.id, from_date=start, to_date=end):
        invoiced = sum((a.credit - a.debit for a in Model.get("account.account").find(
            [("type.revenue", "=", True)])), Decimal(0))
    return {
        "booked_revenue": str(sum(booked.values(), Decimal(0))),
        "booked_by_party": {str(k): str(v) for k, v in sorted(booked.items())},
        "shipments_due": len(shipments),
        "shipments_on_time": sum(1 for s in shipments if s.state == "done" and s.delay <= timedelta(0)),
        "shipments_overdue": sum(1 for s in shipments if s.state != "done"),
        "invoiced_revenue": str(invoiced),
        "days_to_invoice": days,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.erp.tryton_api")
    parser.add_argument("command", choices=["advance-draft", "cancel-sale", "credit-invoice", "foreign-sale",
                                            "late-shipments", "facts"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH")
    where.add_argument("--postgres", metavar="URL")
    parser.add_argument("--day", type=date.fromisoformat, help="advance-draft: the day it all happens")
    parser.add_argument("--start", type=date.fromisoformat, help="facts: the first day")
    parser.add_argument("--end", type=date.fromisoformat, help="facts: the last day")
    parser.add_argument("--facts", nargs=2, type=date.fromisoformat, metavar=("START", "END"),
                        help="a change command: also the facts from START to END after the change")
    o = parser.parse_args(argv)
    connect(Target.parse(o.sqlite or o.postgres))
    if o.command == "advance-draft":
        result = advance_draft(o.day or date.today())
    elif o.command == "credit-invoice":
        result = credit_invoice(o.day or date.today())
    elif o.command == "foreign-sale":
        result = foreign_sale(o.day or date.today())
    elif o.command == "late-shipments":
        result = late_shipments(o.day or date.today())
    elif o.command == "cancel-sale":
        result = cancel_sale(o.day or date.today())
    else:
        result = facts(o.start, o.end)
    if o.facts and o.command != "facts":
        result["facts"] = facts(*o.facts)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
