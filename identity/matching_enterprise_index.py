"""Enterprises in the master index as the enterprise model sees them (企业匹配的主索引读取).

The enterprise profile (:mod:`identity.matching_enterprise`) compares the enterprise name, the
legal representative's name, the address, the region and a damaged code's characters. The index
keeps the name, address and region in typed columns of ``identity_enterprise`` and the legal
representative's name among the golden record's other values (``attributes``); a department's
record may call its name ``taxpayer_name`` (tax). This module reads both sides in that shape:

* :func:`enterprise_values`: the compared values of a stored record (a link's or a golden one);
* :func:`incoming_enterprises`: a batch's records without a usable code, their code as written;
* :func:`index_enterprise_candidates`: identities of the index the blocking rules can pair them
  with — sharing the name (as written and simplified), the organisation code inside the damaged
  code (characters 9-17 of a USCC, 7-15 of an old taxpayer id, a 9-character organisation code:
  the column ``org_code`` is indexed) or the legal representative's resident id — read in a few
  ``IN`` queries, never one per record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity import _bulk
from identity.tables import IdentityEnterprise
from mappings import normalizers as nz

#: What the enterprise model compares, as columns of both sides (besides the code).
ENTERPRISE_COLUMNS = ("name", "legal_rep_name", "address", "region_code")
#: A department's column that is the enterprise's name (tax: ``taxpayer_name``; an approval's
#: applicant: ``applicant_name``).
NAME_ALIASES = ("name", "taxpayer_name", "applicant_name")
#: Where the enterprise's legal representative's resident id is in a department's record.
LEGAL_REP_ID = "legal_rep_resident_id"


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def enterprise_values(attributes: Mapping[str, Any]) -> dict[str, str | None]:
    """The compared values of a record's stored attributes (``taxpayer_name`` read as ``name``)."""
    name = next((_text(attributes.get(k)) for k in NAME_ALIASES if _text(attributes.get(k))), None)
    return {
        "name": name,
        "legal_rep_name": _text(attributes.get("legal_rep_name")),
        "address": _text(attributes.get("address")),
        "region_code": _text(attributes.get("region_code")),
    }


def _column(df: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    """The first of ``names`` ``df`` has, filled row by row from the later ones."""
    out = pd.Series(None, index=df.index, dtype=object)
    for name in names:
        if name in df.columns:
            values = df[name].astype(object)
            values = values.where(values.notna() & (values.astype(str).str.strip() != ""), None)
            out = out.where(out.notna(), values)
    return out


def enterprise_names(df: pd.DataFrame) -> pd.Series:
    """The enterprise name of each record (``name``, or tax's ``taxpayer_name``)."""
    return _column(df, NAME_ALIASES)


def incoming_enterprises(df: pd.DataFrame, rows: np.ndarray, code_columns: Sequence[str]) -> pd.DataFrame:
    """The records at ``rows`` as the model's incoming side: ``incoming_key`` (the batch position),
    the compared values, ``code`` (the first code the record carries, as written, however damaged)
    and ``legal_rep_id`` (for reading candidates only)."""
    part = df.iloc[rows]
    out = pd.DataFrame({"incoming_key": [str(i) for i in rows.tolist()]})
    out["name"] = enterprise_names(part).to_numpy()
    for name in ENTERPRISE_COLUMNS[1:]:
        out[name] = _column(part, (name,)).to_numpy()
    out["code"] = _column(part, list(code_columns)).to_numpy()
    out["legal_rep_id"] = _column(part, (LEGAL_REP_ID,)).to_numpy()
    return out


def placed_enterprises(df: pd.DataFrame, rows: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """The batch's records placed by their code (``rows``), as candidates under ``codes``."""
    part = df.iloc[rows]
    out = pd.DataFrame({"canonical_code": codes[rows]})
    out["name"] = enterprise_names(part).to_numpy()
    for name in ENTERPRISE_COLUMNS[1:]:
        out[name] = _column(part, (name,)).to_numpy()
    return out


def organisation_codes(codes: pd.Series) -> list[str]:
    """The organisation code each code embeds by its shape (a USCC's characters 9-17, an old
    taxpayer id's 7-15, a 9-character code itself), check characters unchecked: the code is
    damaged, the organisation code inside it may not be."""
    text = nz.code(codes.astype(object)).astype(object)
    out: set[str] = set()
    for value in text.dropna().astype(str).tolist():
        part = {18: value[8:17], 15: value[6:15], 9: value}.get(len(value))
        if part:
            out.add(part)
    return sorted(out)


def frame_of_rows(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of (uscc, name, address, region_code, attributes) as ``canonical_code`` + the
    compared columns."""
    records = []
    for code, name, address, region, attributes in rows:
        attrs = attributes if isinstance(attributes, dict) else {}
        records.append(
            {
                "canonical_code": code,
                "name": name,
                "legal_rep_name": _text(attrs.get("legal_rep_name")),
                "address": address,
                "region_code": region,
            }
        )
    return pd.DataFrame(records, columns=["canonical_code", *ENTERPRISE_COLUMNS])


def index_columns() -> tuple[Any, ...]:
    """The columns :func:`frame_of_rows` takes, in its order."""
    ent = IdentityEnterprise
    return (ent.uscc, ent.name, ent.address, ent.region_code, ent.stored_attributes)


def index_enterprise_candidates(session: Session, incoming: pd.DataFrame) -> pd.DataFrame:
    """Identities of the index sharing a name, an embedded organisation code or the legal
    representative with the ``incoming`` records, read in chunks of ``IN`` lists."""
    ent = IdentityEnterprise
    names = incoming["name"].dropna().astype(str)
    simplified = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(names)))
    searches = (
        (ent.name, sorted({*names.tolist(), *simplified.dropna().astype(str).tolist()})),
        (ent.org_code, organisation_codes(incoming["code"]) if "code" in incoming else []),
        (ent.legal_rep_id, sorted(set(incoming.get("legal_rep_id", pd.Series(dtype=object)).dropna().astype(str)))),
    )
    found: list[tuple[Any, ...]] = []
    for column, values in searches:
        for chunk in _bulk.chunks([v for v in values if v]):
            stmt = select(*index_columns()).where(_bulk.in_values(session, column, chunk), ent.merged_into.is_(None))
            found.extend(tuple(r) for r in session.execute(stmt).all())
    return frame_of_rows(found).drop_duplicates("canonical_code")
