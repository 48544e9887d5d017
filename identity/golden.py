"""Golden records (黄金记录): per-attribute survivorship over every linked source record.

For each attribute the authoritative department wins (public security for a person's name,
sex, birth date and address; commerce for an enterprise's name, status, legal representative
and address; tax for tax status …), configured in ``identity/survivorship.yaml``. The winning
value keeps its source; every change is written to ``identity_golden_history``.

The core (:func:`survive`) is pure; :func:`refresh` reads the links of a batch of identities
in one query per chunk, recomputes and writes the differences.

>>> rules = load_rules()
>>> records = [
...     SourceValues("tax", "taxpayers", "t1", "2024-01-01", {"name": "洞头海鲜公司"}),
...     SourceValues("commerce", "enterprises", "c1", "2020-01-01", {"name": "洞头海鲜有限公司", "status": "存续"}),
... ]
>>> values, sources = survive(records, "enterprise", rules)
>>> values["name"], sources["name"]["department"], values["status"]
('洞头海鲜有限公司', 'commerce', '存续')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy import JSON, Table, Text, bindparam, insert, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from hub import safe_yaml
from hub.models import utcnow
from identity import _bulk
from identity.golden_sources import AS_GOLDEN_JSON, ONE_LINK, compact_attributes, full_attributes, one_link_sources
from identity.tables import (
    PERSON,
    TYPED_COLUMNS,
    IdentityEnterprise,
    IdentityGoldenHistory,
    IdentityPerson,
    IdentitySourceRecord,
)

RULES_PATH = Path(__file__).with_name("survivorship.yaml")
CHUNK = 50_000


def _table(model: Any) -> Table:
    """The Core table of a model: bulk inserts as plain executemany (no ORM bookkeeping)."""
    return cast(Table, model.__table__)


@dataclass(frozen=True)
class Rules:
    """Survivorship rules per entity kind: attribute → departments, most authoritative first."""

    attributes: Mapping[str, Mapping[str, tuple[str, ...]]]
    aliases: Mapping[str, Mapping[str, str]]

    def ranks(self, entity_kind: str) -> tuple[tuple[str, dict[str, int]], ...]:
        """Per attribute its departments' ranks, computed once per rules (not per identity)."""
        memo: dict[str, tuple[tuple[str, dict[str, int]], ...]] = self.__dict__.setdefault("_ranks", {})
        if entity_kind not in memo:
            memo[entity_kind] = tuple(
                (attribute, {d: i for i, d in enumerate(departments)})
                for attribute, departments in self.attributes[entity_kind].items()
            )
        return memo[entity_kind]

    def golden_name(self, entity_kind: str, column: str) -> str | None:
        """The golden attribute a canonical column feeds, or ``None``."""
        name = self.aliases[entity_kind].get(column, column)
        return name if name in self.attributes[entity_kind] else None


@dataclass(frozen=True)
class SourceValues:
    """The attribute values one linked source record carries."""

    department: str
    dataset: str
    source_key: str
    source_version: str | None
    attributes: Mapping[str, Any]
    linked_at: str = ""


@cache
def load_rules(path: Path = RULES_PATH) -> Rules:
    """Read ``survivorship.yaml``, then add the departments' own attributes that mappings declare
    golden (``attributes:`` with ``golden: true``): the declaring department ranks first for each,
    unless ``survivorship.yaml`` ranks the attribute itself."""
    raw = safe_yaml.load_file(path)
    attributes = {
        kind: {attr: tuple(depts or ()) for attr, depts in spec["attributes"].items()} for kind, spec in raw.items()
    }
    listed = {kind: set(ranked) for kind, ranked in attributes.items()}
    for declared in own_golden_attributes():
        if declared.spec.name in listed.get(declared.identity_kind, ()):
            continue  # survivorship.yaml ranks it itself
        ranked = attributes.setdefault(declared.identity_kind, {})
        departments = ranked.get(declared.spec.name, ())
        if declared.department not in departments:  # several departments declaring it: in file order
            ranked[declared.spec.name] = (*departments, declared.department)
    return Rules(
        attributes=attributes,
        aliases={kind: dict(raw.get(kind, {}).get("aliases") or {}) for kind in attributes},
    )


def own_golden_attributes() -> tuple[Any, ...]:
    """The own attributes mappings carry into golden records (``mappings.engine.declared_attributes``)."""
    from mappings.engine import declared_attributes  # noqa: PLC0415 - pyarrow and the mapping checker, ~0.3 s

    return tuple(a for a in declared_attributes() if a.spec.golden and a.identity_kind in ("person", "enterprise"))


def is_empty(value: Any) -> bool:
    """No value for survivorship: ``None`` or text of whitespace only."""
    return value is None or (isinstance(value, str) and not value.strip())


def survive(
    records: Iterable[SourceValues], entity_kind: str, rules: Rules
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Golden values and their sources: per attribute, the authoritative department's most
    recent non-empty value (pure)."""
    recs = list(records)
    values: dict[str, Any] = {}
    sources: dict[str, dict[str, Any]] = {}
    # per record once: its tie-breakers (newer version, newer link, larger key) and source
    ties = [(rec.source_version or "", rec.linked_at, rec.source_key) for rec in recs]
    for attribute, rank in rules.ranks(entity_kind):
        unranked = len(rank)
        best: tuple[Any, ...] | None = None
        for rec, tie in zip(recs, ties, strict=True):
            value = rec.attributes.get(attribute)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            # lower rank first; then the tie-breakers (deterministic)
            key = (-rank.get(rec.department, unranked), *tie)
            if best is None or key > best[0]:
                best = (key, value, rec)
        if best is not None:
            rec = best[2]
            values[attribute] = best[1]
            sources[attribute] = {
                "department": rec.department,
                "dataset": rec.dataset,
                "source_key": rec.source_key,
                "source_version": rec.source_version,
            }
    return values, sources


def _model(entity_kind: str) -> type[IdentityPerson] | type[IdentityEnterprise]:
    return IdentityPerson if entity_kind == PERSON else IdentityEnterprise


def text(value: Any) -> str | None:
    """A golden value as the text of a typed column."""
    return None if value is None else str(value)


def stored_form(sources: dict[str, dict[str, Any]], active_links: int) -> Any:
    """``sources`` as the column stores them: :data:`~identity.golden_sources.ONE_LINK` for a
    golden record drawn from the identity's one active link (all of them are, then)."""
    return ONE_LINK if active_links == 1 else sources


def refresh(session: Session, entity_kind: str, codes: Sequence[str], cause: str, rules: Rules | None = None) -> int:
    """Recompute the golden records of ``codes`` from their active links; write changes and
    their history (bulk statements per chunk). Returns the number of attribute values changed."""
    rules = rules or load_rules()
    model = _model(entity_kind)
    table = _table(model)
    key_col = table.c[model.key_name]
    link = _table(IdentitySourceRecord).c  # Core reads and writes: no ORM loading per row
    conn = session.connection()
    typed = TYPED_COLUMNS[entity_kind]
    set_cols = ("attributes", "sources", "updated_at", *typed)
    by_key = (
        update(table)
        .where(key_col == bindparam("k_key"))
        .values({c: bindparam(f"v_{c}", type_=table.c[c].type) for c in set_cols})
    )
    now = utcnow()
    changed = 0
    unique = sorted(set(codes))
    session.flush()
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        stored = _stored_golden(session, entity_kind, chunk)
        # links whose values are the golden record's: written out before it may change
        _materialise(session, entity_kind, chunk, stored)
        by_code: dict[str, list[SourceValues]] = {}
        for code, dept, dataset, key, version, attributes, linked_at in conn.execute(
            select(
                link.canonical_code,
                link.department,
                link.dataset,
                link.source_key,
                link.source_version,
                link.attributes,
                link.linked_at,
            ).where(
                link.entity_kind == entity_kind,
                _bulk.in_values(session, link.canonical_code, chunk),
                link.unlinked_at.is_(None),
            )
        ):
            by_code.setdefault(code, []).append(
                SourceValues(dept, dataset, key, version, attributes or {}, linked_at.isoformat() if linked_at else "")
            )
        history: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for code, (old, stored_sources) in stored.items():
            records = by_code.get(code, [])
            values, sources = survive(records, entity_kind, rules)
            if stored_sources == ONE_LINK:  # what the marker stands for while the links are as they were
                old_sources = one_link_sources(
                    old, [(r.department, r.dataset, r.source_key, r.source_version) for r in records]
                )
            else:
                old_sources = stored_sources or {}
            if values == old and sources == old_sources:
                continue
            # a new identity's first values are its origin, recorded in ``sources``, not a change
            for attribute in sorted(set(old) | set(values)) if cause != "create" else ():
                if old.get(attribute) != values.get(attribute):
                    src = sources.get(attribute, {})
                    history.append(
                        {
                            "entity_kind": entity_kind,
                            "canonical_code": code,
                            "attribute": attribute,
                            "old_value": text(old.get(attribute)),
                            "new_value": text(values.get(attribute)),
                            "department": src.get("department"),
                            "dataset": src.get("dataset"),
                            "source_key": src.get("source_key"),
                            "cause": cause,
                            "changed_at": now,
                        }
                    )
            row = {
                "k_key": code,
                "v_attributes": compact_attributes(values, typed),
                "v_sources": stored_form(sources, len(records)),
                "v_updated_at": now,
            }
            row.update({f"v_{column}": text(values.get(column)) for column in typed})
            updates.append(row)
        if updates:
            conn.execute(by_key, updates)  # one executemany UPDATE by primary key
            for row in updates:  # objects already loaded in this session must not show stale values
                obj = session.identity_map.get(identity_key(model, row["k_key"]))
                if obj is not None:
                    session.expire(obj)
        if history:
            session.execute(insert(_table(IdentityGoldenHistory)), history)
            changed += len(history)
    return changed


def materialise_links(session: Session, entity_kind: str, codes: Sequence[str]) -> int:
    """Write out the values of the links of ``codes`` stored as
    :data:`~identity.golden_sources.AS_GOLDEN` (their identity's golden values), active or not;
    :func:`refresh` does so before it recomputes a golden record. Returns the links written."""
    unique = sorted(set(codes))
    session.flush()
    return sum(_materialise(session, entity_kind, unique[s : s + CHUNK]) for s in range(0, len(unique), CHUNK))


def _stored_golden(session: Session, entity_kind: str, codes: Sequence[str]) -> dict[str, tuple[dict[str, Any], Any]]:
    """The stored golden records of ``codes``: code → (every golden value, stored sources)."""
    model = _model(entity_kind)
    table = _table(model)
    key_col = table.c[model.key_name]
    typed = TYPED_COLUMNS[entity_kind]
    return {
        code: (full_attributes(attributes, dict(zip(typed, typed_values, strict=True))), sources)
        for code, attributes, sources, *typed_values in session.connection().execute(
            select(key_col, table.c.attributes, table.c.sources, *(table.c[c] for c in typed)).where(
                _bulk.in_values(session, key_col, codes)
            )
        )
    }


def _materialise(
    session: Session,
    entity_kind: str,
    codes: Sequence[str],
    stored: dict[str, tuple[dict[str, Any], Any]] | None = None,
) -> int:
    """Write out the marked links of ``codes`` (``stored``: their golden records, when read)."""
    conn = session.connection()
    link = _table(IdentitySourceRecord).c
    marked = conn.execute(
        select(link.id, link.canonical_code).where(
            link.entity_kind == entity_kind,
            _bulk.in_values(session, link.canonical_code, codes),
            sa_cast(link.attributes, Text) == AS_GOLDEN_JSON,
        )
    ).all()
    if not marked:
        return 0
    if stored is None:
        stored = _stored_golden(session, entity_kind, sorted({code for _, code in marked}))
    by_id = (
        update(_table(IdentitySourceRecord))
        .where(link.id == bindparam("k_id"))
        .values(attributes=bindparam("v_attributes", type_=JSON()))
    )
    conn.execute(by_id, [{"k_id": i, "v_attributes": stored[code][0] if code in stored else {}} for i, code in marked])
    for i, _code in marked:  # loaded links must not keep reading the golden record
        obj = session.identity_map.get(identity_key(IdentitySourceRecord, i))
        if obj is not None:
            session.expire(obj)
    return len(marked)


def history(session: Session, entity_kind: str, code: str) -> list[IdentityGoldenHistory]:
    """Changes of one identity's golden record, oldest first."""
    stmt = (
        select(IdentityGoldenHistory)
        .where(IdentityGoldenHistory.entity_kind == entity_kind, IdentityGoldenHistory.canonical_code == code)
        .order_by(IdentityGoldenHistory.id)
    )
    return list(session.scalars(stmt))


def json_column(values: pd.Series) -> list[Any]:
    """:func:`json_value` over a whole column, vectorised for dates and numbers."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
        midnight = bool((dates.dropna() == dates.dropna().dt.normalize()).all())
        text = dates.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%S")
        return [None if pd.isna(v) else v for v in text.astype(object).tolist()]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return [None if v != v else v for v in values.astype(object).tolist()]  # NaN → None
    out = values.astype(object).tolist()
    return [v if type(v) is str else json_value(v) for v in out]


def json_value(value: Any) -> Any:
    """A value as JSON-safe text/number for storing as a source record's attribute."""
    if value is None or (not isinstance(value, list | tuple | dict) and pd.isna(value) is True):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return json_value(value.item())
    if hasattr(value, "isoformat"):
        return json_value(value.to_pydatetime()) if hasattr(value, "to_pydatetime") else str(value)
    if isinstance(value, int | float | str | bool):
        return value
    return str(value)
