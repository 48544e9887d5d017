"""Benchmark: the hub's main job through Airflow at demo size ×1, ×10 (×100 with --full).

For each scale it prints, side by side:
* **airflow** — the whole main job through Airflow's real scheduler (LocalExecutor): wall time,
  records/s, and the share of wall time that is Airflow overhead (wall − time inside the task
  bodies, from the run ledger);
* **direct** (the peer) — the same task bodies called in-process in the same order, on an
  identical fresh hub: what the job costs with no orchestrator at all.
Target: the per-record cost with the overhead excluded at the largest scale is within 1.2× of
the cost at ×10 (the pipeline scales linearly; Airflow adds a constant, not a per-record cost).
``--smoke`` runs a tiny city once, direct only unless ``--airflow`` is given.

``--scaled`` compares the deployments instead, at ×10 (a tiny city with ``--smoke``, any size with
``--scale``): the main job on the embedded default (the **airflow** figure above: LocalExecutor, SQLite,
files) and on the scaled mode
(CeleryExecutor with two workers, PostgreSQL for Airflow's metadata and the hub's state, Redis as the
broker, licences and staged Parquet on moto's S3 server: :func:`rigs.scaled.start_scaled_hub`), one after
the other in one run, on throwaway databases and a Redis database and key prefix of the run's own
(:func:`rigs.testing.temp_scaled_config`). It prints both per-record costs in tasks, the seconds of
each step beside each other (where a difference goes), and their ratio.
Target: the scaled per-record cost in tasks within 1.5× of the embedded default's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO = {"persons": 2000, "enterprises": 500, "properties": 800}
SCALED_TARGET = 1.5


@dataclass
class Figure:
    mode: str
    scale: float
    records: int
    wall: float
    in_tasks: float
    ok: bool
    #: seconds in tasks per step (extract, map, validate, resolve, publish, push), all feeds together
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        return max(0.0, self.wall - self.in_tasks)

    @property
    def per_record_ms(self) -> float:
        return 1000 * self.in_tasks / max(1, self.records)

    def line(self) -> str:
        rate = self.records / self.wall if self.wall else 0.0
        share = self.overhead / self.wall if self.wall else 0.0
        return (
            f"{self.mode:8s} ×{self.scale:<5g} records {self.records:>8d}  wall {self.wall:7.1f}s  "
            f"{rate:8.0f} rec/s  {'outside tasks  ' if self.mode == 'direct' else 'airflow overhead'} {share:5.1%}  "
            f"per record (overhead excluded) "
            f"{self.per_record_ms:6.3f} ms  {'ok' if self.ok else 'FAILED'}"
        )


def _fresh_hub(root: Path, db_url: str | None = None) -> None:
    """A migrated hub for this process (the ledger's reader): SQLite under ``root`` unless ``db_url``."""
    from hub.db import get_engine, migrate
    from hub.settings import reset_settings

    os.environ["HUB_HOME"] = str(root / "home")
    os.environ["HUB_DB_URL"] = db_url or f"sqlite:///{root / 'hub.db'}"
    os.environ.pop("HUB_STAGING_URL", None)
    reset_settings()
    get_engine.cache_clear()
    migrate()


def _ledger(run_ids: list[str]) -> tuple[int, float, dict[str, float]]:
    """Records pulled, seconds in tasks, and those seconds per step, from the run ledger."""
    from sqlalchemy import select

    from hub.db import get_engine, session_scope
    from pipeline.tables import PipelineStep

    with session_scope(get_engine()) as s:
        rows = s.scalars(select(PipelineStep).where(PipelineStep.run_id.in_(run_ids))).all()
    pulled = sum(r.pulled for r in rows if r.step == "extract")
    steps: dict[str, float] = {}
    for r in rows:
        steps[r.step] = steps.get(r.step, 0.0) + r.seconds
    return pulled, sum(r.seconds for r in rows), steps


def _city(root: Path, scale: float, stack: ExitStack) -> Any:
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    sizes = Sizes(**{k: max(10, int(v * scale)) for k, v in DEMO.items()})
    return stack.enter_context(start_sandboxes(root / "home", seed=2016, sizes=sizes))


def publish_seconds(run_ids: list[str]) -> dict[str, tuple[float, int]]:
    """Seconds in the publish step and licences issued, per feed (what a feed's licences cost)."""
    from sqlalchemy import select

    from hub.db import get_engine, session_scope
    from pipeline.tables import PipelineStep

    with session_scope(get_engine()) as s:
        rows = s.scalars(
            select(PipelineStep).where(PipelineStep.run_id.in_(run_ids), PipelineStep.step == "publish")
        ).all()
        return {r.mapping: (r.seconds, r.licenses_issued) for r in rows}


def run_direct(scale: float) -> Figure:
    from hub.airflow_env import connection_uri_env
    from mappings.engine import load_all
    from pipeline import steps
    from rigs.connections import sandbox_connections
    from rigs.main_job import ordered

    with tempfile.TemporaryDirectory(prefix="bench_direct_") as tmp, ExitStack() as stack:
        root = Path(tmp)
        _fresh_hub(root)
        sb = _city(root, scale, stack)
        for conn_id, conn in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn)
            os.environ[key] = value
        run_ids, ok = [], True
        started = time.perf_counter()
        for wave in ordered(load_all()):
            for name in wave:
                rid = f"bench_direct_{name}"
                run_ids.append(rid)
                try:
                    out = steps.extract(name, rid)
                    for step in (steps.map_batches, steps.validate, steps.resolve, steps.publish):
                        out = step(name, out, rid)
                except Exception as exc:
                    print(f"  direct {name}: {type(exc).__name__}: {exc}"[:300], flush=True)
                    ok = False
        steps.push("bench_direct_push")
        wall = time.perf_counter() - started
        records, in_tasks, per_step = _ledger([*run_ids, "bench_direct_push"])
        for mapping, (seconds, issued) in sorted(publish_seconds(run_ids).items()):
            print(f"  direct ×{scale:g} publish {mapping}: {seconds:.2f}s, {issued:,} licences issued", flush=True)
        return Figure("direct", scale, records, wall, in_tasks, ok, per_step)


def _job_through(mode: str, scale: float, start: Callable[[Path, Any, ExitStack], Any]) -> Figure:
    """The main job through Airflow on a fresh city; ``start(root, sandboxes, stack)`` points this process
    at a fresh hub and starts Airflow (and what it needs) in ``stack``, returning it."""
    from mappings.engine import load_all
    from rigs.main_job import run_main_job

    with tempfile.TemporaryDirectory(prefix=f"bench_{mode}_") as tmp, ExitStack() as stack:
        root = Path(tmp)
        sb = _city(root, scale, stack)
        af = start(root, sb, stack)
        names = sorted(load_all())
        af.wait_for_dags([f"hub_exchange_{n}" for n in names])  # parsing is start-up, not the job
        result = run_main_job(af, names, timeout=3600)
        push_ids = [r["run_id"] for r in result.push_runs]
        records, in_tasks, per_step = _ledger([*result.run_ids.values(), *push_ids])
        for mapping, (seconds, issued) in sorted(publish_seconds(list(result.run_ids.values())).items()):
            print(f"  {mode} ×{scale:g} publish {mapping}: {seconds:.2f}s, {issued:,} licences issued", flush=True)
        return Figure(mode, scale, records, result.seconds, in_tasks, result.ok, per_step)


def _task_env() -> dict[str, str]:
    """What the task processes of either deployment get: this process's hub, schedules off."""
    return {"HUB_HOME": os.environ["HUB_HOME"], "HUB_DB_URL": os.environ["HUB_DB_URL"], "HUB_DAG_SCHEDULES": "off"}


def run_airflow(scale: float) -> Figure:
    """The main job on the embedded default: LocalExecutor, the hub on SQLite, licences in files."""
    from rigs.airflow_runner import start_airflow
    from rigs.connections import sandbox_connections

    def start(root: Path, sb: Any, stack: ExitStack) -> Any:
        _fresh_hub(root)
        connections = sandbox_connections(sb)
        return stack.enter_context(start_airflow(root / "airflow", connections=connections, extra_env=_task_env()))

    return _job_through("airflow", scale, start)


def run_scaled(scale: float) -> Figure:
    """The main job on the scaled mode: CeleryExecutor with two workers, PostgreSQL, Redis, moto's S3 server.

    The databases and the broker's keys are the run's own and are dropped after it."""
    from hub.db import get_engine
    from rigs.connections import sandbox_connections
    from rigs.scaled import start_s3_server, start_scaled_hub
    from rigs.testing import temp_scaled_config

    def start(root: Path, sb: Any, stack: ExitStack) -> Any:
        config = stack.enter_context(temp_scaled_config("benchmj"))
        stack.callback(lambda: get_engine().dispose())  # before the databases are dropped
        _fresh_hub(root, config.hub_db_url)
        s3 = stack.enter_context(start_s3_server(root / "s3.log"))
        connections = sandbox_connections(sb)
        af = start_scaled_hub(root / "airflow", config, s3, connections=connections, extra_env=_task_env())
        return stack.enter_context(af)

    return _job_through("scaled", scale, start)


def compare_scaled(embedded: Figure, scaled: Figure) -> float:
    """Print the two figures' steps side by side; the ratio of their per-record costs in tasks."""
    print(f"{'step':10s} {'embedded s':>11s} {'scaled s':>10s} {'scaled/embedded':>16s}")
    for step in sorted(set(embedded.steps) | set(scaled.steps)):
        a, b = embedded.steps.get(step, 0.0), scaled.steps.get(step, 0.0)
        print(f"{step:10s} {a:11.2f} {b:10.2f} {b / a if a else float('inf'):16.2f}")
    ratio = scaled.per_record_ms / embedded.per_record_ms if embedded.per_record_ms else float("inf")
    print(
        f"per record in tasks: scaled {scaled.per_record_ms:.3f} ms / embedded {embedded.per_record_ms:.3f} ms "
        f"= {ratio:.2f} (target ≤ {SCALED_TARGET:.2f})",
        flush=True,
    )
    return ratio


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_main_job", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny city, once")
    parser.add_argument("--full", action="store_true", help="also ×100")
    parser.add_argument("--airflow", action="store_true", help="with --smoke: run the Airflow side too")
    parser.add_argument("--scaled", action="store_true", help="embedded default against the scaled mode at ×10")
    parser.add_argument("--scale", type=float, help="with --scaled: the city's size instead of ×10 (a quicker reading)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HUB_LOG_LEVEL", "WARNING")
    from hub.odbcenv import ensure_odbc_env

    ensure_odbc_env()
    if args.scaled:
        scale = args.scale or (0.05 if args.smoke else 10.0)
        pair = []
        for run in (run_airflow, run_scaled):
            pair.append(run(scale))
            print(pair[-1].line(), flush=True)
        ratio = compare_scaled(*pair)
        return 0 if all(f.ok for f in pair) and ratio <= SCALED_TARGET else 1
    scales = [0.05] if args.smoke else [1.0, 10.0, *([100.0] if args.full else [])]
    figures: list[Figure] = []
    for scale in scales:
        pair = [run_direct(scale)]
        if not args.smoke or args.airflow:
            pair.append(run_airflow(scale))
        for fig in pair:
            print(fig.line(), flush=True)
        figures += pair
    ok = all(f.ok for f in figures)
    if len(scales) >= 2:
        flow = {f.scale: f for f in figures if f.mode == "airflow"}
        base, top = flow[10.0], flow[max(flow)]
        ratio = top.per_record_ms / base.per_record_ms if base.per_record_ms else float("inf")
        print(f"per-record cost ×{top.scale:g} / ×10 = {ratio:.2f} (target ≤ 1.20)")
        ok = ok and (top.scale == 10.0 or ratio <= 1.2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
