"""The one-code path (:func:`identity.rules.resolve_one`) answers as :func:`resolve_codes` does,
code by code: canonical codes, 15-digit ids converted, organisation codes and old taxpayer ids,
codes cross-walked (stored and learnt now), identities merged away, pending creations, unknown
and malformed codes — as a person's and as an enterprise's, detected and forced (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from identifiers import org_code
from identity.merge import merge
from identity.resolve import resolve_batch
from identity.rules import Resolved, resolve_codes, resolve_one
from tests.identity.test_resolve import E1, E2, LEGACY_P2, P1, P2, REG_E2, make_reg_no, make_uscc, rid

P3 = rid("33032219900303003")  # merged into P1 below
E3 = make_uscc("330322", "22223333")  # merged into E1 below
UNKNOWN_USCC = make_uscc("330300", "99998888")
UNKNOWN_RID = rid("33032219700707007")
UNKNOWN_REG = make_reg_no("33030000000999")
UNKNOWN_ORG = "11111111" + org_code.calc_check_digit("11111111")

CODES: list[object] = [
    P1, P2, LEGACY_P2, P3, P1.lower(), " ３３０３２２" + P1[6:], E1, E2, E3, REG_E2, E1[8:17], E1[8:16] + "-" + E1[16],
    "330322" + E1[8:17], "330322" + UNKNOWN_ORG, UNKNOWN_USCC, UNKNOWN_RID, UNKNOWN_RID[:6] + UNKNOWN_RID[8:17],
    UNKNOWN_REG, UNKNOWN_ORG, "LEARNT-0001", P1[:-1] + ("0" if P1[-1] != "0" else "1"), E1[:-1] + "0",
    "not a code", "", None, "1" * 18, "9" * 15, "X" * 20, E2 + "00",
]  # fmt: skip
FORCED = (None, "auto", "resident_id", "resident_id_15", "uscc", "org_code", "reg_no", "taxpayer_id")


def _seed(session: Session) -> None:
    persons = pd.DataFrame(
        [{"_source_key": str(i), "_source_version": "1", "resident_id": c, "name": f"人{i}"}
         for i, c in enumerate([P1, LEGACY_P2, P3])]
    )  # fmt: skip
    resolve_batch(session, persons, "person", "public_security", "persons")
    firms = pd.DataFrame(
        [{"_source_key": f"e{i}", "_source_version": "1", "uscc": c, "reg_no": reg, "org_code": c[8:17],
          "name": f"企业{i}"} for i, (c, reg) in enumerate([(E1, None), (E2, REG_E2), (E3, None)])]
    )  # fmt: skip
    resolve_batch(session, firms, "enterprise", "commerce", "enterprises")
    session.commit()
    merge(session, "person", P3, P1, actor="reviewer")
    merge(session, "enterprise", E3, E1, actor="reviewer")
    session.commit()


def _row(frame: pd.DataFrame) -> Resolved:
    r = frame.iloc[0]
    values: list[Any] = [None if v is None or v != v else v for v in (r[c] for c in Resolved._fields)]
    return Resolved(*values)


def _agree(session: Session) -> int:
    learnt = {"LEARNT-0001": E2}
    pending = {UNKNOWN_ORG: UNKNOWN_USCC}
    compared = 0
    for code in CODES:
        for entity_kind in ("person", "enterprise"):
            for kind in FORCED:
                for extra in ({}, {"learnt": learnt, "pending": pending}):
                    kinds = None if kind is None else [kind]
                    want = _row(resolve_codes(session, [code], entity_kind, kinds=kinds, **extra))
                    got = resolve_one(session, code, entity_kind, kind=kind, **extra)
                    assert got == want, (code, entity_kind, kind, extra)
                    compared += 1
    return compared


def _scenario(session: Session) -> None:
    _seed(session)
    assert _agree(session) == len(CODES) * 2 * len(FORCED) * 2
    # what the cases part relies on, spelt out
    assert resolve_one(session, LEGACY_P2, "person") == Resolved("ambiguous", LEGACY_P2, P2, "converted_15_to_18",
                                                                 "resolved")  # fmt: skip
    assert resolve_one(session, REG_E2, "enterprise").canonical_code == E2
    assert resolve_one(session, REG_E2, "enterprise").method == "crosswalk"
    assert resolve_one(session, P3, "person").canonical_code == P1  # merged away: lives on as P1
    assert resolve_one(session, E3, "enterprise").canonical_code == E1
    assert resolve_one(session, UNKNOWN_USCC, "enterprise").status == "new"
    assert resolve_one(session, UNKNOWN_REG, "enterprise") == Resolved("ambiguous", UNKNOWN_REG, None, None,
                                                                       "unresolved")  # fmt: skip


def test_one_code_agrees_with_resolve_codes_on_sqlite(session: Session) -> None:
    _scenario(session)


@pytest.mark.postgres
def test_one_code_agrees_with_resolve_codes_on_postgres(pg_session: Session) -> None:
    _scenario(pg_session)


def test_organisation_code_carried_by_two_identities_agrees(session: Session) -> None:
    _seed(session)
    # a second live identity with E1's organisation code: the index no longer names one enterprise
    # by it (what the cross-walk learnt from commerce may still)
    twin = make_uscc("330300", E1[8:16])
    firms = pd.DataFrame([{"_source_key": "t", "_source_version": "1", "uscc": twin, "name": "孪生"}])
    resolve_batch(session, firms, "enterprise", "commerce", "enterprises")
    session.commit()
    for code in (E1[8:17], "330322" + E1[8:17]):
        want = _row(resolve_codes(session, [code], "enterprise"))
        assert resolve_one(session, code, "enterprise") == want
        assert want.method != "org_code_in_uscc"


def test_one_code_reads_at_most_three_statements(session: Session) -> None:
    _seed(session)
    statements: list[str] = []
    engine = session.get_bind()
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for code in (P1, LEGACY_P2, E1[8:17], REG_E2, UNKNOWN_REG, "not a code"):
            statements.clear()
            resolve_one(session, code, "enterprise")
            assert len(statements) <= 3, (code, statements)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
