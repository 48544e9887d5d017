"""New identities (新建主体) and their first golden records, built from the links just planned.

An identity the batch creates gets its golden record from its links in one pass: a code linked
once takes that record's values as they are; a code linked several times goes through the
survivorship rules (:mod:`identity.golden`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from identity import _bulk, _jsontext, golden
from identity.golden_sources import ONE_LINK, compact_attributes, pack
from identity.links import Attribute, LinkPlan, code_order, json_objects
from identity.rules import core_table, isin
from identity.tables import (
    ENTERPRISE,
    PERSON,
    TYPED_COLUMNS,
    IdentityEnterprise,
    IdentityPerson,
)


def identity_rows(
    entity_kind: str,
    codes: Sequence[str],
    plan: LinkPlan | None,
    department: str | None,
    dataset: str | None,
    now: Any,
) -> tuple[tuple[str, ...], list[list[np.ndarray]]]:
    """The columns and rows of new identities (``codes``, distinct) with golden records from
    the links just made — no update pass. Pure: it reads nothing from the database.

    Rows come in parts, each in code order, the largest first — identities with one link in
    the batch — so the primary key's B-tree grows at its end for nearly every row; the links
    are sorted once, and the part of several-link identities and the part of identities
    without links (few) follow, each sorted too.

    An identity with one link in the batch takes that record's non-empty values, with that
    link as the source of every one (column-wise; stored as :data:`ONE_LINK`); one with several
    goes through :func:`golden.survive`; one without links (an owner named inside a list)
    starts empty."""
    typed = TYPED_COLUMNS[entity_kind]
    key_cols: tuple[str, ...] = ("resident_id",) if entity_kind == PERSON else ("uscc", "org_code")
    columns = (*key_cols, *typed, "attributes", "sources")
    if not len(codes):
        return columns, []
    new = np.asarray(codes, dtype=object)
    parts: list[_IdentityColumns] = []
    if plan is not None and plan.inserted:
        links, shared = plan.new_links, plan.new_shared  # the links of new identities, in code order
        if (~shared).any():
            parts.append(_single_link_golden(plan, links[~shared], typed))
        if shared.any():
            parts.append(_several_links_golden(plan, links[shared], entity_kind, typed, department, dataset, now))
    if sum(len(p.codes) for p in parts) < len(new):
        linked = np.concatenate([p.codes for p in parts]) if parts else np.zeros(0, dtype=object)
        alone = new[~isin(new, linked)]
        alone = alone[code_order(alone)[0]]
        parts.append(
            _IdentityColumns(
                alone,
                {c: np.full(len(alone), None, dtype=object) for c in typed},
                np.full(len(alone), "{}", dtype=object),
                np.full(len(alone), "[]", dtype=object),
            )
        )
    rows: list[list[np.ndarray]] = []
    for part in sorted(parts, key=lambda p: -len(p.codes)):
        cols: list[np.ndarray] = [part.codes]
        if entity_kind == ENTERPRISE:
            cols.append(np.array([c[8:17] for c in part.codes.tolist()], dtype=object))
        cols.extend(part.typed[c] for c in typed)
        cols.append(part.attributes)
        cols.append(part.sources)
        rows.append(cols)
    return columns, rows


def prepare_identities(
    session: Session, entity_kind: str, rows: tuple[tuple[str, ...], list[list[np.ndarray]]], now: Any
) -> list[_bulk.Prepared]:
    """The rows of :func:`identity_rows` as the driver takes them (pure work: done while the
    links' indexes build), parts in order."""
    at = _bulk.timestamp(session, now)
    table = core_table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)
    return [_bulk.prepare(session, table, rows[0], cols, {"created_at": at, "updated_at": at}) for cols in rows[1]]


@dataclass
class _IdentityColumns:
    """New identities' columns (code, typed golden columns, attributes and sources JSON)."""

    codes: np.ndarray
    typed: dict[str, np.ndarray]
    attributes: np.ndarray
    sources: np.ndarray


#: The stored ``sources`` of a golden record drawn from its one link, as JSON text.
_ONE_LINK_JSON = _jsontext.dumps(ONE_LINK)


def _single_link_golden(plan: LinkPlan, links: np.ndarray, typed: Sequence[str]) -> _IdentityColumns:
    """Golden records of identities with one link each (``links``: positions in ``plan``):
    the link's non-empty values, every one sourced from it — survivorship over one record.
    Text values of typed columns are stored there only; the sources are the link's."""
    n = len(links)
    attrs = plan.attributes
    values = np.full(n, "{}", dtype=object)
    typed_cols = {c: np.full(n, None, dtype=object) for c in typed}
    rest: list[tuple[Attribute, np.ndarray]] = []
    for a in attrs:
        slots = a.codes[links]
        is_text = np.array([type(v) is str for v in a.values.tolist()], dtype=bool)
        if a.name in typed:
            text = np.array(
                [None if b else golden.text(v) for v, b in zip(a.values, a.blank, strict=True)], dtype=object
            )
            typed_cols[a.name] = text[slots]
        held = ~a.blank & ~(is_text if a.name in typed else np.zeros(len(a.values), dtype=bool))
        if held[slots].any():  # values the ``attributes`` column stores (not blank, not in a typed column)
            rest.append((a, held[slots]))
    if rest:
        values[:] = json_objects([a for a, _ in rest], links, keep=np.column_stack([keep for _, keep in rest]))
    sources = np.full(n, _ONE_LINK_JSON, dtype=object)
    return _IdentityColumns(plan.codes[links], typed_cols, values, sources)


def _several_links_golden(
    plan: LinkPlan,
    links: np.ndarray,
    entity_kind: str,
    typed: Sequence[str],
    department: str | None,
    dataset: str | None,
    now: Any,
) -> _IdentityColumns:
    """Golden records of identities with several links in the batch, by :func:`golden.survive`."""
    by_code: dict[str, list[int]] = {}
    for k, code in zip(links.tolist(), plan.codes[links].tolist(), strict=True):
        by_code.setdefault(code, []).append(k)
    rules = golden.load_rules()
    linked_at = now.isoformat()
    n = len(by_code)
    values_col = np.full(n, "{}", dtype=object)
    sources_col = np.full(n, "[]", dtype=object)
    typed_cols = {c: np.full(n, None, dtype=object) for c in typed}
    for i, ks in enumerate(by_code.values()):
        records = [
            golden.SourceValues(
                department or "",
                dataset or "",
                plan.keys[k],
                plan.versions[k],
                json.loads(plan.attributes_json[k]),
                linked_at,
            )
            for k in ks
        ]
        values, sources = golden.survive(records, entity_kind, rules)
        values_col[i] = _jsontext.dumps(compact_attributes(values, typed))
        sources_col[i] = _jsontext.dumps(pack(sources))
        for c in typed:
            typed_cols[c][i] = golden.text(values.get(c))
    return _IdentityColumns(np.array(list(by_code), dtype=object), typed_cols, values_col, sources_col)
