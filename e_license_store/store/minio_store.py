"""MinIO backend (via the ``minio`` SDK): versioned bucket with object lock (WORM 一次写入).

* The bucket is created with object lock, which turns versioning on; a default
  retention rule (mode and years from the URL) covers every new object without an
  extra request. Longer retention goes with the upload itself (``x-amz-object-lock-*``
  headers, with ``Content-MD5`` as S3 requires for them): one request, and no moment when
  a stored version is held only by the shorter default.
* Write-once is a conditional PUT (``If-None-Match: *``): the server refuses a second
  write to a key in the same request, so there is no check-then-write race.
  minio-py 7.2 has no public parameter for that header, hence ``_put_object``.
* Every upload sends ``x-amz-checksum-sha256``, which S3 and MinIO verify server-side,
  and records the hex SHA-256 as user metadata, which :meth:`get` checks on read.

URL: ``minio://[ACCESS:SECRET@]host:port/bucket?secure=false&retention_mode=GOVERNANCE&retention_years=30``;
without credentials in the URL they come from ``HUB_STORE_ACCESS_KEY``/``HUB_STORE_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.objectlockconfig import YEARS, ObjectLockConfig
from minio.retention import Retention as MinioRetention
from urllib3.exceptions import HTTPError as TransportError

from e_license_store.store.base import (
    ChecksumMismatch,
    ObjectExists,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    Retention,
    RetentionMode,
    StoreError,
)

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchVersion", "ResourceNotFound"}
_MODE = {RetentionMode.governance: GOVERNANCE, RetentionMode.compliance: COMPLIANCE}


class MinioStore(ObjectStore):
    kind = "minio"
    #: a PUT is mostly a round trip: eight in flight, within the SDK's pool of ten connections per
    #: host (urllib3 ``maxsize=10``) so none is opened and dropped per request
    write_concurrency = 8

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        default_retention: tuple[RetentionMode, int] | None = (RetentionMode.governance, 30),
        create_bucket: bool = True,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.default_retention = default_retention
        if create_bucket:
            self.ensure_bucket()

    @classmethod
    def from_url(cls, url: str) -> MinioStore:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        access = unquote(parts.username) if parts.username else os.environ.get("HUB_STORE_ACCESS_KEY", "")
        secret = unquote(parts.password) if parts.password else os.environ.get("HUB_STORE_SECRET_KEY", "")
        secure = parts.scheme == "minios" or query.get("secure", "false").lower() in {"1", "true", "yes"}
        host = parts.hostname or "127.0.0.1"
        endpoint = f"{host}:{parts.port}" if parts.port else host
        bucket = parts.path.strip("/") or "licenses"
        mode = query.get("retention_mode", "GOVERNANCE").upper()
        years = int(query.get("retention_years", "30"))
        default = None if mode in {"", "NONE", "OFF"} else (RetentionMode(mode), years)
        client = Minio(
            endpoint, access_key=access, secret_key=secret, secure=secure, region=query.get("region", "us-east-1")
        )
        return cls(client, bucket, default_retention=default)

    def ensure_bucket(self) -> None:
        """Create the bucket with object lock (and so versioning) and its default retention."""
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket, object_lock=True)
            if self.default_retention is not None:
                mode, years = self.default_retention
                self.client.set_object_lock_config(self.bucket, ObjectLockConfig(_MODE[mode], years, YEARS))

    # -- contract ----------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        retention: Retention | None = None,
    ) -> ObjectInfo:
        digest = hashlib.sha256(data)
        headers: dict[str, str | list[str] | tuple[str]] = {
            "If-None-Match": "*",
            "Content-Type": content_type,
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(digest.digest()).decode(),
            "x-amz-meta-sha256": digest.hexdigest(),
        }
        if retention is not None and not self._covered_by_default(retention):
            headers["x-amz-object-lock-mode"] = _MODE[retention.mode]
            headers["x-amz-object-lock-retain-until-date"] = _s3_date(retention.until)
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            result = self.client._put_object(self.bucket, key, data, headers=headers)
        except S3Error as exc:
            if exc.code in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise ObjectExists(key) from None
            raise StoreError(f"put {key}: {exc.code}: {exc.message}") from exc
        except TransportError as exc:  # retries spent on 5xx answers (503 SlowDown) or no answer at all
            raise StoreError(f"put {key}: the S3 server took no write: {exc}") from exc
        return ObjectInfo(key, len(data), digest.hexdigest(), result.version_id, content_type)

    def _covered_by_default(self, retention: Retention) -> bool:
        """True when the bucket's default rule (``years`` × 365 days from the upload, which
        happens after this call) already retains the object at least until ``retention.until``."""
        if self.default_retention is None:
            return False
        mode, years = self.default_retention
        horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * years)
        return mode == retention.mode and retention.until <= horizon

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        try:
            data = response.read()
            expected = response.headers.get("x-amz-meta-sha256")
        finally:
            response.close()
            response.release_conn()
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ChecksumMismatch(key)
        return bytes(data)

    def _stat(self, key: str):  # type: ignore[no-untyped-def]
        try:
            return self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND or exc.code == "NoSuchKey":
                return None
            raise

    def stat(self, key: str) -> ObjectInfo | None:
        st = self._stat(key)
        if st is None:
            return None
        sha = st.metadata.get("x-amz-meta-sha256") or ""
        return ObjectInfo(
            key, int(st.size or 0), str(sha), st.version_id, str(st.content_type or "application/octet-stream")
        )

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        names = [str(o.object_name) for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        return iter(sorted(names))

    def get_retention(self, key: str) -> Retention | None:
        # read from the object's headers: standard S3, and moto's GET ?retention is unreliable
        st = self._stat(key)
        if st is None:
            raise ObjectNotFound(key)
        mode = st.metadata.get("x-amz-object-lock-mode")
        until = st.metadata.get("x-amz-object-lock-retain-until-date")
        if not mode or not until:
            return None
        return Retention(RetentionMode(mode), dt.datetime.fromisoformat(until.replace("Z", "+00:00")))

    def set_retention(self, key: str, retention: Retention) -> None:
        current = self.get_retention(key)
        if (
            current is not None
            and current.active()
            and current.mode == RetentionMode.compliance
            and (retention.until < current.until or retention.mode != RetentionMode.compliance)
        ):
            raise ObjectLocked(f"{key}: COMPLIANCE retention can only be extended")
        try:
            self.client.set_object_retention(self.bucket, key, MinioRetention(_MODE[retention.mode], retention.until))
        except S3Error as exc:
            if exc.code == "AccessDenied":
                raise ObjectLocked(f"{key}: {exc.message}") from exc
            raise

    def set_legal_hold(self, key: str, on: bool) -> None:
        if self._stat(key) is None:
            raise ObjectNotFound(key)
        if on:
            self.client.enable_object_legal_hold(self.bucket, key)
        else:
            self.client.disable_object_legal_hold(self.bucket, key)

    def get_legal_hold(self, key: str) -> bool:
        if self._stat(key) is None:
            raise ObjectNotFound(key)
        return bool(self.client.is_object_legal_hold_enabled(self.bucket, key))

    def delete(self, key: str) -> None:
        st = self._stat(key)
        if st is None:
            raise ObjectNotFound(key)
        try:
            # delete the version itself (a plain delete would only add a delete marker)
            self.client.remove_object(self.bucket, key, version_id=st.version_id)
        except S3Error as exc:
            if exc.code == "AccessDenied":
                raise ObjectLocked(f"{key}: retention or legal hold") from exc
            raise

    def presigned_get(self, key: str, expires: dt.timedelta = dt.timedelta(minutes=5)) -> str:
        if self._stat(key) is None:
            raise ObjectNotFound(key)
        return str(self.client.presigned_get_object(self.bucket, key, expires=expires))

    def close(self) -> None:
        self.client._http.clear()


def _s3_date(when: dt.datetime) -> str:
    """An object-lock date as S3 headers carry it (ISO 8601 in UTC, milliseconds).

    >>> _s3_date(dt.datetime(2096, 11, 16, 20, 50, 4, 123456, tzinfo=dt.UTC))
    '2096-11-16T20:50:04.123Z'
    """
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def bare_put(client: Minio, bucket: str, key: str, data: bytes) -> None:
    """A plain SDK upload with the same checksum headers (the benchmark's peer)."""
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    client.put_object(
        bucket,
        key,
        io.BytesIO(data),
        len(data),
        content_type="application/json",
        metadata={"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": sha},
    )
