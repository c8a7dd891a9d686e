"""Build a Tryton 8.2 database (sale, stock, account_invoice) through Tryton's own API (proteus).

    python -m tests.erp.tryton_build --sqlite okrsync-tryton/tryton.sqlite
    python -m tests.erp.tryton_build --postgres postgresql://postgres@127.0.0.1:5432/tryton

Nothing is written with SQL: modules are activated, the company, chart of accounts, fiscal years,
products, customers and sale orders are created, and every order is pushed through Tryton's own
workflow buttons and wizards (quote → confirm → ship → invoice → pay), so the tables hold exactly what a
Tryton server writes. The data is deterministic for a seed: about 40 customer parties in four region
categories (party 2 is a key account with about a quarter of the orders, then a long tail), 10 products
and ``orders`` sale orders over the five
quarters ending at ``today``. Events (confirmations, shipments, invoices, payments) are replayed in date
order with Tryton's clock (``ir.date.today``) set to each event's day, so planned and effective dates,
invoice dates and accounting periods are what they would have been; events after ``today`` have not
happened yet (recent orders are still being shipped or invoiced). A share of shipments leaves after its
planned date, and a few orders stay draft, quoted or get cancelled. Tryton's daily "Reschedule Customer
Shipments" action runs each morning of the replay (and on ``today``), as a Tryton server's cron would: a
shipment not shipped by its planned date gets today's, its first one kept in ``origin_planned_date``.
``create_date``/``write_date`` are real time (when the build ran), as Tryton stamps them.

Tryton reads its configuration (backend, database path) once, when it is first imported, and its SQLite
backend registers process-wide sqlite3 adapters (Decimal stored as bytes). So Tryton runs in a process of
its own: :func:`build_tryton` starts ``python -m tests.erp.tryton_build`` and returns its summary; the
calling process never imports Tryton. The build costs about 1.3 s of CPU per order.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

DEFAULT_TODAY = date(2026, 11, 20)
DEFAULT_ORDERS = 120  # about 2.5 min on 2 cores (SQLite): ~1.3 s per order, ~16 s of setup
DEFAULT_SEED = 3
MODULES = ("sale", "stock", "account_invoice")  # Tryton activates what they depend on (company, account…)
REGIONS = ("EMEA", "AMER", "APAC", "LATAM")
CUSTOMERS = 40
PRODUCTS = 10
LATE_SHARE = 0.22  # shipments that leave after their planned date
KEY_ACCOUNT_WEIGHT = 1.8
REPO = Path(__file__).resolve().parents[2]


# -- where the database is ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A Tryton database: a SQLite file ``<path>/<name>.sqlite`` or a PostgreSQL database."""

    backend: str  # sqlite | postgresql
    name: str  # Tryton's database name
    server_uri: str  # TRYTOND_DATABASE_URI: the server without a database (sqlite://)
    path: Path | None = None  # SQLite: the file

    @classmethod
    def parse(cls, target: str | os.PathLike[str]) -> Target:
        text = os.fspath(target)
        if text.startswith(("postgresql:", "postgresql+", "postgres:")):
            url = urllib.parse.urlsplit(text)
            name = url.path.strip("/")
            if not name:
                raise ValueError(f"{text}: the URL names no database")
            server = urllib.parse.urlunsplit(("postgresql", url.netloc, "/", "", ""))
            return cls("postgresql", name, server)
        path = Path(text).resolve()
        if path.suffix != ".sqlite":
            raise ValueError(f"{text}: Tryton names SQLite databases NAME.sqlite (in its database path)")
        return cls("sqlite", path.stem, "sqlite://", path)

    @property
    def admin_uri(self) -> str:
        """PostgreSQL: the server's ``postgres`` database, to create and drop others from."""
        return urllib.parse.urlunsplit(("postgresql", urllib.parse.urlsplit(self.server_uri).netloc,
                                        "/postgres", "", ""))

    @property
    def sqlalchemy_url(self) -> str:
        """The URL okrsync's ``kind: sql`` source takes for this database."""
        if self.path is not None:
            return f"sqlite:///{self.path}"
        url = urllib.parse.urlsplit(self.server_uri)
        return urllib.parse.urlunsplit(("postgresql+psycopg", url.netloc, f"/{self.name}", "", ""))


def configure(target: Target) -> None:
    """Point Tryton at ``target``. Call before anything imports Tryton (it reads this once)."""
    if "trytond" in sys.modules:
        raise RuntimeError("configure Tryton before importing it: it reads its configuration once")
    for key in [k for k in os.environ if k.startswith("TRYTOND_")]:
        del os.environ[key]  # a developer's own Tryton configuration must not leak in
    os.environ["TRYTOND_DATABASE_URI"] = target.server_uri
    os.environ["DB_NAME"] = target.name
    if target.path is not None:
        os.environ["TRYTOND_DATABASE__PATH"] = str(target.path.parent)


def connect(target: Target, *, create: bool = False) -> Any:
    """Configure Tryton, optionally create the (empty) database, and return a proteus config."""
    configure(target)
    if create:
        _create_database(target.name)
    from proteus import config as pconfig

    cfg = pconfig.set_trytond()
    cfg.skip_warning = True  # Tryton's "are you sure?" warnings: a script answers yes
    return cfg


def _create_database(name: str) -> None:
    """What ``trytond-admin --all`` does for a new database: base modules, English, an admin user."""
    from sql import Table
    from trytond import backend
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    database = backend.Database()
    database.connect()
    connection = database.get_connection(autocommit=True)
    try:
        database.create(connection, name)
    finally:
        database.put_connection(connection)
        database.close()
    database = backend.Database(name)
    connection = database.get_connection()
    try:
        with connection.cursor() as cursor:
            database.init()
            configuration = Table("ir_configuration")
            cursor.execute(*configuration.insert([configuration.language], [["en"]]))
        connection.commit()
    finally:
        database.put_connection(connection)
    Pool.start()
    pool = Pool(name)
    pool.init(update=["res", "ir"], lang=["en"])
    with Transaction().start(name, 0):
        language, = pool.get("ir.lang").search([("code", "=", "en")])
        language.translatable = True
        language.save()
        pool.get("res.user").create([{"login": "admin", "name": "Administrator", "administrator": True,
                                      "language": language.id}])
        pool.get("ir.module").update_list()


class Clock:
    """Tryton's ``ir.date.today`` for the replay: every event happens on its own day."""

    def __init__(self) -> None:
        from trytond.ir.date import Date

        self.day: date | None = None
        real = Date.today

        def today(timezone: Any = None) -> date:
            return self.day or real(timezone)

        Date.today = staticmethod(today)  # company's ir.date override calls this through super()


# -- the build ------------------------------------------------------------------------------------

_FIRST = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne",
          "Soylent", "Hooli", "Vandelay", "Pied Piper", "Massive", "Aperture", "Black Mesa", "Gringotts",
          "Monarch", "Oscorp", "Nakatomi")
_SECOND = ("Holdings", "Industries", "Trading", "Logistics")
_PRODUCTS = (("Pallet rack", 420), ("Shelf bin", 18), ("Forklift battery", 2900), ("Stretch film", 35),
             ("Barcode scanner", 240), ("Label printer", 610), ("Safety gloves", 9), ("Hand truck", 160),
             ("Dock plate", 1350), ("Tape gun", 24))


def quarter_start(d: date, back: int = 0) -> date:
    """The first day of ``d``'s quarter, ``back`` quarters earlier."""
    index = d.year * 4 + (d.month - 1) // 3 - back
    return date(index // 4, index % 4 * 3 + 1, 1)


@dataclass
class _Order:
    sale_date: date
    party: int  # index into customers
    kind: str  # confirmed | draft | quotation | cancelled
    lines: list[tuple[int, int]]  # (product index, quantity)
    ship_delta: int  # days after the planned date (negative: early)
    invoice_after: int  # days after shipping
    pay_after: int | None  # days after invoicing; None: stays unpaid
    id: int | None = None
    shipment: int | None = None
    invoice: int | None = None


def plan(orders: int, seed: int, today: date) -> tuple[date, list[_Order]]:
    """The orders to build, from the seed alone (no Tryton involved)."""
    rng = random.Random(seed)
    start = quarter_start(today, back=4)
    days = (today - start).days
    # One key account (about a quarter of the orders: party 2, the first customer), then a long tail.
    weights = [KEY_ACCOUNT_WEIGHT, *(1 / (i + 1) ** 0.8 for i in range(1, CUSTOMERS))]
    # At least one of each: a few cancelled, draft (never confirmed) and quoted orders.
    other = [*["cancelled"] * max(1, round(orders * 0.04)), *["draft"] * max(1, round(orders * 0.03)),
             *["quotation"] * max(1, round(orders * 0.03))]
    kinds = dict(zip(rng.sample(range(orders), min(orders, len(other))), other, strict=False))
    out = []
    for n in range(orders):
        kind = kinds.get(n, "confirmed")
        lines = [(rng.randrange(PRODUCTS), rng.randint(1, 12)) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
        late = rng.random() < LATE_SHARE
        out.append(_Order(
            sale_date=start + timedelta(days=rng.randrange(days + 1)),
            party=rng.choices(range(CUSTOMERS), weights)[0],
            kind=kind, lines=lines,
            ship_delta=rng.randint(1, 6) if late else rng.randint(-2, 0),
            invoice_after=rng.randint(0, 9),
            pay_after=rng.randint(5, 40) if rng.random() < 0.6 else None,
        ))
    out.sort(key=lambda o: o.sale_date)  # ids then grow with the order date, as in a real ERP
    return start, out


def _build_here(target: Target, orders: int, seed: int, today: date) -> dict[str, Any]:
    started = time.perf_counter()
    cpu = time.process_time()
    cfg = connect(target, create=True)
    from proteus import Model, Wizard

    module = Model.get("ir.module")
    module.click(module.find([("name", "in", MODULES)]), "activate")
    Wizard("ir.module.activate_upgrade").execute("upgrade")
    activated = time.perf_counter() - started

    # The scenario helpers of Tryton's own tests: company, chart of accounts, fiscal years, payment term.
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, create_tax, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company, get_company
    from trytond.pool import Pool

    Pool.test = False  # importing Tryton's test tools turns on test-only models for later pool starts

    clock = Clock()
    start, planned = plan(orders, seed, today)
    clock.day = start - timedelta(days=7)
    own = Model.get("party.party")(name="Okrsync Demo Trading")
    own.save()
    create_company(party=own, currency="USD")
    company = get_company()
    create_chart(company)
    for year in range(start.year - 1, today.year + 1):  # invoices of the year before the first order too
        fy = set_fiscalyear_invoice_sequences(
            create_fiscalyear(company, today=(date(year, 1, 1), date(year, 12, 31))))
        fy.click("create_period")
    accounts = get_accounts(company)
    tax = create_tax(Decimal("0.19"))
    tax.save()
    payment_term = create_payment_term()
    payment_term.save()
    journal, = Model.get("account.journal").find([("type", "=", "cash")])
    payment_method = Model.get("account.invoice.payment.method")(
        name="Bank transfer", journal=journal, credit_account=accounts["cash"],
        debit_account=accounts["cash"])
    payment_method.save()

    category = Model.get("product.category")(name="Goods", accounting=True,
                                             account_expense=accounts["expense"],
                                             account_revenue=accounts["revenue"])
    category.customer_taxes.append(tax)
    category.save()
    unit, = Model.get("product.uom").find([("name", "=", "Unit")])
    template_model = Model.get("product.template")
    products = []
    for i, (name, price) in enumerate(_PRODUCTS[:PRODUCTS]):
        template = template_model(name=name, default_uom=unit, type="goods", salable=True,
                                  list_price=Decimal(price), account_category=category,
                                  lead_time=timedelta(days=1 + i % 5))
        template.save()
        products.append(template.products[0])

    storage, = Model.get("stock.location").find([("code", "=", "STO")])
    inventory = Model.get("stock.inventory")(location=storage, date=clock.day)
    for product in products:
        inventory.lines.new(product=product, quantity=100_000.0)
    inventory.click("confirm")

    party_model, category_model = Model.get("party.party"), Model.get("party.category")
    regions = {}
    for region in REGIONS:
        regions[region] = category_model(name=region)
        regions[region].save()
    customers = []
    for i in range(CUSTOMERS):
        name = f"{_FIRST[i % len(_FIRST)]} {_SECOND[i // len(_FIRST) % len(_SECOND)]}"
        party = party_model(name=name)
        party.categories.append(category_model(regions[REGIONS[i % len(REGIONS)]].id))
        party.save()
        customers.append(party)
    setup = time.perf_counter() - started

    # Tryton's daily scheduled action that moves the planned date of customer shipments not yet shipped
    # past it to today (keeping the first one in origin_planned_date): run each morning of the replay.
    reschedule = Model.get("ir.cron")(method="stock.shipment.out|reschedule", interval_number=1,
                                      interval_type="days")
    reschedule.save()
    sale_model, shipment_model = Model.get("sale.sale"), Model.get("stock.shipment.out")
    invoice_model = Model.get("account.invoice")
    # (day, order number, event, order): an order has one pending event at a time, so tuples never tie.
    events = [(order.sale_date, n, "order", order) for n, order in enumerate(planned)]
    heapq.heapify(events)
    timing: Counter[str] = Counter()
    while events:
        day, n, what, order = heapq.heappop(events)
        if day > today:
            continue  # has not happened yet
        if day != clock.day:
            clock.day = day
            reschedule.click("run_once")
        t0 = time.perf_counter()
        if what == "order":
            sale = sale_model(party=customers[order.party], sale_date=day, payment_term=payment_term,
                              invoice_method="order", shipment_method="order")
            for product, quantity in order.lines:
                line = sale.lines.new()  # set one by one: Tryton's on_change fills price, taxes, unit
                line.product = products[product]
                line.quantity = float(quantity)
            if order.kind == "draft":
                sale.save()
                order.id = sale.id
                continue
            sale.click("quote")  # saves it first
            order.id = sale.id
            if order.kind == "cancelled":
                sale.click("cancel")
            elif order.kind == "confirmed":
                sale.click("confirm")
                (shipment,), (invoice,) = sale.shipments, sale.invoices
                order.shipment, order.invoice = shipment.id, invoice.id
                lead = max(p.lead_time for p in (products[i] for i, _ in order.lines)).days
                ship = max(day, day + timedelta(days=lead + order.ship_delta))
                heapq.heappush(events, (ship, n, "ship", order))
        elif what == "ship":
            shipment_model.click([shipment_model(order.shipment)], "assign_try")
            for button in ("pick", "pack", "do"):
                shipment_model.click([shipment_model(order.shipment)], button)
            heapq.heappush(events, (day + timedelta(days=order.invoice_after), n, "invoice", order))
        elif what == "invoice":
            # Posting dates the invoice today (Tryton's clock: this event's day) and numbers it.
            invoice_model.click([invoice_model(order.invoice)], "post")
            if order.pay_after is not None:
                heapq.heappush(events, (day + timedelta(days=order.pay_after), n, "pay", order))
        elif what == "pay":
            pay = invoice_model.click([invoice_model(order.invoice)], "pay")
            pay.form.payment_method = payment_method
            pay.form.date = day
            pay.execute("choice")
        timing[what] += time.perf_counter() - t0
    if clock.day != today:
        clock.day = today
        reschedule.click("run_once")
    clock.day = None
    del cfg
    summary = _summary(target, orders, seed, today, start, started, cpu, activated, setup)
    summary["seconds_by_event"] = {k: round(v, 1) for k, v in sorted(timing.items())}
    return summary


def _summary(target: Target, orders: int, seed: int, today: date, start: date, started: float,
             cpu: float, activated: float, setup: float) -> dict[str, Any]:
    from proteus import Model

    sales = Model.get("sale.sale").find([])
    shipments = Model.get("stock.shipment.out").find([("state", "=", "done")])
    invoices = Model.get("account.invoice").find([("type", "=", "out")])
    revenue: Counter[int] = Counter()
    for s in sales:
        if s.state in ("confirmed", "processing", "done"):
            revenue[s.party.id] += s.untaxed_amount
    top_id, top_revenue = revenue.most_common(1)[0]
    top = Model.get("party.party")(top_id)
    return {
        "backend": target.backend,
        "database": target.name,
        "url": target.sqlalchemy_url,
        "orders": orders,
        "seed": seed,
        "today": today.isoformat(),
        "start": start.isoformat(),
        "sale_states": dict(sorted(Counter(s.state for s in sales).items())),
        "shipments_done": len(shipments),
        "shipments_late": sum(1 for s in shipments
                              if s.effective_date > (s.origin_planned_date or s.planned_date)),
        "shipments_rescheduled": sum(1 for s in Model.get("stock.shipment.out").find([])
                                     if s.origin_planned_date and s.planned_date != s.origin_planned_date),
        "invoice_states": dict(sorted(Counter(i.state for i in invoices).items())),
        "customers": CUSTOMERS,
        "products": PRODUCTS,
        "top_customer": {"party_id": top.id, "code": top.code, "name": top.name,
                         "revenue": str(top_revenue), "total_revenue": str(sum(revenue.values()))},
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_activate_modules": round(activated, 1),
        "seconds_setup": round(setup, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "builder": builder_hash(),
    }


# -- the calling side -----------------------------------------------------------------------------


def builder_hash(*params: Any) -> str:
    """Identifies a build: this file, Tryton's version and the parameters (cache key)."""
    from importlib.metadata import version

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps([version("trytond"), version("trytond-sale"), *map(str, params)]).encode())
    return h.hexdigest()


def run_tryton(module: str, args: Sequence[str], *, timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m module args`` (a Tryton process of its own); its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("DB_NAME", None)
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def build_tryton(target: str | os.PathLike[str], *, orders: int = DEFAULT_ORDERS, seed: int = DEFAULT_SEED,
                 today: date = DEFAULT_TODAY, force: bool = False) -> dict[str, Any]:
    """Build a Tryton database at ``target`` (a ``.sqlite`` path or a PostgreSQL URL); its summary.

    Runs the build in a process of its own (see the module docstring). A SQLite file appears only once
    complete; an existing target is an error unless ``force``.
    """
    t = Target.parse(target)
    flag = ["--sqlite", str(t.path)] if t.path else ["--postgres", os.fspath(target)]
    args = [*flag, "--orders", str(orders), "--seed", str(seed), "--today", today.isoformat(), "--json"]
    return run_tryton("tests.erp.tryton_build", [*args, "--force"] if force else args)


def _publish_sqlite(built: Path, final: Path) -> None:
    """Copy a finished build to ``final`` as one self-contained file, atomically.

    Tryton runs SQLite in WAL mode and keeps its connection open, so recent commits may still be in the
    ``-wal`` file beside the database: the backup API copies a consistent snapshot. The copy stays in
    WAL mode, as Tryton leaves its databases, but closing it folds its WAL into the file, so the file
    alone is complete (and can be copied alone).
    """
    import sqlite3

    partial = final.with_name(f".{final.name}.partial")
    partial.unlink(missing_ok=True)
    source, copy = sqlite3.connect(built), sqlite3.connect(partial)
    try:
        source.backup(copy)
        copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        copy.close()
        source.close()
    if Path(f"{partial}-wal").exists():
        raise RuntimeError(f"{partial}-wal is left over: the copy is not self-contained")
    os.replace(partial, final)


def _drop_postgres(target: Target) -> None:
    import psycopg

    with psycopg.connect(target.admin_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.name}" WITH (FORCE)')


def _postgres_exists(target: Target) -> bool:
    import psycopg

    with psycopg.connect(target.admin_uri, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.name]).fetchone()
    return found is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.erp.tryton_build",
                                     description=(__doc__ or "").split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH", help="the SQLite file to create (NAME.sqlite)")
    where.add_argument("--postgres", metavar="URL", help="the PostgreSQL database to create, e.g. "
                       "postgresql://postgres@127.0.0.1:5432/tryton")
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--today", type=date.fromisoformat, default=DEFAULT_TODAY,
                        help=f"the last day of the data (default {DEFAULT_TODAY})")
    parser.add_argument("--force", action="store_true", help="replace an existing database")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    o = parser.parse_args(argv)
    try:
        final = Target.parse(o.sqlite or o.postgres)
    except ValueError as exc:
        parser.error(str(exc))
    build = final
    if final.path is not None:
        if final.path.exists() and not o.force:
            parser.error(f"{final.path} exists (--force replaces it)")
        final.path.parent.mkdir(parents=True, exist_ok=True)
        build = Target.parse(final.path.with_name(f".{final.name}-building-{os.getpid()}.sqlite"))
        build.path.unlink(missing_ok=True)  # type: ignore[union-attr]
    elif _postgres_exists(final):
        if not o.force:
            parser.error(f"database {final.name} exists (--force replaces it)")
        _drop_postgres(final)
    try:
        summary = _build_here(build, o.orders, o.seed, o.today)
        if build.path is not None and final.path is not None:
            _publish_sqlite(build.path, final.path)
            summary.update(database=final.name, url=final.sqlalchemy_url)
    finally:
        if build.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{build.path}{suffix}").unlink(missing_ok=True)
    if o.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _print_summary(s: dict[str, Any]) -> None:
    print(f"Tryton database ready: {s['url']}")
    print(f"  {s['orders']} orders from {s['start']} to {s['today']} (seed {s['seed']}): {s['sale_states']}")
    print(f"  shipments done: {s['shipments_done']} ({s['shipments_late']} late); "
          f"customer invoices: {s['invoice_states']}")
    top = s["top_customer"]
    print(f"  top customer: {top['name']} (party {top['party_id']}, code {top['code']}): "
          f"{top['revenue']} of {top['total_revenue']} booked")
    print(f"  built in {s['seconds']} s ({s['cpu_seconds']} s CPU; modules "
          f"{s['seconds_activate_modules']} s, setup {s['seconds_setup']} s)")
    print(f"  try: TRYTON_DATABASE_URL={s['url']} "
          "okrsync -p examples/tryton/okrsync.yaml validate --check-sources")


if __name__ == "__main__":
    sys.exit(main())
