"""The public verification link of a licence version (核验链接): what its QR code carries.

``{HUB_VERIFY_BASE_URL}/verify/{licence id}?v={version}&t={token}`` opens the hub's public
verification page, without an API key. Licence ids are deterministic (a re-run mints the same
id), so an id alone must not open anything: the page also requires the token, an HMAC-SHA256
over the id and the version under the installation's verification key, cut to 128 bits and
written in base64url (22 characters). Only the hub can mint it; whoever holds the licence (its
PDF, its QR code, ``hub licenses get``) has it; a guessed id without it gets the same answer as
an unknown id.

The key comes from ``HUB_VERIFY_KEY`` (hex or base64, at least 32 bytes), else from
``$HUB_HOME/secrets/verify.key``, created once (mode 600, see :mod:`hub.secret_keys`). Every
process that renders licence files or serves the page must share it; replacing it invalidates
every printed QR code, so it is never rotated casually.

The default base, ``http://127.0.0.1:8080``, is where ``hub serve`` and ``make up`` serve the
API; a deployment sets the public address its QR codes should open.

>>> key = b"k" * 32
>>> t = token("1101-330322-0123456789AB7", 2, key=key)
>>> len(t), t == token("1101-330322-0123456789AB7", 2, key=key), t == token("1101-330322-0123456789AB7", 3, key=key)
(22, True, False)
>>> check_token("1101-330322-0123456789AB7", 2, t, key=key), check_token("1101-330322-0123456789AB7", 2, "x", key=key)
(True, False)
>>> url("1101-330322-0123456789AB7", 2, key=key, base="https://zw.example.gov.cn/")
'https://zw.example.gov.cn/verify/1101-330322-0123456789AB7?v=2&t=...'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from hub.secret_keys import InstallationKey

ENV_BASE_URL = "HUB_VERIFY_BASE_URL"
#: ``hub serve``'s default port, and the API's under ``make up``
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
PATH_PREFIX = "/verify"
TOKEN_BYTES = 16
TOKEN_LENGTH = 22
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}")
_KEY = InstallationKey("HUB_VERIFY_KEY", "verify.key")


def verify_key() -> bytes:
    """The installation's verification-link key (environment first, then the key file)."""
    return _KEY.get()


def base_url() -> str:
    """The public base the links point at (``HUB_VERIFY_BASE_URL``), without a trailing slash."""
    return (os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")


def token(license_id: str, version: int, *, key: bytes | None = None) -> str:
    """The token of ``license_id`` v``version``: base64url of HMAC-SHA256 over both, 128 bits."""
    message = f"hub-verify\x1f{license_id}\x1f{int(version)}".encode()
    digest = hmac.new(key or verify_key(), message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_token(license_id: str, version: int, presented: str, *, key: bytes | None = None) -> bool:
    """Whether ``presented`` is the token of ``license_id`` v``version`` (compared in constant time)."""
    if not _TOKEN_RE.fullmatch(presented):
        return False
    return hmac.compare_digest(presented, token(license_id, version, key=key))


def path(license_id: str, version: int, *, key: bytes | None = None) -> str:
    """The link without its base: ``/verify/{id}?v={version}&t={token}``."""
    return f"{PATH_PREFIX}/{license_id}?v={int(version)}&t={token(license_id, version, key=key)}"


def url(license_id: str, version: int, *, key: bytes | None = None, base: str | None = None) -> str:
    """The public verification link of ``license_id`` v``version`` (what its QR code carries)."""
    return (base.rstrip("/") if base is not None else base_url()) + path(license_id, version, key=key)
