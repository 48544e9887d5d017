"""Opaque references for codes that must not travel in event identifiers (假名化引用).

An event's ``subject``, its idempotency key and every id derived from them (the delivery's
key, the ``webhook-id`` header, audit entries) leave the hub and are kept by receivers that
may not see personal data. A resident id there would leak; a plain hash of one would too
(18 digits with a known region, birth date and check digit are quickly enumerated). So they
carry a keyed hash instead: HMAC-SHA256 under the hub's event key, deterministic (re-running
a job derives the same key, so the outbox still deduplicates) and not reversible without the key.

The key comes from ``HUB_EVENT_KEY`` (base64 or hex, at least 32 bytes), else from
``$HUB_HOME/secrets/event.key``, created once on first use (readable by its owner only). Every
process of one installation must use the same key (the compose deployment shares ``HUB_HOME``);
changing it changes the references of future events, not of stored ones.

>>> k = b"k" * 32
>>> ref = opaque_ref("330322198001011231", key=k)
>>> ref.startswith("ref_"), len(ref)
(True, 36)
>>> ref == opaque_ref("330322198001011231", key=k), ref == opaque_ref("330322198001011232", key=k)
(True, False)
>>> "330322" in ref
False
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from hub.secret_keys import InstallationKey, SecretKeyError

ENV_VAR = "HUB_EVENT_KEY"
REF_PREFIX = "ref_"


class EventKeyError(SecretKeyError):
    """``HUB_EVENT_KEY`` is set but unusable."""


_EVENT_KEY = InstallationKey(ENV_VAR, "event.key", error=EventKeyError)


def key_path() -> Path:
    return _EVENT_KEY.path()


def event_key() -> bytes:
    """The installation's event key (environment first, then the key file, see :mod:`hub.secret_keys`)."""
    return _EVENT_KEY.get()


def keyed_digest(*parts: str, key: bytes | None = None, length: int = 32) -> str:
    """Hex HMAC-SHA256 of ``parts`` (separated unambiguously), cut to ``length`` characters."""
    message = "\x1f".join(parts).encode("utf-8")
    return hmac.new(key or event_key(), message, hashlib.sha256).hexdigest()[:length]


def opaque_ref(code: str, *, key: bytes | None = None) -> str:
    """The opaque reference standing for ``code`` (a resident id, a USCC) in event identifiers."""
    return REF_PREFIX + keyed_digest("ref", code, key=key)


def is_opaque_ref(value: str) -> bool:
    """
    >>> is_opaque_ref("ref_" + "0" * 32), is_opaque_ref("330322198001011231")
    (True, False)
    """
    body = value[len(REF_PREFIX) :]
    return value.startswith(REF_PREFIX) and len(body) == 32 and all(c in "0123456789abcdef" for c in body)
