"""Named locks across processes on the hub database (PostgreSQL's advisory locks).

Scaled mode runs several workers against one PostgreSQL database; some steps read the state,
decide, and write what they decided (an identity is new, an event is not yet fanned out). Two
such steps deciding at once would both decide the same, so they take a named lock first:
:func:`hold_for_transaction` takes ``pg_advisory_xact_lock`` — released by the transaction's
commit or rollback, also when the process dies and its connection closes. SQLite needs none:
it admits one writer at a time, and the embedded default runs one worker.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (the same in every process and release).

    >>> lock_key("identity.resolve") == lock_key("identity.resolve")
    True
    >>> -(2**63) <= lock_key("recognition.fanout") < 2**63
    True
    """
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def hold_for_transaction(session: Session | Connection, name: str) -> bool:
    """Wait for lock ``name`` and hold it until the session's transaction ends; ``False``
    (and nothing taken) on a database without advisory locks."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name != "postgresql":
        return False
    session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=lock_key(name)))
    return True
