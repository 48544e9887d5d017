"""Embedded and scaled reach the same state (issue 19, item 3).

The main job runs on sandboxes of one seed at the demo's size, once on the embedded default (SQLite,
files, LocalExecutor) and once on the scaled mode (PostgreSQL, moto's S3 server, CeleryExecutor with two
workers, Redis): the digest of what each hub holds (:mod:`rigs.digest`: every table minus its reviewed
volatile columns, the licence objects' content hashes, what the tax bureau's notice service received,
the audit chain's verification) is the same. Both Celery workers ran tasks, and on both modes the push
DAG ran woken by the Assets the publish tasks updated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rigs.scaled import ScaledConfig, own_config
from tests.pipeline.scaled_runs import DEMO_SIZES, run_both

pytestmark = [
    pytest.mark.airflow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(1800),
]  # fmt: skip


def scaled_config(airflow_db_url: str, hub_db_url: str, broker: tuple[str, str]) -> ScaledConfig:
    """The scaled mode on this test's own databases and broker keys, its workers named for it."""
    return own_config(airflow_db_url, hub_db_url, *broker)


def test_embedded_and_scaled_reach_the_same_state(
    tmp_path: Path, pg_hub_db_url: str, airflow_db_url: str, celery_broker: tuple[str, str]
) -> None:
    config = scaled_config(airflow_db_url, pg_hub_db_url, celery_broker)
    embedded, scaled = run_both(tmp_path, DEMO_SIZES, config)

    for run in (embedded, scaled):
        assert run.result.ok, (run.mode, run.result.states, run.result.push_runs)
        # nobody triggered the push DAG: the Assets of the publish tasks woke it
        assert {p["run_type"] for p in run.result.push_runs} == {"asset_triggered"}, run.result.push_runs
        assert run.digest.invariant_problems() == [], run.mode
    assert embedded.digest.received["tax_soap"], "the tax bureau received no notice"
    assert embedded.digest.licences and embedded.digest.audit_ok

    assert embedded.digest.differences(scaled.digest) == []
    assert embedded.digest.hexdigest == scaled.digest.hexdigest
    # ... and so does the summary per department the demo prints
    assert len(embedded.summary) >= 5 and embedded.summary == scaled.summary

    # every task of the scaled run ran on one of its two Celery workers, and both worked
    hosts = [h for tasks in scaled.hosts.values() for h in tasks.values()]
    assert set(hosts) == {f"celery@{w}" for w in config.workers}, hosts
    assert len(hosts) >= 5 * len(scaled.result.run_ids)
