"""Relations between identities by role (关联关系): a person's employer named by its USCC.

A mapping's ``relations:`` say which field of a record names another identity, in which role
and as what kind (``{role: employer, field: employer_uscc, identity_kind: enterprise}``). When
a batch is linked, :func:`link_relations` resolves those codes as that kind — a valid USCC is
itself, an old registration number or organisation code goes through the cross-walk — and
keeps one active relation per source record and role in ``identity_relation``:

* the same code again changes nothing; another code (or none) ends the relation
  (``unlinked_at``) and, for a code, starts a new one: history is kept;
* a code the index cannot place yet (an old code commerce has not linked) is kept as given,
  ``related_code`` empty; :func:`resolve_pending` places it once the cross-walk knows it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from identity import _bulk
from identity.statuses import NEW, RESOLVED
from identity.tables import IdentityRelation

#: :func:`identity.resolve.resolve_codes`: (session, codes, kind, kinds=…) → frame of canonical_code, status, method
CodeResolver = Callable[..., pd.DataFrame]


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def link_relations(
    session: Session,
    records: pd.DataFrame,
    relations: Sequence[Any],
    entity_kind: str,
    department: str,
    dataset: str,
    key_col: str | None,
    version_col: str | None,
    now: dt.datetime,
    resolve_codes: CodeResolver,
) -> int:
    """Keep the relations the batch's records name (``records`` carry ``canonical_code`` and
    ``identity_status`` from linking); returns how many relations were started. ``resolve_codes``
    is :func:`identity.resolve.resolve_codes` (passed in: resolution calls this module)."""

    if not relations or key_col is None or not len(records):
        return 0
    own_ok = records["identity_status"].isin([RESOLVED, NEW]).to_numpy()
    keys = records[key_col].astype(str).tolist()
    own = records["canonical_code"].tolist()
    versions = records[version_col].tolist() if version_col is not None else [None] * len(records)
    started = 0
    for rel in relations:
        if rel.field not in records.columns:
            continue
        kinds = None if rel.kind == "auto" else [rel.kind] * len(records)
        res = resolve_codes(session, records[rel.field], rel.identity_kind, kinds=kinds)
        wanted: dict[str, tuple[str, str, str | None, str | None, str | None]] = {}
        for i in range(len(records)):
            if not own_ok[i] or keys[i] in wanted:
                continue
            presented = _text(res["normalized"].iat[i]) or _text(records[rel.field].iat[i])
            placed = res["status"].iat[i] in (RESOLVED, NEW)
            related = res["canonical_code"].iat[i] if placed else None
            wanted[keys[i]] = (
                own[i],
                presented or "",
                related,
                res["method"].iat[i] if placed else None,
                _text(versions[i]),
            )
        current = _active(session, department, dataset, rel.role, list(wanted))
        ended: list[int] = []
        for key, (code, presented, related, method, version) in wanted.items():
            found = current.get(key)
            if found is not None and (found.canonical_code, found.presented_code) == (code, presented):
                if found.related_code != related and related is not None:
                    found.related_code, found.method = related, method  # placed since
                found.source_version = version
                continue
            if found is not None:
                ended.append(found.id)
            if presented:
                session.add(IdentityRelation(
                    entity_kind=entity_kind, canonical_code=code, role=rel.role, related_kind=rel.identity_kind,
                    related_code=related, presented_code=presented[:40], method=method, department=department,
                    dataset=dataset, source_key=key, source_version=version, linked_at=now))  # fmt: skip
                started += 1
        if ended:
            session.execute(update(IdentityRelation).where(IdentityRelation.id.in_(ended)).values(unlinked_at=now))
    session.flush()
    return started


def _active(session: Session, department: str, dataset: str, role: str, keys: list[str]) -> dict[str, IdentityRelation]:
    out: dict[str, IdentityRelation] = {}
    for chunk in _bulk.chunks(keys):
        for row in session.scalars(select(IdentityRelation).where(
                IdentityRelation.department == department, IdentityRelation.dataset == dataset,
                IdentityRelation.role == role, IdentityRelation.unlinked_at.is_(None),
                _bulk.in_values(session, IdentityRelation.source_key, chunk))):  # fmt: skip
            out[row.source_key] = row
    return out


def resolve_pending(session: Session, resolve_codes: CodeResolver) -> int:
    """Place active relations whose code the index could not resolve when they were linked
    (an old code the cross-walk has learnt since); returns how many were placed.
    ``resolve_codes`` is :func:`identity.resolve.resolve_codes`."""

    placed = 0
    for kind in ("person", "enterprise"):
        rows = session.scalars(select(IdentityRelation).where(
            IdentityRelation.related_code.is_(None), IdentityRelation.unlinked_at.is_(None),
            IdentityRelation.related_kind == kind)).all()  # fmt: skip
        if not rows:
            continue
        res = resolve_codes(session, [r.presented_code for r in rows], kind)
        for row, code, status, method in zip(rows, res["canonical_code"], res["status"], res["method"], strict=True):
            if status in (RESOLVED, NEW) and code:
                row.related_code, row.method = str(code), str(method)
                placed += 1
    session.flush()
    return placed


def relations_of(session: Session, canonical_code: str) -> tuple[list[IdentityRelation], list[IdentityRelation]]:
    """(the relations an identity's records name, the relations naming it), oldest first."""
    out = session.scalars(select(IdentityRelation).where(IdentityRelation.canonical_code == canonical_code)
                          .order_by(IdentityRelation.id)).all()  # fmt: skip
    into = session.scalars(select(IdentityRelation).where(IdentityRelation.related_code == canonical_code)
                           .order_by(IdentityRelation.id)).all()  # fmt: skip
    return list(out), list(into)
