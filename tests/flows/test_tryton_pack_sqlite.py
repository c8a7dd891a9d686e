"""The Tryton metric pack on SQLite: the cases of :mod:`tests.flows.tryton_pack`."""

from __future__ import annotations

import pytest

from tests.erp.fixtures import (  # noqa: F401  (fixtures the cases use)
    tryton_sqlite,
    tryton_sqlite_template,
)
from tests.flows.tryton_pack import (  # noqa: F401  (the cases, collected here)
    pack,
    test_a_sale_cancelled_the_tryton_way_is_not_booked_revenue,
    test_a_sale_in_another_currency_is_booked_at_trytons_rate_of_its_date,
    test_an_invoice_credited_with_refund_is_taken_back_once,
    test_on_time_shipment_is_by_the_original_planned_date_and_overdue_counts_late,
    test_pack_krs_equal_trytons_own_numbers_before_and_after_a_change,
    test_pack_validates_against_trytons_schema,
)

# Every case needs a Tryton database built through Tryton's own API (minutes of CPU unless
# OKRSYNC_TRYTON_CACHE holds one): `slow`, so README command 2 skips them and .ci/run runs them.
pytestmark = pytest.mark.slow


@pytest.fixture
def backend() -> str:
    return "sqlite"
