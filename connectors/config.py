"""The ``source:`` block of a mapping file and the Airflow Connection it names (数据源配置).

A department is configured the Airflow way: the mapping file says *how* to read (protocol,
datasets, keys, watermarks — nothing secret), the Airflow Connection ``conn_id`` says
*where and as whom* (host, port, login, password, extras). Connections resolve through
Airflow's own mechanism (``AIRFLOW_CONN_<ID>`` variables in URI or JSON form, a secrets
backend, or the metadata database), so secrets never sit in YAML or code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorConfigError
from connectors.retry import RetryPolicy

SCHEMA_PATH = Path(__file__).with_name("source.schema.json")


@lru_cache(maxsize=1)
def source_schema() -> dict[str, Any]:
    """The JSON Schema every ``source:`` block satisfies (shipped as source.schema.json)."""
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def validate_source_block(block: Mapping[str, Any], *, where: str = "source") -> None:
    """Raise :class:`ConnectorConfigError` naming the first offending path in ``block``."""
    import jsonschema  # noqa: PLC0415 - ~0.1 s; the SOAP push and every connector import this module

    validator = jsonschema.Draft202012Validator(source_schema())
    errors = sorted(validator.iter_errors(dict(block)), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        raise ConnectorConfigError(f"invalid source block at {path}: {err.message}", where=where)


@dataclass(frozen=True)
class ConnectionInfo:
    """The parts of an Airflow Connection a connector uses (password kept out of repr)."""

    conn_id: str
    conn_type: str | None
    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None
    extra: dict[str, Any]

    def __repr__(self) -> str:
        return (
            f"ConnectionInfo(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r}, "
            f"port={self.port!r}, schema={self.schema!r}, login={self.login!r}, password=***)"
        )

    @property
    def where(self) -> str:
        return f"conn_id={self.conn_id} host={self.host}:{self.port}"


def get_connection(conn_id: str) -> ConnectionInfo:
    """Resolve ``conn_id`` through Airflow (env var, secrets backend or metadata DB)."""
    from airflow.sdk.bases.hook import BaseHook  # noqa: PLC0415 - Airflow, ~1.7 s; only resolving a Connection
    from airflow.sdk.exceptions import AirflowNotFoundException  # noqa: PLC0415 - Airflow, as above

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ConnectorConfigError(
            f"Airflow Connection {conn_id!r} is not defined",
            where=f"conn_id={conn_id}",
            action=f"create it in the Airflow UI or set AIRFLOW_CONN_{conn_id.upper()} (URI or JSON form)",
        ) from exc
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        login=conn.login,
        password=conn.password,
        extra=dict(conn.extra_dejson or {}),
    )


def retry_policy(block: Mapping[str, Any]) -> RetryPolicy:
    r = block.get("retry") or {}
    return RetryPolicy(
        attempts=int(r.get("attempts", 4)),
        base_delay=float(r.get("base_delay_seconds", 0.5)),
        max_delay=float(r.get("max_delay_seconds", 30.0)),
    )


def dataset_block(block: Mapping[str, Any], dataset: str, *, where: str) -> Mapping[str, Any]:
    datasets = block.get("datasets") or {}
    if dataset not in datasets:
        raise ConnectorConfigError(
            f"unknown dataset {dataset!r} (known: {', '.join(sorted(datasets)) or 'none'})",
            where=where,
            action="use a dataset declared under source.datasets",
        )
    return dict(datasets[dataset] or {})
