"""Source-record links (来源记录关联), planned column-wise and written in bulk.

Each record of a batch becomes a link between its department's source key and the identity it
resolved to, with its attributes factorised per column and a 64-bit fingerprint, so a re-run
finds unchanged records without comparing values (docs/decisions/0012-identity-bulk-linking.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Text, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

from hub.models import utcnow
from identity import _bulk, _jsontext, golden
from identity.golden_sources import AS_GOLDEN_JSON
from identity.rules import EXACT, core_table, unique_values
from identity.statuses import NEW
from identity.tables import (
    IdentitySourceRecord,
)


@dataclass
class Attribute:
    """One golden attribute of a batch, factorised: per row a code into the distinct values."""

    name: str
    codes: np.ndarray  # int per row; -1 (the last slot) for a missing value
    values: np.ndarray  # JSON-safe value per distinct value, then None
    encoded: np.ndarray  # its JSON text, then None
    blank: np.ndarray  # empty for survivorship (None or whitespace only), then True
    hashes: np.ndarray  # uint64 of the name and JSON text per distinct value, then 0

    @classmethod
    def of(cls, name: str, column: pd.Series) -> Attribute:
        if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            values = golden.json_column(pd.Series(uniques))
        else:  # mixed Python objects (True == 1 would share a slot; lists do not hash): row by row
            values = golden.json_column(column)
            codes = np.arange(len(values))
        table = np.empty(len(values) + 1, dtype=object)
        table[: len(values)] = values
        table[-1] = None
        codes = np.where(codes < 0, len(values), codes)
        encoded = np.empty(len(table), dtype=object)
        encoded[:] = _jsontext.encode_column(table)
        blank = np.array([golden.is_empty(v) for v in table.tolist()], dtype=bool)
        return cls(name, codes, table, encoded, blank, _value_hashes(name, encoded))

    def take(self, rows: np.ndarray) -> Attribute:
        return Attribute(self.name, self.codes[rows], self.values, self.encoded, self.blank, self.hashes)

    def present(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Per row (of ``rows``): has it a value (JSON text; blank text is a value here)."""
        return pd.notna(self.encoded)[self.codes if rows is None else self.codes[rows]]  # type: ignore[no-any-return]


def json_objects(attributes: Sequence[Attribute], rows: np.ndarray, keep: np.ndarray | None = None) -> list[str]:
    """The JSON objects of ``attributes`` at ``rows`` (see :func:`_jsontext.objects`)."""
    if not attributes:
        return ["{}"] * len(rows)
    return _jsontext.objects(
        [a.name for a in attributes],
        [a.encoded[a.codes[rows]].tolist() for a in attributes],
        keep=keep,
        present=np.column_stack([a.present(rows) for a in attributes]),
    )


def _value_hashes(name: str, encoded: np.ndarray) -> np.ndarray:
    """Per distinct value a 64-bit hash of ``name:json`` (pandas' fixed-key SipHash: the same
    in every process); 0 for a missing value, which the record's JSON leaves out."""
    out = np.zeros(len(encoded), dtype=np.uint64)
    present = pd.notna(encoded)
    if present.any():
        texts = np.array([f"{name}:{e}" for e in encoded[present].tolist()], dtype=object)
        out[present] = pd.util.hash_array(texts, categorize=False)
    return out


def _fingerprints(attributes: Sequence[Attribute], n: int) -> np.ndarray:
    """Per row a fingerprint of its attributes' JSON object (int64, as stored): the sum of its
    values' hashes, so equal objects — whatever the key order — have equal fingerprints."""
    total = np.zeros(n, dtype=np.uint64)
    for a in attributes:
        total += a.hashes[a.codes]  # wraps around modulo 2**64
    return total.view(np.int64)


@dataclass
class LinkPlan:
    """What linking a batch writes: rows to insert (by batch row), updates, identities touched."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # batch rows to link anew
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    versions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    methods: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    fingerprints: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: per inserted row: does it link an identity created by this batch
    new: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: the inserted rows linking new identities, in code order, and per such row: does its
    #: identity have other links in the batch
    new_links: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new_shared: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: per inserted row: the match probability (NaN for a link by code) and the model version
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=float))
    model_versions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    attributes: list[Attribute] = field(default_factory=list)
    #: per inserted row its values' JSON text, or AS_GOLDEN's (the only link of a new identity)
    attributes_json: list[str] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # existing identities whose links changed

    @property
    def inserted(self) -> int:
        return len(self.rows)


def plan_links(
    session: Session,
    df: pd.DataFrame,
    combined: dict[str, Any],
    entity_kind: str,
    department: str,
    dataset: str,
    key_col: str | None,
    version_col: str | None,
) -> LinkPlan:
    """Decide the link writes: new records are linked, a record whose version or values
    changed is updated, a record that now resolves elsewhere is unlinked and relinked
    (history kept). The first resolved row of a source key in the batch speaks for it.

    A record is unchanged when its version and the fingerprint of its values equal the
    stored link's: only changed and new records have their JSON built (a link stored without
    a fingerprint is compared by its JSON, and gets its fingerprint)."""
    if key_col is None or not len(df):
        return LinkPlan()
    rules = golden.load_rules()
    canonical = np.asarray(combined["canonical_code"], dtype=object)
    methods = np.asarray(combined["method"], dtype=object)
    rows = np.flatnonzero(pd.notna(canonical))
    keys_all = df[key_col].astype(str).to_numpy(dtype=object)
    rows = rows[~pd.Series(keys_all[rows], dtype=object).duplicated(keep="first").to_numpy()]
    if not len(rows):
        return LinkPlan()
    keys = keys_all[rows]
    codes = canonical[rows]
    if version_col is not None:
        # the whole column, as its dates are formatted by what the whole column holds
        version_attr = Attribute.of("version", df[version_col])
        text = np.array(
            [v if v is None or type(v) is str else str(v) for v in version_attr.values.tolist()], dtype=object
        )
        versions = text[version_attr.codes[rows]]
    else:
        versions = np.full(len(rows), None, dtype=object)
    feeds: dict[str, pd.Series] = {}
    for column in df.columns:
        name = rules.golden_name(entity_kind, str(column))
        if name is None:
            continue
        earlier = feeds.get(name)
        # two columns feeding one attribute (an alias and the name itself): the later one's
        # value where it has one, as a dict built column by column would hold
        feeds[name] = (
            df[column]
            if earlier is None
            else df[column].astype(object).where(df[column].notna(), earlier.astype(object))
        )
    attributes = [Attribute.of(name, column).take(rows) for name, column in feeds.items()]
    prints = _fingerprints(attributes, len(rows))

    table = core_table(IdentitySourceRecord)
    isr = table.c
    active = (isr.department == department, isr.dataset == dataset, isr.unlinked_at.is_(None))
    found = list(
        _bulk.rows_for_keys(  # Core rows: no ORM loading per row
            session,
            table,
            isr.source_key,
            keys.tolist(),
            (isr.id, isr.canonical_code, isr.source_version, isr.fingerprint),
            active,
        )
    )
    insert = np.ones(len(rows), dtype=bool)
    compare = np.zeros(len(rows), dtype=bool)  # same version, another or no fingerprint: compare JSON
    renew = np.zeros(len(rows), dtype=bool)  # another version: update
    link = np.full(len(rows), -1, dtype=np.int64)
    updates: list[dict[str, Any]] = []
    touched: set[str] = set()
    now = utcnow()
    if found:
        cur_key, cur_id, cur_code, cur_version, cur_print = (
            np.array(c, dtype=object) for c in zip(*found, strict=True)
        )
        at = pd.Index(cur_key, dtype=object).get_indexer(keys)  # an active link per key at most
        seen = np.flatnonzero(at >= 0)
        same = cur_code[at[seen]] == codes[seen]
        kept = seen[same]
        link[kept] = at[kept]
        insert[kept] = False
        renew[kept] = cur_version[at[kept]] != versions[kept]
        compare[kept] = ~renew[kept] & (cur_print[at[kept]] != prints[kept])
        for k in at[seen[~same]].tolist():  # the record moved to another identity: unlink, keep history
            updates.append({"id": int(cur_id[k]), "unlinked_at": now})
            touched.add(cur_code[k])
    keep = np.flatnonzero(insert)
    new = np.asarray(combined["status"], dtype=object)[rows[keep]] == NEW
    new_links, new_shared = _new_links(codes[keep], new)
    # an identity's only link whose values are all non-blank holds them as its golden record
    # does (AS_GOLDEN): survivorship over that one record keeps them all
    implied = np.zeros(len(rows), dtype=bool)
    alone = keep[new_links[~new_shared]]
    if len(alone):
        blank = np.zeros(len(alone), dtype=bool)
        for a in attributes:
            blank |= a.blank[a.codes[alone]] & a.present(alone)  # blank text, not a missing value
        implied[alone[~blank]] = True
    # JSON only for the rows written or compared
    need = np.flatnonzero((insert | renew | compare) & ~implied)
    texts = np.full(len(rows), None, dtype=object)
    texts[implied] = AS_GOLDEN_JSON
    if len(need):
        texts[need] = json_objects(attributes, need)
    if compare.any():
        stored = dict(
            _bulk.rows_for_keys(
                session, table, isr.source_key, keys[compare].tolist(), (cast_text(isr.attributes),), active
            )
        )
        for j in np.flatnonzero(compare).tolist():
            if _same_json(stored.get(keys[j]), texts[j]):
                updates.append({"id": int(cur_id[link[j]]), "fingerprint": int(prints[j])})
            else:
                renew[j] = True
    for j in np.flatnonzero(renew).tolist():
        updates.append(
            {
                "id": int(cur_id[link[j]]),
                "source_version": versions[j],
                "stored_attributes": json.loads(texts[j]),
                "fingerprint": int(prints[j]),
            }
        )
        touched.add(codes[j])
    touched.update(unique_values(codes[keep][~new]))
    return LinkPlan(
        rows=rows[keep],
        keys=keys[keep],
        versions=versions[keep],
        codes=codes[keep],
        methods=np.array([m or EXACT for m in methods[rows[keep]].tolist()], dtype=object),
        fingerprints=prints[keep],
        new=new,
        new_links=new_links,
        new_shared=new_shared,
        probabilities=np.asarray(combined.get("match_probability", np.full(len(df), np.nan)), dtype=float)[rows[keep]],
        model_versions=np.asarray(combined.get("model_version", np.full(len(df), None)), dtype=object)[rows[keep]],
        attributes=[a.take(keep) for a in attributes],
        attributes_json=texts[keep].tolist(),
        updates=updates,
        touched=touched,
    )


def _new_links(codes: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the ``new`` links in code order (sorted once), and per position:
    does another of them link the same identity (in code order, an equal neighbour)."""
    links = np.flatnonzero(new)
    order, sorted_codes = code_order(codes[links])
    same = sorted_codes[1:] == sorted_codes[:-1]
    shared = np.zeros(len(links), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    return links[order], shared


def cast_text(column: Any) -> Any:
    """A JSON column read as its stored text (compared as text before parsing)."""
    return sa_cast(column, Text)


def _same_json(stored: str | None, new: str) -> bool:
    if stored == new:
        return True
    try:
        return bool(json.loads(stored or "{}") == json.loads(new))
    except ValueError:
        return False


def write_links(
    session: Session, plan: LinkPlan, entity_kind: str, department: str, dataset: str, now: Any
) -> _bulk.Prepared | None:
    """Update the links the plan changes; the new links' rows, ready for :func:`_bulk.insert`
    (``None`` when there are none; on PostgreSQL their ``COPY`` text is built as it is sent)."""
    for group in _same_keys(plan.updates):
        session.execute(update(IdentitySourceRecord), group)  # bulk UPDATE by primary key
    if not plan.inserted:
        return None
    at = _bulk.timestamp(session, now)
    columns: tuple[str, ...] = ("source_key", "source_version", "canonical_code", "method", "attributes", "fingerprint")
    values: list[Any] = [plan.keys, plan.versions, plan.codes, plan.methods, plan.attributes_json, plan.fingerprints]
    scored = ~np.isnan(plan.probabilities) if len(plan.probabilities) else np.zeros(0, dtype=bool)
    if scored.any():  # links the model made: their probability and model version too
        columns += ("match_probability", "model_version")
        values += [
            np.array(
                [float(p) if ok else None for p, ok in zip(plan.probabilities, scored, strict=True)], dtype=object
            ),
            np.array([v if ok else None for v, ok in zip(plan.model_versions, scored, strict=True)], dtype=object),
        ]
    constants = {"department": department, "dataset": dataset, "entity_kind": entity_kind, "linked_at": at}
    # on PostgreSQL the COPY text is joined a piece at a time as the load's worker sends it: the
    # server stores the first piece while the rest (and the new identities' rows) are built
    return _bulk.prepare(session, core_table(IdentitySourceRecord), columns, values, constants, lazy=True)


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their key sets (one executemany per shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def code_order(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts canonical codes as the database does (by code point), and the
    codes in that order (as compared: equal codes are equal elements). Codes are ASCII:
    sorted as fixed-width bytes (about four times faster than as Python strings); other
    text is sorted as text."""
    try:
        raw = np.array(codes.tolist(), dtype="S")  # as wide as the longest code
    except (UnicodeEncodeError, TypeError):
        text = codes.astype(str)
        order = np.argsort(text, kind="stable")
        return order, text[order]
    order = np.argsort(raw, kind="stable")
    return order, raw[order]
