"""Destinations an operator allows a consumer's subscriptions to push to (允许的推送目的地).

A consumer with ``subscriptions:manage`` may subscribe only URLs an allowed destination covers
(scheme, host, port, path prefix; ``https`` unless the entry is ``http://…``), and the delivery
worker connects only to addresses the entry may reach (:mod:`connectors.egress`). Operators
manage the list with ``hub consumers allow-destination | destinations | remove-destination``.
Subscriptions operators declare in ``subscriptions.yaml`` are trusted as declared.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.egress import AllowedDestination, DestinationPolicy, Reach
from hub.models import utcnow
from recognition.consumers import get_consumer
from recognition.tables import Consumer, ConsumerDestination


def _entry(row: ConsumerDestination) -> AllowedDestination:
    return AllowedDestination(row.scheme, row.host, row.port, row.path_prefix, Reach(row.reach))


def _find(session: Session, consumer_id: str, entry: AllowedDestination) -> ConsumerDestination | None:
    return session.scalar(
        select(ConsumerDestination).where(
            ConsumerDestination.consumer_id == consumer_id,
            ConsumerDestination.scheme == entry.scheme,
            ConsumerDestination.host == entry.host,
            ConsumerDestination.port == entry.port,
            ConsumerDestination.path_prefix == entry.path_prefix,
        )
    )


def allow(
    session: Session, consumer_name: str, destination: str, *, private: bool = False, allowed_by: str = "cli"
) -> AllowedDestination:
    """Allow ``destination`` (``https://host[:port][/path]``, ``http://…`` or ``host[:port]``) for a consumer.

    ``private``: the destination's name may resolve to private-use addresses (hosts on a
    government network). Allowing an entry again updates its reach. Raises
    :class:`~connectors.egress.DestinationRefused` for a malformed entry and
    :class:`~recognition.consumers.ConsumerError` for an unknown consumer.
    """
    consumer = get_consumer(session, consumer_name)
    entry = AllowedDestination.parse(destination, reach=Reach.private if private else Reach.public)
    row = _find(session, consumer.id, entry)
    if row is None:
        row = ConsumerDestination(
            consumer_id=consumer.id, scheme=entry.scheme, host=entry.host, port=entry.port,
            path_prefix=entry.path_prefix, reach=entry.reach.value, allowed_by=allowed_by, created_at=utcnow(),
        )  # fmt: skip
        session.add(row)
    else:
        row.reach, row.allowed_by = entry.reach.value, allowed_by
    session.flush()
    return entry


def remove(session: Session, consumer_name: str, destination: str) -> bool:
    """Withdraw an allowed destination; subscriptions to it are no longer pushed to."""
    consumer = get_consumer(session, consumer_name)
    row = _find(session, consumer.id, AllowedDestination.parse(destination))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def listing(session: Session, consumer_name: str | None = None) -> list[tuple[str, AllowedDestination]]:
    """(consumer name, allowed destination) pairs, by consumer then destination."""
    stmt = select(Consumer.name, ConsumerDestination).join(Consumer, Consumer.id == ConsumerDestination.consumer_id)
    if consumer_name is not None:
        stmt = stmt.where(Consumer.id == get_consumer(session, consumer_name).id)
    rows = [(name, _entry(row)) for name, row in session.execute(stmt).all()]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def policies(session: Session, consumer_ids: Iterable[str]) -> dict[str, DestinationPolicy]:
    """Each consumer's :class:`DestinationPolicy` (no entry: nothing allowed)."""
    ids = sorted(set(consumer_ids))
    found: dict[str, list[AllowedDestination]] = {cid: [] for cid in ids}
    if ids:
        for row in session.scalars(select(ConsumerDestination).where(ConsumerDestination.consumer_id.in_(ids))):
            found[row.consumer_id].append(_entry(row))
    return {cid: DestinationPolicy(tuple(sorted(entries))) for cid, entries in found.items()}


def policy_for(session: Session, consumer_id: str) -> DestinationPolicy:
    return policies(session, [consumer_id])[consumer_id]
