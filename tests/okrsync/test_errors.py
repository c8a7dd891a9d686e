"""Errors carry where they happened as fields, and render that place once."""

from __future__ import annotations

import pickle

from okrsync.errors import ConfigError, OkrsyncError, SourceError


def test_the_location_renders_once_in_front_of_the_reason() -> None:
    exc = SourceError("HTTP 503", source="crm", stream="opportunities", transient=True, hint="try later")
    assert exc.message == "source 'crm', stream 'opportunities': HTTP 503"
    assert str(exc) == "source 'crm', stream 'opportunities': HTTP 503\n  → try later"
    assert exc.reason == "HTTP 503" and exc.transient


def test_at_fills_in_what_a_lower_layer_did_not_know_and_never_overwrites() -> None:
    exc = ConfigError("environment variable ERP_PW is not set", source="erp")
    assert exc.at(source="other", stream="orders", record=42) is exc
    assert exc.message == (
        "source 'erp', stream 'orders', record 42: environment variable ERP_PW is not set"
    )
    exc.at(stream="again")
    assert exc.message.count("stream") == 1 and exc.args == (exc.message,)


def test_an_error_without_a_place_is_its_reason() -> None:
    assert OkrsyncError("the store is locked").message == "the store is locked"
    assert OkrsyncError("x", record=0).message == "record 0: x"  # record 0 is a place


def test_fields_survive_crossing_processes() -> None:
    exc = SourceError("cut", source="crm", stream="leads", transient=True, hint="h")
    back = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, as Dask's task runner does
    assert type(back) is SourceError and back.message == exc.message
    assert (back.source, back.stream, back.transient, back.hint) == ("crm", "leads", True, "h")
