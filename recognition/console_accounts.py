"""Named operator accounts of the console and their sessions (运维控制台账号与会话).

- An account is a person with one role (:data:`ROLES`): ``operator`` runs the exchange (feeds,
  quarantine, dead letters — and replays them —, the outbox and cases lit yellow or red),
  ``steward`` looks after data quality (feeds, quarantine and the identity review queue, which it
  decides), ``supervisor`` oversees (all of these, read only). Accounts are created with
  ``hub console users add``; nobody signs up.
- Passwords are kept as scrypt hashes (``hashlib.scrypt``, RFC 7914: memory-hard, in the
  standard library, n=2¹⁴ r=8 p=1, 16-byte salt), compared in constant time. A password has at
  least :data:`MIN_PASSWORD` characters.
- Signing in starts a session: 256 random bits in a cookie, of which the database keeps only the
  SHA-256 (a copy of the table opens no session), with its own CSRF token and an expiry
  (:data:`SESSION_TTL` after sign-in; short: a new sign-in after it). Sessions live in the hub
  database, so every API process sees the same ones; signing out, or disabling the account,
  ends them at once.

>>> h = hash_password("correct horse battery")
>>> h.startswith("scrypt$16384$8$1$"), verify_password("correct horse battery", h), verify_password("wrong", h)
(True, True, False)
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.models import utcnow
from recognition.tables import ConsoleSession, ConsoleUser

ROLES = ("operator", "steward", "supervisor")
#: what each role may see and do in the console
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"feeds", "quarantine", "deliveries", "deliveries:replay", "outbox", "cases"}),
    "steward": frozenset({"feeds", "quarantine", "review", "review:decide"}),
    "supervisor": frozenset({"feeds", "quarantine", "deliveries", "outbox", "cases", "review"}),
}
MIN_PASSWORD = 12
#: the default session length (``HUB_CONSOLE_SESSION_MINUTES``)
SESSION_TTL = dt.timedelta(minutes=30)
NAME = re.compile(r"^[a-z][a-z0-9._-]{1,59}$")
_N, _R, _P = 2**14, 8, 1


class AccountError(ValueError):
    """An account cannot be created or changed as asked (the message says why)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(("scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=2**26)  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@functools.cache
def _dummy() -> str:
    """A hash to check a password against when the name is unknown, so both take the same time."""
    return hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")


def add_user(session: Session, name: str, role: str, password: str) -> ConsoleUser:
    if not NAME.match(name):
        raise AccountError("a name is 2-60 characters: lower-case letters, digits, '.', '_', '-', a letter first")
    if role not in ROLES:
        raise AccountError(f"role is one of {', '.join(ROLES)}")
    check_password_rules(password)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.name == name)) is not None:
        raise AccountError(f"there is already an account {name!r}")
    user = ConsoleUser(name=name, role=role, password_hash=hash_password(password), created_at=utcnow())
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
    if user is None:
        raise AccountError(f"no account {name!r}")
    return user


def set_password(session: Session, name: str, password: str) -> ConsoleUser:
    """A new password; the account's open sessions end."""
    check_password_rules(password)
    user = find_user(session, name)
    user.password_hash = hash_password(password)
    end_sessions_of(session, user.id)
    return user


def disable_user(session: Session, name: str) -> ConsoleUser:
    """The account signs in no more; its open sessions end."""
    user = find_user(session, name)
    user.disabled_at = user.disabled_at or utcnow()
    end_sessions_of(session, user.id)
    return user


def end_sessions_of(session: Session, user_id: int) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def authenticate(session: Session, name: str, password: str) -> ConsoleUser | None:
    """The account if ``name`` and ``password`` match an enabled one (the same work either way)."""
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.name == name)) if NAME.match(name) else None
    ok = verify_password(password, user.password_hash if user is not None else _dummy())
    if user is None or not ok or user.disabled_at is not None:
        return None
    return user


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """A session as a request sees it."""

    name: str
    role: str
    csrf_token: str
    expires_at: dt.datetime

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    @property
    def actor(self) -> str:
        """Who acted, as the audit log names a person of the console."""
        return f"console:{self.name}"


def start_session(
    session: Session, user: ConsoleUser, *, ttl: dt.timedelta = SESSION_TTL, now: dt.datetime | None = None
) -> tuple[str, SignedIn]:
    """A new session of ``user``, ending ``ttl`` from now: the cookie's value (returned once) and the session."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_sha256=token_digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                         created_at=now, expires_at=now + ttl)  # fmt: skip
    session.add(row)
    session.flush()
    return token, SignedIn(user.name, user.role, row.csrf_token, row.expires_at)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def find_session(session: Session, token: str, *, now: dt.datetime | None = None) -> tuple[str, SignedIn | None]:
    """``("ok", session)``, or why there is none: ``unknown``, ``expired``, ``ended`` (signed out or disabled)."""
    now = now or utcnow()
    found = session.execute(
        select(ConsoleSession, ConsoleUser)
        .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_sha256 == token_digest(token))
    ).first()
    if found is None:
        return "unknown", None
    row, user = found
    if row.ended_at is not None or user.disabled_at is not None:
        return "ended", None
    if _aware(row.expires_at) <= now:
        return "expired", None
    return "ok", SignedIn(user.name, user.role, row.csrf_token, _aware(row.expires_at))


def end_session(session: Session, token: str) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_sha256 == token_digest(token), ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def list_users(session: Session) -> list[ConsoleUser]:
    return list(session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))
