"""The worked example of README "Adding a department": the social-insurance bureau (人社局).

Its insured persons sit in a PostgreSQL table read over ODBC; the mapping carries the bureau's
own fields (insured since, insurance status) beside the canonical person and links the employer
by USCC — or by the old registration number, through the cross-walk commerce's records teach.
The feed runs with ``hub run`` as the README says; the identity index is checked against the
sandbox's ground truth, which only tests read.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import get_engine, session_scope
from identity.lookup import lookup, masked
from identity.tables import IdentityPerson, IdentityRelation, IdentitySourceRecord
from rigs.run_feed import run
from sandbox.social_insurance.registry import InsuredRegistry, insured_persons
from tests.pipeline.test_rerun_carries_over import mapping_dir, sandboxes  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.odbc, pytest.mark.postgres]

FEED = "social_insurance_insured_persons"


@pytest.fixture()
def insured_pg(
    sandboxes: Any,  # noqa: F811
    pg_database: Any,
    odbc_postgres: None,
    monkeypatch: pytest.MonkeyPatch,
) -> pd.DataFrame:
    """The bureau's table in PostgreSQL (schema social_insurance), its Connection as an
    ``AIRFLOW_CONN_`` variable in JSON form; the ground truth of its rows."""
    from hub.airflow_env import connection_uri_env
    from rigs.connections import odbc_connection

    rows, truth = insured_persons(sandboxes.population, sandboxes.prepared.seed)
    registry = InsuredRegistry(pg_database.sqlalchemy_url, pg_database.odbc_connection_string)
    registry.load(rows)
    registry.dispose()
    key, value = connection_uri_env(
        "social_insurance_db", odbc_connection(pg_database.odbc_connection_string, "postgresql")
    )
    monkeypatch.setitem(os.environ, key, value)
    return truth


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(run)
    return app


def test_insured_persons_reach_the_index_with_own_fields_and_employer(
    insured_pg: pd.DataFrame,
    mapping_dir: Path,  # noqa: F811
) -> None:
    runner = CliRunner()
    commerce = runner.invoke(_cli(), ["commerce_enterprises"])  # the employers, and their old codes
    assert commerce.exit_code == 0, commerce.output
    res = runner.invoke(_cli(), [FEED])
    assert res.exit_code == 0, res.output
    truth = insured_pg.set_index("source_key")

    with session_scope(get_engine()) as s:
        people = {p.resident_id: p.attributes for p in s.scalars(select(IdentityPerson))}
        relations = s.scalars(select(IdentityRelation).where(IdentityRelation.unlinked_at.is_(None))).all()
        rel = {r.source_key: r for r in relations}
        legacy = {r.resident_id: lookup(s, r.resident_id) for r in truth.itertuples() if r.legacy_id_given}

    # the bureau's own fields are in the golden records, typed; an unclassified status is quarantined
    found = [r for r in truth.itertuples() if r.resident_id in people]
    assert len(found) >= 0.8 * len(truth)
    statuses = {people[r.resident_id].get("insurance_status") for r in found}
    assert statuses <= {"paying", "suspended", "terminated"} and "paying" in statuses
    assert all(dt.date.fromisoformat(str(people[r.resident_id]["insured_since"])) for r in found)
    assert not any(
        r.status_unclassified
        and r.resident_id in people
        and people[r.resident_id].get("insurance_status") not in ("paying", "suspended", "terminated")
        for r in truth.itertuples()
    )
    assert "status" not in {k for r in found for k in people[r.resident_id]}  # the canonical status is not theirs

    # the employer link: every placed relation names the true employer; old codes went through the cross-walk
    employed = [k for k, r in truth.iterrows() if r.employer_uscc and k in rel]
    assert len(employed) >= 0.7 * truth["employer_uscc"].notna().sum()
    placed = [k for k in employed if rel[k].related_code]
    assert placed and all(rel[k].related_code == truth.loc[k, "employer_uscc"] for k in placed)
    assert any(rel[k].method == "crosswalk" for k in placed if truth.loc[k, "employer_by_old_code"])
    assert all(rel[k].role == "employer" and rel[k].related_kind == "enterprise" for k in employed)

    # the 15-digit number the bureau gave is among the identity's legacy codes
    assert legacy and all(v is not None for v in legacy.values())
    for rid, view in legacy.items():
        kinds = {w["code_kind"] for w in view["legacy_codes"]}
        assert "resident_id_15" in kinds, (rid, view["legacy_codes"])
        shown = masked(view)
        assert rid not in str(shown) and all("*" in w["legacy_code"] for w in shown["legacy_codes"])
        assert shown["relations"] or truth[truth.resident_id == rid].employer_uscc.isna().all()

    # a second run changes nothing: no relation started again
    again = runner.invoke(_cli(), [FEED])
    assert again.exit_code == 0, again.output
    with session_scope(get_engine()) as s:
        assert len(s.scalars(select(IdentityRelation)).all()) == len(relations)


def test_preview_shows_mapped_rows_readably_and_masked(
    insured_pg: pd.DataFrame,
    mapping_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.mappings_cli import app

    monkeypatch.setenv("COLUMNS", "80")  # the bureau's columns do not fit: one record after another
    res = CliRunner().invoke(app, ["preview", FEED, "--limit", "8"])
    assert res.exit_code == 0, res.output
    assert "-[ record 1 ]-" in res.output
    record = res.output.split("-[ record 2 ]-")[0]
    for field in ("resident_id", "name", "insured_since", "insurance_status", "employer_uscc"):
        assert any(line.startswith(field) for line in record.splitlines()), (field, record)
    # resident ids and names masked by what they are (the bureau calls them id_number, full_name)
    for rid in insured_pg["resident_id"]:
        assert rid not in res.output and rid.lower() not in res.output
    resident = next(line for line in record.splitlines() if line.startswith("resident_id"))
    assert "*" in resident
    raw = CliRunner().invoke(app, ["preview", FEED, "--limit", "3", "--source", "--layout", "table"])
    assert raw.exit_code == 0, raw.output
    assert "id_number" in raw.output.splitlines()[0] and not any(r in raw.output for r in insured_pg["resident_id"])


@pytest.fixture()
def insured_keyed_badly(insured_pg: pd.DataFrame, sandboxes: Any, pg_database: Any) -> pd.DataFrame:  # noqa: F811
    """The bureau's table again, every person insured, with more ids mistyped (15%) and not
    entered (10%) than the register's usual 2% and 1%: enough of them in a 120-person city."""
    rows, truth = insured_persons(sandboxes.population, sandboxes.prepared.seed, 1.0, mistyped=0.15, missing=0.10)
    registry = InsuredRegistry(pg_database.sqlalchemy_url, pg_database.odbc_connection_string)
    registry.load(rows)
    registry.dispose()
    return truth


def test_mistyped_and_missing_ids_find_their_person_by_match(
    insured_keyed_badly: pd.DataFrame,
    mapping_dir: Path,  # noqa: F811
) -> None:
    """The population registry first (everyone by code), then the bureau: a row whose id was
    mistyped or not entered is matched on name, birth date, sex and region to the right person
    and linked with its probability; none is linked to anyone else; the run counts them."""
    runner = CliRunner()
    for feed in ("public_security_persons", FEED):
        res = runner.invoke(_cli(), [feed])
        assert res.exit_code == 0, res.output
    assert " by match" in res.output  # the run's line counts records linked by code and by match
    truth = insured_keyed_badly.set_index("source_key")
    # (a status the bureau has not classified is quarantined whatever its id)
    keyed = truth[(truth["id_mistyped"] | truth["id_missing"]) & ~truth["status_unclassified"]]
    assert len(keyed) >= 10 and keyed["id_mistyped"].any() and keyed["id_missing"].any()
    with session_scope(get_engine()) as s:
        links = {
            link.source_key: link
            for link in s.scalars(
                select(IdentitySourceRecord).where(
                    IdentitySourceRecord.department == "social_insurance", IdentitySourceRecord.unlinked_at.is_(None)
                )
            )
        }
    matched = [k for k in keyed.index if k in links and links[k].method == "probabilistic"]
    assert all(links[k].canonical_code == keyed.loc[k, "resident_id"] for k in matched)  # never someone else
    assert len(matched) >= 0.9 * len(keyed), {k: links[k].method if k in links else None for k in keyed.index}
    assert all(links[k].match_probability and links[k].model_version for k in matched)
