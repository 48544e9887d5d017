"""Relations between identities by role (a person's employer): resolved through the cross-walk,
history kept, placed later when the index learns an old code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity.relations import resolve_pending
from identity.resolve import link_mapping_batch, resolve_codes
from identity.tables import IdentityRelation
from mappings.engine import load_mapping
from tests.identity.test_resolve import E1, E2, P1, REG_E2

MAPPING = Path("mappings/social_insurance_insured_persons.yaml")
OLD_REG_NO = REG_E2  # E2's old registration number (注册号)


def _insured(employer: str | None, version: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "_source_key": "i1",
                "_source_version": version,
                "resident_id": P1,
                "name": "甲",
                "insurance_status": "paying",
                "employer_uscc": employer,
            }
        ]
    )


def _active(session: Session) -> list[IdentityRelation]:
    return list(session.scalars(select(IdentityRelation).where(IdentityRelation.unlinked_at.is_(None))))


def test_employer_link_keeps_history_and_is_placed_once_the_old_code_is_known(session: Session) -> None:
    mapping = load_mapping(MAPPING)
    link_mapping_batch(session, _insured(E1, "v1"), mapping, run_id="r1")
    (rel,) = _active(session)
    assert (rel.canonical_code, rel.role, rel.related_kind, rel.related_code) == (P1, "employer", "enterprise", E1)

    link_mapping_batch(session, _insured(E1, "v2"), mapping, run_id="r2")  # the same employer: nothing new
    assert [r.id for r in _active(session)] == [rel.id]

    # another employer, named by an old registration number the index does not know yet
    link_mapping_batch(session, _insured(OLD_REG_NO, "v3"), mapping, run_id="r3")
    (now,) = _active(session)
    assert now.id != rel.id and now.presented_code == OLD_REG_NO and now.related_code is None
    assert session.get(IdentityRelation, rel.id).unlinked_at is not None  # type: ignore[union-attr]
    assert resolve_pending(session, resolve_codes) == 0

    # commerce's record of E2 carries both codes: the cross-walk learns the old one, housekeeping
    # places the relation
    commerce = load_mapping(Path("mappings/commerce_enterprises.yaml"))
    link_mapping_batch(
        session,
        pd.DataFrame(
            [
                {
                    "_source_key": "c2",
                    "_source_version": "v",
                    "uscc": E2,
                    "reg_no": OLD_REG_NO,
                    "org_code": None,
                    "name": "洞头海鲜有限公司",
                }
            ]
        ),
        commerce,
        run_id="c",
    )
    assert resolve_pending(session, resolve_codes) == 1
    assert (now.related_code, now.method) == (E2, "crosswalk")

    link_mapping_batch(session, _insured(None, "v4"), mapping, run_id="r4")  # no employer any more
    assert _active(session) == []
