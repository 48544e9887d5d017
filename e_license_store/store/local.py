"""Local-filesystem backend (本地存储): the embedded default, same contract as MinIO.

Layout under the root: ``objects/<key>`` holds the bytes (created read-only), and
``objects/<key>.~meta`` beside it the SHA-256, size, content type, retention and legal
hold (keys may not end in ``.~meta``).
Write-once is enforced by ``os.link`` of a finished temporary file, which fails if the
key exists — no check-then-write race. Presigned URLs are HMAC-SHA256 tokens over
(key, expiry) with the store's secret (``HUB_STORE_SECRET`` or ``<root>/.secret``);
:meth:`LocalStore.open_presigned` enforces expiry and signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from e_license_store.store.base import (
    ChecksumMismatch,
    ObjectExists,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    PresignedURLRefused,
    Retention,
    RetentionMode,
)

PRESIGN_SCHEME = "hubstore"


META_SUFFIX = ".~meta"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or key.endswith(META_SUFFIX) or any(p in {"", ".", ".."} for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalStore(ObjectStore):
    kind = "local"

    def __init__(self, root: Path, secret: bytes | None = None) -> None:
        self.root = root
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        for d in (self._objects, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._secret = secret or self._load_secret()

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        path = unquote(urlsplit(url).path)
        env = os.environ.get("HUB_STORE_SECRET")
        return cls(Path(path), env.encode() if env else None)

    def _load_secret(self) -> bytes:
        path = self.root / ".secret"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            value = secrets.token_hex(32).encode()
            fh.write(value)
        return value

    # -- paths -------------------------------------------------------------------------------
    def _obj(self, key: str) -> Path:
        return self._objects / _check_key(key)

    def _metafile(self, key: str) -> Path:
        return self._objects / (_check_key(key) + META_SUFFIX)

    def _read_meta(self, key: str) -> dict[str, object] | None:
        try:
            return dict(json.loads(self._metafile(key).read_text()))
        except FileNotFoundError:
            return None

    def _write_meta(self, key: str, meta: dict[str, object]) -> None:
        path = self._metafile(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.meta"
        tmp.write_text(json.dumps(meta, sort_keys=True))
        tmp.replace(path)

    # -- contract ----------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        retention: Retention | None = None,
    ) -> ObjectInfo:
        target = self._obj(key)
        digest = hashlib.sha256(data).hexdigest()
        tmp_name = str(self._tmp / uuid.uuid4().hex)
        # created read-only (0444): the object is never opened for writing again
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp_name, target)  # atomic, refuses an existing key
            except FileNotFoundError:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(tmp_name, target)
        except FileExistsError:
            raise ObjectExists(key) from None
        finally:
            os.unlink(tmp_name)
        # the key is ours now; until its metadata lands, delete() refuses (no metadata = locked)
        meta: dict[str, object] = {
            "sha256": digest,
            "size": len(data),
            "content_type": content_type,
            "version_id": uuid.uuid4().hex,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "legal_hold": False,
        }
        if retention is not None:
            meta["retention"] = {"mode": retention.mode.value, "until": retention.until.isoformat()}
        self._metafile(key).write_text(json.dumps(meta, sort_keys=True))
        return ObjectInfo(key, len(data), digest, str(meta["version_id"]), content_type)

    def get(self, key: str) -> bytes:
        try:
            data = self._obj(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        meta = self._read_meta(key)
        if meta is not None and hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ChecksumMismatch(key)
        return data

    def stat(self, key: str) -> ObjectInfo | None:
        if not self._obj(key).exists():
            return None
        meta = self._read_meta(key)
        if meta is None:
            data = self._obj(key).read_bytes()
            return ObjectInfo(key, len(data), hashlib.sha256(data).hexdigest())
        return ObjectInfo(
            key, int(str(meta["size"])), str(meta["sha256"]), str(meta["version_id"]), str(meta["content_type"])
        )

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        base = self._objects
        keys: list[str] = []
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not start.exists():
            return iter(())
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.endswith(META_SUFFIX):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), base)
                if rel.startswith(prefix):
                    keys.append(rel)
        return iter(sorted(keys))

    def get_retention(self, key: str) -> Retention | None:
        meta = self._require_meta(key)
        raw = meta.get("retention")
        if not isinstance(raw, dict):
            return None
        return Retention(RetentionMode(raw["mode"]), dt.datetime.fromisoformat(raw["until"]))

    def set_retention(self, key: str, retention: Retention) -> None:
        meta = self._require_meta(key)
        current = self.get_retention(key)
        if (
            current is not None
            and current.active()
            and current.mode == RetentionMode.compliance
            and (retention.until < current.until or retention.mode != RetentionMode.compliance)
        ):
            raise ObjectLocked(f"{key}: COMPLIANCE retention can only be extended")
        meta["retention"] = {"mode": retention.mode.value, "until": retention.until.isoformat()}
        self._write_meta(key, meta)

    def set_legal_hold(self, key: str, on: bool) -> None:
        meta = self._require_meta(key)
        meta["legal_hold"] = bool(on)
        self._write_meta(key, meta)

    def get_legal_hold(self, key: str) -> bool:
        return bool(self._require_meta(key).get("legal_hold"))

    def delete(self, key: str) -> None:
        if self._obj(key).exists() and self._read_meta(key) is None:
            raise ObjectLocked(f"{key}: no metadata (interrupted write): retention unknown")
        self._require_meta(key)
        if self.get_legal_hold(key):
            raise ObjectLocked(f"{key}: under legal hold")
        retention = self.get_retention(key)
        if retention is not None and retention.active():
            raise ObjectLocked(f"{key}: under {retention.mode.value} retention until {retention.until}")
        self._obj(key).unlink()
        self._metafile(key).unlink()

    def _require_meta(self, key: str) -> dict[str, object]:
        meta = self._read_meta(key)
        if meta is None or not self._obj(key).exists():
            raise ObjectNotFound(key)
        return meta

    # -- presigned URLs ------------------------------------------------------------------------
    def _token(self, key: str, expires_at: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires_at}".encode(), hashlib.sha256).hexdigest()

    def presigned_get(self, key: str, expires: dt.timedelta = dt.timedelta(minutes=5)) -> str:
        if not self.exists(key):
            raise ObjectNotFound(key)
        expires_at = int((dt.datetime.now(dt.UTC) + expires).timestamp())
        return f"{PRESIGN_SCHEME}://local/{quote(key)}?expires={expires_at}&signature={self._token(key, expires_at)}"

    def open_presigned(self, url: str, *, now: dt.datetime | None = None) -> bytes:
        """The object a presigned URL names, if its signature is ours and it has not expired."""
        parts = urlsplit(url)
        if parts.scheme != PRESIGN_SCHEME:
            raise PresignedURLRefused("not a local presigned URL")
        key = unquote(parts.path.lstrip("/"))
        query = parse_qs(parts.query)
        try:
            expires_at = int(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, ValueError, IndexError):
            raise PresignedURLRefused("malformed presigned URL") from None
        if not hmac.compare_digest(signature, self._token(key, expires_at)):
            raise PresignedURLRefused("signature does not match this store's credentials")
        if (now or dt.datetime.now(dt.UTC)).timestamp() >= expires_at:
            raise PresignedURLRefused("presigned URL expired")
        return self.get(key)
