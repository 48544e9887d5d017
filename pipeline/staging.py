"""The staging area in the object store (暂存区): Parquet batches between pipeline steps.

XCom carries only references (``file:///…`` or ``minio://host:port/bucket/key``); the data
stays here. ``HUB_STAGING_URL`` picks the backend: ``file:///path`` (embedded default,
``$HUB_HOME/staging``) or ``minio://host:port/bucket`` (compose; credentials
``HUB_STORE_ACCESS_KEY`` / ``HUB_STORE_SECRET_KEY``, as the licence store). Both implement the
connector SDK's ``Stager`` protocol, so ``connectors.sync.run_sync`` stages straight into the object store.

Staged objects hold personal data; access is restricted (files 0600 in a 0700 folder, a
private bucket) and the housekeeping DAG purges them after ``HUB_RETENTION_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hub.settings import get_settings


class ObjectStager(Protocol):
    """Stager (connector SDK protocol) plus what the pipeline needs: read, list by age, delete."""

    def stage(self, name: str, table: pa.Table) -> str: ...

    def list(self, source: str, dataset: str) -> list[str]: ...

    def read(self, ref: str) -> pa.Table: ...

    def objects(self, prefix: str = "") -> Iterator[tuple[str, dt.datetime]]: ...

    def delete(self, ref: str) -> None: ...


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class FileStager:
    """Parquet files under a private directory, written atomically (rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, ref: str) -> Path:
        path = Path(urlparse(ref).path) if ref.startswith("file://") else Path(ref)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"{ref} is outside the staging area {self.root}")
        return path

    def stage(self, name: str, table: pa.Table) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_parquet_bytes(table))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a reader sees the whole batch or none of it
        return f"file://{path}"

    def list(self, source: str, dataset: str) -> list[str]:
        folder = self.root / source / dataset
        return sorted(f"file://{p}" for p in folder.glob("*.parquet")) if folder.exists() else []

    def read(self, ref: str) -> pa.Table:
        return pq.read_table(self._path(ref))

    def objects(self, prefix: str = "") -> Iterator[tuple[str, dt.datetime]]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for p in base.rglob("*.parquet"):
            yield f"file://{p}", dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)

    def delete(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)


@dataclass
class MinioStager:
    """Parquet objects in a MinIO (S3) bucket through the ``minio`` SDK."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    secure: bool = False
    prefix: str = ""

    def __post_init__(self) -> None:
        from minio import Minio  # noqa: PLC0415 - minio SDK, ~0.4 s; the S3 backend only

        self.client = Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=self.secure)
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def _key(self, ref: str) -> str:
        u = urlparse(ref)
        bucket, _, key = u.path.lstrip("/").partition("/")
        if bucket != self.bucket:
            raise ValueError(f"{ref} is not in bucket {self.bucket}")
        return key

    def _ref(self, key: str) -> str:
        scheme = "minios" if self.secure else "minio"
        return f"{scheme}://{self.endpoint}/{self.bucket}/{key}"

    def stage(self, name: str, table: pa.Table) -> str:
        data = _parquet_bytes(table)
        key = f"{self.prefix}{name}"
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type="application/vnd.apache.parquet"
        )
        return self._ref(key)

    def list(self, source: str, dataset: str) -> list[str]:
        prefix = f"{self.prefix}{source}/{dataset}/"
        return sorted(self._ref(o.object_name) for o in self.client.list_objects(self.bucket, prefix, recursive=True))

    def read(self, ref: str) -> pa.Table:
        resp = self.client.get_object(self.bucket, self._key(ref))
        try:
            return pq.read_table(io.BytesIO(resp.read()))
        finally:
            resp.close()
            resp.release_conn()

    def objects(self, prefix: str = "") -> Iterator[tuple[str, dt.datetime]]:
        for o in self.client.list_objects(self.bucket, f"{self.prefix}{prefix}", recursive=True):
            modified = o.last_modified or dt.datetime.now(dt.UTC)
            yield self._ref(o.object_name), modified

    def delete(self, ref: str) -> None:
        self.client.remove_object(self.bucket, self._key(ref))


def staging_url() -> str:
    return os.environ.get("HUB_STAGING_URL") or f"file://{get_settings().home / 'staging'}"


def open_stager(url: str | None = None) -> ObjectStager:
    """The stager for ``url`` (default ``HUB_STAGING_URL``, else ``$HUB_HOME/staging``)."""
    url = url or staging_url()
    u = urlparse(url)
    if u.scheme == "file":
        return FileStager(Path(u.path))
    if u.scheme in {"minio", "minios"}:
        bucket, _, prefix = u.path.lstrip("/").partition("/")
        return MinioStager(
            endpoint=u.netloc,
            bucket=bucket,
            access_key=os.environ.get("HUB_STORE_ACCESS_KEY", ""),
            secret_key=os.environ.get("HUB_STORE_SECRET_KEY", ""),
            secure=u.scheme == "minios",
            prefix=f"{prefix.strip('/')}/" if prefix.strip("/") else "",
        )
    raise ValueError(f"unsupported staging URL {url!r} (file:// or minio://)")


def stage_frame(stager: ObjectStager, name: str, df: pd.DataFrame) -> str:
    """Stage a pandas frame (mapped, validated or resolved records) as Parquet."""
    table = pa.Table.from_pandas(_jsonable_objects(df), preserve_index=False)
    return stager.stage(name, table)


def read_frame(stager: ObjectStager, ref: str) -> pd.DataFrame:
    return stager.read(ref).to_pandas()


def _jsonable_objects(df: pd.DataFrame) -> pd.DataFrame:
    """Arrow cannot infer mixed object columns; nested lists of dicts are kept, other mixes become strings."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            sample = out[col].dropna()
            kinds = {type(v) for v in sample.head(1000)}
            if len(kinds) > 1 and not kinds <= {list, tuple} and not kinds <= {int, float}:
                out[col] = out[col].map(lambda v: None if v is None or v is pd.NA else str(v))
    return out


def purge_older_than(
    stager: ObjectStager,
    cutoff: dt.datetime,
    prefix: str = "",
    *,
    keep: Collection[str] = (),
    kept: list[str] | None = None,
) -> int:
    """Delete staged objects last written before ``cutoff``; returns how many went.

    Objects in ``keep`` (staged batches not yet carried through) stay, named in ``kept``.
    """
    doomed: list[str] = []
    for ref, modified in stager.objects(prefix):
        if modified >= cutoff:
            continue
        if ref in keep:
            if kept is not None:
                kept.append(ref)
            continue
        doomed.append(ref)
    for ref in doomed:
        stager.delete(ref)
    return len(doomed)
