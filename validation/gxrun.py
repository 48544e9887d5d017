"""Running suites as GX checkpoints and keeping masked results and Data Docs for operators.

Two GX contexts, on purpose:

* an **ephemeral** context runs the checkpoints with ``result_format=COMPLETE`` and
  ``unexpected_index_column_names=[ROW]``, so GX names every failing row. That full result holds
  raw personal data and never leaves memory.
* a **file** context under ``$HUB_HOME/gx`` keeps what operators see: the same GX result with every
  unexpected value of a personal-data column masked (:mod:`validation.payload`) and the full
  unexpected lists dropped (partial lists of 20 masked values remain), plus the Data Docs site
  built from those masked results. Data Docs therefore never show an unmasked resident id, name,
  address or phone number.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hub.settings import get_settings
from validation.gxcontext import ensure_context, quiet
from validation.payload import mask_value
from validation.suites import ExpectationSpec, SuiteSpec

log = logging.getLogger(__name__)

#: Column added to the frame GX validates: the row's position in the batch.
ROW = "__hub_row"

_lock = threading.Lock()
_checkpoints: dict[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], Any] = {}
_file_contexts: dict[str, Any] = {}


def suite_name(spec: SuiteSpec, exps: Sequence[ExpectationSpec]) -> str:
    """The GX suite name of the applicable variant (optional expectations change the suite)."""
    optional = sorted(e.column for e in exps if e.when_column_present)
    # a batch lacking a column the resolver matches on checks every row (no row condition)
    conditioned = {o.key for o in spec.expectations if o.unless_matchable_by}
    unconditional = sorted(e.column for e in exps if e.key in conditioned and not e.unless_matchable_by)
    return (
        spec.name
        + ("+" + "+".join(optional) if optional else "")
        + ("!" + "!".join(unconditional) if unconditional else "")
    )


def checkpoint_for(spec: SuiteSpec, exps: Sequence[ExpectationSpec]) -> Any:
    """The (cached) GX checkpoint validating a whole dataframe against the suite variant."""
    import great_expectations as gx  # noqa: PLC0415 - GX is heavy

    key = (spec.entity, tuple((e.key, e.unless_matchable_by) for e in exps))
    with _lock:
        cp = _checkpoints.get(key)
        if cp is not None:
            return cp
        context = ensure_context()
        name = suite_name(spec, exps)
        asset = context.data_sources.get("hub").add_dataframe_asset(name)
        batch_def = asset.add_batch_definition_whole_dataframe("batch")
        suite = context.suites.add(spec.to_gx(exps, name=name))
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
        cp = context.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[vd],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
            )
        )
        _checkpoints[key] = cp
        return cp


def run_checkpoint(spec: SuiteSpec, exps: Sequence[ExpectationSpec], frame: pd.DataFrame, run_id: str) -> Any:
    """Run the suite's checkpoint over ``frame`` (which carries :data:`ROW`); the suite result."""
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415 - GX is heavy

    cp = checkpoint_for(spec, exps)
    # GX's per-row bookkeeping is several times slower on Arrow-backed strings than on objects.
    strings = {c: object for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)}
    if strings:
        frame = frame.astype(strings)
    result = cp.run(
        batch_parameters={"dataframe": frame},
        run_id=RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.UTC)),
    )
    (suite_result,) = result.run_results.values()
    return suite_result


def unexpected_rows_by_expectation(suite_result: Any) -> dict[str, set[int]]:
    """For every expectation (``type:column``), the :data:`ROW` values GX found unexpected."""
    out: dict[str, set[int]] = {}
    for er in suite_result.results:
        cfg = er.expectation_config
        key = f"{cfg.type}:{cfg.kwargs['column']}"
        if er.exception_info and er.exception_info.get("raised_exception"):
            raise RuntimeError(f"GX expectation {key} raised: {er.exception_info.get('exception_message')}")
        rows = {int(item[ROW]) for item in (er.result or {}).get("unexpected_index_list") or []}
        out[key] = rows
    return out


def _mask_result_in_place(suite_result: Any) -> None:
    for er in suite_result.results:
        column = er.expectation_config.kwargs.get("column", "")
        res = er.result or {}
        res.pop("unexpected_list", None)
        res.pop("unexpected_index_list", None)
        res.pop("unexpected_index_query", None)
        if "partial_unexpected_list" in res:
            res["partial_unexpected_list"] = [mask_value(column, v) for v in res["partial_unexpected_list"]]
        if "partial_unexpected_index_list" in res:
            res["partial_unexpected_index_list"] = [
                {k: (mask_value(column, v) if k == column else int(v)) for k, v in item.items()}
                for item in res["partial_unexpected_index_list"]
            ]
        if "partial_unexpected_counts" in res:
            res["partial_unexpected_counts"] = [
                {"value": mask_value(column, c["value"]), "count": c["count"]} for c in res["partial_unexpected_counts"]
            ]


def gx_root() -> Path:
    return get_settings().home / "gx"


def _file_context() -> Any:
    import great_expectations as gx  # noqa: PLC0415 - GX is heavy

    root = str(get_settings().home)
    with _lock:
        ctx = _file_contexts.get(root)
        if ctx is None:
            ctx = gx.get_context(mode="file", project_root_dir=root)
            quiet(ctx)
            _file_contexts[root] = ctx
        return ctx


@dataclass(frozen=True)
class StoredResult:
    ref: str
    docs_index: str | None


def persist_result(
    spec: SuiteSpec,
    exps: Sequence[ExpectationSpec],
    suite_result: Any,
    *,
    run_id: str,
    batch_id: str,
    meta: dict[str, Any],
    build_docs: bool = True,
) -> StoredResult:
    """Store the masked GX result under ``$HUB_HOME/gx`` and update the Data Docs site."""
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415 - GX is heavy
    from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415 - GX is heavy
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    _mask_result_in_place(suite_result)
    suite_result.meta.update(meta)
    suite_result.meta.pop("batch_parameters", None)
    context = _file_context()
    name = suite_name(spec, exps)
    with _lock:
        # add_or_update: concurrent DAG tasks may store the same suite; the last write is identical.
        context.suites.add_or_update(spec.to_gx(exps, name=name))
    run_time = suite_result.meta.get("validation_time") or dt.datetime.now(dt.UTC)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
        run_id=RunIdentifier(run_name=run_id, run_time=run_time),
        batch_identifier=batch_id,
    )
    context.validation_results_store.store_validation_results(
        suite_validation_result=suite_result,
        suite_validation_result_identifier=key,
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
    )
    docs_index: str | None = None
    if build_docs:
        try:
            urls = context.build_data_docs(resource_identifiers=[key])
            docs_index = next(iter(urls.values()), None)
        except Exception as exc:  # Data Docs are a convenience; the stored result is the record.
            log.warning("building Data Docs failed: %s", exc)
    ref = "/".join(str(p) for p in key.to_tuple())
    return StoredResult(ref=ref, docs_index=docs_index)


def build_docs_for(refs: Sequence[str]) -> str | None:
    """Render the Data Docs pages of the stored results ``refs`` (from :func:`persist_result`) and the index.

    A pipeline task validates many batches; rendering once per task instead of once per batch
    keeps the index rebuild (which lists every kept result) out of the per-batch cost.
    """
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier  # noqa: PLC0415 - GX is heavy

    keys = []
    for ref in refs:
        if not ref:
            continue
        try:
            keys.append(ValidationResultIdentifier.from_tuple(tuple(ref.split("/"))))
        except Exception as exc:  # a ref from another layout: its result is stored all the same
            log.warning("no Data Docs page for result %s: %s", ref, exc)
    if not keys:
        return None
    try:
        urls = _file_context().build_data_docs(resource_identifiers=keys)
    except Exception as exc:  # Data Docs are a convenience; the stored results are the record.
        log.warning("building Data Docs failed: %s", exc)
        return None
    return next(iter(urls.values()), None)


def rebuild_data_docs() -> str | None:
    """Rebuild the whole Data Docs site from the (masked) results kept under ``$HUB_HOME/gx``."""
    if not gx_root().exists():
        return None
    urls = _file_context().build_data_docs()
    return next(iter(urls.values()), None)
