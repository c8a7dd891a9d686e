"""The SQL connector against Tryton's tables on PostgreSQL: the cases of tests.connectors.tryton_sql."""

from __future__ import annotations

import pytest

from tests.connectors.tryton_sql import (  # noqa: F401  (the cases, collected here)
    test_dates_stamps_and_flags_read_as_their_types,
    test_incremental_read_returns_exactly_the_sale_tryton_changed,
    test_sale_amounts_are_exact_decimals,
    test_the_whole_invoice_table_reads,
    test_tryton_columns_have_their_types,
)
from tests.erp.fixtures import (  # noqa: F401  (fixtures the cases use)
    TrytonDb,
    tryton_for,
    tryton_pg_template,
    tryton_postgres,
)

# Every case needs a Tryton database built through Tryton's own API (minutes of CPU unless
# OKRSYNC_TRYTON_CACHE holds one): `slow`, so README command 2 skips them and .ci/run runs them.
pytestmark = pytest.mark.slow


@pytest.fixture
def tryton_db(request: pytest.FixtureRequest) -> TrytonDb:
    return tryton_for(request, "postgresql")
