"""Record lineage: a licence field and a golden attribute walked back to the commerce registry's row.

The commerce feed runs end to end through the exchange DAG's task bodies (sandbox registry
over the SQLite ODBC driver; the hub on SQLite and on PostgreSQL); ``hub lineage`` then names
the source record, the run, the mapping file and its SHA-256, the normalisers, the suite
version and the identity link's rule — and answers the same after retention purged the
staged copies.
"""

# ruff: noqa: F811  (the feed fixtures are imported by name and requested by the tests)
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub.db import get_engine, session_scope
from hub.models import LineageBatch, LineageMapping, LineageRecord, StagedBatch
from pipeline import steps
from tests.pipeline.test_rerun_carries_over import (  # noqa: F401 (fixtures)
    COMMERCE,
    _edit,
    _run,
    hub_url,
    mapping_dir,
    sandboxes,
    sandboxes_any_db,
)

pytestmark = [pytest.mark.slow, pytest.mark.odbc]

BUSINESS_LICENCE = "1101"


def _lineage(*args: str) -> dict[str, Any]:
    from recognition.lineage_cli import app

    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.output))


def _a_business_licence() -> tuple[str, Any]:
    """A business licence the feed issued and its current document (source as the store has it)."""
    from e_license_store.model import object_key, parse_envelope
    from e_license_store.store import open_store
    from e_license_store.tables import LicenseIndexEntry

    with session_scope(get_engine()) as s:
        row = s.scalars(
            select(LicenseIndexEntry)
            .where(LicenseIndexEntry.license_type_code == BUSINESS_LICENCE)
            .order_by(LicenseIndexEntry.license_id)
        ).first()
        assert row is not None, "the commerce feed issued no business licence"
        license_id, version = row.license_id, row.version
    doc = parse_envelope(open_store().get(object_key(license_id, version))).document
    return license_id, doc


def _link_method(source_key: str) -> str:
    from identity.tables import IdentitySourceRecord

    with session_scope(get_engine()) as s:
        method = s.scalar(
            select(IdentitySourceRecord.method).where(
                IdentitySourceRecord.department == "commerce",
                IdentitySourceRecord.source_key == source_key,
                IdentitySourceRecord.unlinked_at.is_(None),
            )
        )
    assert method, "the record has no identity link"
    return str(method)


def test_a_licence_field_is_traced_to_its_source_record_run_mapping_and_link_after_purge(
    sandboxes_any_db: Any,
    mapping_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.housekeeping import purge
    from recognition import lineage_cli

    out = _run(COMMERCE, "run-1")
    assert out["licenses_issued"] > 0
    license_id, doc = _a_business_licence()
    source = doc.license.source
    assert source is not None and source.run_id == "run-1"
    mapping_file = mapping_dir / f"{COMMERCE}.yaml"
    sha = hashlib.sha256(mapping_file.read_bytes()).hexdigest()

    before = _lineage("licence", license_id, "--field", "holder_name")

    record = before["record"]
    assert record["source"]["department"] == "commerce"
    assert record["source"]["dataset"] == "enterprises"
    assert record["source"]["source_key"] == source.source_key  # an enterprise's key: not personal
    assert record["source"]["source_version"] == source.source_version
    assert record["source"]["run_id"] == "run-1" and record["runs"] == ["run-1"]
    assert dt.datetime.fromisoformat(record["source"]["pulled_at"]).tzinfo is not None
    assert record["mapping"] == {"mapping": COMMERCE, "file": mapping_file.name, "sha256": sha, "version": 1}
    assert record["validation"]["suite"] == "enterprise"
    suite_sha = hashlib.sha256((Path(steps.__file__).parents[1] / "validation/suites/enterprise.json").read_bytes())
    assert record["validation"]["suite_sha256"] == suite_sha.hexdigest()
    assert list(before["fields"]) == ["holder_name"]
    holder_name = before["fields"]["holder_name"]
    assert holder_name["canonical_field"] == "name"
    assert holder_name["from"] == ["ent_name"]
    assert holder_name["normalizers"] == ["fullwidth_to_halfwidth", "trim", "simplify"]
    assert before["identity"]["rule"] == _link_method(source.source_key)
    assert before["identity"]["entity_kind"] == "enterprise"
    assert before["identity"]["canonical_code"] == doc.license.holder_code  # a USCC is shown as is

    # retention purges every staged copy: lineage never needed them
    with session_scope(get_engine()) as s:
        staged = list(s.scalars(select(StagedBatch.staged_ref)))
    assert staged and all(Path(ref.removeprefix("file://")).exists() for ref in staged)
    report = purge("purge-1", older_than=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert report["staged_files"] > 0
    assert not any(Path(ref.removeprefix("file://")).exists() for ref in staged)
    assert _lineage("licence", license_id, "--field", "holder_name") == before

    # the tree names the same things (wide enough that no hash is wrapped)
    monkeypatch.setattr(lineage_cli.console, "width", 400)
    tree = CliRunner().invoke(lineage_cli.app, ["licence", license_id])
    assert tree.exit_code == 0, tree.output
    for text in (COMMERCE + ".yaml", sha, "run-1", "holder_name", "fullwidth_to_halfwidth", before["identity"]["rule"]):
        assert text in tree.output, text


def test_a_golden_attribute_is_traced_to_its_source_record(
    sandboxes: Any,
    mapping_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recognition import lineage_cli

    _run(COMMERCE, "run-1")
    _license_id, doc = _a_business_licence()
    uscc = doc.license.holder_code
    out = _lineage("identity", uscc, "--attribute", "name")
    assert out["entity_kind"] == "enterprise" and list(out["attributes"]) == ["name"]
    name = out["attributes"]["name"]
    assert name["record"]["source"]["department"] == "commerce"
    assert name["record"]["source"]["run_id"] == "run-1"
    assert name["record"]["mapping"]["file"] == f"{COMMERCE}.yaml"
    assert name["normalizers"] == ["fullwidth_to_halfwidth", "trim", "simplify"]
    key = name["record"]["source"]["source_key"]
    assert name["identity"]["rule"] == _link_method(key)

    monkeypatch.setattr(lineage_cli.console, "width", 400)
    tree = CliRunner().invoke(lineage_cli.app, ["identity", uscc])
    assert tree.exit_code == 0, tree.output
    assert f"commerce/enterprises/{key}" in tree.output and "name = " in tree.output


def test_unknown_licence_field_or_identity_exits_1(sandboxes: Any, mapping_dir: Path) -> None:
    from recognition.lineage_cli import app

    _run(COMMERCE, "run-1")
    license_id, _doc = _a_business_licence()
    wrong_field = CliRunner().invoke(app, ["licence", license_id, "--field", "shoe_size"])
    assert wrong_field.exit_code == 1 and "holder_name" in wrong_field.output
    assert CliRunner().invoke(app, ["licence", "no-such-licence"]).exit_code == 1
    assert CliRunner().invoke(app, ["identity", "91330322MA2C8XYD8X"]).exit_code == 1


def test_a_retried_validate_replaces_its_lineage_and_a_changed_mapping_gets_a_new_hash(
    sandboxes: Any,
    mapping_dir: Path,
) -> None:
    mapped = steps.map_batches(COMMERCE, steps.extract(COMMERCE, "run-1"), "run-1")
    first = steps.validate(COMMERCE, mapped, "run-1")
    again = steps.validate(COMMERCE, mapped, "run-1")  # the task retried: same batch, same run
    assert again["accepted"] == first["accepted"] > 0
    with session_scope(get_engine()) as s:
        batches = list(s.scalars(select(LineageBatch)))
        records = int(s.scalar(select(func.count()).select_from(LineageRecord)) or 0)
    assert len(batches) == 1 and batches[0].records == records == first["accepted"]

    _edit(mapping_dir / f"{COMMERCE}.yaml", "normalizers: [trim, simplify]}", "normalizers: [simplify, trim]}")
    steps.validate(COMMERCE, steps.map_batches(COMMERCE, {"staged": mapped["sources"]}, "run-2"), "run-2")
    with session_scope(get_engine()) as s:
        shas = dict(s.execute(select(LineageBatch.run_id, LineageBatch.mapping_sha256)).tuples().all())
        kept = {m.mapping_sha256: m.fields for m in s.scalars(select(LineageMapping))}
    assert set(shas) == {"run-1", "run-2"} and shas["run-1"] != shas["run-2"]
    # each run's normalisers as that run applied them, though the file has changed since run-1
    assert kept[shas["run-1"]]["enterprise_type"]["normalizers"] == ["trim", "simplify"]
    assert kept[shas["run-2"]]["enterprise_type"]["normalizers"] == ["simplify", "trim"]


def test_personal_source_keys_are_masked() -> None:
    from recognition.lineage import masked_key

    assert masked_key("330322198001011231") != "330322198001011231"
    assert masked_key("330322198001011231#0") != "330322198001011231#0"
    assert masked_key("ENT-000123") == "ENT-000123"


def test_the_lineage_endpoint_needs_its_scope_masks_and_is_audited(
    sandboxes: Any, mapping_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from hub.settings import get_settings
    from recognition.app import create_app
    from recognition.config import RecognitionSettings
    from recognition.consumers import add_consumer
    from recognition.tables import AuditEntry

    monkeypatch.setenv("HUB_RATE_LIMIT_KEY_RATE", "0")
    monkeypatch.setenv("HUB_RATE_LIMIT_ADDRESS_RATE", "0")
    _run(COMMERCE, "run-1")
    license_id, doc = _a_business_licence()
    with session_scope(get_engine()) as s:
        operator = add_consumer(s, "lineage-operator", ["licenses:read:*", "lineage:read"])[1]
        portal = add_consumer(s, "portal", ["licenses:read:*", "personal:read", "fields:*"])[1]
        other_type = add_consumer(s, "land-only", ["licenses:read:2101", "lineage:read"])[1]
    app = create_app(get_settings(), engine=get_engine(), config=RecognitionSettings(api_key_cache_seconds=0.0))
    path = f"/v1/licenses/{license_id}/lineage"
    with TestClient(app, raise_server_exceptions=False) as api:
        refused = api.get(path, headers={"Authorization": f"Bearer {portal}"})
        assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
        hidden = api.get(path, headers={"Authorization": f"Bearer {other_type}"})
        # a licence type outside the key's scopes: refused by what the id itself says, before any lookup
        assert hidden.status_code == 403 and hidden.json()["missing_scope"] == "licenses:read:1101"
        whole = api.get(path, headers={"Authorization": f"Bearer {operator}"})
        one = api.get(path, params={"field": "holder_name"}, headers={"Authorization": f"Bearer {operator}"})
        unknown = api.get(path, params={"field": "shoe_size"}, headers={"Authorization": f"Bearer {operator}"})
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body == _lineage("licence", license_id)  # the API and the command give the same answer
    assert body["record"]["mapping"]["file"] == f"{COMMERCE}.yaml"
    assert body["identity"]["rule"] and body["fields"]["holder_name"]["from"] == ["ent_name"]
    rep = doc.license.surface.get("legal_rep_name")
    assert rep and body["fields"]["surface.legal_rep_name"]["value"] not in (None, rep)  # a person's name: masked
    assert rep not in whole.text
    assert one.status_code == 200 and list(one.json()["fields"]) == ["holder_name"]
    assert unknown.status_code == 404
    with session_scope(get_engine()) as s:
        audited = s.scalars(
            select(AuditEntry.fields).where(AuditEntry.subject == license_id, AuditEntry.outcome == "ok")
        ).all()
    assert ["holder_name", "lineage"] in [sorted(f) for f in audited]


def test_a_licence_per_owner_is_traced_to_its_property_record_and_the_owners_link(
    sandboxes: Any, mapping_dir: Path
) -> None:
    from e_license_store.model import object_key, parse_envelope
    from e_license_store.store import open_store
    from e_license_store.tables import LicenseIndexEntry
    from identity.tables import IdentitySourceRecord

    land = "land_property_rights"
    out = _run(land, "run-land")
    assert out["licenses_issued"] > 0
    with session_scope(get_engine()) as s:
        rows = s.execute(
            select(LicenseIndexEntry.license_id, LicenseIndexEntry.version, LicenseIndexEntry.holder_kind)
            .where(LicenseIndexEntry.license_type_code == "2101")
            .order_by(LicenseIndexEntry.holder_kind.desc(), LicenseIndexEntry.license_id)  # a person's first
        ).first()
    assert rows is not None
    license_id, version, holder_kind = rows
    doc = parse_envelope(open_store().get(object_key(license_id, version))).document
    source = doc.license.source
    assert source is not None and "#" in source.source_key  # one licence per owner: <unit>#<n>
    with session_scope(get_engine()) as s:
        method = s.scalar(
            select(IdentitySourceRecord.method).where(
                IdentitySourceRecord.department == "land", IdentitySourceRecord.source_key == source.source_key
            )
        )
    assert method

    got = _lineage("licence", license_id, "--field", "holder_name")
    assert got["record"]["source"]["source_key"] == source.source_key
    assert got["record"]["source"]["run_id"] == "run-land"
    assert got["record"]["mapping"]["file"] == f"{land}.yaml"
    holder_name = got["fields"]["holder_name"]
    assert holder_name["canonical_field"] == "owners[].name" and holder_name["from"] == ["OwnerName"]
    assert holder_name["normalizers"] == ["fullwidth_to_halfwidth", "trim", "simplify"]
    assert got["identity"]["rule"] == method
    if holder_kind == "person":  # a person's name and id are masked
        assert holder_name["value"] != doc.license.holder_name
        assert got["identity"]["canonical_code"] != doc.license.holder_code
