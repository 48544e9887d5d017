"""Issuing and the licence lifecycle (证照签发与状态变更): every change a new signed version.

Order of work for each transition: build the next version, seal it, write it to the
store under its own write-once key, then — in ONE database transaction — update the
index and emit the outbox event. A crash between the two leaves a stored version the
index lacks; the next operation on that licence (or ``reindex``) picks it up from the
store, and since the store key is write-once two writers can never both create a version.

One job, one module: the licence lifecycle's transitions (issue, amend, suspend, revoke, reindex)
share that write order, which is why they stay together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from e_license_store import index
from e_license_store.batch_moves import move_many
from e_license_store.catalogue import LicenseType, issuing_authority, license_type
from e_license_store.identifier import make_license_id
from e_license_store.lifecycle import (
    ALLOWED,
    STATUS_AFTER,
    InvalidDraft,
    InvalidTransition,
    LicenseNotFound,
    VersionTaken,
)
from e_license_store.model import (
    Envelope,
    LicenseDocument,
    LicenseDraft,
    Transition,
    document_format,
    object_key,
    parse_envelope,
    seal,
)
from e_license_store.signing import KeyRing, load_keyring
from e_license_store.store import open_store
from e_license_store.store.base import ObjectExists, ObjectStore, Retention, RetentionMode
from e_license_store.tables import LicenseIndexEntry
from hub.db import get_engine, session_factory
from hub.killpoints import kill_point
from hub.outbox import emit, emit_many
from hub.regions import event_region
from identifiers import supervision_code
from mappings.canonical.models import ApprovalResult, HolderKind, License, LicenseStatus, SourceRef


@dataclass(frozen=True)
class _Stored:
    envelope: Envelope
    key: str
    is_approval: bool
    issued: IssuedLicense
    fingerprint: str | None = None
    #: SHA-256 of the bytes written to the store
    object_sha256: str | None = None


@dataclass(frozen=True)
class IssuedLicense:
    """The outcome of a transition: which version now stands, and whether this call made it."""

    license_id: str
    version: int
    status: str
    object_key: str
    content_sha256: str
    key_id: str
    created: bool


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def draft_from_approval(approval: ApprovalResult, type_code: str = "3101") -> LicenseDraft:
    """An approval result (审批结果, e.g. 建设项目用地预审意见) as a licence draft of its catalogue type."""
    surface = {
        "project_name": approval.project_name,
        "conclusion": approval.conclusion,
        "opinion": approval.opinion,
        "land_area_m2": approval.land_area_m2,
        "location": approval.location,
    }
    return LicenseDraft(
        license_type_code=type_code,
        license_number=approval.approval_no,
        holder_name=approval.applicant_name or approval.applicant_code,
        holder_code=approval.applicant_code,
        holder_kind=HolderKind.enterprise,
        issuer_code=issuing_authority(type_code, approval.issuer_code),
        issuer_name=approval.issuer_name,
        issue_date=approval.issue_date,
        valid_until=approval.valid_until,
        surface={k: v for k, v in surface.items() if v is not None},
    )


class LicenseService:
    """Issues licences and moves them through valid → suspended/revoked/expired.

    ``store``: the object store; ``session_factory``: a ``sessionmaker`` on the hub
    database; ``signer``: the key ring whose active key seals every version.
    """

    def __init__(
        self,
        store: ObjectStore,
        session_factory: sessionmaker[Session],
        signer: KeyRing,
        *,
        retention_mode: RetentionMode | None = RetentionMode.governance,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.session_factory = session_factory
        self.signer = signer
        self.retention_mode = retention_mode
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        #: called with the session and the versions a transaction indexes, inside that transaction:
        #: a caller's count of what it issued commits with what it counts (a crash loses neither alone)
        self.on_indexed: Callable[[Session, Sequence[IssuedLicense]], None] | None = None

    def _indexed(self, session: Session, issued: Sequence[IssuedLicense]) -> None:
        if self.on_indexed is not None and issued:
            self.on_indexed(session, issued)

    # -- issuing ----------------------------------------------------------------------------
    def license_for(self, draft: LicenseDraft, source: SourceRef, *, version: int = 1) -> License:
        """The canonical licence a draft becomes (id from the source, defaults from the catalogue)."""
        ltype = license_type(draft.license_type_code)
        self._check_draft(draft, ltype)
        valid_from = draft.valid_from or draft.issue_date
        valid_until = draft.valid_until
        if valid_until is None and ltype.validity_years:
            valid_until = _add_years(valid_from, ltype.validity_years)
        license_id = make_license_id(
            ltype.type_code, draft.issuer_code, source.department, source.dataset, source.source_key
        )
        return License(
            license_id=license_id,
            license_type_code=ltype.type_code,
            license_type_name=ltype.name,
            license_number=draft.license_number,
            holder_name=draft.holder_name,
            holder_code=draft.holder_code,
            holder_kind=draft.holder_kind,
            issuer_name=draft.issuer_name or ltype.issuer_name,
            issuer_code=license_id.split("-")[1],
            issue_date=draft.issue_date,
            valid_from=valid_from,
            valid_until=valid_until,
            status=LicenseStatus.valid,
            surface=dict(draft.surface),
            version=version,
            previous_version=version - 1 if version > 1 else None,
            source=source,
            case_code=supervision_code.compact(draft.case_code) if draft.case_code else None,
        )

    @staticmethod
    def _check_draft(draft: LicenseDraft, ltype: LicenseType) -> None:
        if draft.case_code is not None and not supervision_code.is_valid(draft.case_code):
            raise InvalidDraft("case_code is not a supervision code (统一服务监管码)")
        if ltype.holder_kind != "any" and draft.holder_kind != ltype.holder_kind:
            raise InvalidDraft(f"{ltype.name} is held by a {ltype.holder_kind}, not a {draft.holder_kind}")
        known = {f.name for f in ltype.surface_fields}
        unknown = sorted(set(draft.surface) - known)
        if unknown:
            raise InvalidDraft(f"surface fields not in the catalogue for {ltype.type_code}: {unknown}")
        missing = sorted(f.name for f in ltype.surface_fields if f.required and draft.surface.get(f.name) in (None, ""))
        if missing:
            raise InvalidDraft(f"required surface fields missing for {ltype.type_code}: {missing}")

    def issue(self, draft: LicenseDraft, source: SourceRef) -> IssuedLicense:
        """Issue the licence a source record yields (签发).

        Deterministic: the id comes from the source, so issuing the same source again
        returns the standing version unchanged (``created=False``); a changed draft for
        the same source becomes an amendment.
        """
        lic = self.license_for(draft, source)
        fingerprint = index.content_fingerprint(self._document(lic, Transition.issued, None))

        def attempt(session: Session) -> IssuedLicense:
            current = session.get(LicenseIndexEntry, lic.license_id)
            if current is None:
                return self._write(session, lic, Transition.issued, None)
            if self._unchanged(current.content_fingerprint, fingerprint, lic):
                return self._standing(current)
            return self._transition(session, lic.license_id, Transition.amended, None, new_license=lic)

        return self._with_recovery(lic.license_id, attempt)

    def issue_batch(
        self, items: Sequence[tuple[LicenseDraft, SourceRef]], *, concurrency: int | None = None
    ) -> list[IssuedLicense]:
        """Issue a batch (a DAG task's staged records): same result as :meth:`issue` per item.

        New licences are sealed and stored ``concurrency`` at a time (the store's
        ``write_concurrency`` unless given; libcrypto and the store release the GIL), then
        indexed with their events in ONE transaction.
        Items already issued with the same content come back unchanged; changed ones and
        any conflict go through :meth:`issue` one by one.
        """
        # validate everything before writing anything; ids are cheap, licences are built in the workers
        for draft, _source in items:
            self._check_draft(draft, license_type(draft.license_type_code))
        ids = [
            make_license_id(
                draft.license_type_code, draft.issuer_code, source.department, source.dataset, source.source_key
            )
            for draft, source in items
        ]
        results: list[IssuedLicense | None] = [None] * len(items)
        fresh: list[int] = []
        slow: list[int] = []
        with self.session_factory() as session:
            known = {
                e.license_id: e
                for e in session.scalars(select(LicenseIndexEntry).where(LicenseIndexEntry.license_id.in_(set(ids))))
            }
            seen: set[str] = set()
            for i, license_id in enumerate(ids):
                entry = known.get(license_id)
                if license_id in seen:
                    slow.append(i)  # the same source twice in one batch: the second is a plain re-issue
                elif entry is None:
                    fresh.append(i)
                elif self._unchanged(entry.content_fingerprint, None, self.license_for(*items[i])):
                    results[i] = self._standing(entry)
                else:
                    slow.append(i)
                seen.add(license_id)

        def store_one(i: int) -> _Stored | None:
            lic = self.license_for(*items[i])
            try:
                return self._store_version(lic, Transition.issued, None, self._fingerprint(lic))
            except VersionTaken:
                return None

        indexed, retry = self._store_and_index(fresh, store_one, index.add_fresh, concurrency)
        for i, issued in indexed:
            results[i] = issued
        slow.extend(retry)
        for i in sorted(slow):
            results[i] = self.issue(*items[i])
        return [r for r in results if r is not None]

    def _store_and_index(
        self,
        batch: Sequence[int],
        store_one: Callable[[int], _Stored | None],
        add: Callable[[Session, list[tuple[Envelope, str, str | None, str | None]]], None],
        concurrency: int | None = None,
    ) -> tuple[list[tuple[int, IssuedLicense]], list[int]]:
        """Store the versions ``store_one`` seals for ``batch`` (``concurrency`` at a time, the store's
        ``write_concurrency`` unless given), then index them with ``add`` and their events in ONE
        transaction. Returns (position, licence) for what was indexed and the positions to make one
        by one: a version another writer took (``store_one`` gave None), or the whole batch when
        another writer indexed some of it meanwhile (the store's word taken first)."""
        concurrency = concurrency or self.store.write_concurrency
        if concurrency > 1 and len(batch) > 1:
            with ThreadPoolExecutor(min(concurrency, len(batch))) as pool:
                stored = list(pool.map(store_one, batch))
        else:
            stored = [store_one(i) for i in batch]
        kill_point("license.stored_not_indexed")
        done = [(i, d) for i, d in zip(batch, stored, strict=True) if d is not None]
        retry = [i for i, d in zip(batch, stored, strict=True) if d is None]
        try:
            with self.session_factory() as session:
                # the whole batch: index rows and events in one transaction, multi-row statements
                add(session, [(d.envelope, d.key, d.fingerprint, d.object_sha256) for _, d in done])
                emit_many(session, [self._event(d) for _, d in done])
                self._indexed(session, [d.issued for _, d in done])
                session.commit()
        except IntegrityError:
            for _, d in done:
                self._recover(d.issued.license_id)
            return [], retry + [i for i, _ in done]
        return [(i, d.issued) for i, d in done], retry

    def issue_many(
        self, items: Sequence[tuple[LicenseDraft, SourceRef]], *, concurrency: int | None = None
    ) -> list[IssuedLicense | InvalidDraft | InvalidTransition]:
        """Like :meth:`issue_batch`, but a bad item never stops the others: its error takes its place.

        New and unchanged licences go through the batch path (sealed in the workers, indexed in
        one transaction); changed ones — amendments, which may meet a revoked licence — and
        repeats within the batch are issued one by one.
        """
        out: list[IssuedLicense | InvalidDraft | InvalidTransition | None] = [None] * len(items)
        ids: list[str | None] = []
        for i, (draft, source) in enumerate(items):
            try:
                self._check_draft(draft, license_type(draft.license_type_code))
                ids.append(make_license_id(draft.license_type_code, draft.issuer_code, source.department,
                                           source.dataset, source.source_key))  # fmt: skip
            except InvalidDraft as exc:
                out[i] = exc
                ids.append(None)
        with self.session_factory() as session:
            wanted = {x for x in ids if x is not None}
            known = {
                e.license_id: e.content_fingerprint
                for e in session.scalars(select(LicenseIndexEntry).where(LicenseIndexEntry.license_id.in_(wanted)))
            } if wanted else {}  # fmt: skip
        batch: list[int] = []
        one_by_one: list[int] = []
        seen: set[str] = set()
        for i, license_id in enumerate(ids):
            if license_id is None:
                continue
            if license_id in seen or (license_id in known and not self._unchanged(
                    known[license_id], None, self.license_for(*items[i]))):  # fmt: skip
                one_by_one.append(i)
            else:
                batch.append(i)
            seen.add(license_id)
        if batch:
            for i, result in zip(batch, self.issue_batch([items[i] for i in batch], concurrency=concurrency),
                                 strict=True):  # fmt: skip
                out[i] = result
        for i in one_by_one:
            try:
                out[i] = self.issue(*items[i])
            except (InvalidDraft, InvalidTransition) as exc:
                out[i] = exc
        return [r for r in out if r is not None]

    def standing_many(self, items: Sequence[tuple[LicenseDraft, SourceRef]]) -> list[IssuedLicense | None]:
        """The standing version of the licence each source yielded, ``None`` where it yielded none
        (one query; nothing is written)."""
        ids = [
            make_license_id(draft.license_type_code, draft.issuer_code, source.department, source.dataset,
                            source.source_key)
            for draft, source in items
        ]  # fmt: skip
        with self.session_factory() as session:
            known = {
                e.license_id: self._standing(e)
                for e in session.scalars(select(LicenseIndexEntry).where(LicenseIndexEntry.license_id.in_(set(ids))))
            }
        return [known.get(i) for i in ids]

    def _fingerprint(self, lic: License) -> str:
        return index.content_fingerprint(self._document(lic, Transition.issued, None))

    def _unchanged(self, indexed: str | None, fingerprint: str | None, lic: License) -> bool:
        """Whether the indexed fingerprint says ``lic`` is what the index already holds (the legacy
        form is tried only when the current one differs: an amendment, or an index written before
        numbers were canonical)."""
        if indexed == (fingerprint or self._fingerprint(lic)):
            return True
        return indexed == index.legacy_content_fingerprint(self._document(lic, Transition.issued, None))

    def issue_approval(self, approval: ApprovalResult, type_code: str = "3101") -> IssuedLicense:
        """Issue an approval result for mutual recognition (跨部门结果互认)."""
        return self.issue(draft_from_approval(approval, type_code), approval.source)

    # -- lifecycle --------------------------------------------------------------------------
    def amend(self, license_id: str, changes: Mapping[str, Any], *, reason: str | None = None) -> IssuedLicense:
        """A new version with some fields (or surface fields, under ``surface``) changed (变更)."""
        return self._with_recovery(
            license_id,
            lambda session: self._transition(session, license_id, Transition.amended, reason, changes=changes),
        )

    def suspend(self, license_id: str, reason: str) -> IssuedLicense:
        return self._with_recovery(
            license_id, lambda session: self._transition(session, license_id, Transition.suspended, reason)
        )

    def reinstate(self, license_id: str, reason: str) -> IssuedLicense:
        return self._with_recovery(
            license_id, lambda session: self._transition(session, license_id, Transition.reinstated, reason)
        )

    def revoke(self, license_id: str, reason: str) -> IssuedLicense:
        """Revoke (撤销/吊销) with a reason; the licence stays readable and verifiable as revoked."""
        return self._with_recovery(
            license_id, lambda session: self._transition(session, license_id, Transition.revoked, reason)
        )

    def move_many(self, moves: Sequence[tuple[str, Transition, str]]) -> list[IssuedLicense | Exception]:
        """Suspend, reinstate, revoke or expire many licences, ``(license_id, transition, reason)`` each:
        the outcome of one-by-one moves, stored in parallel and indexed in one transaction
        (:func:`e_license_store.batch_moves.move_many`); an error takes the place of a move it stops."""
        return move_many(self, moves)

    def expire_due(self, today: dt.date) -> list[IssuedLicense]:
        """Housekeeping: mark expired every valid/suspended licence whose validity ended before ``today``."""
        with self.session_factory() as session:
            ids = list(
                session.scalars(
                    select(LicenseIndexEntry.license_id)
                    .where(LicenseIndexEntry.status.in_([LicenseStatus.valid.value, LicenseStatus.suspended.value]))
                    .where(LicenseIndexEntry.valid_until < today)
                    .order_by(LicenseIndexEntry.license_id)
                )
            )
        out = []
        reason = f"validity ended before {today}"

        def expire(license_id: str) -> Callable[[Session], IssuedLicense]:
            return lambda session: self._transition(session, license_id, Transition.expired, reason)

        for license_id in ids:
            out.append(self._with_recovery(license_id, expire(license_id)))
        return out

    # -- internals --------------------------------------------------------------------------
    def _with_recovery(self, license_id: str, attempt: Callable[[Session], IssuedLicense]) -> IssuedLicense:
        """Run ``attempt``; if the version it writes is already in the store, take the store's
        versions into the index (a writer that crashed before committing, or a concurrent one)
        and try again on the new state. The store's write-once keys make this safe."""
        for _ in range(5):
            with self.session_factory() as session:
                try:
                    return attempt(session)
                except VersionTaken:
                    session.rollback()
            self._recover(license_id)
        raise RuntimeError(f"licence {license_id}: version conflicts did not settle")

    def _recover(self, license_id: str) -> None:
        """Take the store's versions of ``license_id`` into the index, with the event of each.

        A writer killed between the store write and the index commit left a version no event
        announced yet; its event goes out now, in the same transaction as its index entry
        (events already in the outbox are not emitted twice: their idempotency keys)."""
        with self.session_factory() as session:
            before = session.get(LicenseIndexEntry, license_id)
            indexed = before.version if before is not None else 0
            index.reindex(session, self.store, license_ids=[license_id], keyring=self.signer)
            events, recovered = [], []
            for key in self.store.list_keys(f"licenses/{license_id}/"):
                if key.endswith(".json"):
                    envelope = parse_envelope(self.store.get(key))
                    lic = envelope.document.license
                    events.append(self._event_of(envelope, key, license_type(lic.license_type_code).is_approval_result))
                    if lic.version > indexed:
                        recovered.append(
                            IssuedLicense(
                                lic.license_id, lic.version, str(lic.status), key, envelope.document_sha256,
                                envelope.signature.key_id, created=True,
                            )
                        )  # fmt: skip
            emit_many(session, events)
            self._indexed(session, recovered)
            session.commit()

    @staticmethod
    def _standing(entry: LicenseIndexEntry) -> IssuedLicense:
        return IssuedLicense(
            entry.license_id,
            entry.version,
            entry.status,
            entry.object_key,
            entry.content_sha256,
            entry.key_id,
            created=False,
        )

    def _document(self, lic: License, transition: Transition, reason: str | None) -> LicenseDocument:
        return LicenseDocument(
            format=document_format(lic), license=lic, transition=transition, reason=reason, recorded_at=self._clock()
        )

    def _transition(
        self,
        session: Session,
        license_id: str,
        transition: Transition,
        reason: str | None,
        *,
        changes: Mapping[str, Any] | None = None,
        new_license: License | None = None,
    ) -> IssuedLicense:
        current = session.get(LicenseIndexEntry, license_id)
        if current is None:
            raise LicenseNotFound(license_id)
        status = LicenseStatus(current.status)
        if status not in ALLOWED[transition]:
            if self.store.exists(object_key(license_id, current.version + 1)):
                raise VersionTaken(license_id)  # the index is behind the store: recover, then decide
            raise InvalidTransition(f"licence {license_id} is {status.value}: it cannot become {transition.value}")
        previous = parse_envelope(self.store.get(current.object_key)).document.license
        if new_license is not None:
            base = new_license.model_dump()
            if base.get("case_code") is None:  # re-issued without naming its case: it keeps it
                base["case_code"] = previous.case_code
        else:
            base = previous.model_dump()
            for name, value in (changes or {}).items():
                if name in {
                    "license_id",
                    "version",
                    "previous_version",
                    "status",
                    "license_type_code",
                    "source",
                    "case_code",
                }:
                    raise InvalidTransition(f"{name} cannot be amended")
                if name == "surface":
                    base["surface"] = {**base["surface"], **dict(value)}
                else:
                    base[name] = value
        after = STATUS_AFTER[transition]
        base.update(
            version=current.version + 1,
            previous_version=current.version,
            status=(after or status).value,
        )
        lic = License.model_validate(base)
        if transition == Transition.amended:
            self._check_draft(
                LicenseDraft(
                    license_type_code=lic.license_type_code,
                    license_number=lic.license_number,
                    holder_name=lic.holder_name,
                    holder_code=lic.holder_code,
                    holder_kind=HolderKind(lic.holder_kind),
                    issuer_code=lic.issuer_code,
                    issue_date=lic.issue_date,
                    surface=lic.surface,
                ),
                license_type(lic.license_type_code),
            )
        return self._write(session, lic, transition, reason)

    def _write(self, session: Session, lic: License, transition: Transition, reason: str | None) -> IssuedLicense:
        stored = self._store_version(lic, transition, reason)
        kill_point("license.stored_not_indexed")
        self._record(session, stored)
        self._indexed(session, [stored.issued])
        session.commit()
        return stored.issued

    def _store_version(
        self, lic: License, transition: Transition, reason: str | None, fingerprint: str | None = None
    ) -> _Stored:
        """Seal the version and write it under its write-once key (no database work)."""
        envelope = seal(self._document(lic, transition, reason), self.signer)
        key = object_key(lic.license_id, lic.version)
        ltype = license_type(lic.license_type_code)
        retention = None
        if self.retention_mode is not None:
            # a retention year is 365 days, as in S3 object-lock rules, so a bucket's default rule of
            # the same length covers it without a request of its own
            until = self._clock() + dt.timedelta(days=365 * ltype.retention_years)
            retention = Retention(self.retention_mode, until)
        data = envelope.to_bytes()
        try:
            self.store.put(key, data, content_type="application/json", retention=retention)
        except ObjectExists:
            raise VersionTaken(key) from None
        issued = IssuedLicense(
            lic.license_id,
            lic.version,
            str(lic.status),
            key,
            envelope.document_sha256,
            envelope.signature.key_id,
            created=True,
        )
        return _Stored(envelope, key, ltype.is_approval_result, issued, fingerprint, hashlib.sha256(data).hexdigest())

    @classmethod
    def _event(cls, stored: _Stored) -> dict[str, Any]:
        """The outbox event announcing a stored version (``license.issued``, ``approval.issued``, ...)."""
        return cls._event_of(stored.envelope, stored.key, stored.is_approval)

    @staticmethod
    def _event_of(envelope: Envelope, key: str, is_approval: bool) -> dict[str, Any]:
        lic = envelope.document.license
        transition = envelope.document.transition
        event_type = f"{'approval' if is_approval else 'license'}.{transition.value}"
        return {
            "event_type": event_type,
            "subject": lic.license_id,
            "payload": {
                "license_id": lic.license_id,
                "version": lic.version,
                "transition": transition.value,
                "status": str(lic.status),
                "reason": envelope.document.reason,
                "license_type_code": lic.license_type_code,
                "license_number": lic.license_number,
                "holder_code": lic.holder_code,
                "holder_kind": str(lic.holder_kind),
                "holder_name": lic.holder_name,
                "issuer_code": lic.issuer_code,
                "valid_until": lic.valid_until.isoformat() if lic.valid_until else None,
                "object_key": key,
                "content_sha256": envelope.document_sha256,
            },
            "idempotency_key": f"{event_type}:{lic.license_id}:v{lic.version}",
            "holder_code": lic.holder_code,
            "region_code": event_region(str(lic.holder_kind), lic.holder_code, lic.issuer_code),
            "license_type_code": lic.license_type_code,
        }

    def _record(self, session: Session, stored: _Stored) -> None:
        """Index the stored version and emit its event, in the caller's transaction."""
        index.apply_envelope(
            session, stored.envelope, stored.key, fingerprint=stored.fingerprint, object_sha256=stored.object_sha256
        )
        emit(session, **self._event(stored))


def default_service(*, create_keys: bool = False) -> LicenseService:
    """The service on ``HUB_STORE_URL``, ``HUB_DB_URL`` and the key ring in ``HUB_SIGNING_KEY_DIR``
    (DAG tasks, the demo). ``create_keys=True`` makes a first SM2 key under ``$HUB_HOME/keys``."""
    return LicenseService(open_store(), session_factory(get_engine()), load_keyring(create=create_keys))
