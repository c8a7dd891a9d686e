"""Run the project's Great Expectations checks on sync batches, and render their results.

Three entry points:

* :func:`check_problems` — what is wrong with a list of checks (unknown expectation, arguments GX
  rejects, columns the stream does not have, bad arguments to okrsync's own builtins), as
  ``(index, text)`` pairs for the project-file loader to report.
* :class:`BatchValidator` — validates every batch of one stream (a pandas frame plus the record id
  column ``_rid``) with GX and aggregates the results into one :class:`~metrics.quality.Outcome` per
  GX check. Values of ``sensitive`` columns never leave it: results keep counts and record ids only.
* :func:`validation_record` / :func:`build_data_docs` — a JSON-storable record of one stream's
  outcomes, and GX Data Docs rebuilt from such records.

``import great_expectations`` costs seconds, so it happens only inside the functions that run GX;
importing this module (and checking builtin-only check lists) never loads it.

How a batch is validated (measured on GX 1.24.1 / pandas 3): the frame is indexed by ``_rid`` and
run through GX's ``Validator`` with the SUMMARY result format, ``unexpected_index_column_names=
["_rid"]`` and ``exclude_unexpected_values=True``. GX then returns the ids of *all* failing rows
without copying a single value (its per-row loop for values takes ~10 µs a row: seconds for a batch
with many failures). Value samples for non-sensitive columns are then looked up, vectorised, for the
first ``sample_size`` failing ids only. ``ValidationDefinition.run`` is not used for batches: it
also serialises every result into the context's results store (deep copies of the whole id list,
16 s for 500k failing rows, and memory that grows with every batch).

The implementation lives in the ``metrics.gx_*`` modules: :mod:`metrics.gx.runtime` (loading GX,
the shared context), :mod:`metrics.gx.problems` (:func:`check_problems`), :mod:`metrics.gx.validator`
(:class:`BatchValidator`), :mod:`metrics.gx.results` (failing ids, JSON conversion, masking) and
:mod:`metrics.gx.docs` (:func:`validation_record`, :func:`build_data_docs`).
"""

from __future__ import annotations

from metrics.gx.docs import RECORD_FORMAT, build_data_docs, validation_record
from metrics.gx.problems import check_problems
from metrics.gx.results import RID
from metrics.gx.runtime import ephemeral_context, expectation_classes
from metrics.gx.validator import BatchValidator

__all__ = [
    "RECORD_FORMAT",
    "RID",
    "BatchValidator",
    "ephemeral_context",
    "expectation_classes",
    "build_data_docs",
    "check_problems",
    "validation_record",
]
