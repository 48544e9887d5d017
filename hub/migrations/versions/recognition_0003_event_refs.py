"""recognition: stored events and deliveries get opaque identifiers and proper regions

Revision ID: recognition_0003_event_refs
Revises: recognition_0002_destinations
Create Date: 2026-12-01

Before this revision an identity event's ``subject`` was the identity's code (a resident id for
a person) and the key of one written by the batch resolver began with it; the deliveries copied
the key, and it travelled as ``webhook-id`` and showed in ``GET /v1/deliveries``. Stored rows are
rewritten here the way new ones are written (:mod:`hub.pseudonyms`): the subject becomes the
code's opaque reference, a key holding the code becomes ``<type>:<reference>:<keyed digest of
the old key>`` (unique as the old keys were; a replay of an old delivery carries its new key
after the upgrade), and the deliveries take their event's new key. Keys naming a merge or a
link record (``identity.merged:merge:<id>``) had no code in them and stay.

Every event's ``region_code`` is derived again (:func:`hub.regions.event_region`): it used to
be the issuer code's first six characters, no region at all for a tax authority or an
organ's USCC.

The rewrite needs the installation's event key (``HUB_EVENT_KEY`` or ``$HUB_HOME/secrets``):
run ``hub migrate`` with the environment the hub runs with. Audit entries written before keep
their keys (the log is append-only and hash-chained) and are for operators only. Downgrading
leaves the rewritten values as they are.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from hub.pseudonyms import event_key, is_opaque_ref, keyed_digest, opaque_ref
from hub.regions import event_region, holder_region

revision = "recognition_0003_event_refs"
down_revision = "recognition_0002_destinations"
branch_labels = None
depends_on = None

BATCH = 1000

outbox = sa.table(
    "outbox_event",
    sa.column("id", sa.BigInteger()),
    sa.column("event_type", sa.String(80)),
    sa.column("subject", sa.String(200)),
    sa.column("holder_code", sa.String(40)),
    sa.column("region_code", sa.String(12)),
    sa.column("payload", sa.JSON()),
    sa.column("idempotency_key", sa.String(200)),
)
delivery = sa.table(
    "recognition_delivery",
    sa.column("id", sa.BigInteger()),
    sa.column("event_id", sa.BigInteger()),
    sa.column("event_type", sa.String(80)),
    sa.column("idempotency_key", sa.String(200)),
)


def _region(event_type: str, holder_code: str | None, payload: dict[str, Any]) -> str | None:
    if event_type.startswith("identity."):
        return holder_region(payload.get("entity_kind"), holder_code)
    holder = payload.get("holder_code") or holder_code
    return event_region(payload.get("holder_kind"), holder, payload.get("issuer_code"))


def _rewrite(row: Any, key: bytes) -> dict[str, Any]:
    """The new values of one stored event (only those that change)."""
    changes: dict[str, Any] = {}
    payload = row.payload if isinstance(row.payload, dict) else {}
    if row.event_type.startswith(("license.", "approval.", "identity.")):
        region = _region(row.event_type, row.holder_code, payload)
        if region != row.region_code:
            changes["region_code"] = region
    if not row.event_type.startswith("identity."):
        return changes
    code = row.subject
    if code and not is_opaque_ref(code):
        ref = opaque_ref(code, key=key)
        changes["subject"] = ref
        if code in row.idempotency_key:
            digest = keyed_digest("migrated", row.idempotency_key, key=key)[:16]
            changes["idempotency_key"] = f"{row.event_type}:{ref}:{digest}"
    return changes


def _rewrite_events(conn: sa.Connection, key: bytes) -> None:
    last = 0
    while True:
        rows = conn.execute(sa.select(outbox).where(outbox.c.id > last).order_by(outbox.c.id).limit(BATCH)).all()
        if not rows:
            return
        for row in rows:
            changes = _rewrite(row, key)
            if changes:
                conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(**changes))
        last = int(rows[-1].id)


def _rekey_deliveries(conn: sa.Connection) -> None:
    """Deliveries of identity events take their event's (new) key; by primary key, batch by batch."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(delivery.c.id, delivery.c.event_id, delivery.c.idempotency_key)
            .where(delivery.c.id > last, delivery.c.event_type.like("identity.%"))
            .order_by(delivery.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        keys = dict(
            conn.execute(
                sa.select(outbox.c.id, outbox.c.idempotency_key).where(outbox.c.id.in_({r.event_id for r in rows}))
            ).all()
        )
        for row in rows:
            new = keys.get(row.event_id)
            if new is not None and new != row.idempotency_key:
                conn.execute(sa.update(delivery).where(delivery.c.id == row.id).values(idempotency_key=new))
        last = int(rows[-1].id)


def upgrade() -> None:
    conn = op.get_bind()
    _rewrite_events(conn, event_key())
    _rekey_deliveries(conn)


def downgrade() -> None:
    """The opaque references cannot be turned back into codes; the rows stay as they are."""
