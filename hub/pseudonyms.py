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

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from hub.settings import get_settings

ENV_VAR = "HUB_EVENT_KEY"
KEY_BYTES = 32
REF_PREFIX = "ref_"
_lock = threading.Lock()
_cache: dict[tuple[str, str], bytes] = {}


class EventKeyError(RuntimeError):
    """``HUB_EVENT_KEY`` is set but unusable."""


def _decode(text: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) >= KEY_BYTES:
            return raw
    raise EventKeyError(f"{ENV_VAR} must be at least {KEY_BYTES} bytes, hex or base64")


def key_path() -> Path:
    return get_settings().home / "secrets" / "event.key"


def _load_or_create(path: Path) -> bytes:
    if path.exists():
        return _decode(path.read_text(encoding="ascii"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES).hex())
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # atomic and refuses to overwrite: of two first users, one key wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _decode(path.read_text(encoding="ascii"))


def event_key() -> bytes:
    """The installation's event key (environment first, then the key file)."""
    env = os.environ.get("HUB_EVENT_KEY", "")
    path = key_path()
    cache_key = (env, str(path))
    with _lock:
        key = _cache.get(cache_key)
        if key is None:
            key = _decode(env) if env else _load_or_create(path)
            _cache[cache_key] = key
        return key


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
