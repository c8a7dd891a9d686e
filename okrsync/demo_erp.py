"""A seeded, deterministic SQLite "ERP" for ``okrsync demo``: customers, orders, order lines, shipments.

:func:`build_erp` writes a fresh file whose content depends only on ``(today, seed, quarters)``; the mutation
helpers change it as an ERP user would, setting ``write_date`` for the incremental cursor (write, create).

* Money is generated as integer cents, written as Decimal (``NUMERIC(12,2)``): ``total = untaxed + tax``
  exactly, ``untaxed`` = sum of the line amounts, ``tax`` = 20 % of ``untaxed`` rounded half up. SQLite
  keeps NUMERIC as REAL, so compare sums with ``ROUND(…, 2)`` in raw SQL; SQLAlchemy reads exact Decimals.
* Datetimes are naive ERP-local time (UTC), whole seconds, none later than ``today`` 20:00
  (:attr:`ErpSummary.as_of`): give mutations a later ``at`` so a sync that already ran sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from okrsync.errors import NotFound

DEMO_REGIONS = ("EMEA", "Americas", "APAC")
SEGMENTS = ("SMB", "Mid-market", "Enterprise")
TAX_PERCENT = 20
CUSTOMERS = 300
MIN_ORDERS_PER_QUARTER = 1200  # every full quarter; the current one gets its share due by ``today``
HORIZON_HOUR = 20  # no generated timestamp is later than ``today`` at this hour

Arr = npt.NDArray[Any]
_DAY = 86_400
_EPOCH = date(1970, 1, 1)
_REGION_SHARE = (0.42, 0.36, 0.22)
_REGION_GROWTH = (1.03, 1.05, 1.09)  # per quarter, on top of the overall growth
_SEASON = (0.97, 1.0, 0.93, 1.1)  # Q1..Q4
_OFFICE_HOURS = (8 * 3600, 18 * 3600)  # records are created between these seconds after midnight
_COUNTRIES = tuple(  # (region index, country, legal form of company names), grouped by region
    (region, country, legal_form)
    for region, countries in enumerate((
        "Germany:GmbH, France:SAS, United Kingdom:Ltd, Netherlands:B.V., Spain:S.L., Italy:S.r.l., Sweden:AB",
        "United States:Inc., Canada:Ltd, Brazil:Ltda., Mexico:S.A. de C.V.",
        "Australia:Pty Ltd, Japan:K.K., Singapore:Pte. Ltd., India:Pvt. Ltd.",
    ))
    for country, legal_form in (pair.split(":") for pair in countries.split(", "))
)
_NAME_A = ("Nord Alpen Blue Cedar Delta Ember Falcon Granite Harbor Iris "
           "Kestrel Lumen Nova Orion Vega Apex Polar Terra Summit Quartz").split()
_NAME_B = ("Logistics Foods Energy Retail Pharma Motors Textiles Systems "
           "Labs Farms Mining Steel Rail Water Print Health").split()
_SALESPEOPLE = (
    ("Anna Weber", "Luc Moreau", "Sofia Rossi", "James Carter"),
    ("Emily Johnson", "Carlos Mendes", "Olivia Brown", "Ethan Clarke"),
    ("Kenji Sato", "Priya Nair", "Wei Lin Tan", "Chloe Wilson"),
)
_WAREHOUSES = (("Rotterdam", "Lyon"), ("Memphis", "Monterrey"), ("Singapore", "Sydney"))
_PRODUCTS = (  # code, description (services by the hour say so), list price in cents, popularity
    ("HW-100", "Sensor hub S", 18_900, 9), ("HW-110", "Sensor hub Pro", 34_900, 6),
    ("HW-200", "Edge gateway", 79_000, 4), ("HW-210", "Edge gateway, rugged", 124_000, 2),
    ("HW-300", "Temperature probe (pack of 10)", 9_450, 8), ("HW-310", "Vibration sensor", 15_990, 7),
    ("HW-400", "Mounting kit", 2_490, 10), ("HW-410", "Cable set 5 m", 1_275, 10),
    ("SW-100", "Monitoring licence, 1 year", 42_000, 6), ("SW-110", "Analytics add-on, 1 year", 18_000, 4),
    ("SW-200", "Fleet licence (10 devices), 1 year", 96_000, 2), ("SV-100", "Installation (hours)", 9_500, 5),
    ("SV-110", "On-site training (hours)", 12_000, 3), ("SV-200", "Premium support, 1 year", 36_000, 3),
    ("SP-100", "Spare battery pack", 3_990, 7), ("SP-110", "Replacement display", 6_850, 3),
)

metadata = sa.MetaData()
_MONEY = sa.Numeric(12, 2)
_col = partial(sa.Column, nullable=False)


def _table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """An ERP table: integer ``id`` key, ``columns``, ``create_date``, ``write_date`` (NULL until edited)."""
    key = sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)
    stamps = _col("create_date", sa.DateTime), sa.Column("write_date", sa.DateTime)
    return sa.Table(name, metadata, key, *columns, *stamps)


customers = _table("customers", *(_col(name, sa.Text) for name in ("name", "region", "segment", "country")))
orders = _table(
    "orders",
    _col("number", sa.Text, unique=True), _col("customer_id", sa.Integer, sa.ForeignKey("customers.id")),
    _col("region", sa.Text), _col("salesperson", sa.Text),
    _col("state", sa.Text),  # draft | confirmed | done | cancelled
    _col("order_date", sa.Date, index=True), _col("currency", sa.Text),
    _col("untaxed_amount", _MONEY), _col("tax_amount", _MONEY), _col("total_amount", _MONEY),
    sa.Column("crm_reference", sa.Text),  # the CRM deal (Salesforce Opportunity Id) an order books; or NULL
)
order_lines = _table(
    "order_lines",
    _col("order_id", sa.Integer, sa.ForeignKey("orders.id"), index=True),
    _col("product_code", sa.Text), _col("description", sa.Text),
    _col("quantity", _MONEY), _col("unit_price", _MONEY), _col("amount", _MONEY),
)
shipments = _table(
    "shipments",
    _col("order_id", sa.Integer, sa.ForeignKey("orders.id"), index=True),
    _col("warehouse", sa.Text), _col("planned_date", sa.Date),
    sa.Column("effective_date", sa.Date),  # NULL until shipped
    _col("state", sa.Text),  # waiting | done | cancelled
    sa.Column("is_late", sa.Integer),  # the ERP's own effective_date > planned_date; NULL until shipped
)


@dataclass(frozen=True)
class ErpSummary:
    """What :func:`build_erp` wrote. ``as_of`` is the latest generated create/write timestamp."""

    orders: int
    lines: int
    shipments: int
    customers: int
    first_order_date: date
    last_order_date: date
    as_of: datetime


def build_erp(path: Path, *, today: date, seed: int = 7, quarters: int = 5,
              until: datetime | None = None) -> ErpSummary:
    """Write a new demo ERP at ``path``: orders over ``quarters`` calendar quarters, the last one being
    the quarter of ``today``, filled up to and including ``today``. With ``until`` (naive UTC), no
    ``create_date``/``write_date`` is later than it: a demo built at 09:00 holds nothing dated 15:00,
    which the next sync would rightly report as dated in the future. Raises :class:`FileExistsError` if
    ``path`` exists (delete a previous demo ERP first). The same arguments give the same content."""
    if quarters < 1:
        raise ValueError(f"quarters must be at least 1, got {quarters}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.open("xb").close()  # claims the name atomically: never overwrite
    except FileExistsError:
        raise FileExistsError(f"{path} exists: build_erp never overwrites a file; delete it first") from None
    try:
        data = _generate(np.random.default_rng(seed), today, quarters)
        if until is not None:  # seconds since 1970, as _generate writes them; negative is NULL
            cap = int((until - datetime(1970, 1, 1)).total_seconds())
            for cols in data.values():
                for c in ("create_date", "write_date"):
                    cols[c] = np.where(cols[c] > cap, cap, cols[c])
        with _connect(path, new=True) as conn:
            metadata.create_all(conn)
            for table in (customers, orders, order_lines, shipments):
                if rows := _rows(table, data[table.name]):  # an empty list would insert one default row
                    conn.execute(table.insert(), rows)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stamps = np.concatenate([cols[c] for cols in data.values() for c in ("create_date", "write_date")])
    first, last = (_EPOCH + timedelta(days=int(d)) for d in data["orders"]["order_date"][[0, -1]])
    n = {name: len(cols["id"]) for name, cols in data.items()}
    as_of = datetime(1970, 1, 1) + timedelta(seconds=int(stamps.max()))
    return ErpSummary(n["orders"], n["order_lines"], n["shipments"], n["customers"], first, last, as_of)


def change_order_amount(path: Path, order_id: int, new_total: Decimal, *, at: datetime) -> None:
    """Set an order's total (tax included) to ``new_total`` the way a user editing its lines would.

    ``untaxed`` becomes the amount whose rounded 20 % tax adds up to ``new_total`` (for the one cent value
    in six no amount reaches, ``tax = new_total - untaxed`` is a cent off), spread over the lines in
    proportion to their amounts (the last takes the rounding) so ``untaxed = sum(line amounts)`` holds;
    quantities stay, ``unit_price = amount / quantity`` rounded. The order and changed lines get
    ``write_date = at``; shipments are left alone.
    """
    total = _cents(new_total)
    guess = (abs(total) * 200 + 100 + TAX_PERCENT) // (200 + 2 * TAX_PERCENT)  # |total| / 1.2 rounded
    exact = (u for u in (guess, guess - 1, guess + 1) if u + _tax(u) == abs(total))
    net = next(exact, guess) * (-1 if total < 0 else 1)
    with _connect(path, at) as conn:
        created = conn.execute(sa.select(orders.c.create_date).where(orders.c.id == order_id)).scalar()
        if created is None:
            raise NotFound(f"order {order_id} does not exist in {path}")
        if at < created:
            raise ValueError(f"at={at} is before order {order_id} was created ({created})")
        line_cols = sa.select(order_lines.c.id, order_lines.c.quantity, order_lines.c.amount)
        lines = conn.execute(line_cols.where(order_lines.c.order_id == order_id).order_by("id")).all()
        old = [_cents(line.amount) for line in lines]
        weights = old if sum(old) else [1] * len(old)
        shares = [net * w // sum(weights) for w in weights[:-1]]
        for line, cents in zip(lines, [*shares, net - sum(shares)], strict=True):
            if cents != _cents(line.amount):
                amount = _dec(cents)
                price = (amount / line.quantity).quantize(Decimal("0.01")) if line.quantity else amount
                update = sa.update(order_lines).where(order_lines.c.id == line.id)
                conn.execute(update.values(amount=amount, unit_price=price, write_date=at))
        values = {"untaxed_amount": _dec(net), "tax_amount": _dec(total - net), "total_amount": _dec(total)}
        conn.execute(sa.update(orders).where(orders.c.id == order_id).values({**values, "write_date": at}))


@dataclass(frozen=True)
class Booking:
    """An order the ERP books from a CRM deal: its reference, amount (untaxed), currency and date."""

    reference: str
    amount: Decimal
    currency: str
    order_date: date


def book_crm_deals(path: Path, bookings: list[Booking], *, until: datetime) -> list[int]:
    """Add a confirmed order per booking (``crm_reference`` = the deal), created the morning of its order
    date (no later than ``until``), for customers taken in turn, with one line (the deal's amount, so
    ``untaxed = sum(line amounts)`` holds); returns the new order ids."""
    with _connect(path) as conn:
        first = (conn.execute(sa.select(sa.func.max(orders.c.id))).scalar() or 0) + 1
        first_line = (conn.execute(sa.select(sa.func.max(order_lines.c.id))).scalar() or 0) + 1
        lines = []
        people: dict[str, str] = {r[0]: r[1] for r in conn.execute(
            sa.select(orders.c.region, sa.func.min(orders.c.salesperson)).group_by(orders.c.region))}
        custs = conn.execute(sa.select(customers.c.id, customers.c.region).order_by(customers.c.id)).all()
        rows = []
        for i, b in enumerate(bookings):
            cust = custs[(i * 37) % len(custs)]
            untaxed = b.amount.quantize(Decimal("0.01"))
            tax = _dec(_tax(_cents(untaxed)))
            created = min(until, datetime(b.order_date.year, b.order_date.month, b.order_date.day, 9, 30))
            rows.append({
                "id": first + i, "number": f"SO-CRM-{first + i:06d}", "customer_id": cust.id,
                "region": cust.region, "salesperson": people.get(cust.region, "Anna Weber"),
                "state": "confirmed", "order_date": b.order_date, "currency": b.currency,
                "untaxed_amount": untaxed, "tax_amount": tax, "total_amount": untaxed + tax,
                "crm_reference": b.reference, "create_date": created,
                "write_date": None,
            })
            lines.append({
                "id": first_line + i, "order_id": first + i, "product_code": "CRM-DEAL",
                "description": f"As won in the CRM ({b.reference})", "quantity": Decimal(1),
                "unit_price": untaxed, "amount": untaxed, "create_date": created, "write_date": None,
            })
        if rows:
            conn.execute(orders.insert(), rows)
            conn.execute(order_lines.insert(), lines)
    return [r["id"] for r in rows]


def delete_order(path: Path, order_id: int) -> None:
    """Hard-delete an order with its lines and shipments: nothing is left for a cursor to see, only a
    key reconciliation notices. Raises :class:`~okrsync.errors.NotFound` for an unknown id."""
    with _connect(path) as conn:
        conn.execute(sa.delete(shipments).where(shipments.c.order_id == order_id))
        conn.execute(sa.delete(order_lines).where(order_lines.c.order_id == order_id))
        if conn.execute(sa.delete(orders).where(orders.c.id == order_id)).rowcount == 0:
            raise NotFound(f"order {order_id} does not exist in {path}")


def inject_bad_rows(path: Path, *, at: datetime) -> list[int]:
    """Break 3 orders as a faulty import would: negate their untaxed, tax and total amounts (so
    ``total = untaxed + tax`` holds, but ``untaxed`` no longer matches the untouched lines). The victims
    are confirmed or done, positive, created by ``at``, of the latest quarter with orders, taken at the
    quartiles of their ids (deterministic); they get ``write_date = at``. Returns their ids."""
    with _connect(path, at) as conn:
        last = conn.execute(sa.select(sa.func.max(orders.c.order_date))).scalar() or date.min
        candidates = sa.select(orders.c.id).where(
            orders.c.state.in_(("confirmed", "done")), orders.c.total_amount > 0, orders.c.create_date <= at,
            orders.c.order_date >= date(last.year, (last.month - 1) // 3 * 3 + 1, 1),
        )
        ids = conn.execute(candidates.order_by(orders.c.id)).scalars().all()
        if len(ids) < 3:
            raise ValueError(f"fewer than 3 orders of the latest quarter of {path} qualify at {at}")
        picked = [ids[len(ids) // 4], ids[len(ids) // 2], ids[3 * len(ids) // 4]]
        negated = {c: -orders.c[c] for c in ("untaxed_amount", "tax_amount", "total_amount")}
        conn.execute(sa.update(orders).where(orders.c.id.in_(picked)).values({**negated, "write_date": at}))
    return picked


@contextmanager
def _connect(path: Path, at: datetime | None = None, *, new: bool = False) -> Iterator[sa.Connection]:
    """One transaction on the ERP file (foreign keys enforced); checks that ``at`` is naive."""
    if at is not None and at.tzinfo is not None:
        raise ValueError(f"at must be a naive ERP-local (UTC) datetime, got {at!r}")
    if not new and not Path(path).is_file():  # connecting would silently create an empty database
        raise FileNotFoundError(f"no demo ERP at {path}: build it with build_erp first")
    engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)), poolclass=sa.pool.NullPool)
    sa.event.listen(engine, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA foreign_keys = ON"))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _cents(amount: Decimal) -> int:
    cents = Decimal(amount) * 100
    if cents != cents.to_integral_value() or abs(cents) >= 10**12:
        raise ValueError(f"{amount} is not an amount NUMERIC(12,2) holds exactly")
    return int(cents)


def _dec(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _tax(untaxed: Any) -> Any:
    """20 % of non-negative cents (int or array), rounded half up to the cent: exact integer arithmetic."""
    return (untaxed * TAX_PERCENT + 50) // 100


def _rows(table: sa.Table, cols: dict[str, Arr]) -> list[dict[str, Any]]:
    """Column arrays as insert rows, typed by the table: Numeric columns hold cents, Date columns days
    and DateTime columns seconds since 1970; a negative date, datetime or integer is NULL."""
    out: dict[str, list[Any]] = {}
    for name, values in cols.items():
        kind = table.c[name].type
        if isinstance(kind, sa.Numeric):
            out[name] = [_dec(v) for v in values.tolist()]
        elif isinstance(kind, sa.Date | sa.DateTime):
            stamps = values.astype("datetime64[s]" if isinstance(kind, sa.DateTime) else "datetime64[D]")
            stamps[values < 0] = np.datetime64("NaT")
            out[name] = stamps.tolist()
        else:
            out[name] = values.tolist()
            if values.dtype.kind == "i":
                out[name] = [v if v >= 0 else None for v in out[name]]
    return [dict(zip(out, row, strict=True)) for row in zip(*out.values(), strict=True)]


def _later(rng: np.random.Generator, base: Arr, lo: int, hi: int, share: float, cap: int) -> Arr:
    """``base`` + U[lo, hi) s for a ``share`` of rows, else NULL (-1); NULL past ``cap`` (not yet edited)."""
    out = base + rng.integers(lo, hi, base.size)
    return np.where((rng.random(base.size) < share) & (out <= cap), out, -1)


def _generate(rng: np.random.Generator, today: date, quarters: int) -> dict[str, dict[str, Arr]]:
    """Every column of every table as an array (see :func:`_rows`), driven by ``rng`` alone."""
    today_d, n_c = (today - _EPOCH).days, CUSTOMERS
    horizon = today_d * _DAY + HORIZON_HOUR * 3600

    # customers: region, segment, country, account manager, how much they order
    c_region, c_segment = rng.choice(3, n_c, p=_REGION_SHARE), rng.choice(3, n_c, p=(0.6, 0.28, 0.12))
    c_country = np.array([rng.choice([i for i, c in enumerate(_COUNTRIES) if c[0] == r]) for r in c_region])
    c_rep = rng.integers(0, 4, n_c)
    c_weight = rng.lognormal(0.0, 0.8, n_c) * np.array([1.0, 1.8, 3.5])[c_segment]
    c_name = rng.choice(len(_NAME_A) * len(_NAME_B), n_c, replace=False)

    # orders: per quarter a seasonal, growing volume over weighted days (quiet weekends, August, Christmas;
    # a quarter-end push); the current quarter gets the share due by today
    q_now, parts = today.year * 4 + (today.month - 1) // 3, []
    for k in range(quarters):
        q = q_now - quarters + 1 + k  # quarters counted from year 0
        days = np.arange(*((date(x // 4, x % 4 * 3 + 1, 1) - _EPOCH).days for x in (q, q + 1)))
        m0 = days.astype("datetime64[D]").astype("datetime64[M]")  # first day of the month
        month, dom = m0.astype(int) % 12 + 1, days - m0.astype("datetime64[D]").astype(int) + 1
        w = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.25, 0.1])[(days + 3) % 7]  # 1970-01-01 was a Thursday
        w *= np.where(month == 8, 0.75, 1.0) * np.where((month == 12) & (dom > 20), 0.45, 1.0)
        w *= np.where((month % 3 == 0) & (dom >= 15), 1.3, 1.0)
        full = max(MIN_ORDERS_PER_QUARTER, round(1330 * _SEASON[q % 4] * 1.045**k * rng.normal(1.0, 0.02)))
        due = days <= today_d
        n, cw = round(full * w[due].sum() / w.sum()), c_weight * np.array(_REGION_GROWTH)[c_region] ** k
        day = days[due][rng.choice(int(due.sum()), n, p=w[due] / w[due].sum())]
        parts.append(np.stack([day, rng.choice(n_c, n, p=cw / cw.sum()), np.full(n, k)]))
    o_day, o_cust, o_q = np.concatenate(parts, axis=1)
    o_secs = rng.integers(*_OFFICE_HOURS, o_day.size)
    by_time = np.lexsort((o_secs, o_day))
    o_day, o_cust, o_q, o_secs = o_day[by_time], o_cust[by_time], o_q[by_time], o_secs[by_time]
    n_o, o_create, o_region = o_day.size, o_day * _DAY + o_secs, c_region[o_cust]
    o_rep = np.where(rng.random(n_o) < 0.08, rng.integers(0, 4, n_o), c_rep[o_cust])
    years = o_day.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
    seq = np.arange(1, n_o + 1) - np.searchsorted(years, years)  # years is sorted: 1, 2, ... within a year

    # lines: 1-5 per order; quantity and discount grow with the segment; list prices +1 % a quarter
    n_lines = rng.choice(np.arange(1, 6), n_o, p=(0.34, 0.28, 0.19, 0.12, 0.07))
    l_order = np.repeat(np.arange(n_o), n_lines)
    n_l, seg = l_order.size, c_segment[o_cust[l_order]]
    popularity = np.array([p[3] for p in _PRODUCTS], dtype=float)
    l_prod = rng.choice(len(_PRODUCTS), n_l, p=popularity / popularity.sum())
    units = rng.geometric(0.35, n_l) * np.array([1, 2, 5])[seg] * 100  # quantities in hundredths
    half_hours = rng.integers(2, 33, n_l) * np.array([1, 1, 2])[seg] * 50
    qty = np.where(np.array(["(hours)" in p[1] for p in _PRODUCTS])[l_prod], half_hours, units)
    list_price = (np.array([p[2] for p in _PRODUCTS])[l_prod] * (100 + o_q[l_order]) + 50) // 100
    discount = rng.integers(np.array([0, 300, 800])[seg], np.array([500, 1000, 1800])[seg])  # basis points
    unit_price = (list_price * (10_000 - discount) + 5_000) // 10_000
    amount = (qty * unit_price + 50) // 100
    untaxed = np.add.reduceat(amount, np.cumsum(n_lines) - n_lines)

    # states: ~5 % cancelled (3 h-15 days after creation), ~3 % draft (mostly recent), else confirmed/done
    u = rng.random(n_o)
    cancelled = (u < 0.05) & (o_create + 3 * 3600 <= horizon)
    draft = ~cancelled & (u < 0.05 + np.where(o_day > today_d - 10, 0.2, 0.025))
    open_, span = ~cancelled & ~draft, np.minimum(15 * _DAY, horizon - o_create) - 3 * 3600
    cancel_at = o_create + 3 * 3600 + (rng.random(n_o) * span).astype(int)

    # shipments: 1 (10 %: 2) per open order, a cancelled one for 40 % of cancelled orders; planned 2-7
    # days after the order, late by 1-6 days with a share falling over the quarters; future ones wait
    n_ship = np.where(open_, 1 + (rng.random(n_o) < 0.1), cancelled & (rng.random(n_o) < 0.4)).astype(int)
    s_order = np.repeat(np.arange(n_o), n_ship)
    n_s, s_day, s_cancelled = s_order.size, o_day[s_order], cancelled[s_order]
    planned = s_day + rng.integers(2, 8, n_s)
    p_late = np.append(np.linspace(0.14, 0.12, max(quarters - 1, 1))[: quarters - 1], 0.1)
    late = rng.random(n_s) < p_late[o_q[s_order]]
    delay = rng.choice(np.arange(1, 7), n_s, p=(0.35, 0.25, 0.17, 0.11, 0.07, 0.05))
    early = np.minimum(rng.choice(3, n_s, p=(0.7, 0.2, 0.1)), planned - s_day - 1)
    effective = np.where(late, planned + delay, planned - early)
    shipped = ~s_cancelled & (effective <= today_d)
    s_create = o_create[s_order] + rng.integers(300, 7200, n_s)
    shipped_at = effective * _DAY + rng.integers(9 * 3600, 17 * 3600, n_s)
    done = open_ & (np.bincount(s_order, weights=shipped, minlength=n_o) == n_ship)
    o_state = np.select([cancelled, draft, done], ["cancelled", "draft", "done"], "confirmed")
    s_pos = np.arange(n_s) - (np.cumsum(n_ship) - n_ship)[s_order]  # 2nd shipment: the other warehouse
    s_wh = np.array(_WAREHOUSES)[o_region[s_order], (s_pos + (rng.random(n_s) < 0.25)) % 2]
    s_state = np.where(s_cancelled, "cancelled", np.where(shipped, "done", "waiting"))

    # write dates: done orders when the last shipment left (4 % corrected weeks later), cancelled ones when
    # cancelled; drafts and open orders partly never edited (NULL), their lines edited half the time
    last_ship = np.full(n_o, -1)
    np.maximum.at(last_ship, s_order, np.where(shipped, shipped_at, -1))
    draft_write = _later(rng, o_create, 300, 2 * _DAY, 0.4, horizon)
    open_write = _later(rng, o_create, 600, 3 * _DAY, 0.65, horizon)
    done_write = last_ship + rng.integers(60, 1800, n_o)
    o_write = np.select([done, cancelled, draft], [done_write, cancel_at, draft_write], open_write)
    fixed = o_write + rng.integers(5, 60, n_o) * _DAY
    o_write = np.where(done & (rng.random(n_o) < 0.04) & (fixed <= horizon), fixed, o_write)
    waiting_write = _later(rng, s_create, 3600, 2 * _DAY, 0.3, horizon)
    s_write = np.select([shipped, s_cancelled], [shipped_at, o_write[s_order]], waiting_write)
    edited = np.isin(o_state[l_order], ("draft", "confirmed")) & (rng.random(n_l) < 0.5)

    # customers: created before their first order, some edited since
    first_order = np.full(n_c, horizon)
    np.minimum.at(first_order, o_cust, o_create)
    c_create = (first_order // _DAY - rng.integers(1, 500, n_c)) * _DAY + rng.integers(*_OFFICE_HOURS, n_c)
    c_write = _later(rng, c_create, _DAY, 400 * _DAY, 0.55, horizon)
    a, b = np.divmod(c_name, len(_NAME_B))
    name = [f"{_NAME_A[i]} {_NAME_B[j]} {_COUNTRIES[c][2]}" for i, j, c in zip(a, b, c_country, strict=True)]
    number = [f"SO-{y}-{n:05d}" for y, n in zip(years.tolist(), seq.tolist(), strict=True)]
    ids, regions = np.arange(1, n_o + 1), np.array(DEMO_REGIONS)
    code, description = (np.array(column)[l_prod] for column in list(zip(*_PRODUCTS, strict=True))[:2])
    return {
        "customers": {
            "id": np.arange(1, n_c + 1), "name": np.array(name), "region": regions[c_region],
            "segment": np.array(SEGMENTS)[c_segment], "create_date": c_create, "write_date": c_write,
            "country": np.array([c[1] for c in _COUNTRIES])[c_country],
        },
        "orders": {
            "id": ids, "number": np.array(number), "customer_id": o_cust + 1, "region": regions[o_region],
            "salesperson": np.array(_SALESPEOPLE)[o_region, o_rep], "state": o_state, "order_date": o_day,
            "currency": np.full(n_o, "EUR"), "untaxed_amount": untaxed, "tax_amount": _tax(untaxed),
            "total_amount": untaxed + _tax(untaxed), "create_date": o_create, "write_date": o_write,
        },
        "order_lines": {
            "id": np.arange(1, n_l + 1), "order_id": ids[l_order], "product_code": code,
            "description": description, "quantity": qty, "unit_price": unit_price, "amount": amount,
            "create_date": o_create[l_order], "write_date": np.where(edited, o_write[l_order], -1),
        },
        "shipments": {
            "id": np.arange(1, n_s + 1), "order_id": ids[s_order], "warehouse": s_wh, "planned_date": planned,
            "effective_date": np.where(shipped, effective, -1), "state": s_state, "create_date": s_create,
            "is_late": np.where(shipped, effective > planned, -1), "write_date": s_write,
        },
    }
