"""Lifecycle moves of many licences at once (批量状态变更): what a batch's source statuses call for.

:func:`move_many` makes the versions :meth:`LicenseService.revoke`, ``suspend`` and ``reinstate``
make one by one — each sealed and written under its own write-once key before anything is indexed —
but reads the index entries in one query, seals and stores the versions ``write_concurrency`` at a
time (a store round trip each, like :meth:`LicenseService.issue_batch`), and indexes them with their
outbox events in ONE transaction. A move the batch cannot make as planned — a licence moved twice in
one call, one unknown to the index or whose status does not allow the move, a version another writer
took meanwhile, an index that changed under the transaction — goes the one-by-one way afterwards,
with its recovery and its errors, so the outcome is the one-by-one outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from e_license_store import index
from e_license_store.lifecycle import (
    ALLOWED,
    STATUS_AFTER,
    InvalidDraft,
    InvalidTransition,
    LicenseNotFound,
    VersionTaken,
)
from e_license_store.model import Transition, parse_envelope
from e_license_store.tables import LicenseIndexEntry
from mappings.canonical.models import License, LicenseStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: a move: the licence, the transition (suspended, reinstated, revoked, expired) and its reason
Move = tuple[str, Transition, str]


def moved_license(previous: License, version: int, status: LicenseStatus, transition: Transition) -> License:
    """The next version of ``previous`` (indexed as ``version`` with ``status``) after ``transition``."""
    base = previous.model_dump()
    base.update(version=version + 1, previous_version=version, status=(STATUS_AFTER[transition] or status).value)
    return License.model_validate(base)


def _one_move(service: Any, move: Move) -> Callable[[Session], Any]:
    return lambda session: service._transition(session, *move)


def move_many(service: Any, moves: Sequence[Move]) -> list[Any]:
    """Make every move; each result is the new version or the error the one-by-one move raised
    (:class:`InvalidTransition`, :class:`InvalidDraft`, :class:`LicenseNotFound`). ``service`` is a
    :class:`~e_license_store.service.LicenseService` (which calls this: not imported here)."""
    out: list[Any] = [None] * len(moves)
    if not moves:
        return []
    with service.session_factory() as session:
        rows = session.execute(
            select(LicenseIndexEntry.license_id, LicenseIndexEntry.version, LicenseIndexEntry.status,
                   LicenseIndexEntry.object_key)
            .where(LicenseIndexEntry.license_id.in_({m[0] for m in moves}))
        )  # fmt: skip
        current = {r.license_id: (r.version, LicenseStatus(r.status), r.object_key) for r in rows}
    batch: list[int] = []
    one_by_one: list[int] = []
    seen: set[str] = set()
    for i, (license_id, transition, _reason) in enumerate(moves):
        entry = current.get(license_id)
        if license_id in seen or entry is None or entry[1] not in ALLOWED[transition]:
            one_by_one.append(i)  # the one-by-one way says why (or moves it after the first)
        else:
            batch.append(i)
        seen.add(license_id)

    def store_one(i: int) -> Any:
        license_id, transition, reason = moves[i]
        version, status, key = current[license_id]
        previous = parse_envelope(service.store.get(key)).document.license
        try:
            return service._store_version(moved_license(previous, version, status, transition), transition, reason)
        except VersionTaken:
            return None

    indexed, retry = service._store_and_index(batch, store_one, index.add_versions)
    for i, issued in indexed:
        out[i] = issued
    one_by_one.extend(retry)
    for i in sorted(one_by_one):
        try:
            out[i] = service._with_recovery(moves[i][0], _one_move(service, moves[i]))
        except (InvalidTransition, InvalidDraft, LicenseNotFound) as exc:
            out[i] = exc
    return [r for r in out if r is not None]
