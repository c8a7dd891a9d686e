"""Filters compiled to SQL select exactly what a plain-Python reading of the filter selects.

The reference evaluator below works on the *meaning* of each generated value (a canonical Python
value), while the filter AST carries one of its written forms (ISO text, numeric text, an aware
datetime...), so coercion is checked as well as the operators. SQL three-valued logic is modelled
explicitly: a comparison with NULL is unknown, ``not`` of unknown is unknown, only true rows are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.compile import condition_for, window_condition
from metrics.periods import parse_period
from metrics.spec import And, Condition, Filter, Not, Or, TrailingWindow, Window
from okrsync.errors import ConfigError, MetricError
from okrsync.schema import Field, FieldType, StreamSchema


class ScaledDecimal(sa.TypeDecorator[Decimal]):
    """Exact money on SQLite as integers of hundredths, like the store's DECIMAL columns.

    A bind value that is not a whole number of hundredths is refused rather than rounded, so a filter
    value that slipped past the scale check would fail loudly here.
    """

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value).scaleb(2)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value!r} has more than 2 decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).scaleb(-2)


metadata = sa.MetaData()
ORDERS = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("s", sa.String),
    sa.Column("n", sa.Integer),
    sa.Column("amt", ScaledDecimal),
    sa.Column("f", sa.Float),
    sa.Column("b", sa.Boolean),
    sa.Column("day", sa.Date),
    sa.Column("ts", sa.DateTime),
)
SCHEMA = StreamSchema(
    (
        Field("id", FieldType.INTEGER),
        Field("s", FieldType.STRING),
        Field("n", FieldType.INTEGER),
        Field("amt", FieldType.DECIMAL, scale=2),
        Field("f", FieldType.FLOAT),
        Field("b", FieldType.BOOLEAN),
        Field("day", FieldType.DATE),
        Field("ts", FieldType.DATETIME),
    )
)
DATA_FIELDS = ("s", "n", "amt", "f", "b", "day", "ts")
WHERE = "metric 'revenue'"


@pytest.fixture(scope="module")
def conn() -> Iterator[sa.Connection]:
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def selected_ids(conn: sa.Connection, f: Filter | None) -> set[int]:
    stmt = sa.select(ORDERS.c.id).where(condition_for(f, ORDERS, SCHEMA, where=WHERE))
    return set(conn.execute(stmt).scalars())


def load(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(ORDERS.delete())
    if rows:
        conn.execute(ORDERS.insert(), [{"id": i, **r} for i, r in enumerate(rows)])


# --- canonical values (what a value means) and their written forms (what a project file holds) ---

HOSTILE = ["' OR 1=1 --", "'; DROP TABLE orders; --", '"quoted"', "it's"]
SPECIAL = ["%", "_", "/", "a%b", "a_b", "a/b", "50%", "5_0", "/%", "%_/", "", " ", "A", "a", "ab", "AB"]
UNICODE = ["é", "É", "ß", "日本", "naïve", "Ωmega"]
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=5)
# A small alphabet of the characters that matter to LIKE and quoting, so substrings recur across rows.
TRICKY = "aA/%_' é"
SHORT = st.text(TRICKY, max_size=4)

CANONICAL: dict[str, st.SearchStrategy[Any]] = {
    "s": st.sampled_from(HOSTILE + SPECIAL + UNICODE) | TEXT | SHORT,
    "n": st.integers(-3, 3) | st.integers(-(2**40), 2**40),
    "amt": st.integers(-8, 8).map(lambda k: Decimal(k * 25).scaleb(-2)),
    "f": st.sampled_from([-1.5, 0.0, 0.1, 0.25, 2.0, 1e10]),
    "b": st.booleans(),
    "day": st.integers(0, 6).map(lambda k: date(2026, 1, 1) + timedelta(days=k)),
    "ts": st.tuples(st.integers(0, 10), st.sampled_from([0, 1, 999_999])).map(
        lambda km: datetime(2026, 1, 1) + timedelta(minutes=30 * km[0], microseconds=km[1])
    ),
}


def written_forms(name: str, v: Any) -> st.SearchStrategy[Any]:
    """The ways a project file may write canonical value ``v`` for field ``name``."""
    if name == "n":
        return st.sampled_from([v, str(v), Decimal(v)])
    if name == "amt":
        forms = [v, str(v), f" {v} "]
        return st.sampled_from(forms + ([int(v)] if v == int(v) else []))
    if name == "f":
        return st.sampled_from([Decimal(repr(v)), repr(v)])
    if name == "day":
        return st.sampled_from([v, v.isoformat()])
    if name == "ts":
        # An aware reading of the same instant: local = UTC + offset, written with that offset.
        def aware(hours: int) -> str:
            local = v + timedelta(hours=hours)
            return local.isoformat() + f"{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"

        return st.sampled_from([v.isoformat(), v.isoformat(sep=" ")]) | st.integers(-11, 14).map(aware)
    return st.just(v)


ORDERED = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null")
OPS: dict[str, tuple[str, ...]] = {name: ORDERED for name in DATA_FIELDS}
OPS["s"] = ORDERED + ("contains", "starts_with")
OPS["b"] = ("=", "!=", "in", "not_in", "is_null", "not_null")


@dataclass(frozen=True)
class Ref:
    """The reference form of a filter node: ``kind`` is cond/and/or/not."""

    kind: str
    field: str = ""
    op: str = ""
    values: tuple[Any, ...] = ()
    children: tuple[Ref, ...] = ()


@st.composite
def conditions(
    draw: st.DrawFn, fields: tuple[str, ...] = DATA_FIELDS, text_ops_only: bool = False
) -> tuple[Filter, Ref]:
    name = draw(st.sampled_from(fields))
    op = draw(st.sampled_from(("contains", "starts_with") if text_ops_only else OPS[name]))
    if op in ("is_null", "not_null"):
        return Condition(field=name, op=op), Ref("cond", name, op)
    if op in ("contains", "starts_with"):
        text = draw(st.text(TRICKY, max_size=2) | CANONICAL["s"])
        return Condition(field=name, op=op, value=text), Ref("cond", name, op, (text,))
    count = {"in": draw(st.integers(1, 4)), "not_in": draw(st.integers(1, 4)), "between": 2}.get(op, 1)
    values = [draw(CANONICAL[name]) for _ in range(count)]
    if op == "between":
        values.sort()
    forms = [draw(written_forms(name, v)) for v in values]
    written = tuple(forms) if op in ("in", "not_in", "between") else forms[0]
    return Condition(field=name, op=op, value=written), Ref("cond", name, op, tuple(values))


def combine(children: st.SearchStrategy[tuple[Filter, Ref]]) -> st.SearchStrategy[tuple[Filter, Ref]]:
    def node(kind: str, items: list[tuple[Filter, Ref]]) -> tuple[Filter, Ref]:
        asts = tuple(a for a, _ in items)
        refs = tuple(r for _, r in items)
        built = And.model_validate({"and": asts}) if kind == "and" else Or.model_validate({"or": asts})
        return built, Ref(kind, children=refs)

    lists = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        lists.map(lambda items: node("and", items)),
        lists.map(lambda items: node("or", items)),
        children.map(lambda item: (Not.model_validate({"not": item[0]}), Ref("not", children=(item[1],)))),
    )


FILTERS = st.recursive(conditions(), combine, max_leaves=8)
# Text matching gets its own, denser run: among all fields and operators it would be drawn rarely.
TEXT_FILTERS = st.recursive(conditions(("s",), text_ops_only=True), combine, max_leaves=3)


def _ascii_fold(text: str) -> str:
    # SQLite folds only ASCII letters when matching case-insensitively.
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def reference(ref: Ref, row: dict[str, Any]) -> bool | None:
    """Kleene three-valued evaluation of ``ref`` on ``row`` (None = unknown)."""
    if ref.kind == "and":
        results = [reference(c, row) for c in ref.children]
        return False if False in results else (None if None in results else True)
    if ref.kind == "or":
        results = [reference(c, row) for c in ref.children]
        return True if True in results else (None if None in results else False)
    if ref.kind == "not":
        inner = reference(ref.children[0], row)
        return None if inner is None else not inner
    r = row[ref.field]
    if ref.op == "is_null":
        return r is None
    if ref.op == "not_null":
        return r is not None
    if r is None:
        return None
    vs = ref.values
    checks = {
        "=": lambda: r == vs[0],
        "!=": lambda: r != vs[0],
        "<": lambda: r < vs[0],
        "<=": lambda: r <= vs[0],
        ">": lambda: r > vs[0],
        ">=": lambda: r >= vs[0],
        "in": lambda: r in vs,
        "not_in": lambda: r not in vs,
        "between": lambda: vs[0] <= r <= vs[1],
        "contains": lambda: _ascii_fold(vs[0]) in _ascii_fold(r),
        "starts_with": lambda: _ascii_fold(r).startswith(_ascii_fold(vs[0])),
    }
    return bool(checks[ref.op]())


ROWS = st.lists(
    st.fixed_dictionaries({name: st.none() | CANONICAL[name] for name in DATA_FIELDS}), max_size=12
)


def assert_values_are_bound(stmt: sa.Select[Any], conn: sa.Connection) -> None:
    """No literal in the SQL text: no quotes (besides the ESCAPE character) and no digits."""
    sql = str(stmt.compile(conn, compile_kwargs={"render_postcompile": True}))
    bare = sql.replace("ESCAPE '/'", "")
    assert "'" not in bare, sql
    assert not re.search(r"\d", bare), sql


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=FILTERS, rows=ROWS)
def test_sql_selects_exactly_the_reference_rows(
    conn: sa.Connection, pair: tuple[Filter, Ref], rows: list
) -> None:
    ast, ref = pair
    load(conn, rows)
    stmt = sa.select(ORDERS.c.id).where(condition_for(ast, ORDERS, SCHEMA, where=WHERE))
    assert_values_are_bound(stmt, conn)
    expected = {i for i, row in enumerate(rows) if reference(ref, row) is True}
    assert set(conn.execute(stmt).scalars()) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=TEXT_FILTERS, rows=st.lists(st.fixed_dictionaries({"s": st.none() | SHORT}), max_size=12))
def test_text_matching_selects_exactly_the_reference_rows(
    conn: sa.Connection, pair: tuple[Filter, Ref], rows: list
) -> None:
    ast, ref = pair
    load(conn, rows)
    expected = {i for i, row in enumerate(rows) if reference(ref, row) is True}
    assert selected_ids(conn, ast) == expected


# --- focused examples ---


def cond(field: str, op: str, value: Any = None) -> Condition:
    return Condition(field=field, op=op, value=value)  # type: ignore[arg-type]


def test_no_filter_selects_everything(conn: sa.Connection) -> None:
    load(conn, [{"s": None}, {"s": "x"}])
    assert selected_ids(conn, None) == {0, 1}


@pytest.mark.parametrize("op", ["=", "in", "contains", "starts_with", "<="])
def test_injection_text_stays_a_parameter(conn: sa.Connection, op: str) -> None:
    attack = "' OR 1=1 --"
    load(conn, [{"s": attack}, {"s": "harmless"}, {"s": "' or 1=1 -- and more"}])
    value: Any = (attack,) if op == "in" else attack
    stmt = sa.select(ORDERS.c.id).where(condition_for(cond("s", op, value), ORDERS, SCHEMA, where=WHERE))
    compiled = stmt.compile()
    assert "OR 1=1" not in str(compiled)
    assert any(attack in str(v) for v in compiled.params.values())
    expected = {"=": {0}, "in": {0}, "contains": {0, 2}, "starts_with": {0, 2}, "<=": {0}}[op]
    assert set(conn.execute(stmt).scalars()) == expected
    assert conn.execute(sa.select(sa.func.count()).select_from(ORDERS)).scalar() == 3


def test_not_equal_and_not_in_do_not_match_nulls(conn: sa.Connection) -> None:
    load(conn, [{"s": "EMEA"}, {"s": "APAC"}, {"s": None}])
    assert selected_ids(conn, cond("s", "!=", "EMEA")) == {1}
    assert selected_ids(conn, cond("s", "not_in", ["EMEA"])) == {1}
    assert selected_ids(conn, Not.model_validate({"not": cond("s", "=", "EMEA")})) == {1}
    include_nulls = Or.model_validate({"or": [cond("s", "!=", "EMEA"), cond("s", "is_null")]})
    assert selected_ids(conn, include_nulls) == {1, 2}


def test_between_is_inclusive(conn: sa.Connection) -> None:
    load(conn, [{"amt": Decimal(v)} for v in ("0.99", "1.00", "1.50", "2.00", "2.01")])
    assert selected_ids(conn, cond("amt", "between", ["1.00", 2])) == {1, 2, 3}


def test_like_wildcards_and_escape_character_match_literally(conn: sa.Connection) -> None:
    load(conn, [{"s": v} for v in ("50%", "500", "5_0", "5x0", "a/b", "a//b", "ab", "Discount 50% OFF")])
    assert selected_ids(conn, cond("s", "contains", "0%")) == {0, 7}
    assert selected_ids(conn, cond("s", "contains", "_")) == {2}
    assert selected_ids(conn, cond("s", "contains", "/")) == {4, 5}
    assert selected_ids(conn, cond("s", "contains", "//")) == {5}
    assert selected_ids(conn, cond("s", "starts_with", "5%")) == set()
    assert selected_ids(conn, cond("s", "starts_with", "5_")) == {2}
    assert selected_ids(conn, cond("s", "contains", "% off")) == {7}  # ASCII case is ignored


def test_values_are_coerced_to_the_field_type(conn: sa.Connection) -> None:
    load(
        conn,
        [
            {"n": 3, "amt": Decimal("19.99"), "day": date(2026, 10, 1), "ts": datetime(2026, 9, 30, 22, 0)},
            {"n": 4, "amt": Decimal("20.00"), "day": date(2026, 9, 30), "ts": datetime(2026, 9, 30, 21, 59)},
        ],
    )
    assert selected_ids(conn, cond("n", "=", "3")) == {0}
    assert selected_ids(conn, cond("n", "in", [Decimal("4"), "3.0"])) == {0, 1}
    assert selected_ids(conn, cond("amt", "<=", "19.99")) == {0}
    assert selected_ids(conn, cond("amt", ">=", 20)) == {1}
    assert selected_ids(conn, cond("day", ">=", "2026-10-01")) == {0}
    assert selected_ids(conn, cond("day", "<", date(2026, 10, 1))) == {1}
    # Midnight in Berlin summer time is 22:00 UTC the day before.
    assert selected_ids(conn, cond("ts", ">=", "2026-10-01T00:00:00+02:00")) == {0}
    assert selected_ids(conn, cond("ts", "<", "2026-09-30T22:00:00Z")) == {1}
    assert selected_ids(conn, cond("ts", "<", "2026-09-30T22:00:00")) == {1}  # naive means UTC


@pytest.mark.parametrize(
    ("condition", "fragments"),
    [
        (cond("b", ">", True), ["'b'", "'>'", "boolean"]),
        (cond("b", "between", [False, True]), ["'between'", "boolean"]),
        (cond("n", "contains", "1"), ["'contains'", "text fields only"]),
        (cond("day", "starts_with", "2026"), ["'starts_with'", "text fields only"]),
        (cond("s", "=", 5), ["'s'", "5 is not a string value", "quote it"]),
        (cond("s", "in", ["a", 1]), ["1 is not a string value"]),
        (cond("n", "=", "abc"), ["'abc' is not an integer value"]),
        (cond("n", "=", "1.5"), ["whole numbers"]),
        (cond("n", ">", 2**70), ["64 bits"]),
        (cond("n", "=", True), ["True is not an integer value"]),
        (cond("amt", "=", "1.234"), ["keeps 2 decimal places"]),
        (cond("amt", ">", "NaN"), ["'NaN' is not a decimal value"]),
        (cond("amt", ">", "Infinity"), ["finite number"]),
        (cond("f", "=", "1e999"), ["too large"]),
        (cond("b", "=", "true"), ["'true' is not a boolean value"]),
        (cond("b", "=", 1), ["1 is not a boolean value"]),
        (cond("day", "=", "2026-13-01"), ["ISO date"]),
        (cond("day", "=", "20261001"), ["ISO date"]),
        (cond("day", "=", 20261001), ["ISO date"]),
        (cond("ts", ">", "yesterday"), ["ISO datetime"]),
        (cond("ts", ">", 1700000000), ["ISO datetime"]),
        (cond("n", "between", [5, 1]), ["low > high"]),
    ],
)
def test_bad_filters_raise_config_error(condition: Condition, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        condition_for(condition, ORDERS, SCHEMA, where=WHERE)
    message = str(info.value)
    assert WHERE in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_field_names_field_owner_and_available_fields() -> None:
    nested = And.model_validate(
        {"and": [cond("s", "=", "x"), Not.model_validate({"not": cond("regoin", "=", "EU")})]}
    )
    with pytest.raises(ConfigError) as info:
        condition_for(nested, ORDERS, SCHEMA, where=WHERE)
    message = str(info.value)
    assert "'regoin'" in message and WHERE in message
    assert "available fields: id, s, n, amt, f, b, day, ts" in message
    assert info.value.exit_code == 2


def test_field_in_schema_but_missing_from_table_is_a_metric_error() -> None:
    schema = StreamSchema(SCHEMA.fields + (Field("region", FieldType.STRING),))
    with pytest.raises(MetricError, match="'region'"):
        condition_for(cond("region", "=", "EU"), ORDERS, schema, where=WHERE)


# --- time windows ---

EVENTS = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ts", sa.DateTime),
    sa.Column("day", sa.Date),
)


def window_ids(
    conn: sa.Connection, column: str, window: Window, period: str, zone: str, as_of: datetime, values: list
) -> set[int]:
    conn.execute(EVENTS.delete())
    conn.execute(EVENTS.insert(), [{"id": i, column: v} for i, v in enumerate(values)])
    kind = FieldType.DATETIME if column == "ts" else FieldType.DATE
    where = window_condition(EVENTS.c[column], kind, window, parse_period(period, timezone=zone), as_of)
    return set(conn.execute(sa.select(EVENTS.c.id).where(where)).scalars())


INSTANTS = [
    datetime(2026, 9, 30, 21, 59),  # 0
    datetime(2026, 9, 30, 22, 0),  # 1  Berlin: local midnight starting Q4
    datetime(2026, 9, 30, 23, 30),  # 2  Berlin: 01:30 on 1 October
    datetime(2026, 10, 1, 0, 30),  # 3
    datetime(2026, 10, 1, 7, 0),  # 4  Los Angeles: local midnight starting Q4
    datetime(2026, 12, 31, 22, 59),  # 5
    datetime(2026, 12, 31, 23, 0),  # 6  Berlin: local midnight ending Q4
    datetime(2027, 1, 1, 7, 59),  # 7
    datetime(2027, 1, 1, 8, 0),  # 8  Los Angeles: local midnight ending Q4
    None,  # 9
]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Berlin", {1, 2, 3, 4, 5}),  # [09-30T22:00Z, 12-31T23:00Z)
        ("UTC", {3, 4, 5, 6}),
        ("America/Los_Angeles", {4, 5, 6, 7}),  # [10-01T07:00Z, 01-01T08:00Z)
        ("Australia/Sydney", {0, 1, 2, 3, 4}),  # [09-30T14:00Z, 12-31T13:00Z)
    ],
)
def test_datetime_quarter_follows_the_company_timezone(
    conn: sa.Connection, zone: str, expected: set[int]
) -> None:
    after = datetime(2027, 2, 1)
    assert window_ids(conn, "ts", "period_to_date", "2026-Q4", zone, after, INSTANTS) == expected


def test_datetime_windows_are_capped_at_as_of(conn: sa.Connection) -> None:
    berlin = "Europe/Berlin"
    # 2026-09-30T23:30Z is in Berlin's Q4 (and in UTC's Q3).
    assert window_ids(conn, "ts", "period_to_date", "2026-Q4", berlin, datetime(2026, 10, 1), INSTANTS) == {
        1,
        2,
    }
    assert (
        window_ids(conn, "ts", "period_to_date", "2026-Q4", "UTC", datetime(2026, 10, 1), INSTANTS) == set()
    )
    assert (
        window_ids(conn, "ts", "period_to_date", "2026-Q4", berlin, datetime(2026, 9, 1), INSTANTS) == set()
    )
    assert window_ids(conn, "ts", "as_of_end", "2026-Q4", berlin, datetime(2026, 10, 1, 0, 30), INSTANTS) == {
        0,
        1,
        2,
    }
    assert window_ids(conn, "ts", "as_of_end", "2026-Q4", berlin, datetime(2027, 2, 1), INSTANTS) == {
        0,
        1,
        2,
        3,
        4,
        5,
    }
    assert window_ids(conn, "ts", "all", "2026-Q4", berlin, datetime(2026, 1, 1), INSTANTS) == set(range(10))


DAYS = [date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 2), date(2026, 12, 31), date(2027, 1, 1), None]


def test_date_windows_use_the_local_date_of_as_of(conn: sa.Connection) -> None:
    # 2026-10-01T22:30Z is already 2 October in Berlin (00:30 local): that day has begun and counts.
    as_of = datetime(2026, 10, 1, 22, 30)
    assert window_ids(conn, "day", "period_to_date", "2026-Q4", "Europe/Berlin", as_of, DAYS) == {1, 2}
    assert window_ids(conn, "day", "period_to_date", "2026-Q4", "UTC", as_of, DAYS) == {1}
    assert window_ids(conn, "day", "as_of_end", "2026-Q4", "Europe/Berlin", as_of, DAYS) == {0, 1, 2}
    assert window_ids(conn, "day", "as_of_end", "2026-Q4", "UTC", as_of, DAYS) == {0, 1}
    # The order at 2026-09-30T23:30Z carries the local date 2026-10-01 in a Berlin source: Q4.
    later = datetime(2027, 3, 1)
    assert window_ids(conn, "day", "period_to_date", "2026-Q4", "Europe/Berlin", later, DAYS) == {1, 2, 3}
    assert window_ids(conn, "day", "as_of_end", "2026-Q4", "Europe/Berlin", later, DAYS) == {0, 1, 2, 3}
    assert (
        window_ids(conn, "day", "period_to_date", "2026-Q4", "Europe/Berlin", datetime(2026, 9, 30), DAYS)
        == set()
    )
    # Spring-forward: 2026-03-31T22:30Z is 00:30 CEST on 1 April, the first day of Berlin's Q2.
    q2_days = [date(2026, 3, 31), date(2026, 4, 1), date(2026, 4, 2)]
    spring = datetime(2026, 3, 31, 22, 30)
    assert window_ids(conn, "day", "period_to_date", "2026-Q2", "Europe/Berlin", spring, q2_days) == {1}


def test_trailing_windows(conn: sa.Connection) -> None:
    instants = [
        datetime(2026, 10, 3, 11, 59, 59, 999_999),
        datetime(2026, 10, 3, 12, 0),
        datetime(2026, 10, 10, 11, 59),
        datetime(2026, 10, 10, 12, 0),
        None,
    ]
    seven = TrailingWindow(trailing_days=7)
    as_of = datetime(2026, 10, 10, 12, 0)
    assert window_ids(conn, "ts", seven, "2026-Q4", "Europe/Berlin", as_of, instants) == {1, 2}
    # Trailing ignores the period: it reaches back before the quarter started.
    before = [datetime(2026, 9, 28), datetime(2026, 10, 1, 12)]
    assert window_ids(conn, "ts", seven, "2026-Q4", "UTC", datetime(2026, 10, 2), before) == {0, 1}
    # DATE: L − 7 < d <= L, with L = 11 October in Berlin at 2026-10-10T22:30Z.
    days = [date(2026, 10, 4), date(2026, 10, 5), date(2026, 10, 11), date(2026, 10, 12), None]
    late = datetime(2026, 10, 10, 22, 30)
    assert window_ids(conn, "day", seven, "2026-Q4", "Europe/Berlin", late, days) == {1, 2}
    assert window_ids(conn, "day", seven, "2026-Q4", "UTC", late, days) == {0, 1}


def test_window_values_are_bound_and_non_temporal_fields_rejected() -> None:
    period = parse_period("2026-Q4", timezone="Europe/Berlin")
    cond_ = window_condition(EVENTS.c.ts, FieldType.DATETIME, "period_to_date", period, datetime(2026, 11, 1))
    compiled = sa.select(EVENTS.c.id).where(cond_).compile()
    assert sorted(compiled.params.values()) == [datetime(2026, 9, 30, 22), datetime(2026, 11, 1)]
    assert window_condition(EVENTS.c.ts, FieldType.STRING, "all", period, datetime(2026, 11, 1)) is not None
    with pytest.raises(ConfigError, match="string field; a window needs a date or datetime field"):
        window_condition(
            EVENTS.c.id, FieldType.STRING, "as_of_end", period, datetime(2026, 11, 1), where=WHERE
        )
