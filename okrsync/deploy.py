"""Helpers for running okrsync as Prefect deployments (``prefect.yaml``) and alerting on their runs.

- :func:`check_installed` is the pull step of every deployment in ``prefect.yaml``. A Prefect worker
  runs it in the flow run's process before it loads the entrypoint ``flows.okr_flow.okrsync_run``.
  It does not depend on where the deployment was made from, so any worker where okrsync is installed
  can run the flow, from any working directory. When the flow cannot be imported there, the run
  fails at once with what to install, instead of an import traceback deep in Prefect.
- ``python -m okrsync.deploy webhook-block --url URL`` saves the Prefect notification block that
  ``docs/prefect-automation.yaml`` sends through and prints its id (README, "Run on a schedule").

Keep the imports here light: Prefect imports this module for every run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

ENTRYPOINT = "flows.okr_flow.okrsync_run"
ALERT_BLOCK = "okrsync-alert"
# The placeholder of docs/prefect-automation.yaml that stands for the block id (Prefect's automation
# schema wants the block document's UUID; a block's name is not accepted there).
BLOCK_ID_PLACEHOLDER = "OKRSYNC_ALERT_BLOCK_ID"
# What the webhook receives (Slack, Mattermost and most chat webhooks read "text").
WEBHOOK_JSON = {"text": "{{subject}}\n{{body}}"}


class NotInstalledError(RuntimeError):
    """okrsync (or one of its dependencies) cannot be imported where the flow runs."""


def check_installed() -> dict[str, str]:
    """Pull step: okrsync and its flow import in this process. Returns ``okrsync_version`` and
    ``okrsync_location`` for later steps; raises :class:`NotInstalledError` with what to do."""
    try:
        version = metadata.version("okrsync")
    except metadata.PackageNotFoundError:  # on sys.path without being installed (e.g. a git clone)
        version = "unknown (not pip-installed)"
    module, _, name = ENTRYPOINT.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except Exception as exc:
        raise NotInstalledError(
            f"okrsync: cannot import the flow {ENTRYPOINT} on this worker ({type(exc).__name__}: {exc}). "
            "Install okrsync with its dependencies in the worker's Python environment "
            "(`pip install -e /path/to/okrsync` or `pip install 'okrsync @ git+<repo URL>'`), "
            "or give the deployment a git_clone + pip_install_requirements pull step (see prefect.yaml)."
        ) from exc
    import okrsync

    return {"okrsync_version": version, "okrsync_location": str(Path(okrsync.__file__).parent)}


def save_webhook_block(url: str, name: str = ALERT_BLOCK) -> str:
    """Saves (or replaces) a Custom Webhook notification block that POSTs to ``url``; returns its id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(name=name, url=url, method="POST", json_data=WEBHOOK_JSON)
    return str(block.save(name, overwrite=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m okrsync.deploy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hook = sub.add_parser(
        "webhook-block",
        help="Save the Prefect notification block that docs/prefect-automation.yaml uses; print its id.",
    )
    hook.add_argument("--url", required=True, help="The webhook to POST to (Slack, Teams, your own).")
    hook.add_argument("--name", default=ALERT_BLOCK, help=f"The block's name (default {ALERT_BLOCK}).")
    sub.add_parser("check", help="Run the deployments' pull step here: is okrsync's flow importable?")
    args = parser.parse_args(argv)
    if args.command == "webhook-block":
        print(save_webhook_block(args.url, args.name))
    else:
        try:
            print(check_installed())
        except NotInstalledError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
