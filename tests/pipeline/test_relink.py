"""A tax record read before commerce's record of its enterprise: housekeeping links it later.

The exchange DAGs run on their own schedules. Here the tax feed runs first: its record names
the new enterprise only by the old taxpayer id, which nothing in the master index resolves yet,
so its tax registration is issued under the old id. Once commerce's feed brought the enterprise
in, the relink job links the tax record to the enterprise and moves the licence onto its USCC.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.db import get_engine, session_scope

pytestmark = [pytest.mark.slow]


def test_a_record_read_before_its_enterprise_is_linked_by_housekeeping(
    tmp_path: Path, hub_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e_license_store.tables import LicenseIndexEntry
    from hub.airflow_env import connection_uri_env
    from hub.models import OutboxEvent
    from identity.tables import IdentitySourceRecord
    from pipeline import steps
    from pipeline.relink import relink_legacy_holders
    from rigs.connections import sandbox_connections
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    with start_sandboxes(tmp_path / "sb", 2016, Sizes(persons=120, enterprises=30, properties=20)) as sb:
        ent = sb.mutations.add_enterprise(legal_rep_key=int(sb.population.persons["person_key"].iloc[0]))
        row = sb.population.enterprises.set_index("ent_key").loc[ent["ent_key"]]
        old_taxpayer_id = str(row["region_code"]) + str(row["org_code"])
        with sqlite3.connect(sb.prepared.tax_store.path) as conn:
            conn.execute("UPDATE taxpayers SET taxpayer_code = ? WHERE taxpayer_code = ?",
                         (old_taxpayer_id, ent["uscc"]))  # fmt: skip
        for conn_id, conn_spec in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn_spec)
            monkeypatch.setitem(os.environ, key, value)

        def run(name: str) -> None:
            out = steps.extract(name, f"run-{name}")
            for step in (steps.map_batches, steps.validate, steps.resolve, steps.publish):
                out = step(name, out, f"run-{name}")

        run("tax_taxpayers")  # before commerce: the old id resolves to nothing yet
        with session_scope(get_engine()) as s:
            early = s.scalars(select(LicenseIndexEntry).where(LicenseIndexEntry.holder_code == old_taxpayer_id)).all()
        assert [e.license_type_code for e in early] == ["1102"]
        assert relink_legacy_holders().amended == 0  # nothing to link to yet: it waits

        run("commerce_enterprises")
        report = relink_legacy_holders()
        assert report.amended >= 1 and report.linked >= 1, report

    with session_scope(get_engine()) as s:
        moved = s.get(LicenseIndexEntry, early[0].license_id)
        assert moved is not None and moved.holder_code == ent["uscc"] and moved.version == 2
        links = s.scalars(select(IdentitySourceRecord).where(
            IdentitySourceRecord.department == "tax", IdentitySourceRecord.unlinked_at.is_(None),
            IdentitySourceRecord.canonical_code == ent["uscc"])).all()  # fmt: skip
        assert len(links) == 1
        amended = s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "license.amended")).all()
        assert any(early[0].license_id in e.idempotency_key for e in amended)
    again = relink_legacy_holders()
    assert again.amended == 0  # idempotent: nothing left under the old id
