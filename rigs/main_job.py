"""The hub's main job through Airflow (主作业): every exchange DAG, then the push DAG on its own.

Used by ``hub demo``, the end-to-end test and the benchmark. The registries of record go
first — persons (every other department refers to residents), then enterprises (commerce
issues the USCC that tax and land records reach only through old codes) — then the other
feeds together; the push DAG is never triggered here — the Assets the publish tasks update
wake it, and this waits for it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.factory import PUSH_DAG_ID, exchange_dag_id
from rigs.airflow_runner import AirflowProcesses, AirflowRunError

#: waves of mapping-name prefixes run before the others, in order (registries of record first):
#: a tax record naming an enterprise by its old taxpayer id resolves only once commerce's record
#: of that enterprise (with its organisation code) is in the master index
FIRST: tuple[tuple[str, ...], ...] = (("public_security_",), ("commerce_",))


@dataclass
class MainJobResult:
    run_ids: dict[str, str]
    states: dict[str, str]
    push_runs: list[dict[str, Any]] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s == "success" for s in self.states.values()) and all(
            r["state"] == "success" for r in self.push_runs
        )


def ordered(mapping_names: Iterable[str]) -> list[list[str]]:
    """Waves of mappings to run: the registries of record first, one wave each, then the rest together.

    >>> ordered(["tax_taxpayers", "public_security_persons", "commerce_enterprises", "land_property_rights"])
    [['public_security_persons'], ['commerce_enterprises'], ['land_property_rights', 'tax_taxpayers']]
    >>> ordered(["tax_taxpayers"])
    [['tax_taxpayers']]
    """
    names = sorted(mapping_names)
    waves: list[list[str]] = []
    for prefixes in FIRST:
        waves.append([n for n in names if n.startswith(prefixes)])
    taken = {n for w in waves for n in w}
    waves.append([n for n in names if n not in taken])
    return [w for w in waves if w]


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def wait_for_push(af: AirflowProcesses, after: dt.datetime, timeout: float = 300) -> list[dict[str, Any]]:
    """Poll until a push run queued after ``after`` finished and no push run is pending."""
    deadline = time.monotonic() + timeout
    while True:
        af.check_alive()
        runs = af.dag_runs(PUSH_DAG_ID)
        pending = [r for r in runs if r["state"] not in ("success", "failed")]
        late = [r for r in runs if (_aware(r["queued_at"]) or after) >= after]
        if late and not pending:
            return late
        if time.monotonic() > deadline:
            raise AirflowRunError(f"push DAG did not run after {after.isoformat()} within {timeout}s: {runs[-3:]}")
        time.sleep(0.5)


def run_main_job(
    af: AirflowProcesses, mapping_names: Sequence[str], *, timeout: float = 900, wait_push: bool = True
) -> MainJobResult:
    """Trigger every exchange DAG (in waves), wait for them and for the push DAG that follows."""
    started = time.perf_counter()
    result = MainJobResult(run_ids={}, states={})
    af.wait_for_dags([*(exchange_dag_id(n) for n in mapping_names), PUSH_DAG_ID])
    for wave in ordered(mapping_names):
        runs = {name: af.trigger(exchange_dag_id(name)) for name in wave}
        result.run_ids.update(runs)
        for name, run_id in runs.items():
            result.states[name] = af.wait_for_run(exchange_dag_id(name), run_id, timeout=timeout)
    ends = [_aware(af.task_end(exchange_dag_id(n), r, "publish")) for n, r in result.run_ids.items()]
    last_publish = max((e for e in ends if e is not None), default=dt.datetime.now(dt.UTC))
    if wait_push and any(s == "success" for s in result.states.values()):  # any publish wakes the push DAG
        result.push_runs = wait_for_push(af, last_publish, timeout=timeout)
    result.seconds = time.perf_counter() - started
    return result
