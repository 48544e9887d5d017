"""Holders named inside a record (``owners[].holder_code``): each element a source record of its own.

The property right names its owners; each owner is resolved and linked like any other record,
keyed ``<record key>#<n>`` as its licence's source, through the link function resolution passes
in (:func:`identity.resolve.link_batch`'s own), so this module does not import resolution back.
An owner whose record declares its kind and whose code is unusable (missing, damaged) is matched
like a top-level record (:mod:`identity.matching_step`: linked, sent to review, or provisional);
one of no declared kind is resolved by code only (docs/decisions/0036-holders-inside-records-matched.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from identity.batch_mapping import ResolvableMapping, identifier_specs
from identity.statuses import NEW, RESOLVED
from identity.tables import (
    ENTERPRISE,
    PERSON,
)


class LinkFrame(Protocol):
    """Resolution's own batch linking (``identity.resolve._link_batch``), passed in."""

    def __call__(
        self,
        session: Session,
        df: pd.DataFrame,
        entity_kind: str,
        department: str,
        dataset: str,
        *,
        mapping: ResolvableMapping | None,
        run_id: str | None,
        code_columns: Sequence[tuple[str, str | None]] | None,
        match: bool = False,
    ) -> LinkedFrame: ...


class LinkedFrame(Protocol):
    """What the nested holders read back of a linked frame."""

    records: pd.DataFrame
    created: int
    linked: int
    linked_to_new: int
    learnt: int
    merged_events: int
    linked_by_match: int
    sent_to_review: int
    provisional: int
    model_version: str | None


@dataclass
class _NestedCounts:
    created: int = 0
    linked: int = 0
    linked_to_new: int = 0
    learnt: int = 0
    merged_events: int = 0
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    model_version: str | None = None


#: The column of a nested holder's code in the frame its elements are linked from.
_NESTED_CODE = "_nested_holder_code"


def resolve_nested(
    session: Session,
    records: pd.DataFrame,
    mapping: ResolvableMapping | None,
    department: str,
    dataset: str,
    key_col: str | None,
    version_col: str | None,
    run_id: str | None,
    link: LinkFrame,
) -> _NestedCounts:
    """Holder codes inside list fields (``owners[].holder_code``): add ``resolved_id`` to each
    element, resolving persons and enterprises by the element's kind field.

    Each element is a source record of its own, linked like any other: its key is the
    record's key and the element's place (``<unit>#0``, as its licence's source), its version the record's, its
    values (the owner's name…) the element's fields. So "who is this?" shows the property
    right an owner holds, an owner the index has not seen becomes an identity with the
    department's values, and a re-run links nothing twice."""
    counts = _NestedCounts()
    nested = [spec for spec in identifier_specs(mapping) if "[]." in spec.field]
    if not nested:
        return counts
    keys = records[key_col].astype(str).tolist() if key_col is not None else None
    versions = records[version_col].tolist() if version_col is not None else None
    for spec in nested:
        list_col, _, code_key = spec.field.partition("[].")
        kind_key = spec.kind_field.partition("[].")[2] if spec.kind_field else None
        if list_col not in records.columns:
            continue
        # numbered as the licences they yield are (``pipeline.publish``: ``<key>#<n>``
        # over the non-empty elements), so a licence's source record is its holder's link
        elements = [
            (i, j, el)
            for i, items in enumerate(records[list_col].tolist())
            if isinstance(items, list | tuple | np.ndarray)
            for j, el in enumerate([o for o in items if o])
            if isinstance(el, dict)
        ]
        for entity_kind in (PERSON, ENTERPRISE):
            group = [
                (i, j, el)
                for i, j, el in elements
                if (el.get(kind_key) if kind_key else None) in (entity_kind, None) and "resolved_id" not in el
            ]
            # an owner of a declared kind without a usable code is matched like a top-level record
            # (linked, sent to review, or a provisional identity); one of no declared kind is not
            # matched: nobody can say which model's it is
            declared = [g for g in group if kind_key and g[2].get(kind_key) is not None]
            undeclared = [g for g in group if not (kind_key and g[2].get(kind_key) is not None)]
            for part, match in ((declared, True), (undeclared, False)):
                if part:
                    _link_elements(
                        session, part, entity_kind, code_key, kind_key, keys, versions,
                        department, dataset, run_id, link, counts, match=match,
                    )  # fmt: skip
    return counts


def _link_elements(
    session: Session,
    group: list[tuple[int, int, dict[str, Any]]],
    entity_kind: str,
    code_key: str,
    kind_key: str | None,
    keys: list[str] | None,
    versions: list[Any] | None,
    department: str,
    dataset: str,
    run_id: str | None,
    link: LinkFrame,
    counts: _NestedCounts,
    *,
    match: bool,
) -> None:
    """Link the elements of ``group`` as records of ``entity_kind``; each gains ``resolved_id``
    (``None`` while it waits: in the review queue, or an old code nobody holds yet)."""
    fields = sorted({k for _, _, el in group for k in el} - {code_key, kind_key, "resolved_id"})
    frame = pd.DataFrame(
        {
            _NESTED_CODE: pd.Series([el.get(code_key) for _, _, el in group], dtype=object),
            **{f: pd.Series([el.get(f) for _, _, el in group], dtype=object) for f in fields},
        }
    )
    if keys is not None:
        frame["_source_key"] = [f"{keys[i]}#{j}" for i, j, _ in group]
    if versions is not None:
        frame["_source_version"] = pd.Series([versions[i] for i, _, _ in group], dtype=object)
    res = link(
        session,
        frame,
        entity_kind,
        department,
        dataset,
        mapping=None,
        run_id=run_id,
        code_columns=[(_NESTED_CODE, None)],
        match=match,
    )
    for (_, _, el), code, status in zip(
        group, res.records["canonical_code"].tolist(), res.records["identity_status"].tolist(), strict=True
    ):
        el["resolved_id"] = code if status in (RESOLVED, NEW) else None
    counts.created += res.created
    counts.linked += res.linked
    counts.linked_to_new += res.linked_to_new
    counts.learnt += res.learnt
    counts.merged_events += res.merged_events
    counts.linked_by_match += res.linked_by_match
    counts.sent_to_review += res.sent_to_review
    counts.provisional += res.provisional
    counts.model_version = res.model_version or counts.model_version
