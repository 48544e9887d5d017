"""The hub's state as one comparable digest (状态摘要): did two runs reach the same state?

A digest covers, order-independently:

* every table of the hub's database, row by row, minus the volatile columns listed (with the
  reason for each) in :data:`VOLATILE` — times, durations, surrogate keys and what is derived
  from them: two runs that did the same work differ there and nowhere else; the fan-out's
  bookkeeping (:data:`REPLACED`) as the events it has fanned out; the push DAG's ledger rows folded
  into one (:data:`PUSH_STEPS_FOLDED`);
* every licence object in the store: its key, version, and the hash of its document without
  ``recorded_at`` (the signature is randomised per sealing; it is checked, not compared);
* every event the receivers accepted, once per idempotency key, without the message's send time
  and event id;
* whether the audit chain verifies.

:meth:`Digest.differences` says where two digests differ (tables, rows only one side holds),
:meth:`Digest.invariant_problems` what no run may leave behind (a licence version stored twice or
missing from the index, a receiver given two different events under one key, counts that do not
reconcile). Used by the crash harness (``python -m bench crash``), its tests, and the embedded-vs-scaled
equivalence test.

One job, one module: what counts as the hub's state and what does not — the reviewed lists of what is
left out (each with its reason) beside the code that leaves it out, so a reviewer reads both at once.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection, Engine

from e_license_store.model import parse_envelope
from e_license_store.store.base import ObjectStore
from e_license_store.store.local import LocalStore
from recognition import audit

#: table → column → why the column is left out of the digest (reviewed: anything not listed counts)
#: why a matching model's version is volatile
MODEL_VERSION = (
    "a model trained at first need (no model file yet) is named by its training time, and each run from the"
    " same snapshot trains its own: what it decided is compared through the links and the review queue"
)

VOLATILE: dict[str, dict[str, str]] = {
    "*": {
        "created_at": "when a row was written: a re-run writes it later",
        "updated_at": "when a row last changed",
    },
    "pipeline_step": {"seconds": "how long a step took", "finished_at": "when the step ended"},
    "sync_state": {"state.last_reconcile": "when a SQL feed last listed its keys for deletions: a re-run lists later"},
    "staged_batch": {
        "id": "surrogate key",
        "claimed_at": "when a run claimed the batch",
        "finished_at": "when the batch was marked published",
    },
    "quarantine": {"id": "surrogate key"},
    "quarantine_reason": {"id": "surrogate key", "quarantine_id": "the quarantined row's surrogate key"},
    "outbox_event": {
        "id": "surrogate key: numbered in commit order, which a crash may change",
        "payload.content_sha256": "the licence document's hash covers its recording time",
    },
    "recognition_delivery": {
        "id": "surrogate key",
        "event_id": "an outbox event's surrogate key (the idempotency key names the event)",
        "next_attempt_at": "when the next try is due",
        "delivered_at": "when the receiver answered",
    },
    "recognition_audit": {
        "seq": "position in the chain: the order of a re-run's entries may differ",
        "at": "when the entry was written",
        "prev_hash": "the chain's hash covers times and positions (the chain is verified instead)",
        "hash": "the chain's hash covers times and positions (the chain is verified instead)",
        "resource": "names a delivery by its surrogate key",
        "subject": "names an outbox event by its surrogate key",
    },
    "recognition_audit_head": {
        "hash": "the chain's head hash (the chain is verified instead)",
        "seq": "the chain's length: a request asked again after its answer was lost adds an entry (the entries "
        "themselves are compared, the chain verified)",
    },
    "license_index": {
        "content_sha256": "the document's hash covers its recording time (the documents are compared instead)",
        "object_sha256": "the object's hash covers the randomised SM2 signature",
    },
    "license_version": {
        "content_sha256": "the document's hash covers its recording time (the documents are compared instead)",
        "recorded_at": "when the version was recorded",
    },
    "identity_source_record": {
        "id": "surrogate key",
        "linked_at": "when the record was linked",
        "model_version": MODEL_VERSION,
        "match_probability": "what a model trained at first need gave: it learnt from the index as the feeds"
        " that finished before it left it, and their order differs between executors (the identity the"
        " link names and its method are compared)",
    },
    "identity_crosswalk": {"id": "surrogate key", "linked_at": "when the legacy code was learnt"},
    "identity_relation": {"id": "surrogate key", "linked_at": "when the relation was linked"},
    "identity_golden_history": {"id": "surrogate key", "changed_at": "when the golden record changed"},
    "identity_merge": {"id": "surrogate key", "merged_at": "when the identities were merged"},
    "identity_review_queue": {"id": "surrogate key"},
    "identity_review_event": {
        "id": "surrogate key",
        "review_id": "the review item's surrogate key",
        "at": "when the review item changed",
    },
    "lineage_mapping": {"first_seen_at": "when a run first used the mapping file's content"},
    "lineage_batch": {
        "id": "surrogate key",
        "pulled_at": "when the batch was staged",
        "recorded_at": "when the batch's lineage was recorded",
        "model_version": MODEL_VERSION,
    },
    "lineage_record": {"batch_id": "the lineage batch's surrogate key"},
    # the case repository: a case is named by its supervision code, its id is kept (the step log,
    # stages, clocks and changes refer to it); what the task and supervision record of their own time
    "case_step": {
        "id": "surrogate key: numbered in commit order, which a crash may change",
        "recorded_at": "when the hub recorded the step (the step's own time is occurred_at)",
    },
    "case_material": {"id": "surrogate key"},
    "case_dispatch": {"id": "surrogate key"},
    "case_authorisation": {"id": "surrogate key"},
    "case_light_change": {
        "id": "surrogate key: numbered in commit order, which a crash may change",
        "changed_at": "when the supervision task logged the change (its day is as_of)",
    },
    "case_escalation": {
        "id": "surrogate key: numbered in commit order, which a crash may change",
        "raised_at": "when the supervision task raised it (its day is raised_on)",
    },
    "case_light_gauge": {"counted_at": "when the supervision task last counted the open clocks"},
}


#: tables whose rows are replaced by what they stand for, with the reason
REPLACED: dict[str, str] = {
    "recognition_fanout": "fan-out marks are folded into the low-water mark once their events are older than the "
    "grace period: a run taken later holds fewer marks for the same work; the digest holds the idempotency key of "
    "every event fanned out (marked, or at or below the mark) instead",
    "recognition_cursor": "the fan-out low-water mark is an outbox event's surrogate key, moved on by time (see "
    "recognition_fanout)",
}
#: the part of the digest standing for the fan-out's tables
FANNED_OUT = "recognition_fanout (events fanned out)"

#: the push DAG's ledger rows (``pipeline_step`` of mapping ``_push``) are folded into one row of their
#: summed counts, without run ids: how many push runs the Assets wake, and which events each delivers,
#: depends on when the publish tasks end (one run per Asset update, or fewer when they come together);
#: what was delivered is compared row by row in ``recognition_delivery`` and at the receivers
PUSH_STEPS_FOLDED = "_push"


def volatile_columns(table: str) -> set[str]:
    """The columns of ``table`` the digest leaves out (``column.key``: a key of a JSON column)."""
    return set(VOLATILE["*"]) | set(VOLATILE.get(table, {}))


def _without_keys(value: Any, keys: set[str]) -> Any:
    """A JSON column's value (text or already parsed) with ``keys`` left out of its objects, at any depth
    (a connector's state keeps one object per stream)."""
    return _drop_keys(json.loads(value) if isinstance(value, str) else value, keys)


def _drop_keys(parsed: Any, keys: set[str]) -> Any:
    if isinstance(parsed, dict):
        return {k: _drop_keys(v, keys) for k, v in parsed.items() if k not in keys}
    if isinstance(parsed, list):
        return [_drop_keys(v, keys) for v in parsed]
    return parsed


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return round(value, 9)
    return value


def _row_text(row: Mapping[str, Any]) -> str:
    return json.dumps({k: _plain(v) for k, v in sorted(row.items())}, ensure_ascii=False, sort_keys=True, default=str)


def _multiset_hash(items: Counter[str]) -> str:
    h = hashlib.sha256()
    for text in sorted(items.elements()):
        h.update(text.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Digest:
    """One state of the hub; compare with ``==`` on :attr:`hexdigest` or :meth:`differences`."""

    #: table → multiset of its rows (volatile columns left out), as canonical JSON
    tables: dict[str, Counter[str]] = field(default_factory=dict)
    #: object key → (licence id, version, hash of the document without its recording time)
    licences: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    #: index entry: licence id → (version, object key) the index stands on
    index_versions: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: receiver → idempotency key → hashes of the distinct events accepted under it
    received: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    #: receiver → POSTs in all (duplicates of one key included: at least once is allowed)
    posts: dict[str, int] = field(default_factory=dict)
    audit_ok: bool = True
    audit_problems: list[str] = field(default_factory=list)
    #: objects that are not licence envelopes or fail their seal check
    bad_objects: list[tuple[str, str]] = field(default_factory=list)

    def parts(self) -> dict[str, str]:
        """A hash per part of the state."""
        out = {f"table {t}": _multiset_hash(rows) for t, rows in sorted(self.tables.items())}
        out["licence objects"] = _multiset_hash(Counter(json.dumps(v) for v in self.licences.values()))
        for name, keys in sorted(self.received.items()):
            out[f"receiver {name}"] = _multiset_hash(Counter(f"{k} {sorted(v)}" for k, v in keys.items()))
        out["audit chain"] = "verified" if self.audit_ok else "BROKEN"
        return out

    @property
    def hexdigest(self) -> str:
        return hashlib.sha256(json.dumps(self.parts(), sort_keys=True).encode()).hexdigest()

    def summary(self) -> str:
        rows = sum(sum(c.values()) for c in self.tables.values())
        events = {name: len(keys) for name, keys in self.received.items()}
        return (
            f"digest {self.hexdigest[:16]}: {len(self.tables)} tables, {rows} rows, "
            f"{len(self.licences)} licence versions, events received {events}, "
            f"audit chain {'verified' if self.audit_ok else 'BROKEN'}"
        )

    def differences(self, other: Digest, *, sample: int = 3) -> list[str]:
        """Where ``other`` differs from this digest (the reference): a line per part, with sample rows."""
        mine, theirs = self.parts(), other.parts()
        out: list[str] = []
        for part in sorted(set(mine) | set(theirs)):
            if mine.get(part) == theirs.get(part):
                continue
            if part.startswith("table "):
                table = part[len("table ") :]
                a, b = self.tables.get(table, Counter()), other.tables.get(table, Counter())
                only_a, only_b = a - b, b - a
                out.append(
                    f"{part}: {sum(a.values())} rows in the reference, {sum(b.values())} now; "
                    f"{sum(only_a.values())} only in the reference, {sum(only_b.values())} only now"
                )
                out += [f"  reference only: {t[:300]}" for t in list(only_a.elements())[:sample]]
                out += [f"  now only:       {t[:300]}" for t in list(only_b.elements())[:sample]]
            elif part == "licence objects":
                a_set, b_set = set(self.licences.items()), set(other.licences.items())
                out.append(f"{part}: {len(a_set - b_set)} only in the reference, {len(b_set - a_set)} only now")
                out += [f"  reference only: {x}" for x in sorted(a_set - b_set)[:sample]]
                out += [f"  now only:       {x}" for x in sorted(b_set - a_set)[:sample]]
            elif part.startswith("receiver "):
                name = part[len("receiver ") :]
                a_keys, b_keys = self.received.get(name, {}), other.received.get(name, {})
                missing, extra = sorted(set(a_keys) - set(b_keys)), sorted(set(b_keys) - set(a_keys))
                changed = sorted(k for k in set(a_keys) & set(b_keys) if a_keys[k] != b_keys[k])
                out.append(f"{part}: {len(missing)} keys missing, {len(extra)} extra, {len(changed)} with other events"
                           f" (e.g. {(missing + extra + changed)[:sample]})")  # fmt: skip
            else:
                out.append(f"{part}: {mine.get(part)} in the reference, {theirs.get(part)} now")
        return out

    def invariant_problems(self) -> list[str]:
        """What no run may leave, whatever the reference: licence versions stored twice or not
        indexed, two different events under one idempotency key at a receiver, an event
        delivered twice to one subscription, an audit chain that does not verify, a feed whose
        counts do not reconcile."""
        out: list[str] = [f"licence object {k}: {why}" for k, why in self.bad_objects]
        versions: Counter[tuple[str, int]] = Counter((lid, v) for lid, v, _ in self.licences.values())
        out += [f"licence {lid} version {v} stored {n} times" for (lid, v), n in versions.items() if n > 1]
        stored: dict[str, set[int]] = {}
        for lid, v, _ in self.licences.values():
            stored.setdefault(lid, set()).add(v)
        for lid, vs in sorted(stored.items()):
            if vs != set(range(1, max(vs) + 1)):
                out.append(f"licence {lid}: stored versions {sorted(vs)} have a gap")
            standing = self.index_versions.get(lid)
            if standing is None:
                out.append(f"licence {lid}: stored, versions {sorted(vs)}, but not in the index")
            elif standing[0] != max(vs):
                out.append(f"licence {lid}: the index stands on version {standing[0]}, the store holds {max(vs)}")
        out += [
            f"licence {lid}: in the index, not in the store" for lid in sorted(set(self.index_versions) - set(stored))
        ]
        for name, keys in sorted(self.received.items()):
            out += [f"receiver {name}: {len(v)} different events under idempotency key {k}"
                    for k, v in sorted(keys.items()) if len(v) > 1]  # fmt: skip
        delivered: Counter[tuple[str, str]] = Counter()
        for text, n in self.tables.get("recognition_delivery", Counter()).items():
            row = json.loads(text)
            if row.get("status") == "delivered":
                delivered[(row["subscription_id"], row["idempotency_key"])] += n
        out += [f"subscription {sub}: event {key} delivered {n} times" for (sub, key), n in sorted(delivered.items())
                if n > 1]  # fmt: skip
        if not self.audit_ok:
            out.append("audit chain does not verify: " + "; ".join(self.audit_problems[:3]))
        out += _reconciliation(self.tables.get("pipeline_step", Counter()))
        return out


def _reconciliation(steps: Counter[str]) -> list[str]:
    """Every feed's ledger: extract's pulled (+ carried over) = accepted + quarantined, and
    validate's pulled = accepted + quarantined."""
    out = []
    for text in steps:
        row = json.loads(text)
        if row.get("superseded_by") or row["step"] not in ("extract", "validate"):
            continue
        pulled = row["pulled"] + (row.get("carried_over") or 0)
        if pulled != row["accepted"] + row["quarantined"]:
            out.append(f"{row['mapping']} {row['step']} (run {row['run_id']}): pulled {pulled} != accepted "
                       f"{row['accepted']} + quarantined {row['quarantined']}")  # fmt: skip
    return out


def _aliased(text: str, aliases: Mapping[str, str]) -> str:
    for value, name in aliases.items():
        text = text.replace(value, name)
    return text


def table_rows(engine: Engine, aliases: Mapping[str, str] | None = None) -> dict[str, Counter[str]]:
    """Every table's rows, volatile columns left out, as a multiset of canonical JSON texts
    (each of ``aliases`` replaced by its name wherever it occurs)."""
    aliases = aliases or {}
    meta = MetaData()
    meta.reflect(engine)
    out: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            if table.name in REPLACED:
                continue
            skip = volatile_columns(table.name)
            nested: dict[str, set[str]] = {}
            for name in skip:
                column, _, key = name.partition(".")
                if key:
                    nested.setdefault(column, set()).add(key)
            cols = [c for c in table.columns if c.name not in skip]
            if not cols:  # every column volatile: only how many rows there are counts
                (n,) = conn.execute(select(func.count()).select_from(table)).one()
                out[table.name] = Counter({"{}": int(n)})
                continue
            rows = (dict(r._mapping) for r in conn.execute(select(*cols)))
            out[table.name] = Counter(
                _aliased(
                    _row_text(
                        {k: _without_keys(v, nested[k]) if k in nested and v is not None else v
                         for k, v in row.items()}
                    ),
                    aliases,
                )
                for row in rows
            )  # fmt: skip
        if "pipeline_step" in out:
            out["pipeline_step"] = _fold_push_steps(out["pipeline_step"])
        if "recognition_fanout" in meta.tables:
            out[FANNED_OUT] = Counter()
            for t, n in fanned_out(conn).items():
                out[FANNED_OUT][_aliased(t, aliases)] += n
    return out


def _fold_push_steps(rows: Counter[str]) -> Counter[str]:
    """The push DAG's ledger rows as one row: their counts summed, run ids left out (see
    :data:`PUSH_STEPS_FOLDED`); every other row as it is."""
    out: Counter[str] = Counter()
    folded: dict[str, Any] = {}
    for text, n in rows.items():
        row = json.loads(text)
        if row.get("mapping") != PUSH_STEPS_FOLDED:
            out[text] += n
            continue
        for key, value in row.items():
            if key in ("run_id", "superseded_by"):
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                folded[key] = folded.get(key, 0) + value * n
            else:
                folded.setdefault(key, value)
    if folded:
        out[_row_text(folded)] += 1
    return out


def fanned_out(conn: Connection) -> Counter[str]:
    """The idempotency keys of the outbox events fanned out: marked, or at or below the low-water mark."""
    low = conn.execute(sql_text("SELECT value FROM recognition_cursor WHERE name = 'fanout'")).scalar()
    rows = conn.execute(
        sql_text(
            "SELECT idempotency_key FROM outbox_event WHERE id <= :low "
            "OR id IN (SELECT event_id FROM recognition_fanout)"
        ),
        {"low": int(low) if low is not None else 0},
    )
    return Counter(json.dumps({"idempotency_key": key}) for (key,) in rows)


#: what a licence document holds that two runs doing the same work differ in (besides ``recorded_at``)
DOCUMENT_VOLATILE = {
    "license.source.staged_ref": "names the staged object a licence was published from by its place (a file path "
    "or an S3 URL) and, for a step's output, by a hash of its inputs' places (pipeline.steps.object_name): the "
    "same batch staged elsewhere has another name; the batches are compared through lineage_batch and staged_batch",
}


def _document_hash(document: Any, aliases: Mapping[str, str] | None = None) -> str:
    body = document.model_dump(mode="json", exclude={"recorded_at"})
    for path in DOCUMENT_VOLATILE:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    text = _aliased(json.dumps(body, sort_keys=True, ensure_ascii=False), aliases or {})
    return hashlib.sha256(text.encode()).hexdigest()


def licence_objects(
    store: Path | ObjectStore, aliases: Mapping[str, str] | None = None
) -> tuple[dict[str, tuple[str, int, str]], list[tuple[str, str]]]:
    """Every licence object in ``store`` (a file store's directory, or any store: an S3 bucket in the
    scaled mode): key → (licence id, version, document hash); a document's source names its run and
    staged batch, so ``aliases`` apply to it as to the rows."""
    if isinstance(store, Path):
        store = LocalStore(store)
    objects: dict[str, tuple[str, int, str]] = {}
    bad: list[tuple[str, str]] = []
    for key in store.list_keys():
        try:
            envelope = parse_envelope(store.get(key))
        except ValueError as exc:
            bad.append((key, f"not a licence envelope: {exc}"[:200]))
            continue
        lic = envelope.document.license
        objects[key] = (lic.license_id, int(lic.version), _document_hash(envelope.document, aliases))
    return objects, bad


#: what a received message carries that two runs doing the same work differ in
RECEIVED_VOLATILE = {
    "timestamp": "when the message was sent",
    "event_id": "the outbox event's surrogate key",
    "notice_id": "the receiver's own id for a notice",
    "content_sha256": "the licence document's hash covers its recording time",
}


def received_events(
    events: Sequence[tuple[str, Mapping[str, Any]]], aliases: Mapping[str, str] | None = None
) -> dict[str, set[str]]:
    """Idempotency key → hashes of the distinct events received under it (send time and event id aside)."""
    out: dict[str, set[str]] = {}
    for key, body in events:
        stable = {k: v for k, v in body.items() if k not in RECEIVED_VOLATILE}
        if isinstance(stable.get("data"), dict):
            stable["data"] = {k: v for k, v in stable["data"].items() if k not in RECEIVED_VOLATILE}
        text = _aliased(json.dumps(stable, sort_keys=True, ensure_ascii=False, default=str), aliases or {})
        out.setdefault(_aliased(key, aliases or {}), set()).add(hashlib.sha256(text.encode()).hexdigest())
    return out


def take_digest(
    db_url: str,
    store_dir: Path | ObjectStore,
    receivers: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] | None = None,
    *,
    aliases: Mapping[str, str] | None = None,
) -> Digest:
    """The digest of the hub on ``db_url`` with its licence store ``store_dir`` (a file store's directory,
    or an opened store),
    and of what ``receivers`` (name → (idempotency key, event) per message received) got.

    ``aliases``: values a run draws at random (the supervision code of a case the API took in)
    → a stable name (the request that made it), replaced wherever they occur in rows and events."""
    engine = create_engine(db_url)
    try:
        digest = Digest(tables=table_rows(engine, aliases))
        digest.licences, digest.bad_objects = licence_objects(store_dir, aliases)
        with engine.connect() as conn:
            digest.index_versions = {
                str(lid): (int(v), str(k))
                for lid, v, k in conn.execute(sql_text("SELECT license_id, version, object_key FROM license_index"))
            }
        report = audit.verify(engine)
        digest.audit_ok, digest.audit_problems = report.ok, list(report.problems)
    finally:
        engine.dispose()
    for name, events in (receivers or {}).items():
        digest.received[name] = received_events(events, aliases)
        digest.posts[name] = len(events)
    return digest
