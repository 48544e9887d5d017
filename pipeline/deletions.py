"""Deletions that act (来源删除处置): a row gone from a department's table, after the next run.

The SQL connectors list every key on each read (:mod:`connectors.keys`) and stage a tombstone
for a key the hub was given that the source no longer holds; the mapping engine sets the
tombstones apart and the map step stages them (``deleted`` in the steps' output). At the end of
publish, :func:`act_on_deletions` takes them in one transaction per batch:

* the source record's active links end and its golden records are recomputed without it, and
  the identity waits in the review queue with reason ``source_deleted``
  (:mod:`identity.source_deletions`) — the item names every current licence (valid or
  suspended) that rested on the record, which is how a licence is *in review*;
* the issuing department is told through the outbox: ``identity.source_deleted`` per ended link
  and ``license.review`` per licence, with ``department`` in the payload; subjects are opaque
  references and idempotency keys name the link and licence, never a personal code;
* each ended link is an audit entry (actor ``pipeline``).

The hub does **not** revoke: a vanished row is not the department's decision (deregistration and
revocation arrive as statuses and act as before, a new signed version). A re-run finds no active
link for the key and adds nothing; a tombstone for a record that had no active link (never
linked, or ended before) only counts as ``without_link``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from e_license_store.model import parse_envelope
from e_license_store.tables import LicenseIndexEntry
from hub.db import get_engine, session_scope
from hub.masking import mask_code
from hub.outbox import emit
from hub.pseudonyms import opaque_ref
from hub.regions import holder_region
from identity.matching_tables import SOURCE_DELETED
from identity.source_deletions import EndedLink, active_links, end_links
from identity.tables import PERSON, IdentitySourceRecord
from mappings.canonical.models import LicenseStatus
from recognition.audit import AuditRecord, append

log = logging.getLogger(__name__)

ACTOR = "pipeline"
IDENTITY_EVENT = "identity.source_deleted"
LICENCE_EVENT = "license.review"
AUDIT_ACTION = "identity.source_deleted"
#: a licence still in force: the ones a deleted record puts into review
CURRENT = (LicenseStatus.valid.value, LicenseStatus.suspended.value)
SOURCE_KEY = "_source_key"
SOURCE_VERSION = "_source_version"


@dataclass
class DeletionReport:
    tombstones: int = 0
    links_ended: int = 0
    licences_in_review: int = 0
    without_link: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def act_on_deletions(mapping: Any, frames: Iterable[pd.DataFrame], *, run_id: str, store: Any) -> DeletionReport:
    """End the links of the tombstoned source records of ``mapping``, put them and their licences
    into review and tell the department; ``store`` holds the licence versions (to see which
    licence rested on which record)."""
    report = DeletionReport()
    for frame in frames:
        if frame.empty:
            continue
        versions = {str(k): str(v) for k, v in zip(frame[SOURCE_KEY], frame[SOURCE_VERSION], strict=True)}
        report.tombstones += len(versions)
        with session_scope(get_engine()) as session:
            ended = _act(session, mapping, versions, run_id=run_id, store=store)
        keys_ended = {e.source_key for e in ended}
        report.links_ended += len(ended)
        report.licences_in_review += sum(len(e.license_ids) for e in ended)
        report.without_link += len(set(versions) - keys_ended)
    if report.tombstones:
        log.warning(
            "%s: %d source record(s) deleted at the source: %d link(s) ended and put into review with %d "
            "licence(s); %d had no active link",
            mapping.name, report.tombstones, report.links_ended, report.licences_in_review, report.without_link,
        )  # fmt: skip
    return report


def _act(session: Session, mapping: Any, versions: dict[str, str], *, run_id: str, store: Any) -> list[EndedLink]:
    department, dataset = mapping.department, mapping.dataset
    links = active_links(session, department, dataset, list(versions))
    if not links:
        return []
    licences = {link.id: resting_licences(session, store, link) for link in links}
    ended = end_links(session, links, deleted_versions=versions, license_ids=licences, run_id=run_id, actor=ACTOR)
    types = dict(
        session.execute(
            select(LicenseIndexEntry.license_id, LicenseIndexEntry.license_type_code).where(
                LicenseIndexEntry.license_id.in_([i for e in ended for i in e.license_ids] or [""])
            )
        ).all()
    )
    records: list[AuditRecord] = []
    for e in ended:
        region = holder_region(e.entity_kind, e.canonical_code)
        shown = mask_code(e.canonical_code, person=e.entity_kind == PERSON)
        emit(
            session,
            IDENTITY_EVENT,
            opaque_ref(e.canonical_code),
            {
                "department": department, "dataset": dataset, "source_key": e.source_key,
                "entity_kind": e.entity_kind, "canonical_code": e.canonical_code, "reason": SOURCE_DELETED,
                "review_id": e.review_id, "license_ids": e.license_ids, "run_id": run_id,
            },
            f"{IDENTITY_EVENT}:link:{e.link_id}",
            holder_code=e.canonical_code,
            region_code=region,
        )  # fmt: skip
        for license_id in e.license_ids:
            emit(
                session,
                LICENCE_EVENT,
                license_id,
                {
                    "license_id": license_id, "license_type_code": types.get(license_id), "department": department,
                    "dataset": dataset, "reason": SOURCE_DELETED, "review_id": e.review_id,
                    "holder_kind": e.entity_kind, "holder_code": e.canonical_code,
                },
                f"{LICENCE_EVENT}:{license_id}:link:{e.link_id}",
                holder_code=e.canonical_code,
                region_code=region,
                license_type_code=types.get(license_id),
            )  # fmt: skip
        records.append(
            AuditRecord(
                consumer=ACTOR,
                action=AUDIT_ACTION,
                resource=f"identity_source_record/{e.link_id}",
                outcome="review",
                subject=shown,
                detail={
                    "mapping": mapping.name, "department": department, "dataset": dataset,
                    "review_id": e.review_id, "license_ids": e.license_ids, "run_id": run_id,
                    "revoked": False,
                },
            )
        )  # fmt: skip
    append(session, records)
    return ended


def resting_licences(session: Session, store: Any, link: IdentitySourceRecord) -> list[str]:
    """The current licences of the link's identity that were issued from the link's source record
    (its key, or its key with an owner's ``#n`` when a record names several holders)."""
    entries: Sequence[LicenseIndexEntry] = session.scalars(
        select(LicenseIndexEntry).where(
            LicenseIndexEntry.holder_code == link.canonical_code, LicenseIndexEntry.status.in_(CURRENT)
        )
    ).all()
    found: list[str] = []
    for entry in entries:
        source = parse_envelope(store.get(entry.object_key)).document.license.source
        if source is None or (source.department, source.dataset) != (link.department, link.dataset):
            continue
        key = source.source_key
        if key == link.source_key or key.startswith(f"{link.source_key}#"):
            found.append(entry.license_id)
    return sorted(found)
