"""Stored validation records (:func:`validation_record`) and GX Data Docs rebuilt from them."""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metrics.gx.results import jsonable
from metrics.gx.runtime import SEVERITY, quiet_gx, slug
from metrics.quality import Outcome

RECORD_FORMAT = 1
_BEACON = re.compile(r"(https://great-expectations-web-assets\.[^\"'?]+\.png)\?[^\"']*dataContextId=[^\"']*")


def validation_record(stream: str, outcomes: Sequence[Outcome], run_time: datetime) -> dict[str, Any]:
    """The JSON-storable record of one stream's checks in one sync, from which Data Docs are rebuilt.

    ``{"format": 1, "stream", "suite", "run_time" (ISO, UTC), "success" (every GX check passed),
    "expectations": [{"type", "kwargs", "severity", "meta"}],
    "results": [GX ExpectationValidationResult dicts: success, expectation_config, result (counts over
    all batches; samples of the first failing batch), meta.okrsync (severity, observed, failing ids,
    blocking), exception_info],
    "builtins": [{"kind", "kwargs", "severity", "success", "observed"}]}``.
    Results come from the outcomes as they are (sensitive values were never in them).
    """
    if run_time.tzinfo is None:
        run_time = run_time.replace(tzinfo=UTC)
    expectations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    builtins: list[dict[str, Any]] = []
    for outcome in outcomes:
        check = outcome.check
        if check.builtin:
            builtins.append(
                {
                    "kind": check.kind,
                    "kwargs": jsonable(check.kwargs),
                    "severity": check.severity,
                    "success": outcome.success,
                    "observed": outcome.observed,
                }
            )
            continue
        config = {
            "type": check.kind,
            "kwargs": jsonable(check.kwargs),
            "severity": SEVERITY[check.severity],
            "meta": {"okrsync_severity": check.severity},
        }
        expectations.append(config)
        stored = copy.deepcopy(outcome.result)
        body = dict(stored.get("result") or {})
        if "unexpected_count" in body:
            body["element_count"] = outcome.element_count
            body["unexpected_count"] = outcome.unexpected_count
            percent = outcome.unexpected_count / outcome.element_count * 100 if outcome.element_count else 0.0
            body["unexpected_percent"] = percent
            body["unexpected_percent_total"] = percent
        results.append(
            {
                "success": outcome.success,
                "expectation_config": config,
                "result": body,
                "meta": {
                    "okrsync": {
                        "severity": check.severity,
                        "blocking": outcome.blocking,
                        "observed": outcome.observed,
                        "failing_record_ids": list(outcome.failing_record_ids),
                    }
                },
                "exception_info": stored.get("exception_info")
                or {"raised_exception": False, "exception_traceback": None, "exception_message": None},
            }
        )
    return {
        "format": RECORD_FORMAT,
        "stream": stream,
        "suite": f"okrsync-{slug(stream)}",
        "run_time": run_time.astimezone(UTC).isoformat(),
        "success": all(r["success"] for r in results),
        "expectations": expectations,
        "results": results,
        "builtins": builtins,
    }


def build_data_docs(validations: Sequence[dict[str, Any]], directory: Path) -> Path:
    """Render GX Data Docs for stored :func:`validation_record` dicts; returns the site's index.html.

    ``directory`` becomes (or already is) a GX File data context (``directory/gx``); its stored
    suites and validation results are replaced by the given ones, then GX's own site builder renders
    ``gx/uncommitted/data_docs/local_site``.
    """
    quiet_gx()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.core import ExpectationSuite
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        ctx = gx.get_context(mode="file", project_root_dir=str(directory))
        site_name, site = _local_site(ctx)
        results_store = ctx.validation_results_store
        for key in results_store.list_keys():  # the site shows exactly the given validations
            results_store.remove_key(key)
        for name in [s.name for s in ctx.suites.all()]:
            ctx.suites.delete(name)

        suites: dict[str, list[Any]] = {}
        for record in validations:
            suites[record["suite"]] = [ExpectationConfiguration(**_config(e)) for e in record["expectations"]]
        for name, configs in suites.items():
            ctx.suites.add(ExpectationSuite(name=name, expectations=[c.to_domain_obj() for c in configs]))

        for record in validations:
            run_time = datetime.fromisoformat(record["run_time"])
            run_id = RunIdentifier(run_name=f"okrsync {record['stream']}", run_time=run_time)
            results = [
                ExpectationValidationResult(
                    success=r["success"],
                    expectation_config=ExpectationConfiguration(**_config(r["expectation_config"])),
                    result=r.get("result") or {},
                    meta=r.get("meta") or {},
                    exception_info=r.get("exception_info"),
                )
                for r in record["results"]
            ]
            passed = sum(1 for r in results if r.success)
            suite_result = ExpectationSuiteValidationResult(
                success=bool(record["success"]),
                results=results,
                suite_name=record["suite"],
                statistics={
                    "evaluated_expectations": len(results),
                    "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": passed / len(results) * 100 if results else None,
                },
                meta={
                    "run_id": run_id,
                    "validation_time": run_time,
                    "active_batch_definition": {
                        "datasource_name": "okrsync",
                        "data_connector_name": "sync",
                        "data_asset_name": record["stream"],
                        "batch_identifiers": {},
                    },
                    "okrsync": {"stream": record["stream"], "builtins": record.get("builtins", [])},
                },
            )
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=record["suite"]),
                run_id=run_id,
                batch_identifier=slug(record["stream"]),
            )
            results_store.set(key, suite_result)

        ctx.clean_data_docs(site_name=site_name)
        ctx.build_data_docs(site_names=[site_name])
    site_dir = (directory / "gx" / site["store_backend"]["base_directory"]).resolve()
    _drop_beacons(site_dir)
    return site_dir / "index.html"


def _drop_beacons(site_dir: Path) -> None:
    """GX pages load its logo from S3 with `?d=<now>&dataContextId=<id>`: keep the logo, drop the id."""
    for page in site_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        cleaned = _BEACON.sub(r"\1", text)
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": raw["type"],
        "kwargs": dict(raw.get("kwargs") or {}),
        "meta": dict(raw.get("meta") or {}),
        "severity": raw.get("severity") or "critical",
    }


def _local_site(ctx: Any) -> tuple[str, dict[str, Any]]:
    """The context's filesystem site, with GX's how-to buttons and newsletter footer off."""
    sites = ctx.list_data_docs_sites()
    name = "local_site" if "local_site" in sites else next(iter(sites), "local_site")
    site = dict(
        sites.get(name)
        or {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": "uncommitted/data_docs/local_site/",
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    )
    if site.get("show_how_to_buttons", True):
        site["show_how_to_buttons"] = False
        if name in sites:
            ctx.update_data_docs_site(name, site)
        else:
            ctx.add_data_docs_site(name, site)
    return name, site
