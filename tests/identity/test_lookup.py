"""``hub identity lookup``: any code leads to the golden record, masked unless asked."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from identity.cli import app
from identity.lookup import lookup, masked
from identity.resolve import resolve_batch
from tests.identity.test_resolve import E2, LEGACY_P2, P2, REG_E2


def _seed(session: Session) -> None:
    people = pd.DataFrame(
        [
            {
                "_source_key": "p",
                "_source_version": "1",
                "resident_id": LEGACY_P2,
                "name": "李四",
                "birth_date": "1985-02-02",
                "address": "浙江省温州市洞头区北岙街道1号",
            }
        ]
    )
    resolve_batch(session, people, "person", "public_security", "persons")
    firms = pd.DataFrame(
        [
            {
                "_source_key": "c",
                "_source_version": "1",
                "uscc": E2,
                "reg_no": REG_E2,
                "org_code": E2[8:17],
                "name": "温州船舶有限公司",
                "legal_rep_resident_id": P2,
                "legal_rep_name": "李四",
            }
        ]
    )
    resolve_batch(session, firms, "enterprise", "commerce", "enterprises")
    session.commit()


def test_lookup_by_legacy_codes(session: Session) -> None:
    _seed(session)
    by_15 = lookup(session, LEGACY_P2)
    assert by_15 is not None and by_15["canonical_code"] == P2 and by_15["golden"]["name"] == "李四"
    assert by_15["legacy_codes"][0]["legacy_code"] == LEGACY_P2
    by_reg = lookup(session, REG_E2)
    assert by_reg is not None and by_reg["canonical_code"] == E2 and by_reg["resolved_by"] == "crosswalk"
    by_taxpayer = lookup(session, "330300" + E2[8:17])
    assert by_taxpayer is not None and by_taxpayer["canonical_code"] == E2
    assert [s["source_key"] for s in by_reg["source_records"]] == ["c"]
    assert lookup(session, "330322199001010000") is None


def test_masking(session: Session) -> None:
    _seed(session)
    person = lookup(session, P2)
    assert person is not None
    text = json.dumps(masked(person), ensure_ascii=False)
    for secret in (P2, LEGACY_P2, "李四", "北岙街道", "1985-02-02"):
        assert secret not in text
    firm = masked(lookup(session, E2) or {})
    assert firm["canonical_code"] == E2 and firm["golden"]["name"] == "温州船舶有限公司"
    assert P2 not in json.dumps(firm) and firm["golden"]["legal_rep_name"] == "李*"


def test_cli(session: Session) -> None:
    _seed(session)
    runner = CliRunner()
    result = runner.invoke(app, ["lookup", LEGACY_P2, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["entity_kind"] == "person" and P2 not in result.output
    result = runner.invoke(app, ["lookup", LEGACY_P2, "--json", "--unmasked"])
    assert json.loads(result.output)["canonical_code"] == P2
    result = runner.invoke(app, ["lookup", REG_E2])
    assert result.exit_code == 0 and E2 in result.output and "source records" in result.output
    result = runner.invoke(app, ["lookup", "330322199001010000"])
    assert result.exit_code == 1
