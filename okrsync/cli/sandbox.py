"""``okrsync sandbox salesforce``: a local Salesforce-REST-compatible org to try okrsync against.

Like stripe-mock for Stripe: an HTTPS server on loopback that the real simple-salesforce client talks
to, over a seeded org (users, accounts, opportunities in two currencies, leads, cases, deleted rows).
Its certificate, JWT key and ``connection.json`` live in ``--dir``; a restart serves the same org.
The server is :mod:`okrsync.sandboxes.salesforce`, imported only when a command needs it (the CLI's
fast paths stay fast).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from okrsync.cli.context import console
from okrsync.errors import ConfigError, SourceError

sandbox_app = typer.Typer(help="Local stand-ins for SaaS sources, to try okrsync without an account.")
DEFAULT_DIR = Path("salesforce-sandbox")


def change_records(state_dir: Path, percent: float, seed: int) -> tuple[list[str], list[str]]:
    """Change ``percent`` % of the running sandbox's live opportunities through its REST API, as users
    would: a new Amount for most, a delete for one in five. The recently created ones (last 92 days,
    what this quarter's KRs read) are picked first. Returns (updated ids, deleted ids)."""
    import random

    from connectors.salesforce.client import SfClient
    from connectors.salesforce.options import SalesforceOptions
    from connectors.salesforce.values import parse_datetime
    from okrsync.sandboxes.background import runner_module

    c = runner_module().read_connection(state_dir)
    if c is None:
        raise ConfigError(f"no sandbox settings in {state_dir}", hint="start one first: "
                          f"`okrsync sandbox salesforce --dir {state_dir} --background`")
    options = SalesforceOptions(auth="jwt", username=c["username"], consumer_key=c["consumer_key"],
                                private_key_file=c["private_key_file"], login_url=c["login_url"],
                                ca_bundle=c["ca_bundle"])
    client = SfClient("sandbox", options, state_dir)
    try:
        rows = client.call("listing opportunities", lambda sf: sf.query_all(
            "SELECT Id, CreatedDate FROM Opportunity ORDER BY Id"))["records"]
        count = max(1, round(len(rows) * percent / 100))
        since = (datetime.now(UTC) - timedelta(days=92)).isoformat()
        recent = [r["Id"] for r in rows if parse_datetime(r["CreatedDate"]).isoformat() >= since[:19]]
        chosen = set(recent)
        older = [r["Id"] for r in rows if r["Id"] not in chosen]
        rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        picked = rng.sample(recent, min(count, len(recent)))
        picked += rng.sample(older, count - len(picked))
        deleted, updated = picked[: len(picked) // 5], picked[len(picked) // 5:]
        for rid in updated:
            amount = round(rng.uniform(500, 250_000), 2)

            def update(sf: Any, rid: str = rid, amount: float = amount) -> Any:
                return sf.Opportunity.update(rid, {"Amount": amount})

            client.call("updating an opportunity", update)
        for rid in deleted:

            def delete(sf: Any, rid: str = rid) -> Any:
                return sf.Opportunity.delete(rid)

            client.call("deleting an opportunity", delete)
    finally:
        client.close()
    return updated, deleted


@sandbox_app.command("salesforce")
def salesforce(
    directory: Annotated[Path, typer.Option("--dir", help="Where its certificate, JWT key and "
                                            "connection.json live.")] = DEFAULT_DIR,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: the last one used in "
                                             "--dir, else 8443).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated org.")] = 7,
    opportunities: Annotated[int, typer.Option(min=0, help="Opportunities in the org.")] = 2000,
    background: Annotated[bool, typer.Option("--background", help="Start detached and return.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the one started with --background.")] = False,
    org_time: Annotated[str | None, typer.Option(hidden=True, help="Generate the org as of this instant "
                                                 "(ISO, with offset).")] = None,
    change: Annotated[float | None, typer.Option(
        min=0.01, max=100, help="Change this % of the running sandbox's opportunities (new amounts, "
        "one in five deleted) through its API, then return.")] = None,
) -> None:
    """Serve a seeded Salesforce org on https://127.0.0.1 (REST, queryAll, Bulk 2.0, logins)."""
    from okrsync.sandboxes.background import port_for, runner_module, start_background, stop_background

    if change is not None:
        updated, deleted = change_records(directory, change, seed)
        console.print(f"changed {len(updated)} opportunities and deleted {len(deleted)} in the sandbox; "
                      "the next `okrsync run` pulls exactly these", soft_wrap=True)
        return

    if stop:
        stopped = stop_background(directory)
        console.print("stopped the Salesforce sandbox" if stopped
                      else f"no sandbox is running for {directory}")
        return
    when = datetime.fromisoformat(org_time) if org_time else None
    if background:
        pid = start_background(directory, port=port, seed=seed, opportunities=opportunities, org_time=when)
        console.print(f"Salesforce sandbox running in the background (pid {pid}), settings in "
                      f"{directory}/connection.json; stop it with "
                      f"`okrsync sandbox salesforce --dir {directory} --stop`", soft_wrap=True)
        return
    try:
        runner_module().serve_forever(directory, port=port_for(directory, port), seed=seed,
                                opportunities=opportunities, now=when)
    except OSError as exc:
        raise SourceError(str(exc), hint="stop what uses that port, or pick another with --port") from None
