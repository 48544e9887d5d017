"""The cross-walk (代码对照): legacy codes learnt from a batch and from the rules that resolved them.

Enterprise records that carry a valid USCC beside an old registration number, organisation code
or taxpayer id teach the hub those codes (``commerce_registry``); codes a rule converted are
recorded too. The first authoritative link wins; every identity that gained codes is announced as
``identity.merged`` through the outbox, with opaque subject and key.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hub.masking import mask_resident_id
from hub.outbox import emit_many
from hub.pseudonyms import event_key, keyed_digest, opaque_ref
from hub.regions import holder_region
from identifiers.vectorized import normalize_many
from identity import _bulk
from identity.rules import CONVERTED, ORG_IN_USCC, TAXPAYER_ORG, core_table, isin, unique_values
from identity.tables import (
    PERSON,
    IdentityCrosswalk,
)

log = logging.getLogger(__name__)

#: Legacy-code columns of enterprise records learnt into the cross-walk next to a valid USCC.
LEGACY_COLUMNS = {"reg_no": "reg_no", "org_code": "org_code", "taxpayer_id": "taxpayer_id"}


def learn_from_batch(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(legacy code, kind, USCC) pairs from enterprise records that carry both."""
    if "uscc" not in frame.columns:
        return []
    uscc = normalize_many(frame["uscc"].tolist(), "uscc")
    ok = uscc["valid"].to_numpy(dtype=bool)
    pairs: list[tuple[str, str, str]] = []
    for column, kind in LEGACY_COLUMNS.items():
        if column not in frame.columns:
            continue
        legacy = normalize_many(frame[column].tolist(), kind)
        good = ok & legacy["valid"].to_numpy(dtype=bool)
        for code, canonical in zip(legacy["canonical"][good], uscc["canonical"][good], strict=True):
            pairs.append((code, kind, canonical))
    return pairs


def rule_links(res: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """Cross-walk rows for legacy codes a rule resolved: (code, code kind, canonical, method)."""
    canonical = res["canonical_code"].to_numpy(dtype=object)
    norm = res["normalized"].to_numpy(dtype=object)
    method = res["method"].to_numpy(dtype=object)
    rows = np.flatnonzero(pd.notna(canonical) & pd.notna(norm) & isin(method, (CONVERTED, ORG_IN_USCC, TAXPAYER_ORG)))
    kinds = res["code_kind"].to_numpy(dtype=object)
    out = []
    for i in rows.tolist():
        if norm[i] and norm[i] != canonical[i]:
            code_kind = {CONVERTED: "resident_id_15", TAXPAYER_ORG: "taxpayer_id"}.get(method[i], str(kinds[i]))
            out.append((norm[i], code_kind, canonical[i], method[i]))
    return out


def emit_merged(
    session: Session,
    merged_by_code: dict[str, set[tuple[str, str, str]]],
    entity_kind: str,
    source: str,
    run_id: str | None,
) -> int:
    """``identity.merged`` per identity that gained legacy codes, written to the outbox in bulk
    (idempotent by key, like :func:`hub.outbox.emit`). Subject and key are opaque references
    (:mod:`hub.pseudonyms`); the codes are only in the payload, masked for whoever may not see them."""
    events: list[dict[str, Any]] = []
    key = event_key() if merged_by_code else None
    for canonical, legacy in sorted(merged_by_code.items()):
        shown = [
            {
                "legacy_code": mask_resident_id(code) if entity_kind == PERSON else code,
                "code_kind": kind,
                "method": method,
            }
            for code, kind, method in sorted(legacy)
        ]
        ref = opaque_ref(canonical, key=key)
        # keyed, not a plain hash: the legacy codes are resident ids a plain hash would give away
        digest = keyed_digest(ref, *(f"{code}|{kind}|{method}" for code, kind, method in sorted(legacy)), key=key)
        events.append(
            {
                "event_type": "identity.merged",
                "subject": ref,
                "holder_code": canonical,
                "region_code": holder_region(entity_kind, canonical),
                "payload": {
                    "entity_kind": entity_kind,
                    "canonical_code": canonical,
                    "merged": shown,
                    "source": source,
                    "run_id": run_id,
                },
                "idempotency_key": f"identity.merged:{ref}:{digest[:16]}",
            }
        )
    return emit_many(session, events)


def store_crosswalk(
    session: Session, rows: list[tuple[str, str, str, str]], entity_kind: str, source: str, now: Any
) -> tuple[int, dict[str, set[tuple[str, str, str]]]]:
    """Insert cross-walk links not yet known; an active link to another identity is kept
    (the first authoritative link wins; re-pointing is a reviewed merge/split)."""
    if not rows:
        return 0, {}
    unique = {(code, kind): (canonical, method) for code, kind, canonical, method in rows}
    existing: set[tuple[str, str]] = set()
    conflicts = 0
    for chunk in _bulk.chunks(unique_values(code for code, _ in unique)):
        for code, kind, canonical in session.execute(
            select(IdentityCrosswalk.legacy_code, IdentityCrosswalk.code_kind, IdentityCrosswalk.canonical_code).where(
                _bulk.in_values(session, IdentityCrosswalk.legacy_code, chunk),
                IdentityCrosswalk.entity_kind == entity_kind,
                IdentityCrosswalk.undone_at.is_(None),
            )
        ).all():
            existing.add((code, kind))
            if (code, kind) in unique and unique[(code, kind)][0] != canonical:
                conflicts += 1
    if conflicts:
        log.warning("%d legacy codes already link to another identity; kept the existing links", conflicts)
    fresh = [
        {
            "legacy_code": code,
            "code_kind": kind,
            "canonical_code": canonical,
            "entity_kind": entity_kind,
            "source": source,
            "method": method,
            "linked_at": now,
        }
        for (code, kind), (canonical, method) in sorted(unique.items())
        if (code, kind) not in existing
    ]
    if fresh:
        session.execute(insert(core_table(IdentityCrosswalk)), fresh)
        # the next batch's lookups plan with the cross-walk's size and its kinds of identity
        _bulk.analyze_if_unknown(session, core_table(IdentityCrosswalk), {"entity_kind": entity_kind}, len(fresh))
    merged: dict[str, set[tuple[str, str, str]]] = {}
    for row in fresh:
        merged.setdefault(row["canonical_code"], set()).add((row["legacy_code"], row["code_kind"], row["method"]))
    return len(fresh), merged
