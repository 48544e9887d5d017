"""OpenLineage for the exchange DAGs (数据血缘事件): each task's inlets and outlets, and its counts as facets.

Airflow's OpenLineage provider (``apache-airflow-providers-openlineage``) emits the events: its
listener sends a START and a COMPLETE (or FAIL) event per task instance, and per DAG run. This
module only declares what each exchange task reads and writes, as Airflow Assets on the task
(``inlets``/``outlets``), and gives the provider their OpenLineage form through the operator
methods it calls (``get_openlineage_facets_on_start``/``_on_complete``): the provider has no
converter for these schemes, and the counts of the step are known only once it returned.

Datasets (namespace ``scheme://authority``, name the path of the Asset URI):

========================  =================================================  ==========================
dataset                   namespace / name                                   written by
========================  =================================================  ==========================
department system         ``odbc://CONN`` (SQL; ``oracledb://`` for Oracle)  the department
                          ``soap://CONN``, ``file://CONN`` (XML packages) /
                          ``schema.table`` (SQL) or the dataset
staged Parquet            ``hub://staging`` / ``MAPPING/extracted|accepted|resolved``  extract, validate, resolve
canonical entities        ``hub://canonical`` / ``ENTITY`` (schema facet)    map
quarantine                ``hub://quarantine`` / ``MAPPING``                 extract, validate
identity index            ``hub://identity`` / ``person|enterprise``         resolve
licence store             ``hub://licences`` / ``store``                     publish
========================  =================================================  ==========================

CONN is the Airflow Connection id: the hub does not know a department's host when it builds the
DAG (it lives in the Connection), and the id names the system for every environment alike.
Facets on COMPLETE: ``inputStatistics``/``outputStatistics`` (row counts: rows read, staged,
accepted, quarantined, resolved, licences issued and changed), ``schema`` (the canonical
entity's fields, the source columns the mapping reads) and the run facet ``hub_step`` with every
count the step returned. Counts and names only: no record leaves the hub in an event.

The transport (a file by default, the console, or an HTTP endpoint such as Marquez) is set in
the hub's Airflow environment: :func:`hub.airflow_env.openlineage_env`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import Asset
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.generated.base import RunFacet
from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

from mappings.check import canonical_fields

#: where a SQL driver's system is named (``oracle://`` is Airflow's Oracle Asset scheme, which wants a host)
SQL_SCHEMES = {"odbc": "odbc", "oracle": "oracledb"}
STAGES = ("extracted", "accepted", "resolved")


@attr.define
class HubStepRunFacet(RunFacet):
    """The counts an exchange step returned (pulled, accepted, quarantined, resolved by code, ...)."""

    mapping: str
    step: str
    counts: dict[str, int]

    @staticmethod
    def _get_schema() -> str:
        return "urn:exchange-hub:openlineage:HubStepRunFacet:1-0-0"  # a facet of this hub, not of the spec


def _asset(uri: str) -> Asset:
    return Asset(name=uri, uri=uri, group="hub-lineage")


def source_asset(mapping: Any) -> Asset:
    """The department system a feed reads, named by protocol, Connection and table (or dataset)."""
    source = mapping.spec.source
    protocol = str(source.get("protocol"))
    conn = str(source.get("conn_id") or mapping.department)
    datasets = source.get("datasets")
    ds = dict(datasets.get(mapping.dataset) or {}) if isinstance(datasets, Mapping) else {}
    if protocol == "sql":
        table = ".".join(str(p) for p in (ds.get("schema"), ds.get("table") or mapping.dataset) if p)
        return _asset(f"{SQL_SCHEMES.get(str(source.get('driver', 'odbc')), 'sql')}://{conn}/{table}")
    scheme = {"soap": "soap", "xml": "file"}.get(protocol, protocol)
    return _asset(f"{scheme}://{conn}/{mapping.dataset}")


def staged_asset(mapping: Any, stage: str) -> Asset:
    return _asset(f"hub://staging/{mapping.name}/{stage}")


def canonical_asset(mapping: Any) -> Asset:
    return _asset(f"hub://canonical/{mapping.entity}")


def quarantine_asset(mapping: Any) -> Asset:
    return _asset(f"hub://quarantine/{mapping.name}")


def identity_asset(mapping: Any) -> Asset:
    return _asset(f"hub://identity/{mapping.spec.identity_kind}")


LICENCE_STORE = _asset("hub://licences/store")


def step_assets(mapping: Any, step: str) -> tuple[list[Asset], list[Asset]]:
    """(inlets, outlets) of one exchange step."""
    staged = {s: staged_asset(mapping, s) for s in STAGES}
    identity = [identity_asset(mapping)] if mapping.spec.identity_kind in ("person", "enterprise") else []
    return {
        "extract": ([source_asset(mapping)], [staged["extracted"], quarantine_asset(mapping)]),
        "map": ([staged["extracted"]], [canonical_asset(mapping)]),
        "validate": ([canonical_asset(mapping)], [staged["accepted"], quarantine_asset(mapping)]),
        "resolve": ([staged["accepted"]], [*identity, staged["resolved"]]),
        "publish": ([staged["resolved"]], [LICENCE_STORE]),
    }[step]


def _rows(step: str, out: Mapping[str, Any]) -> dict[str, int]:
    """Rows per dataset URI-suffix role: ``in``, and each outlet's role, from the step's returned counts."""
    n = {k: int(v) for k, v in out.items() if isinstance(v, int) and not isinstance(v, bool)}
    if step == "extract":
        return {"in": n.get("pulled", 0), "extracted": n.get("accepted", 0) + n.get("carried_over", 0),
                "quarantine": n.get("quarantined", 0)}  # fmt: skip
    if step == "map":
        return {"in": n.get("pulled", 0), "canonical": n.get("accepted", 0)}
    if step == "validate":
        return {"in": n.get("pulled", 0), "accepted": n.get("accepted", 0), "quarantine": n.get("quarantined", 0)}
    if step == "resolve":
        return {"in": n.get("pulled", 0), "identity": n.get("accepted", 0), "resolved": n.get("accepted", 0)}
    return {"in": n.get("records", 0), "licences": n.get("licenses_issued", 0) + n.get("licenses_changed", 0)}


def _role(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme != "hub":
        return "source"
    return parts.path.rsplit("/", 1)[-1] if parts.netloc == "staging" else parts.netloc


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    return str(getattr(base, "__name__", base))


def schemas(mapping: Any) -> dict[str, SchemaDatasetFacet]:
    """Schema facets by Asset URI: the canonical entity's fields, the source columns the mapping reads."""
    canonical = canonical_fields(mapping.entity)
    return {
        canonical_asset(mapping).uri: SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=k, type=_type_name(v)) for k, v in canonical.items()]
        ),
        source_asset(mapping).uri: SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=c) for c in sorted(mapping.source_columns())]
        ),
    }


def _namespace_name(asset: Asset) -> tuple[str, str]:
    parts = urlsplit(asset.uri)
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def lineage(
    mapping_name: str,
    step: str,
    inlets: list[Asset],
    outlets: list[Asset],
    schema: Mapping[str, SchemaDatasetFacet],
    output: Mapping[str, Any] | None,
) -> OperatorLineage:
    """The OpenLineage inputs and outputs of a step; with its counts once it returned ``output``."""
    rows = _rows(step, output) if output is not None else {}

    def facets(asset: Asset) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if asset.uri in schema:
            out["schema"] = schema[asset.uri]
        return out

    inputs = []
    for a in inlets:
        ns, name = _namespace_name(a)
        input_facets: dict[str, Any] = {}
        if rows:
            input_facets["inputStatistics"] = InputStatisticsInputDatasetFacet(rowCount=rows["in"])
        inputs.append(InputDataset(namespace=ns, name=name, facets=facets(a), inputFacets=input_facets))
    outputs = []
    for a in outlets:
        ns, name = _namespace_name(a)
        if ns == "hub://published":
            continue  # the Asset that wakes the push DAG: the licence store is the dataset
        role = _role(a.uri)
        output_facets: dict[str, Any] = (
            {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows[role])} if role in rows else {}
        )
        outputs.append(OutputDataset(namespace=ns, name=name, facets=facets(a), outputFacets=output_facets))
    run_facets: dict[str, Any] = {}
    if output is not None:
        counts = {k: int(v) for k, v in output.items() if isinstance(v, int) and not isinstance(v, bool)}
        run_facets["hub_step"] = HubStepRunFacet(mapping=mapping_name, step=step, counts=counts)
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


class ExchangeStepOperator(PythonOperator):
    """One step of an exchange DAG: a Python callable whose lineage the OpenLineage provider reports.

    ``mapping`` is the feed's mapping; the step's inlets and outlets are declared from it
    (:func:`step_assets`) beside any ``outlets`` given (the publish task's Asset that wakes the
    push DAG). The callable's return value (the step's references and counts) gives the facets.
    """

    def __init__(self, *, mapping: Any, step: str, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        inlets, outlets = step_assets(mapping, step)
        super().__init__(
            python_callable=python_callable,
            inlets=inlets,
            outlets=[*outlets, *(kwargs.pop("outlets", None) or [])],
            **kwargs,
        )
        self.mapping_name = str(mapping.name)
        self.step = step
        self.schema = schemas(mapping)
        self.step_output: dict[str, Any] | None = None

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        self.step_output = dict(result) if isinstance(result, Mapping) else None
        return result

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        return lineage(self.mapping_name, self.step, list(self.inlets), list(self.outlets), self.schema, None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return lineage(
            self.mapping_name, self.step, list(self.inlets), list(self.outlets), self.schema, self.step_output
        )
