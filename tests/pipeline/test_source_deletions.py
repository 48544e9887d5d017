"""Deletions that act: an enterprise's row deleted in the commerce registry between two runs.

The commerce sandbox runs on MariaDB (over ODBC), the hub on PostgreSQL. After the next run of
the feed's task bodies the enterprise's source link is ended, its golden record recomputed
without it, the identity and its business licence wait in the review queue (reason
``source_deleted``), commerce is told through the outbox, the audit log has it and ``hub status``
shows it; the licence is *not* revoked. Running the publish again, or the feed again, adds
nothing. An enterprise deregistered in the same run (a status, 注销) has its licence revoked as a
new signed version, as before.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from e_license_store.tables import LicenseIndexEntry, LicenseVersionEntry
from hub.db import get_engine, session_scope
from hub.models import OutboxEvent
from hub.settings import reset_settings
from identity.matching_tables import MATCH_REVIEW, SOURCE_DELETED, IdentityReviewQueue
from identity.tables import IdentityEnterprise, IdentityGoldenHistory, IdentitySourceRecord
from recognition.tables import AuditEntry
from rigs.testing import TempDatabase

pytestmark = [pytest.mark.slow]

FEED = "commerce_enterprises"
EVENTS = ("identity.source_deleted", "license.review")


def _run(name: str, run_id: str) -> dict[str, Any]:
    from pipeline import steps

    out = steps.extract(name, run_id)
    for step in (steps.map_batches, steps.validate, steps.resolve):
        out = step(name, out, run_id)
    return {"resolved": out, "published": steps.publish(name, out, run_id)}


def _valid_business_licences(limit: int) -> list[tuple[str, str, str]]:
    """(ent_id, uscc, licence id) of enterprises with a valid business licence and one commerce link."""
    with session_scope(get_engine()) as s:
        rows = s.execute(
            select(IdentitySourceRecord.source_key, LicenseIndexEntry.holder_code, LicenseIndexEntry.license_id)
            .join(LicenseIndexEntry, LicenseIndexEntry.holder_code == IdentitySourceRecord.canonical_code)
            .where(IdentitySourceRecord.department == "commerce", IdentitySourceRecord.unlinked_at.is_(None),
                   LicenseIndexEntry.license_type_code == "1101", LicenseIndexEntry.status == "valid")
            .order_by(IdentitySourceRecord.source_key)
        ).all()  # fmt: skip
    per_code: dict[str, list[tuple[str, str, str]]] = {}
    for key, code, lic in rows:
        per_code.setdefault(code, []).append((str(key), str(code), str(lic)))
    return [found[0] for found in per_code.values() if len(found) == 1][:limit]


def _counts() -> dict[str, int]:
    with session_scope(get_engine()) as s:
        return {
            "events": int(s.scalar(select(func.count(OutboxEvent.id)).where(OutboxEvent.event_type.in_(EVENTS))) or 0),
            "reviews": int(s.scalar(select(func.count(IdentityReviewQueue.id))) or 0),
            "audit": int(s.scalar(select(func.count(AuditEntry.seq))) or 0),
            "history": int(s.scalar(select(func.count(IdentityGoldenHistory.id))) or 0),
        }


def test_a_deleted_enterprise_row_ends_its_link_and_puts_it_into_review(
    tmp_path: Path,
    pg_database: TempDatabase,
    mariadb_database: TempDatabase,
    odbc_mariadb: None,
    pg_hub_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hub.airflow_env import connection_uri_env
    from pipeline.deletions import act_on_deletions
    from pipeline.status_cli import status
    from pipeline.steps import load_mapping
    from recognition import subscriptions
    from recognition.delivery import fan_out
    from recognition.tables import Delivery
    from rigs.connections import sandbox_connections
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    sizes = Sizes(persons=120, enterprises=30, properties=20)
    with start_sandboxes(tmp_path / "sb", 2016, sizes, backend="servers", pg=pg_database, mariadb=mariadb_database,
                         land_batch=200) as sb:  # fmt: skip
        for conn_id, conn_spec in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn_spec)
            monkeypatch.setitem(os.environ, key, value)

        first = _run(FEED, "run-1")
        assert first["published"]["source_deleted"]["tombstones"] == 0  # the first reading only learns the keys
        (gone_key, gone_uscc, gone_licence), (dereg_key, dereg_uscc, dereg_licence) = _valid_business_licences(2)
        with session_scope(get_engine()) as s:
            before = s.get(IdentityEnterprise, gone_uscc)
            assert before is not None and before.name
            assert s.get(LicenseIndexEntry, gone_licence).version == 1  # type: ignore[union-attr]

        # between the runs: one enterprise's row is deleted, another is deregistered (a status)
        with sb.prepared.commerce.connect() as conn:
            deleted = conn.cursor().execute("DELETE FROM enterprise_registry WHERE ent_id = ?", int(gone_key))
            assert deleted.rowcount == 1
        gt = sb.population.ground_truth
        dereg_ent = gt[(gt["dataset"] == "enterprise_registry") & (gt["source_key"] == dereg_key)]["entity_key"]
        assert sb.mutations.change_enterprise_status(int(dereg_ent.iloc[0]), "注销")["commerce"] == 1
        events_before = _counts()["events"]
        with session_scope(get_engine()) as s:  # commerce subscribes to what concerns its records
            sub_id = subscriptions.create(s, name="commerce: deleted records", event_types=list(EVENTS),
                                          url="https://commerce.example/hub-hook").id  # fmt: skip

        second = _run(FEED, "run-2")
        report = second["published"]["source_deleted"]
        assert report == {"tombstones": 1, "links_ended": 1, "licences_in_review": 1, "without_link": 0}, report

        with session_scope(get_engine()) as s:
            # the link is ended, not deleted; no active commerce link is left for the key
            link = IdentitySourceRecord
            links = s.scalars(select(link).where(link.department == "commerce", link.source_key == gone_key)).all()
            assert links and all(x.unlinked_at is not None for x in links)
            # the golden record is recomputed without it: its values drawn from it are gone, with history
            golden = s.get(IdentityEnterprise, gone_uscc)
            assert golden is not None and golden.name is None
            assert all(src.get("source_key") != gone_key for src in golden.sources.values())
            history = s.scalars(select(IdentityGoldenHistory).where(
                IdentityGoldenHistory.canonical_code == gone_uscc,
                IdentityGoldenHistory.cause == "source_deleted")).all()  # fmt: skip
            assert {h.attribute for h in history} >= {"name"}
            # identity and licence wait in the review queue, apart from match reviews
            item = s.scalars(select(IdentityReviewQueue).where(IdentityReviewQueue.reason == SOURCE_DELETED)).one()
            assert (item.department, item.incoming_key, item.candidate_code, item.status) == (
                "commerce",
                gone_key,
                gone_uscc,
                "open",
            )
            assert item.details is not None and item.details["license_ids"] == [gone_licence]
            queue = IdentityReviewQueue
            matches = select(queue).where(queue.reason == MATCH_REVIEW, queue.candidate_code == gone_uscc)
            assert not s.scalars(matches).all()
            # the hub did not revoke: the licence is as it was
            kept = s.get(LicenseIndexEntry, gone_licence)
            assert kept is not None and (kept.status, kept.version) == ("valid", 1)
            # commerce is told: the identity's record and the licence in review, no personal code in keys
            events = s.scalars(select(OutboxEvent).where(OutboxEvent.event_type.in_(EVENTS))
                               .order_by(OutboxEvent.id)).all()  # fmt: skip
            assert [e.event_type for e in events] == ["identity.source_deleted", "license.review"]
            assert all(e.payload["department"] == "commerce" and e.payload["reason"] == SOURCE_DELETED for e in events)
            assert events[0].payload["source_key"] == gone_key and events[0].payload["review_id"] == item.id
            assert events[1].subject == gone_licence and events[1].license_type_code == "1101"
            for e in events:
                assert gone_uscc not in e.idempotency_key and gone_uscc not in e.subject
            # audited, with the item and licence, and no revocation
            audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "identity.source_deleted")).all()
            assert len(audit) == 1 and audit[0].consumer == "pipeline" and audit[0].outcome == "review"
            # deregistration (a status) still revokes, as a new signed version
            revoked = s.get(LicenseIndexEntry, dereg_licence)
            assert revoked is not None and (revoked.status, revoked.version) == ("revoked", 2)
            version = s.get(LicenseVersionEntry, (dereg_licence, 2))
            assert version is not None and version.transition == "revoked"
            dereg_items = select(IdentityReviewQueue).where(IdentityReviewQueue.candidate_code == dereg_uscc)
            assert not s.scalars(dereg_items).all()
        assert _counts()["events"] == events_before + 2
        with session_scope(get_engine()) as s:
            fan_out(s, grace=dt.timedelta(0))
            queued = s.scalars(select(Delivery.event_type).where(Delivery.subscription_id == sub_id)).all()
        assert sorted(queued) == sorted(EVENTS)

        # hub status shows the review item and the licence in review
        hub_status = typer.Typer()
        hub_status.command()(status)
        shown = CliRunner().invoke(hub_status, ["--json"])
        assert shown.exit_code == 0, shown.output
        assert '"identity_review_source_deleted": 1' in shown.output and '"licenses_in_review": 1' in shown.output
        table = CliRunner().invoke(hub_status, [], env={"COLUMNS": "200"})
        assert re.search(r"of which source record deleted\s*│?\s*1", table.output), table.output
        assert re.search(r"licences in review \(source record deleted\)\s*│?\s*1", table.output), table.output

        # nothing twice: publish retried, the tombstone acted on again, the feed run again
        settled = _counts()
        from pipeline import steps

        again = steps.publish(FEED, second["resolved"], "run-2")
        assert again["source_deleted"]["links_ended"] == 0
        tombstone = pd.DataFrame({"_source_key": [gone_key], "_source_version": ["deleted@again"]})
        from e_license_store.service import default_service

        repeat = act_on_deletions(load_mapping(FEED), [tombstone], run_id="run-x", store=default_service().store)
        assert (repeat.links_ended, repeat.without_link) == (0, 1)
        third = _run(FEED, "run-3")
        assert third["published"]["source_deleted"]["links_ended"] == 0
        assert _counts() == settled
