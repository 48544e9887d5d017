"""Mutations for incremental tests show through the protocols and keep ground truth in step."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
import zeep
from zeep.wsse.username import UsernameToken

from hub.odbcenv import ensure_odbc_env
from sandbox.land.packages import NS, validate
from sandbox.public_security.registry import now_local, person_table
from sandbox.runtime import Sandboxes


def truth(sb: Sandboxes) -> pd.DataFrame:
    return pd.read_parquet(sb.ground_truth_path)


def tax_client(sb: Sandboxes) -> zeep.Client:
    return zeep.Client(sb.tax.wsdl_url, wsse=UsernameToken(sb.tax.username, sb.tax.password))


def commerce_row(sb: Sandboxes, ent_id: int) -> tuple:
    ensure_odbc_env()
    import pyodbc

    conn = pyodbc.connect(sb.commerce.odbc_connection_string)
    try:
        return tuple(
            conn.cursor()
            .execute("SELECT status, updated_at, uscc FROM enterprise_registry WHERE ent_id = ?", ent_id)
            .fetchone()
        )
    finally:
        conn.close()


def test_change_enterprise_status_in_commerce_and_tax(sandbox_embedded: Sandboxes) -> None:
    gt = truth(sandbox_embedded)
    subject = gt[(gt["dataset"] == "taxpayers") & (gt["role"] == "subject")].iloc[0]
    ent_key = int(subject["entity_key"])
    before = dt.datetime.now() - dt.timedelta(days=1)
    changed = sandbox_embedded.mutations.change_enterprise_status(ent_key, "注销")
    assert changed["commerce"] >= 1 and changed["tax"] >= 1
    ent_id = int(gt[(gt["dataset"] == "enterprise_registry") & (gt["entity_key"] == ent_key)]["source_key"].iloc[0])
    status, updated_at, _ = commerce_row(sandbox_embedded, ent_id)
    assert status == "注销"
    assert pd.Timestamp(updated_at) > pd.Timestamp(before)
    got = tax_client(sandbox_embedded).service.GetTaxpayer(subject["source_key"])
    assert got.taxpayer_status == "03"
    assert got.updated_at.replace(tzinfo=None) > before
    # the change shows in the incremental listing from a recent watermark
    page = tax_client(sandbox_embedded).service.ListChangedTaxpayers(since=before, page_token=None, page_size=50)
    assert subject["source_key"] in {t.taxpayer_code for t in page.taxpayers.Taxpayer}
    ents = pd.read_parquet(sandbox_embedded.prepared.data_dir / "data" / "enterprises.parquet")
    assert ents.set_index("ent_key").loc[ent_key, "status"] == "注销"


def test_add_enterprise_and_person(sandbox_embedded: Sandboxes) -> None:
    added = sandbox_embedded.mutations.add_enterprise()
    status, _, uscc = commerce_row(sandbox_embedded, added["ent_id"])
    assert uscc == added["uscc"] and status == "存续"
    assert tax_client(sandbox_embedded).service.GetTaxpayer(added["uscc"]).taxpayer_name == added["ent_name"]
    gt = truth(sandbox_embedded)
    rows = gt[gt["canonical_id"] == added["uscc"]]
    assert set(rows["dataset"]) == {"enterprise_registry", "taxpayers"}

    person = sandbox_embedded.mutations.add_person()
    engine = sa.create_engine(sandbox_embedded.public_security.sqlalchemy_url)
    t = person_table(None)
    with engine.connect() as conn:
        rid = conn.execute(sa.select(t.c.resident_id).where(t.c.person_no == person["person_no"])).scalar()
    engine.dispose()
    assert rid == person["resident_id"]
    gt = truth(sandbox_embedded)
    assert ((gt["source_key"] == str(person["person_no"])) & (gt["canonical_id"] == rid)).any()


def test_delete_person(sandbox_embedded: Sandboxes) -> None:
    gt = truth(sandbox_embedded)
    person_no = int(gt[gt["dataset"] == "person_registry"]["source_key"].astype(int).min())
    assert sandbox_embedded.mutations.delete_person(person_no)
    assert sandbox_embedded.prepared.person_registry.fetch(person_no) is None
    gt = truth(sandbox_embedded)
    assert not ((gt["dataset"] == "person_registry") & (gt["source_key"] == str(person_no))).any()


def test_new_land_package(sandbox_embedded: Sandboxes) -> None:
    path = sandbox_embedded.mutations.new_land_package(properties=4, approvals=1)
    assert validate(path) == []
    from lxml import etree

    doc = etree.parse(str(path))
    units = {e.get("unitNo") for e in doc.iter(f"{{{NS}}}PropertyRight")}
    assert len(units) == 4
    gt = truth(sandbox_embedded)
    assert units <= set(gt[gt["dataset"] == "property_rights"]["source_key"])


def test_late_commit_is_invisible_until_committed(sandbox_embedded: Sandboxes) -> None:
    engine = sa.create_engine(sandbox_embedded.public_security.sqlalchemy_url)
    t = person_table(None)

    def visible(person_no: int) -> bool:
        with engine.connect() as conn:
            return conn.execute(sa.select(t.c.person_no).where(t.c.person_no == person_no)).first() is not None

    with sandbox_embedded.mutations.late_commit(age=dt.timedelta(hours=1)) as row:
        # a reader in another thread does not see the uncommitted row
        seen: list[bool] = []
        reader = threading.Thread(target=lambda: seen.append(visible(row["person_no"])))
        reader.start()
        reader.join(timeout=30)
        assert seen == [False]
        assert row["updated_at"] <= now_local() - dt.timedelta(minutes=59)  # committed late, stamped early
    assert visible(row["person_no"])
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.mariadb
def test_dropped_connections_and_late_commit_on_servers(sandbox_servers: Sandboxes) -> None:
    ensure_odbc_env()
    import pyodbc

    # commerce: a reader's ODBC connection is killed on MariaDB, a new one works
    reader = pyodbc.connect(sandbox_servers.commerce.odbc_connection_string)
    reader.cursor().execute("SELECT 1").fetchone()
    assert sandbox_servers.faults.drop_connections("commerce") >= 1
    with pytest.raises(pyodbc.Error):
        reader.cursor().execute("SELECT COUNT(*) FROM enterprise_registry").fetchone()
    fresh = pyodbc.connect(sandbox_servers.commerce.odbc_connection_string)
    assert fresh.cursor().execute("SELECT COUNT(*) FROM enterprise_registry").fetchone()[0] > 0
    fresh.close()

    # public security: pg_terminate_backend for the reader's backend
    engine = sa.create_engine(sandbox_servers.public_security.sqlalchemy_url, poolclass=sa.pool.NullPool)
    conn = engine.connect()
    conn.execute(sa.text("SELECT 1"))
    assert sandbox_servers.faults.drop_connections("public_security") >= 1
    with pytest.raises(sa.exc.DBAPIError):
        conn.execute(sa.text("SELECT COUNT(*) FROM population.person_registry"))
    conn.close()
    with engine.connect() as again:
        assert again.execute(sa.text("SELECT COUNT(*) FROM population.person_registry")).scalar() > 0

    # a late commit on PostgreSQL: invisible while the transaction is open, early timestamp after
    t = person_table("population")
    with sandbox_servers.mutations.late_commit(age=dt.timedelta(minutes=30)) as row, engine.connect() as conn:
        assert conn.execute(sa.select(t.c.person_no).where(t.c.person_no == row["person_no"])).first() is None
    with engine.connect() as conn:
        got = conn.execute(sa.select(t.c.updated_at).where(t.c.person_no == row["person_no"])).scalar()
    engine.dispose()
    assert got == row["updated_at"]
