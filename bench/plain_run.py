"""The baseline of the local-run-tax benchmark: a whole run of a project by direct calls, nothing else.

``python -P bench/plain_run.py <project file>`` (``-P``: bench/ stays off ``sys.path``): load the project,
open the store, register the OKRs, open a run row, sync every stream one after the other, compute and
record every key result, close the run row. No lease, heartbeat, thread pool, retries, CLI, progress
display, summary or Prefect: what ``okrsync run`` costs on top of this is its tax (bench/local_tax.py).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from flows import compute, pipeline
from okr_store.store import Store
from okrsync.project import load_project


def main(project_file: str) -> int:
    project = load_project(project_file)
    as_of = datetime.now(UTC).replace(tzinfo=None)
    store = Store(project.store_url())
    try:
        compute.register_okrs(project, store)
        run_id = store.start_run(as_of, None)
        rows = 0
        for name, stream in project.streams.items():
            connector = project.connector(stream.source)
            try:
                rows += pipeline.sync_stream(project, store, connector, run_id, name).rows_read
            finally:
                connector.close()
        values, held = compute.compute_values(project, store, run_id, None, as_of, {})
        store.finish_run(run_id, "failed" if held else "succeeded")
    finally:
        store.close()
    print(f"{rows} rows pulled · {len(values)} key results · {len(held)} held")
    return 1 if held else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
