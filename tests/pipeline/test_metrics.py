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
from hub.models import OutboxEvent, QuarantineRecord
from hub.settings import get_settings
from identity.matching_tables import IdentityReviewQueue
from pipeline import metrics
from pipeline.status_cli import status
from pipeline.summary import summarize
from pipeline.tables import PipelineStep
from recognition.app import create_app
from recognition.consumers import add_consumer
from rigs.run_feed import run_direct
from tests.conftest import require
from tests.pipeline.test_rerun_carries_over import mapping_dir, sandboxes  # noqa: F401 (fixtures)

REPO = Path(__file__).parents[2]
RULES = REPO / "etc" / "prometheus" / "hub-alerts.yml"
DASHBOARD = REPO / "etc" / "grafana" / "hub-pipeline.json"
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
def _add_an_enterprise_nobody_can_place(sb: Any) -> None:
    """A registry row whose USCC has a wrong check character and no legal representative: matching
    has too little to place it, so validation quarantines it (every run then has a quarantined record)."""
    import datetime as dt

    import sqlalchemy as sa
    from stdnum.cn import uscc

    engine = sa.create_engine(sb.prepared.commerce.sqlalchemy_url)
    table = sa.Table("enterprise_registry", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(table).where(table.c.uscc.is_not(None)).limit(1)).mappings().one())
        good = uscc.compact(row["uscc"])
        wrong = next(c for c in "0123456789ABCDEFGHJKLMNPQRTUWXY" if c != good[-1])
        row.update(ent_id=int(conn.scalar(sa.select(sa.func.max(table.c.ent_id))) or 0) + 1, uscc=good[:-1] + wrong,
                   legal_rep_id=None, legal_rep_name=None, updated_at=dt.datetime(2026, 1, 1))  # fmt: skip
        conn.execute(table.insert(), [row])
    engine.dispose()


def test_metrics_and_status_equal_the_run_ledger(sandboxes: Any, mapping_dir: Path) -> None:  # noqa: F811
    _add_an_enterprise_nobody_can_place(sandboxes)
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
    # how resolve placed the records, per outcome, equals the ledger's match counts
    for outcome, attr in metrics.RESOLVE_OUTCOMES:
        got = _by_department([x for x in scraped["hub_feed_records_resolved"] if x.labels["outcome"] == outcome],
                             "hub_feed_records_resolved_total")  # fmt: skip
        assert got == {d: float(getattr(s, attr)) for d, s in ledger.items()}, (outcome, got)
    assert sum(getattr(ledger["commerce"], a) for _, a in metrics.RESOLVE_OUTCOMES) > 0
    with session_scope(get_engine()) as s:
        revoked = dict(
            s.execute(
                select(PipelineStep.department, func.sum(PipelineStep.licenses_revoked))
                .where(PipelineStep.step == "publish")
                .group_by(PipelineStep.department)
            ).all()
        )
        held = {(d, r): int(n) for d, r, n in s.execute(
            select(QuarantineRecord.source, QuarantineRecord.reason_code, func.count())
            .group_by(QuarantineRecord.source, QuarantineRecord.reason_code))}  # fmt: skip
        revoked_index = int(s.scalar(select(func.count()).select_from(LicenseIndexEntry)
                                     .where(LicenseIndexEntry.status == "revoked")) or 0)  # fmt: skip
    got_revoked = _by_department(scraped["hub_feed_licenses_revoked"], "hub_feed_licenses_revoked_total")
    assert got_revoked == {d: float(n) for d, n in revoked.items()}
    # every licence revoked so far was revoked by a feed's publish (a source status), so the two agree
    assert sum(got_revoked.values()) == revoked_index > 0
    # quarantined records per feed and reason: they add up to the ledger's quarantined per feed
    reasons = scraped["hub_quarantine_records"]
    assert {(x.labels["department"], x.labels["reason"]): x.value for x in reasons} == {
        k: float(n) for k, n in held.items()}  # fmt: skip
    assert {x.labels["feed"] for x in reasons} <= set(FEEDS) and reasons
    per_dept = _by_department(reasons, "hub_quarantine_records")
    assert per_dept == {d: float(s.quarantined) for d, s in ledger.items() if s.quarantined}, per_dept
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
    assert "SUCCESS: 6 rules found" in res.stdout


def _dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [str(t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    exprs += [str(v["query"]["query"]) for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def test_dashboard_names_only_metrics_the_hub_exposes() -> None:
    exprs = _dashboard_expressions()
    named = {m for e in exprs for m in re.findall(r"\bhub_[a-z_]+\b", e)}
    exposed = set(metrics.METRIC_NAMES) | {"hub_cases_open"}
    assert named and named <= exposed, named - exposed
    # the pipeline's figures are all on it, with quarantine reasons, resolve outcomes and revocations
    assert {"hub_quarantine_records", "hub_feed_records_resolved_total", "hub_feed_licenses_revoked_total",
            "hub_feed_freshness_seconds", "hub_deliveries_total"} <= named  # fmt: skip


def test_dashboard_expressions_parse_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus, in the Makefile's SYS_PACKAGES)")
    assert promtool is not None
    # each panel's query as a recording rule ($department as Grafana's "All" expands it): promtool parses the PromQL
    exprs = [e.replace("$department", ".*") for e in _dashboard_expressions() if not e.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"hub:dashboard_panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in res.stdout
