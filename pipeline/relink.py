"""Re-linking records filed under an old code once their enterprise is known (补链).

The exchange DAGs run on their own schedules, so a tax or land record naming an enterprise
only by an old code (a 15-digit taxpayer id, an organisation code, an old registration
number) may be read before commerce's record of that enterprise reached the master index.
Such a record cannot be resolved yet: its licence is issued under the old code and its
source record stays unlinked. Nothing is lost, but the holder's licences are split.

This job finds licences held under enterprise codes that are not a USCC, asks the master
index again and, where the code now resolves, links the source record (cross-walk entry,
source-record link and golden record, through :func:`identity.resolve.link_batch`) and
amends the licence onto the canonical holder — a new signed version whose
``license.amended`` event tells subscribers. Codes that still do not resolve wait for the
next run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from e_license_store.model import parse_envelope
from e_license_store.service import InvalidTransition, default_service
from e_license_store.tables import LicenseIndexEntry as Entry
from hub.db import get_engine, session_scope
from identity.resolve import ENTERPRISE, RESOLVED, link_batch, resolve_codes

log = logging.getLogger(__name__)

#: statuses a licence can still be amended from
_AMENDABLE = ("valid", "suspended")


@dataclass
class RelinkReport:
    candidates: int = 0
    resolved: int = 0
    linked: int = 0
    amended: int = 0
    still_unresolved: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def relink_legacy_holders(service: Any = None, *, limit: int = 50_000) -> RelinkReport:
    """Resolve again every enterprise licence held under a non-USCC code; link and amend what resolves."""
    report = RelinkReport()
    with session_scope(get_engine()) as session:
        rows = session.execute(
            select(Entry.license_id, Entry.holder_code, Entry.object_key)
            .where(Entry.holder_kind == "enterprise", func.length(Entry.holder_code) != 18,
                   Entry.status.in_(_AMENDABLE))
            .order_by(Entry.license_id)
            .limit(limit)
        ).all()  # fmt: skip
        report.candidates = len(rows)
        if not rows:
            return report
        answer = resolve_codes(session, [r.holder_code for r in rows], ENTERPRISE)
    found = [
        (row, str(canonical))
        for row, canonical, status in zip(rows, answer["canonical_code"], answer["status"], strict=True)
        if status == RESOLVED and canonical
    ]
    report.resolved = len(found)
    report.still_unresolved = report.candidates - report.resolved
    if not found:
        return report
    service = service or default_service(create_keys=True)
    # the source record behind each licence, grouped by the department dataset it came from
    by_source: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row, _canonical in found:
        source = parse_envelope(service.store.get(row.object_key)).document.license.source
        if source is None:
            continue
        by_source[(source.department, source.dataset)].append(
            {"_source_key": source.source_key, "_source_version": source.source_version, "holder_code": row.holder_code}
        )
    with session_scope(get_engine()) as session:
        for (department, dataset), records in sorted(by_source.items()):
            result = link_batch(session, pd.DataFrame(records), ENTERPRISE, department, dataset,
                                code_columns=[("holder_code", None)])  # fmt: skip
            report.linked += int(result.linked)
    for row, canonical in found:
        try:
            service.amend(row.license_id, {"holder_code": canonical},
                          reason=f"holder's old code now resolves to {canonical}")  # fmt: skip
            report.amended += 1
        except InvalidTransition as exc:  # revoked meanwhile: it stays as it is
            log.warning("licence %s not moved to its canonical holder: %s", row.license_id, exc)
    log.info(
        "relinked %d of %d licences held under old codes; %d still unresolved",
        report.amended,
        report.candidates,
        report.still_unresolved,
    )
    return report
