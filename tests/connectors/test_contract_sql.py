"""The connector contract (connectors.testing) on the sql connector, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connectors.base import SourceConnector, StreamSpec
from connectors.testing import ContractSource, Key, contract_tests
from tests.connectors.conftest import Db

T0 = datetime(2026, 10, 1, 9, 30)


class SqlSource(ContractSource):
    """An ``orders`` table: 40 rows, three with a NULL cursor, the others four to a minute (ties)."""

    stream = StreamSpec(name="orders", source="erp", primary_key="id", cursor="write_date",
                        fields=("amount",), options={"table": "orders"})

    def __init__(self, db: Db) -> None:
        self.db, self.away = db, False
        md = sa.MetaData()
        self.orders = sa.Table("orders", md,
                               sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                               sa.Column("amount", sa.Numeric(14, 2)), sa.Column("write_date", sa.DateTime))
        md.create_all(db.admin)
        ids = list(range(1, 41))
        random.Random(3).shuffle(ids)  # insertion order must not matter
        rows = [{"id": i, "amount": Decimal(i) / 4,
                 "write_date": None if i <= 3 else T0 + timedelta(minutes=i // 4)} for i in ids]
        with db.admin.begin() as conn:
            conn.execute(self.orders.insert(), rows)

    def connector(self) -> SourceConnector:
        return self.db.connector()

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        with self.db.admin.begin() as conn:
            conn.execute(self.orders.update().where(self.orders.c.id.in_([k[0] for k in keys]))
                         .values(write_date=at))

    def fail_next_read(self, after_rows: int) -> None:
        self.db.execute("ALTER TABLE orders RENAME TO orders_away")  # the read's SELECT fails
        self.away = True

    def mend(self) -> None:
        if self.away:
            self.db.execute("ALTER TABLE orders_away RENAME TO orders")
            self.away = False


@pytest.fixture
def contract_source(db: Db) -> SqlSource:
    return SqlSource(db)


TestContract = contract_tests()
