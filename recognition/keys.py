"""API keys (接口密钥): ``hub_<key id>_<secret>``; only the id and SHA-256 of the secret are stored.

The secret carries 256 random bits, so a plain SHA-256 is enough at rest (no password
stretching needed); comparison is constant-time.

>>> key = new_key()
>>> parsed = parse_key(key.token)
>>> parsed == (key.key_id, key.secret)
True
>>> matches(key.secret, key.secret_sha256)
True
>>> parse_key("nonsense") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "hub"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str
    secret_sha256: str

    @property
    def token(self) -> str:
        """What the consumer sends as ``Authorization: Bearer <token>`` (shown once)."""
        return f"{PREFIX}_{self.key_id}_{self.secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key() -> NewKey:
    key_id = "k" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32).replace("_", "-")
    return NewKey(key_id, secret, hash_secret(secret))


def parse_key(token: str) -> tuple[str, str] | None:
    """Split a presented token into (key id, secret), or ``None`` if it is not one of ours."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def matches(secret: str, secret_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_sha256)
