"""Pipeline figures on ``/metrics`` and ``hub status --json`` equal the run ledger; the alert rules load.

Two feeds run through the exchange DAG's task bodies against the embedded sandboxes (SQLite hub);
the API's ``/metrics`` (as ``hub serve`` builds it, :mod:`pipeline.api`) is scraped with the
monitoring key and compared with :func:`pipeline.summary.summarize`, and ``hub status --json``
with the database's own counts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from typer.testing import CliRunner

from e_license_store.tables import LicenseIndexEntry
from hub.db import get_engine, session_scope
from hub.models import OutboxEvent
from hub.settings import get_settings
from identity.matching_tables import IdentityReviewQueue
from pipeline import metrics
from pipeline.status_cli import status
from pipeline.summary import summarize
from recognition.app import create_app
from recognition.consumers import add_consumer
from rigs.run_feed import run_direct
from tests.conftest import require
from tests.pipeline.test_rerun_carries_over import mapping_dir, sandboxes  # noqa: F401 (fixtures)

REPO = Path(__file__).parents[2]
RULES = REPO / "etc" / "prometheus" / "hub-alerts.yml"
FEEDS = ("public_security_persons", "commerce_enterprises")


def _scrape() -> dict[str, list[Any]]:
    with session_scope(get_engine()) as s:
        token = add_consumer(s, "monitoring", ["metrics:read"])[1]
    app = create_app(get_settings(), engine=get_engine(), audit_process=False)
    metrics.install(app)
    with TestClient(app) as client:
        res = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200, res.text
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(res.text):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def _by_department(samples: list[Any], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for sample in samples:
        if sample.name == name:
            out[sample.labels["department"]] = out.get(sample.labels["department"], 0) + sample.value
    return out


@pytest.mark.slow
@pytest.mark.odbc
def test_metrics_and_status_equal_the_run_ledger(sandboxes: Any, mapping_dir: Path) -> None:  # noqa: F811
    for i, feed in enumerate(FEEDS):
        assert run_direct(feed, f"metrics-run-{i}")
    ledger = {d.department: d for d in summarize()}
    assert set(ledger) == {"public_security", "commerce"}, ledger
    assert ledger["commerce"].licenses_issued > 0 and ledger["public_security"].pulled > 0

    scraped = _scrape()
    for attr in ("pulled", "accepted", "quarantined", "licenses_issued", "licenses_changed"):
        family = f"hub_feed_{'records_' if attr in ('pulled', 'accepted', 'quarantined') else ''}{attr}"
        got = _by_department(scraped[family], family + "_total")
        assert got == {d: float(getattr(s, attr)) for d, s in ledger.items()}, (attr, got)
    fresh = {s.labels["feed"]: s.value for s in scraped["hub_feed_freshness_seconds"]}
    assert set(fresh) == set(FEEDS) and all(0 <= v < 600 for v in fresh.values()), fresh
    assert {s.labels["feed"]: s.value for s in scraped["hub_feed_last_run_ok"]} == dict.fromkeys(FEEDS, 1.0)
    with session_scope(get_engine()) as s:
        events = int(s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
        licences = {str(k): int(n) for k, n in s.execute(
            select(LicenseIndexEntry.status, func.count()).group_by(LicenseIndexEntry.status))}  # fmt: skip
    assert events > 0
    # nothing fanned out yet: every event is in the backlog, the oldest as old as the first
    assert scraped["hub_outbox_backlog_events"][0].value == events
    assert scraped["hub_outbox_oldest_undelivered_seconds"][0].value > 0
    assert {s.labels["status"]: s.value for s in scraped["hub_licenses"]} == {k: float(n) for k, n in licences.items()}
    # the API's own figures are still there
    assert "hub_api_requests" in scraped and "hub_cases_open" in scraped

    app = typer.Typer()
    app.command()(status)
    res = CliRunner().invoke(app, ["--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    by_feed = {f["mapping"]: f for f in out["feeds"]}
    assert set(by_feed) == set(FEEDS)
    for feed in by_feed.values():
        d = ledger[feed["department"]]
        assert (feed["pulled"], feed["accepted"], feed["quarantined"], feed["licenses_issued"]) == (
            d.pulled, d.accepted, d.quarantined, d.licenses_issued)  # fmt: skip
        assert feed["state"] == "ok" and feed["runs"] == 1 and 0 <= feed["lag_seconds"] < 600
    assert out["push"]["backlog_events"] == events and out["push"]["deliveries"] == {}
    assert out["licenses"] == licences
    with session_scope(get_engine()) as s:
        review = int(s.scalar(select(func.count()).select_from(IdentityReviewQueue)
                              .where(IdentityReviewQueue.status == "open")) or 0)  # fmt: skip
    assert out["identity_review_open"] == review
    assert out["cases_open"] == {}  # the supervision task has not counted any case clocks
    plain = CliRunner().invoke(app, [], env={"COLUMNS": "160"})
    assert plain.exit_code == 0, plain.output
    assert "commerce_enterprises" in plain.output and "Push: " in plain.output
    assert "licences valid" in plain.output


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_alert_rules_name_only_metrics_the_hub_exposes() -> None:
    exprs = _expressions()
    assert len(exprs) >= 5
    named = {m for e in exprs for m in re.findall(r"\bhub_[a-z_]+\b", e)}
    exposed = set(metrics.METRIC_NAMES) | {"hub_cases_open"}
    assert named and named <= exposed, named - exposed
    joined = " ".join(exprs)
    for needed in ("hub_feed_freshness_seconds", 'outcome="dead"', "hub_feed_records_quarantined_total"):
        assert needed in joined


def test_alert_rules_load_in_promtool() -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus, in the Makefile's SYS_PACKAGES)")
    assert promtool is not None
    res = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 5 rules found" in res.stdout
