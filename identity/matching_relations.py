"""Evidence from the enterprise a person represents (法定代表人关联): who its other records name.

A legal representative's record at one department often lacks the resident id (commerce left
the field empty, a check character was mistyped) while another record of the same enterprise —
at another department, or an earlier load — names its legal representative with a valid id.
A person record may carry ``represents``: a code of the enterprise it is the legal
representative of, as the department wrote it (a USCC, a 15-digit taxpayer id or a 9-character
organisation code). All three embed the organisation code, so the enterprise is known by it
whatever code a department used. The enterprise's legal representative is then:

* the identities that the batch's own records representing the same enterprise resolved to by
  a valid code, and
* the golden ``legal_rep_id`` of the enterprise in the index (``identity_enterprise``).

When these name exactly one identity, its code becomes the record's ``rep_code``, which the
model compares (:func:`identity.matching.person_settings`, comparison ``legal_rep``) as one more
piece of evidence beside the name: it never links by itself — a different name outweighs it.
Two identities named (the representative changed between loads) give no evidence.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from identifiers.vectorized import normalize_many
from identity import _bulk
from identity.tables import IdentityEnterprise

#: Column of a person record naming the enterprise it represents (any of the enterprise's codes).
REPRESENTS = "represents"
#: Where each kind of enterprise code carries the organisation code.
_ORG_SLICE = {"uscc": slice(8, 17), "taxpayer_id": slice(6, 15), "org_code": slice(0, 9)}


def organisation_codes(values: pd.Series) -> np.ndarray:
    """The organisation code each value embeds (a valid USCC, taxpayer id or organisation
    code), ``None`` where the value is none of them."""
    out = np.full(len(values), None, dtype=object)
    raw = values.astype(object).where(values.notna(), None).tolist()
    for kind, part in _ORG_SLICE.items():
        todo = np.array([v is None for v in out.tolist()], dtype=bool) & np.array(
            [r is not None for r in raw], dtype=bool
        )
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        norm = normalize_many([raw[i] for i in idx.tolist()], as_kind=kind)
        ok = norm["valid"].to_numpy(dtype=bool) & (norm["kind"].to_numpy(dtype=object) == kind)
        canonical = norm["canonical"].to_numpy(dtype=object)
        out[idx[ok]] = [str(c)[part] for c in canonical[ok].tolist()]
    return out


def representative_codes(
    session: Session,
    represents: pd.Series,
    canonical: np.ndarray,
    placed: np.ndarray,
    todo: np.ndarray,
) -> np.ndarray:
    """``rep_code`` for the ``todo`` rows: the one identity the enterprise they represent names
    as its legal representative (the batch's ``placed`` rows with their ``canonical`` codes, and
    the index's golden records), ``None`` where none or several are named."""
    out = np.full(len(represents), None, dtype=object)
    if not todo.any():
        return out
    orgs = organisation_codes(represents.reset_index(drop=True))
    named: dict[str, set[str]] = defaultdict(set)
    for i in np.flatnonzero(placed & pd.notna(orgs)).tolist():
        named[str(orgs[i])].add(str(canonical[i]))
    wanted = sorted({str(o) for o in orgs[todo].tolist() if o is not None})
    table = IdentityEnterprise.__table__
    for chunk in _bulk.chunks(wanted):
        rows = session.execute(
            select(table.c.org_code, table.c.legal_rep_id).where(
                _bulk.in_values(session, table.c.org_code, chunk),
                table.c.merged_into.is_(None),
                table.c.legal_rep_id.is_not(None),
            )
        ).all()
        for org, rep in rows:
            named[str(org)].add(str(rep))
    for i in np.flatnonzero(todo).tolist():
        codes = named.get(str(orgs[i])) if orgs[i] is not None else None
        if codes and len(codes) == 1:
            out[i] = next(iter(codes))
    return out
