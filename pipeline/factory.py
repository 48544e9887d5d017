"""The DAG factory (DAG 工厂): one exchange DAG per mapping file, the push DAG, housekeeping.

``dags/exchange_dags.py`` calls :func:`build_all`; adding a department is adding a mapping
file and an Airflow Connection. A department's case-step feed (``mappings/case_steps/``) gets its
own exchange DAG ending in the case repository's step log (:func:`build_step_feed_dag`). Each exchange DAG runs

    extract → map → validate → resolve → publish ──(Asset event)──▶ hub_push

with the department's pool (rate limit), retries with exponential backoff (but none for
configuration errors and data-quality verdicts: :func:`non_retryable`), timeouts, owners, tags
and task docs. Tasks pass references to staged Parquet through XCom; one run at a time per
DAG, and a run carries first what an earlier one staged and never published. Each step is an
:class:`pipeline.openlineage.ExchangeStepOperator`: its inlets and outlets declared, so Airflow's
OpenLineage provider reports what it read and wrote, with its counts.
``HUB_DAG_SCHEDULES=off`` leaves the exchange and housekeeping DAGs unscheduled (the demo,
tests and benchmarks trigger them); the push DAG is always scheduled on the Assets.

A new exchange DAG starts paused (``HUB_EXCHANGE_DAGS_PAUSED``, default ``on``): a live
scheduler does not run a feed nobody tried until an operator unpauses it (UI, or
``airflow dags unpause hub_exchange_<mapping>``). Only a DAG Airflow has not seen yet is
affected; the rigs that trigger DAGs themselves (demo, tests, benchmarks) set it ``off``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from airflow.sdk import DAG, Asset, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from connectors.errors import ConnectorConfigError
from mappings.engine import STEP_FEEDS_DIR, MappingError, load_all
from pipeline import housekeeping, steps
from pipeline.openlineage import ExchangeStepOperator
from pipeline.pools import PUSH_POOL
from pipeline.steps import StepError
from validation.run import ReconciliationError, RuleMismatchError, ThresholdExceeded
from validation.suites import SuiteError

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PUSH_DAG_ID = "hub_push"
HOUSEKEEPING_DAG_ID = "hub_housekeeping"
SUPERVISION_DAG_ID = "hub_supervision"
#: updated when the supervision task changed a light (wakes the push DAG for the supervision office)
SUPERVISION_ASSET = Asset(name="hub_supervision_lights", uri="hub://supervision/lights", group="hub")


def schedules_enabled() -> bool:
    return os.environ.get("HUB_DAG_SCHEDULES", "on").lower() not in {"off", "0", "false", "no"}


def exchange_dags_paused() -> bool:
    """Whether a new exchange DAG starts paused (``HUB_EXCHANGE_DAGS_PAUSED``, default on)."""
    return os.environ.get("HUB_EXCHANGE_DAGS_PAUSED", "on").lower() not in {"off", "0", "false", "no"}


def exchange_dag_id(mapping_name: str) -> str:
    return f"hub_exchange_{mapping_name}"


def published_asset(mapping: Any) -> Asset:
    """The Asset an exchange DAG updates when it published licences (wakes the push DAG)."""
    return Asset(
        name=f"hub_published_{mapping.name}",
        uri=f"hub://published/{mapping.department}/{mapping.dataset}",
        group="hub",
    )


def default_args(owner: str, pool: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": owner,
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(minutes=30),
    }
    if pool:
        args["pool"] = pool
    return args


def _run_id() -> str:
    return str(get_current_context()["run_id"])


def _limit() -> int | None:
    """A run's ``{"limit": N}`` (``hub run --airflow --limit N``): read at most N rows."""
    run = get_current_context().get("dag_run")
    limit = (getattr(run, "conf", None) or {}).get("limit")
    return int(limit) if limit is not None else None


def non_retryable() -> tuple[type[BaseException], ...]:
    """Errors no retry can fix: data-quality verdicts and configuration errors.

    A verdict (threshold exceeded, counts not reconciling) holds for the same data; a wrong
    mapping, expectation suite, ``source:`` block or Connection stays wrong until someone edits
    it. Retrying them only delays the failure (three retries with backoff: minutes). Everything
    else — a department's system unreachable, a timeout, a store briefly down — is retried.
    """
    return (ThresholdExceeded, ReconciliationError, RuleMismatchError, StepError, SuiteError, MappingError,
            ConnectorConfigError)  # fmt: skip


def run_step(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a step; errors no retry can fix fail the task at once (``AirflowFailException``).

    The run's staged batches are not lost either way: the next run carries them through.
    """
    try:
        return call(*args, **kwargs)
    except non_retryable() as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _still_running(dag_id: str) -> Any:
    """Whether another run of ``dag_id`` is still going (it keeps the batches it claimed), from Airflow."""
    ti = get_current_context()["ti"]

    def check(run_id: str) -> bool:
        try:
            state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        except Exception:  # not a run of this DAG (a direct run of the task bodies): not Airflow's to keep
            return False
        return str(getattr(state, "value", state)) in {"queued", "running"}

    return check


EXCHANGE_DOC = """\
### {title}

{description}

Department **{department}**, dataset **{dataset}** → canonical **{entity}**; source protocol
`{protocol}` through Airflow Connection `{conn_id}`; expectation suite `{suite}` (batch fails past
{threshold:.0%} quarantined); pool `{pool}`.

| task | does |
|---|---|
| extract | carries over what earlier runs staged and never published; pulls changes since the watermark |
| map | applies `mappings/{department}_{dataset}.yaml` to every staged batch |
| validate | Great Expectations suite; failing rows to quarantine; pulled = accepted + quarantined |
| resolve | identifiers → master index (create / link identities) |
| publish | issues or changes licences and approval results, outbox events in the same transaction; emits `{asset}` |

Counts of every step land in the run ledger (`pipeline_step`); quarantine: `hub validation quarantine`;
read positions and batches not yet published: `hub connectors state {name}`.
"""


def build_exchange_dag(mapping: Any) -> DAG:
    """The exchange DAG of one mapping (部门交换 DAG)."""
    spec = mapping.spec
    name = mapping.name
    asset = published_asset(mapping)
    owner = getattr(spec, "owner", None) or f"{mapping.department}-integration"
    tags = ["hub", "exchange", mapping.department, *list(getattr(spec, "tags", None) or [])]
    doc = EXCHANGE_DOC.format(
        title=spec.description or name,
        description=spec.description,
        department=mapping.department,
        dataset=mapping.dataset,
        entity=mapping.entity,
        protocol=spec.protocol,
        conn_id=spec.source.get("conn_id", "-"),
        suite=spec.expectation_suite,
        threshold=spec.quarantine_threshold,
        pool=spec.pool,
        asset=asset.uri,
        name=name,
    )
    with DAG(
        dag_id=exchange_dag_id(name),
        schedule=spec.schedule if schedules_enabled() else None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=sorted(set(tags)),
        default_args=default_args(owner, spec.pool),
        doc_md=doc,
        dagrun_timeout=dt.timedelta(hours=2),
        is_paused_upon_creation=exchange_dags_paused(),
    ) as dag:
        calls: list[tuple[str, Any, dict[str, Any]]] = [
            ("extract", lambda: run_step(steps.extract, name, _run_id(),
                                         still_running=_still_running(exchange_dag_id(name)), limit=_limit()), {}),
            ("map", lambda prev: run_step(steps.map_batches, name, prev, _run_id()), {}),
            ("validate", lambda prev: run_step(steps.validate, name, prev, _run_id()), {}),
            ("resolve", lambda prev: run_step(steps.resolve, name, prev, _run_id()), {}),
            ("publish", lambda prev: run_step(steps.publish, name, prev, _run_id()), {"outlets": [asset]}),
        ]  # fmt: skip
        docs = {"extract": steps.extract, "map": steps.map_batches, "validate": steps.validate,
                "resolve": steps.resolve, "publish": steps.publish}  # fmt: skip
        previous: ExchangeStepOperator | None = None
        for step, call, extra in calls:
            # each step passes its references on through XCom; inlets and outlets feed OpenLineage
            op = ExchangeStepOperator(
                task_id=step, mapping=mapping, step=step, python_callable=call, doc_md=docs[step].__doc__,
                op_args=[previous.output] if previous is not None else [], **extra,
            )  # fmt: skip
            if previous is not None:
                previous >> op
            previous = op
    return dag


STEP_FEED_DOC = """\
### {title}

{description}

Department **{department}**'s approval system → the case repository's step log; source protocol
`{protocol}` through Airflow Connection `{conn_id}`; pool `{pool}`.

| task | does |
|---|---|
| extract | carries over what earlier runs staged and never took in; pulls the steps entered since the watermark |
| map | applies `mappings/case_steps/{department}.yaml`: the department's columns and step codes to the hub's |
| validate | expectation suite `case_step`; malformed steps to quarantine |
| take_steps | steps into the step log (resends change nothing, refusals counted); cases settled; emits `{asset}` |
"""


TAKE_STEPS_DOC = """Take the validated steps into the case repository's step log (环节入库) and settle their cases:
resends change nothing, refusals are counted by code, the stages the steps release are dispatched
(``pipeline.case_feed.take_steps``)."""


def build_step_feed_dag(mapping: Any) -> DAG:
    """The exchange DAG of a department's case-step feed (环节数据汇聚): extract → map → validate → take_steps."""
    spec = mapping.spec
    name = mapping.name
    asset = published_asset(mapping)
    owner = getattr(spec, "owner", None) or f"{mapping.department}-integration"
    doc = STEP_FEED_DOC.format(title=spec.description or name, description=spec.description,
                               department=mapping.department, protocol=spec.protocol,
                               conn_id=spec.source.get("conn_id", "-"), pool=spec.pool, asset=asset.uri)  # fmt: skip
    with DAG(
        dag_id=exchange_dag_id(name),
        schedule=spec.schedule if schedules_enabled() else None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=sorted({"hub", "exchange", "cases", mapping.department, *list(getattr(spec, "tags", None) or [])}),
        default_args=default_args(owner, spec.pool),
        doc_md=doc,
        dagrun_timeout=dt.timedelta(hours=1),
        is_paused_upon_creation=exchange_dags_paused(),
    ) as dag:
        extract = ExchangeStepOperator(
            task_id="extract", mapping=mapping, step="extract", doc_md=steps.extract.__doc__,
            python_callable=lambda: run_step(steps.extract, name, _run_id(),
                                             still_running=_still_running(exchange_dag_id(name)), limit=_limit()),
        )  # fmt: skip
        mapped = ExchangeStepOperator(
            task_id="map", mapping=mapping, step="map", doc_md=steps.map_batches.__doc__, op_args=[extract.output],
            python_callable=lambda prev: run_step(steps.map_batches, name, prev, _run_id()),
        )  # fmt: skip
        validated = ExchangeStepOperator(
            task_id="validate", mapping=mapping, step="validate", doc_md=steps.validate.__doc__,
            op_args=[mapped.output], python_callable=lambda prev: run_step(steps.validate, name, prev, _run_id()),
        )  # fmt: skip

        @task(task_id="take_steps", outlets=[asset], doc_md=TAKE_STEPS_DOC)
        def take_steps(prev: dict[str, Any]) -> dict[str, Any]:
            """Steps into the case repository's step log; their cases settled."""
            from pipeline.case_feed import take_steps as take  # noqa: PLC0415 - DAG parse; the case repository ~0.5 s

            return dict(run_step(take, name, prev, _run_id()))

        extract >> mapped >> validated
        take_steps(validated.output)  # type: ignore[arg-type]
    return dag


def build_push_dag(assets: Iterable[Asset]) -> DAG:
    """The push DAG (推送): wakes on any published Asset and delivers the outbox to subscribers.

    Asset events merge; the outbox is the record of what to deliver, so one run delivers
    everything committed so far.
    """
    assets = list(assets)
    schedule: Any = None
    for a in assets:
        schedule = a if schedule is None else schedule | a
    with DAG(
        dag_id=PUSH_DAG_ID,
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["hub", "push"],
        default_args=default_args("hub-platform", PUSH_POOL),
        doc_md=build_push_dag.__doc__,
    ) as dag:

        @task(task_id="deliver", doc_md=steps.push.__doc__)
        def deliver() -> dict[str, Any]:
            return steps.push(_run_id())

        deliver()
    return dag


def build_housekeeping_dag() -> DAG:
    """Housekeeping (日常维护): re-linking, expiry, re-delivery, outbox archiving, reconciliation, purge past
    retention, audit archive, the matching model retrained (relinks proposed for review)."""
    with DAG(
        dag_id=HOUSEKEEPING_DAG_ID,
        schedule="@daily" if schedules_enabled() else None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["hub", "housekeeping"],
        default_args=default_args("hub-platform"),
        doc_md=build_housekeeping_dag.__doc__,
    ) as dag:

        @task(task_id="relink_legacy_holders", doc_md=housekeeping.relink.__doc__)
        def relink() -> dict[str, Any]:
            return housekeeping.relink(_run_id())

        @task(task_id="expire_licenses", doc_md=housekeeping.expire_licenses.__doc__)
        def expire() -> dict[str, Any]:
            return housekeeping.expire_licenses(_run_id())

        @task(task_id="redeliver", doc_md=housekeeping.redeliver.__doc__)
        def redeliver() -> dict[str, Any]:
            return housekeeping.redeliver(_run_id())

        @task(task_id="archive_outbox", doc_md=housekeeping.archive_outbox.__doc__)
        def archive_outbox() -> dict[str, Any]:
            return housekeeping.archive_outbox(_run_id())

        @task(task_id="reconcile", doc_md=housekeeping.reconcile.__doc__)
        def reconcile() -> dict[str, Any]:
            return housekeeping.reconcile(_run_id())

        @task(task_id="purge_personal_data", doc_md=housekeeping.purge.__doc__)
        def purge() -> dict[str, Any]:
            return housekeeping.purge(_run_id())

        @task(task_id="archive_audit_log", doc_md=housekeeping.archive_audit.__doc__)
        def archive_audit() -> dict[str, Any]:
            return housekeeping.archive_audit(_run_id())

        @task(task_id="train_matching_model", doc_md=housekeeping.train_matching_model.__doc__)
        def train_matching_model() -> dict[str, Any]:
            return housekeeping.train_matching_model(_run_id())

        # amendments and expiries are delivered in the same run, then what is finished is archived
        relinked = relink()
        relinked >> expire() >> redeliver() >> archive_outbox()
        reconcile() >> purge()
        archive_audit()
        # after re-linking: the day's links are labels; proposals wait in the review queue
        relinked >> train_matching_model()
    return dag


def build_all(mapping_dir: Any = None) -> dict[str, DAG]:
    """Every DAG of the hub, by dag id (what ``dags/exchange_dags.py`` exposes)."""
    mappings = load_all(mapping_dir)
    feeds = load_all(STEP_FEEDS_DIR if mapping_dir is None else os.path.join(mapping_dir, "case_steps"))
    dags: dict[str, DAG] = {}
    for mapping in mappings.values():
        dag = build_exchange_dag(mapping)
        dags[dag.dag_id] = dag
    for feed in feeds.values():
        dag = build_step_feed_dag(feed)
        dags[dag.dag_id] = dag
    assets = [*(published_asset(m) for m in (*mappings.values(), *feeds.values())), SUPERVISION_ASSET]
    push = build_push_dag(assets)
    dags[push.dag_id] = push
    hk = build_housekeeping_dag()
    dags[hk.dag_id] = hk
    supervision = build_supervision_dag()
    dags[supervision.dag_id] = supervision
    return dags


def build_supervision_dag() -> DAG:
    """E-supervision (电子监察): every hour, each running case clock brought up to date and lit; its
    changes of light reach the supervision office through the push DAG. Steps light their own case
    as they arrive; this run catches the days that pass without a step."""
    with DAG(
        dag_id=SUPERVISION_DAG_ID,
        schedule="@hourly" if schedules_enabled() else None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["hub", "supervision"],
        default_args=default_args("hub-supervision"),
        doc_md=build_supervision_dag.__doc__,
    ) as dag:

        @task(task_id="light_cases", doc_md=housekeeping.supervise.__doc__, outlets=[SUPERVISION_ASSET])
        def light_cases() -> dict[str, Any]:
            return housekeeping.supervise(_run_id())

        light_cases()
    return dag
