"""The whole story through Airflow's real scheduler (issue 7, item 7).

A new enterprise registers in commerce; its legal representative is a resident in the
population registry; the tax sandbox knows it only by its old taxpayer id; the land package
names it by organisation code and carries a land-use pre-review opinion for its project.
After one run the hub has one enterprise identity with its business licence, tax
registration, its property certificate and the approval result, all under its USCC, and the
development-and-reform commission sees the pre-review opinion among its recognitions; the push DAG runs by itself.
Then commerce revokes it: the next run changes the licence and the tax sandbox receives the
notice through its SOAP operation. A third run with no changes does nothing.
PostgreSQL holds both the hub's state and Airflow's metadata; commerce is MariaDB over ODBC.

The population registry's first export is broken (a column lost for a third of its rows): that feed
deterministically fails its quarantine threshold in run 1 and publishes nothing, while every other feed
passes on the sandbox's ordinary dirt; both verdicts are asserted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select

from hub.db import get_engine, session_scope
from hub.models import OutboxEvent
from hub.settings import reset_settings
from pipeline.factory import PUSH_DAG_ID
from pipeline.summary import summarize
from rigs.airflow_runner import start_airflow
from rigs.connections import sandbox_connections
from rigs.main_job import run_main_job
from rigs.testing import TempDatabase
from tests.pipeline.conftest import hub_env
from tests.pipeline.privacy_scan import leaks, personal_values

pytestmark = [
    pytest.mark.airflow, pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(1800),  # three main-job runs through the real scheduler; minutes on a shared 2-core box
]  # fmt: skip

ALL = ["public_security_persons", "commerce_enterprises", "tax_taxpayers", "land_property_rights",
       "land_approval_results"]  # fmt: skip
CHANGED = ["commerce_enterprises", "tax_taxpayers"]


def _clean_person(sb: Any) -> int:
    """A resident whose registry record carries no dirt (so the story does not hinge on it)."""
    gt = sb.population.ground_truth
    rows = gt[(gt["dataset"] == "person_registry") & (gt["role"] == "subject")]
    dirty = set(rows[rows["dirt"].astype(str) != ""]["entity_key"])
    persons = sb.population.persons
    ok = persons[(persons["status"] == "alive") & persons["legacy_resident_id"].isna()]
    return int(next(k for k in ok["person_key"] if k not in dirty))


def _story(sb: Any) -> dict[str, Any]:
    ent = sb.mutations.add_enterprise(legal_rep_key=_clean_person(sb))
    row = sb.population.enterprises.set_index("ent_key").loc[ent["ent_key"]]
    org_code, region = str(row["org_code"]), str(row["region_code"])
    # the tax bureau still files it under the old 15-digit taxpayer id (region + organisation code)
    old_taxpayer_id = region + org_code
    with sqlite3.connect(sb.prepared.tax_store.path) as conn:
        conn.execute("UPDATE taxpayers SET taxpayer_code = ? WHERE taxpayer_code = ?", (old_taxpayer_id, ent["uscc"]))
    # the land bureau's pre-review opinion names the applicant by organisation code
    approval = dict(sb.population.approval_results.iloc[0])
    approval.update(
        approval_no="洞自然资预〔2026〕9001号", version=1, approval_type="land_use_pre_review",
        project_name=f"{ent['ent_name']}厂房新建项目", applicant_name=ent["ent_name"], applicant_id_type="org_code",
        applicant_id_code=org_code, conclusion="approved",
        # issued days ago, valid for three years: a current result the commission can accept today
        issue_date=pd.Timestamp.today().normalize() - pd.Timedelta(days=10),
        valid_until=pd.Timestamp.today().normalize() + pd.Timedelta(days=3 * 365),
    )  # fmt: skip
    # ... and registers its factory building, owned by the enterprise under the same organisation code
    prop = dict(sb.population.property_rights.iloc[0])
    prop.update(
        unit_no="330322001001GB99001F00010001", version=1, certificate_no="浙(2026)洞头区不动产权第9000001号",
        status="registered", owner_name=ent["ent_name"], owner_id_type="org_code", owner_id_code=org_code,
        owner_share="100%",
    )  # fmt: skip
    sb.prepared.land.publish(pd.DataFrame([prop]), pd.DataFrame([approval]))
    return {**ent, "org_code": org_code, "old_taxpayer_id": old_taxpayer_id, "approval_no": approval["approval_no"],
            "unit_no": prop["unit_no"]}  # fmt: skip


BROKEN_EXPORT_SHARE = 3  # one row in three loses its name: far past the persons feed's 10% threshold


def _break_population_export(sb: Any) -> int:
    """A broken export of the population registry: every third row loses its (required) name.

    Returns how many rows were broken.
    """
    from sqlalchemy import create_engine, text

    handle = sb.prepared.public_security_handle()
    engine = create_engine(handle.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            # the registry's schema changed under the export: the column may now be empty (PostgreSQL here)
            conn.execute(text(f"ALTER TABLE {handle.table} ALTER COLUMN name DROP NOT NULL"))
            broken = conn.execute(
                text(f"UPDATE {handle.table} SET name = NULL WHERE MOD(person_no, {BROKEN_EXPORT_SHARE}) = 0")
            ).rowcount
    finally:
        engine.dispose()
    return int(broken)


def _recognitions_as_development_and_reform(uscc: str) -> list[dict[str, Any]]:
    """What the development-and-reform commission's key sees among the enterprise's recognitions (API)."""
    from fastapi.testclient import TestClient

    from hub.settings import get_settings
    from recognition.app import create_app
    from recognition.config import RecognitionSettings
    from recognition.consumers import add_consumer

    with session_scope(get_engine()) as session:
        _, key = add_consumer(
            session,
            "development_and_reform",
            ["recognitions:read", "licenses:read:3101", "licenses:read:1101", "purpose:project_approval"],
        )
    app = create_app(get_settings(), engine=get_engine(), config=RecognitionSettings(api_key_cache_seconds=0.0))
    with TestClient(app) as client:
        answer = client.get(f"/v1/holders/{uscc}/recognitions", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def _subscribe_tax(sb: Any, tmp_path: Path) -> None:
    from recognition.subscriptions import sync_yaml

    path = tmp_path / "subscriptions.yaml"
    sub = {
        "id": "tax-business-licences", "name": "税务局 营业执照变更通知",
        "event_types": ["license.issued", "license.amended", "license.revoked"], "license_types": ["1101"],
        "channel": "soap", "url": sb.tax.wsdl_url, "secret_env": "HUB_SANDBOX_TAX_PASSWORD",
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"subscriptions": [sub]}, allow_unicode=True))
    with session_scope(get_engine()) as session:
        sync_yaml(session, path)


def _assert_no_personal_data_on_disk(sb: Any, tmp_path: Path) -> None:
    """Airflow's task logs and the hub's files (outside its stores of record) hold no resident's id,
    phone, address or name whole (see tests/pipeline/privacy_scan.py)."""
    found = leaks([tmp_path / "airflow", tmp_path / "home"], personal_values(sb.population.persons))
    assert not found, found[:10]


def _outbox() -> int:
    with session_scope(get_engine()) as s:
        return int(s.scalar(select(func.count(OutboxEvent.id))) or 0)


def test_the_whole_story(
    tmp_path: Path,
    pg_database: TempDatabase,
    mariadb_database: TempDatabase,
    odbc_mariadb: None,
    pg_hub_db_url: str,
    airflow_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from e_license_store.tables import LicenseIndexEntry
    from identity.tables import IdentityEnterprise, IdentitySourceRecord
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    sizes = Sizes(persons=200, enterprises=50, properties=60)
    with start_sandboxes(tmp_path / "sb", 2016, sizes, backend="servers", pg=pg_database, mariadb=mariadb_database,
                         land_batch=200) as sb:  # fmt: skip
        story = _story(sb)
        monkeypatch.setenv("HUB_SANDBOX_TAX_PASSWORD", sb.tax.password)
        monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))  # the tasks' store and keys, read by the API here
        reset_settings()
        _subscribe_tax(sb, tmp_path)
        env = {**hub_env(tmp_path / "home", pg_hub_db_url), "HUB_SANDBOX_TAX_PASSWORD": sb.tax.password}
        with start_airflow(tmp_path / "airflow", sql_alchemy_conn=airflow_db_url,
                           connections=sandbox_connections(sb), extra_env=env) as af:  # fmt: skip
            # run 1: everything is new; the population registry's export is broken
            broken = _break_population_export(sb)
            assert broken >= sizes.persons // BROKEN_EXPORT_SHARE - 1
            first = run_main_job(af, ALL, timeout=600)
            _assert_no_personal_data_on_disk(sb, tmp_path)
            states = {n: af.task_states(f"hub_exchange_{n}", r) for n, r in first.run_ids.items()}
            # the broken feed fails at its verdict and stops there: nothing of it is resolved or published
            assert first.states["public_security_persons"] == "failed", states
            persons_tasks = states["public_security_persons"]
            assert persons_tasks["validate"] == "failed", persons_tasks
            assert persons_tasks.get("resolve") in ("upstream_failed", None), persons_tasks
            assert persons_tasks.get("publish") in ("upstream_failed", None), persons_tasks
            # every other feed passes on the sandbox's ordinary dirt
            passed = {n: s for n, s in first.states.items() if n != "public_security_persons"}
            assert set(passed.values()) == {"success"}, states
            assert first.push_runs and {r["state"] for r in first.push_runs} == {"success"}, first.push_runs
            assert {r["run_type"] for r in first.push_runs} == {"asset_triggered"}  # nobody triggered it
            verdict = {d.department: d for d in summarize([first.run_ids["public_security_persons"]])}
            persons = verdict["public_security"]
            assert persons.quarantined >= broken and persons.quarantined > 0.10 * persons.pulled, persons
            assert persons.identities_created == persons.identities_linked == persons.licenses_issued == 0, persons
            for dept in summarize(first.run_ids.values()):
                assert dept.accepted + dept.quarantined <= dept.pulled, dept  # deletions are neither
            uscc = story["uscc"]
            with session_scope(get_engine()) as s:
                assert s.get(IdentityEnterprise, uscc) is not None
                linked = {r.department for r in s.scalars(select(IdentitySourceRecord).where(
                    IdentitySourceRecord.canonical_code == uscc))}  # fmt: skip
                types = {e.license_type_code: e for e in s.scalars(
                    select(LicenseIndexEntry).where(LicenseIndexEntry.holder_code == uscc))}  # fmt: skip
            assert {"commerce", "tax", "land"} <= linked  # one identity behind USCC, old taxpayer id, org code
            # business licence, tax registration, property certificate, pre-review opinion
            assert {"1101", "1102", "2101", "3101"} <= set(types)
            assert types["2101"].license_number == "浙(2026)洞头区不动产权第9000001号"
            business_licence = types["1101"]
            # the development-and-reform commission accepts the pre-review opinion without paper
            seen = _recognitions_as_development_and_reform(uscc)
            opinions = [r for r in seen if r["type_code"] == "3101"]
            assert opinions and opinions[0]["kind"] == "approval" and opinions[0]["source_department"] == "land"
            assert opinions[0]["number"] == story["approval_no"] and opinions[0]["verification"]["ok"], opinions
            # its key reads pre-review opinions and business licences, and nothing else of the holder's
            assert {r["type_code"] for r in seen} == {"1101", "3101"}, seen

            # run 2: commerce revokes the enterprise → its licence changes and tax is told by SOAP
            sb.mutations.change_enterprise_status(story["ent_key"], "吊销")
            events = _outbox()
            second = run_main_job(af, CHANGED, timeout=600)
            assert second.ok, second.states
            changed = {d.department: d for d in summarize(second.run_ids.values())}
            assert changed["commerce"].licenses_changed >= 1 and changed["commerce"].licenses_issued == 0
            with session_scope(get_engine()) as s:
                assert s.get(LicenseIndexEntry, business_licence.license_id).status == "revoked"
            assert _outbox() > events
            notices = [n for n in sb.prepared.tax_store.notices() if n.get("license_id") == business_licence.license_id]
            assert any(n.get("status") == "revoked" for n in notices), notices

            # run 3: nothing changed → nothing happens
            events = _outbox()
            third = run_main_job(af, CHANGED, timeout=600)
            assert third.ok
            for dept in summarize(third.run_ids.values()):
                assert (dept.pulled, dept.licenses_issued, dept.licenses_changed) == (0, 0, 0), dept
            assert _outbox() == events
            assert len(af.dag_runs(PUSH_DAG_ID)) >= 3
            _assert_no_personal_data_on_disk(sb, tmp_path)
