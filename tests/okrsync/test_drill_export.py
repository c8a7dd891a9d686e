"""CSV cells a spreadsheet opens as data (OWASP, CSV injection): text that starts like a formula gets a
leading single quote; numbers, dates and empty cells are written as they are."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.drill_export import cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/","Click me")', '\'=HYPERLINK("http://evil.example/","Click me")'),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-5", "'-5"),  # text, even when it reads as a number: OWASP quotes it
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("EMEA", "EMEA"),
        ("a=b", "a=b"),
        ("", ""),
        (Decimal("-5"), "-5"),  # numbers stay numbers
        (Decimal("-12.50"), "-12.50"),
        (-3, "-3"),
        (-0.5, "-0.5"),
        (None, ""),
        (date(2026, 10, 1), "2026-10-01"),
        (datetime(2026, 10, 1, 8, 30), "2026-10-01T08:30:00Z"),
    ],
)
def test_a_cell_is_quoted_only_when_it_is_text_starting_like_a_formula(value: object, written: str) -> None:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow([cell(value)])
    (row,) = csv.reader(io.StringIO(buf.getvalue(), newline=""))
    assert row == [written]


@given(st.text())
def test_no_text_cell_starts_like_a_formula_and_its_text_is_kept(text: str) -> None:
    out = cell(text)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert out in (text, "'" + text)
