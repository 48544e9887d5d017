"""Publishing step (证照签发): accepted, resolved records → licences and approval results.

A mapping's ``licenses:`` entries say which licence type a record yields and from which
canonical fields (``owners[].x`` fans out one licence per owner). ``when`` selects the records
that yield one; a record no longer selected (a resident who died) issues nothing new, but the
licence it yielded before still follows its source status (revoked). Without an ``issue_date``
field the issue date is the day of the source record's version: the data the licence shows
dates from it (the population registry keeps no card dates). The licence service
does the real work — versioning, sealing, storing, and the index update plus outbox event
in one transaction; this module only turns rows into drafts and source status changes
into lifecycle transitions (the rules: :mod:`e_license_store.source_status`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from e_license_store.catalogue import issuing_authority
from e_license_store.model import LicenseDraft, Transition
from e_license_store.service import InvalidDraft, InvalidTransition
from e_license_store.source_status import planned_move
from hub.masking import mask_resident_id
from identifiers.normalize import normalize
from mappings.canonical.models import HolderKind, SourceRef

log = logging.getLogger(__name__)

NESTED = "owners[]."
#: column the identity step adds: the holder's canonical code in the master index
RESOLVED = "canonical_code"
#: what the identity step adds to each entry of a list of owners
OWNER_RESOLVED = "resolved_id"
LITERAL_KINDS = {"person", "enterprise"}


def _value(v: Any) -> Any:
    if v is None or (not isinstance(v, list | tuple | dict) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.date()
    if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
        return v.item()
    return v


def _date(v: Any) -> dt.date | None:
    v = _value(v)
    if v is None or isinstance(v, dt.date):
        return v if not isinstance(v, dt.datetime) else v.date()
    return pd.Timestamp(v).date()


def _get(row: Mapping[str, Any], owner: Mapping[str, Any] | None, ref: str | None) -> Any:
    if ref is None:
        return None
    if ref in LITERAL_KINDS:
        return ref
    if ref.startswith(NESTED):
        return _value((owner or {}).get(ref[len(NESTED) :]))
    return _value(row.get(ref))


def _selected(row: Mapping[str, Any], when: Mapping[str, Any] | None) -> bool:
    """Whether ``row`` meets a licence's ``when`` (``not_null``, ``in``, ``not_in`` of one field).

    >>> _selected({"status": "alive"}, {"field": "status", "not_in": ["deceased"]})
    True
    >>> _selected({"status": "deceased"}, {"field": "status", "not_in": ["deceased"]})
    False
    >>> _selected({"uscc": None}, {"field": "uscc", "not_null": True})
    False
    """
    if not when:
        return True
    value = _value(row.get(str(when["field"])))
    if when.get("not_null") and value in (None, ""):
        return False
    if "not_in" in when and value in set(when["not_in"]):
        return False
    return not ("in" in when and value not in set(when["in"]))


def _version_date(row: Mapping[str, Any]) -> dt.date | None:
    """The day of the source record's version (``_source_version``, a timestamp), if it is one."""
    try:
        return _date(row.get("_source_version"))
    except (ValueError, TypeError):
        return None


def _owners(row: Mapping[str, Any], lic: Any) -> list[Mapping[str, Any] | None]:
    refs = [lic.holder_code, lic.holder_name, lic.holder_kind, *lic.surface.values()]
    if not any(isinstance(r, str) and r.startswith(NESTED) for r in refs):
        return [None]
    owners = row.get("owners")
    owners = list(owners) if owners is not None and not isinstance(owners, str) else []
    return [dict(o) for o in owners if o]


def _usable(code: Any) -> bool:
    """A valid code of any kind (a USCC, a resident id, an old code a holder may still hold)."""
    return code is not None and bool(normalize(code)["valid"])


def drafts(row: Mapping[str, Any], mapping: Any, *, unselected: bool = False) -> Iterator[tuple[Any, str, str | None]]:
    """(draft, source key suffix, canonical status) for every licence ``row`` yields; with
    ``unselected``, for those its licence entries' ``when`` leaves out instead."""
    for lic in mapping.licenses:
        if _selected(row, lic.when) == unselected:
            continue
        for i, owner in enumerate(_owners(row, lic)):
            written = _get(row, owner, lic.holder_code)
            # the identity step's canonical code: a USCC for an old taxpayer id or organisation code,
            # an owner's canonical code for its old one, the identity matching found for a damaged code
            # (a record in the review queue, placed nowhere yet, holds under its code as written until a
            # steward's decision moves its licence: identity_review.move_licences)
            resolved = _value(row.get(RESOLVED)) if owner is None else _value(owner.get(OWNER_RESOLVED))
            holder_code = resolved or written
            number = _get(row, owner, lic.number)
            if resolved and lic.number == lic.holder_code and number != resolved and not _usable(number):
                # a licence numbered by its holder's code (a business licence by the USCC) carries the
                # valid code of the identity found, never the damaged code as written
                number = resolved
            issue_date = _date(_get(row, owner, lic.issue_date)) if lic.issue_date else _version_date(row)
            if not holder_code or not number or issue_date is None:
                continue  # nothing to issue from: validation reported the row's gaps already
            surface = {k: _get(row, owner, ref) for k, ref in lic.surface.items()}
            surface = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in surface.items() if v is not None}
            issuer = issuing_authority(lic.type_code, _get(row, owner, lic.issuer_code))
            draft = LicenseDraft(
                license_type_code=lic.type_code,
                license_number=str(number),
                holder_name=str(_get(row, owner, lic.holder_name) or holder_code),
                holder_code=str(holder_code),
                holder_kind=HolderKind(str(_get(row, owner, lic.holder_kind) or "enterprise")),
                issuer_code=str(issuer),
                issue_date=issue_date,
                valid_until=_date(_get(row, owner, lic.valid_until)),
                surface=surface,
            )
            status = _get(row, owner, lic.status)
            yield draft, (f"#{i}" if owner is not None else ""), (str(status) if status else None)


def _move(service: Any, mapping: Any, licences: list[tuple[Any, str | None, Any]]) -> int:
    """Move each ``(draft, source status, standing version)`` licence to what its source status calls
    for, all in one batch (:meth:`LicenseService.move_many`); returns how many moved. A licence that
    cannot move (a revoked one the source calls suspended) is logged and the others go on."""
    planned = []
    for draft, status, current in licences:
        move = planned_move(current, status)
        if move is not None:
            planned.append((draft, status, (move[0], Transition(move[1]), move[2])))
    moves = [move for _, _, move in planned]
    moved_n = 0
    for (draft, status, _planned), moved in zip(planned, service.move_many(moves) if moves else [], strict=True):
        if isinstance(moved, InvalidTransition | InvalidDraft):
            log.warning("%s: licence for holder %s not moved to %s: %s", mapping.name,
                        mask_resident_id(draft.holder_code), status, moved)  # fmt: skip
        elif isinstance(moved, Exception):
            raise moved
        elif moved.created:
            moved_n += 1
    return moved_n


def publish_frame(
    df: pd.DataFrame, mapping: Any, service: Any, *, run_id: str, staged_ref: str
) -> tuple[int, int, int]:
    """Issue/amend the licences of every row; returns (issued, changed, rows yielding nothing).

    The whole frame goes to the licence service at once (:meth:`LicenseService.issue_many`:
    sealed in parallel, indexed with its outbox events in one transaction); a row whose licence
    cannot change (say, its licence was revoked) is logged and the others go on.
    """
    issued_n = changed_n = idle = 0
    items: list[tuple[Any, Any]] = []
    statuses: list[str | None] = []
    left_out: list[tuple[Any, Any]] = []
    left_out_statuses: list[str | None] = []

    def source_of(row: Mapping[str, Any], suffix: str) -> Any:
        return SourceRef(
            department=mapping.department,
            dataset=mapping.dataset,
            source_key=f"{row.get('_source_key')}{suffix}",
            source_version=str(row.get("_source_version") or ""),
            run_id=run_id,
            staged_ref=staged_ref,
        )

    has_conditions = any(lic.when for lic in mapping.licenses)
    for row in df.to_dict(orient="records"):
        any_draft = False
        for draft, suffix, status in drafts(row, mapping):
            any_draft = True
            items.append((draft, source_of(row, suffix)))
            statuses.append(status)
        if has_conditions:
            for draft, suffix, status in drafts(row, mapping, unselected=True):
                left_out.append((draft, source_of(row, suffix)))
                left_out_statuses.append(status)
        idle += not any_draft
    # a record its licence's condition now leaves out issues nothing, but the licence it yielded
    # before follows the source status (a deceased resident's identity card is revoked)
    standing = service.standing_many(left_out) if left_out else []
    changed_n += _move(service, mapping, [(d, s, c) for (d, _), s, c in zip(left_out, left_out_statuses, standing,
                                                                           strict=True) if c is not None])  # fmt: skip
    issued_now: list[tuple[Any, str | None, Any]] = []
    for (draft, _source), status, result in zip(items, statuses, service.issue_many(items), strict=True):
        if isinstance(result, InvalidDraft | InvalidTransition):
            # e.g. a revoked licence's record changes again: nothing more to issue
            log.warning(
                "%s: licence for holder %s not changed: %s", mapping.name, mask_resident_id(draft.holder_code), result
            )
            continue
        if result.created:
            if result.version == 1:
                issued_n += 1
            else:
                changed_n += 1
        issued_now.append((draft, status, result))
    changed_n += _move(service, mapping, issued_now)
    return issued_n, changed_n, idle
