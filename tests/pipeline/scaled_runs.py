"""The main job once embedded and once scaled, on sandboxes of one seed, and the digest of what each hub holds.

Shared by the equivalence test and the worker-kill test. The embedded run: the hub's state in SQLite,
licences and staged Parquet in files, Airflow on LocalExecutor with its metadata in SQLite. The scaled run:
the hub's state on PostgreSQL, licences and staged Parquet on moto's S3 server, Airflow on CeleryExecutor
with two workers, its metadata on PostgreSQL, Redis as the broker (:func:`rigs.scaled.start_scaled`).

Each run gets sandboxes of its own, generated from the same seed (reading a land package moves it, and
the tax bureau records the notices it is sent): both runs read the same data, and each sandbox's tax
service holds what that run delivered. The tax bureau subscribes to business-licence events by SOAP, as
in the demo, so the digest covers deliveries too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from e_license_store.signing import load_keyring
from e_license_store.store import open_store
from e_license_store.store.minio_store import MinioStore
from hub.db import migrate
from mappings.engine import load_all
from pipeline.factory import PUSH_DAG_ID, exchange_dag_id
from pipeline.summary import summarize
from recognition.subscriptions import sync_yaml
from rigs.airflow_runner import AirflowProcesses, start_airflow
from rigs.connections import sandbox_connections
from rigs.digest import Digest, take_digest
from rigs.main_job import MainJobResult, run_main_job
from rigs.scaled import S3Server, ScaledConfig, start_s3_server, start_scaled_hub
from sandbox.generator import Sizes
from sandbox.runtime import Sandboxes, start_sandboxes
from tests.pipeline.conftest import hub_env

#: the demo's city (``hub demo``'s defaults) and seed
DEMO_SIZES = Sizes(persons=2000, enterprises=500, properties=800)
DEMO_SEED = 2016
#: how the push reaches the tax sandbox: its service answers from the test's process, recording each
#: notice in SQLite, on a shared and busy machine; sixteen deliveries at once (the default) each allowed
#: 10 s end in timeouts and retries there, and a retry after a slow answer is not what is compared
RECEIVER = {"HUB_WEBHOOK_READ_TIMEOUT_SECONDS": "60", "HUB_DELIVERY_CONCURRENCY": "2"}
#: sandboxes, migrations and subscriptions are set up one mode at a time (Alembic's context is global)
_SETUP = threading.Lock()


def installation(tmp: Path) -> dict[str, str]:
    """One installation's keys for both modes: the licence seal's key ring, the key of the opaque
    references in event identifiers and of verification links (each generated per home otherwise,
    so two homes would sign and name the same work differently)."""
    keys = tmp / "keys"
    if not (keys / "active").exists():
        load_keyring(keys, create=True)
    return {
        "HUB_SIGNING_KEY_DIR": str(keys),
        "HUB_EVENT_KEY": hashlib.sha256(b"equivalence event key " + str(tmp).encode()).hexdigest(),
        "HUB_VERIFY_KEY": hashlib.sha256(b"equivalence verify key " + str(tmp).encode()).hexdigest(),
        **RECEIVER,
    }


@dataclass
class ModeRun:
    """One main job and what the hub held after it."""

    mode: str
    result: MainJobResult
    digest: Digest
    #: (DAG id, run id) → task id → the host its last try ran on
    hosts: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)
    #: (DAG id, run id) → task id → its tries (1 when it ran once)
    tries: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    #: the demo's summary per department (``hub demo`` prints it)
    summary: list[tuple[str, ...]] = field(default_factory=list)


def summary_rows(db_url: str, result: MainJobResult) -> list[tuple[str, ...]]:
    """The main job's summary per department, as the demo prints it."""
    engine = create_engine(db_url)
    try:
        return [tuple(row.as_row()) for row in summarize(result.run_ids.values(), engine=engine)]
    finally:
        engine.dispose()


def subscribe_tax(db_url: str, tax_wsdl: str, home: Path) -> None:
    """The demo's subscriber (the tax bureau, business-licence events by SOAP) in the hub at ``db_url``."""
    path = home / "subscriptions.yaml"
    sub = {
        "id": "tax-business-licences", "name": "税务局 营业执照变更通知",
        "event_types": ["license.issued", "license.amended", "license.revoked"], "license_types": ["1101"],
        "channel": "soap", "url": tax_wsdl, "secret_env": "HUB_SANDBOX_TAX_PASSWORD",
    }  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"subscriptions": [sub]}, allow_unicode=True), encoding="utf-8")
    engine = create_engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            sync_yaml(session, path)
    finally:
        engine.dispose()


def aliases(result: MainJobResult, sb: Sandboxes, places: Mapping[str, str]) -> dict[str, str]:
    """What differs between two runs by construction, named alike: run ids by their feed, the tax
    service's address (a free port each), and ``places`` (staging's root, the home directory)."""
    out = {run_id: f"<run {name}>" for name, run_id in result.run_ids.items()}
    out.update({run["run_id"]: "<push run>" for run in result.push_runs})
    tax = urlsplit(sb.tax.wsdl_url)
    out[f"{tax.scheme}://{tax.netloc}"] = "<tax service>"
    out.update(places)
    return out


def _task_facts(af: AirflowProcesses, result: MainJobResult) -> tuple[dict[Any, Any], dict[Any, Any]]:
    ran = [(exchange_dag_id(n), r) for n, r in result.run_ids.items()]
    ran += [(PUSH_DAG_ID, p["run_id"]) for p in result.push_runs]
    hosts = {key: af.task_hosts(*key) for key in ran}
    tries: dict[Any, Any] = {}
    sql = text("SELECT task_id, try_number FROM task_instance WHERE dag_id = :d AND run_id = :r")
    with af.engine().connect() as conn:
        for dag_id, run_id in ran:
            tries[(dag_id, run_id)] = {t: int(n) for t, n in conn.execute(sql, {"d": dag_id, "r": run_id})}
    return hosts, tries


def receivers(sb: Sandboxes) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """What the tax bureau's SOAP notice service accepted: (idempotency key, event) per notice."""
    return {
        "tax_soap": [(n["idempotency_key"], json.loads(n["payload_json"])) for n in sb.prepared.tax_store.notices()]
    }


@contextlib.contextmanager
def sandboxes(home: Path, sizes: Sizes, seed: int = DEMO_SEED) -> Iterator[Sandboxes]:
    with start_sandboxes(home, seed, sizes, backend="embedded") as sb:
        yield sb


def run_embedded(tmp: Path, sizes: Sizes, *, names: list[str] | None = None, timeout: float = 900) -> ModeRun:
    """The main job on the embedded default; the digest of the SQLite hub and its file store."""
    names = names or sorted(load_all())
    home = tmp / "embedded"
    db_url = f"sqlite:///{home / 'hub.db'}"
    with contextlib.ExitStack() as stack:
        with _SETUP:
            sb = stack.enter_context(sandboxes(tmp / "sb-embedded", sizes))
            home.mkdir(parents=True, exist_ok=True)
            migrate(db_url)
            subscribe_tax(db_url, sb.tax.wsdl_url, home)
            env = {**hub_env(home, db_url), **installation(tmp), "HUB_SANDBOX_TAX_PASSWORD": sb.tax.password}
        with start_airflow(tmp / "airflow-embedded", connections=sandbox_connections(sb), extra_env=env) as af:
            result = run_main_job(af, names, timeout=timeout)
            hosts, tries = _task_facts(af, result)
        places = {f"file://{home}/staging": "<staging>", str(home): "<home>"}
        digest = take_digest(db_url, home / "store", receivers(sb), aliases=aliases(result, sb, places))
    return ModeRun("embedded", result, digest, hosts, tries, summary_rows(db_url, result))


def run_scaled(
    tmp: Path,
    sizes: Sizes,
    config: ScaledConfig,
    *,
    names: list[str] | None = None,
    timeout: float = 900,
    extra_env: Mapping[str, str] | None = None,
    during: Callable[[AirflowProcesses], Any] | None = None,
) -> ModeRun:
    """The main job on the scaled mode; the digest of the PostgreSQL hub and its S3 bucket.

    ``during`` is called in a thread of its own once the job is triggered (the worker-kill test's killer).
    """
    names = names or sorted(load_all())
    home = tmp / "scaled"
    with contextlib.ExitStack() as stack:
        with _SETUP:
            sb = stack.enter_context(sandboxes(tmp / "sb-scaled", sizes))
            s3 = stack.enter_context(start_s3_server(tmp / "s3.log"))
            home.mkdir(parents=True, exist_ok=True)
            migrate(config.hub_db_url)  # before the subscription; start_scaled_hub's own is then a no-op
            subscribe_tax(config.hub_db_url, sb.tax.wsdl_url, home)
            env = {
                **hub_env(home, config.hub_db_url), **installation(tmp),
                "HUB_SANDBOX_TAX_PASSWORD": sb.tax.password, **(extra_env or {}),
            }  # fmt: skip
            af = start_scaled_hub(
                tmp / "airflow-scaled", config, s3, connections=sandbox_connections(sb), extra_env=env
            )
        with af:
            result = _run_with(af, names, timeout, during)
            hosts, tries = _task_facts(af, result)
        with _SETUP:
            store = _s3_store(s3)
        places = {f"minio://{s3.endpoint}/hub-staging": "<staging>", str(home): "<home>"}
        digest = take_digest(config.hub_db_url, store, receivers(sb), aliases=aliases(result, sb, places))
    return ModeRun("scaled", result, digest, hosts, tries, summary_rows(config.hub_db_url, result))


def _run_with(
    af: AirflowProcesses, names: list[str], timeout: float, during: Callable[[AirflowProcesses], Any] | None
) -> MainJobResult:
    if during is None:
        return run_main_job(af, names, timeout=timeout)
    errors: list[BaseException] = []

    def side() -> None:
        try:
            during(af)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=side, daemon=True)
    thread.start()
    result = run_main_job(af, names, timeout=timeout)
    thread.join(timeout=60)
    if errors:
        raise errors[0]
    return result


def _s3_store(s3: S3Server) -> MinioStore:
    with contextlib.ExitStack() as stack:
        for key, value in s3.env().items():
            if key.startswith("HUB_STORE_") and key != "HUB_STORE_URL":
                previous = os.environ.get(key)
                os.environ[key] = value
                stack.callback(_restore, key, previous)
        store = open_store(s3.env()["HUB_STORE_URL"])
    assert isinstance(store, MinioStore)
    return store


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def run_both(
    tmp: Path, sizes: Sizes, config: ScaledConfig, *, names: list[str] | None = None, **scaled: Any
) -> tuple[ModeRun, ModeRun]:
    """The embedded and the scaled run at once (each is mostly waiting on Airflow's scheduling), in
    threads of this process; (embedded, scaled)."""
    installation(tmp)  # the key ring, once
    runs: dict[str, ModeRun] = {}
    errors: list[BaseException] = []

    def run(mode: str, call: Callable[[], ModeRun]) -> None:
        try:
            runs[mode] = call()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("embedded", lambda: run_embedded(tmp, sizes, names=names))),
        threading.Thread(target=run, args=("scaled", lambda: run_scaled(tmp, sizes, config, names=names, **scaled))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return runs["embedded"], runs["scaled"]
