"""The licence object store (电子证照库): one contract, a local-filesystem and a MinIO backend.

``open_store(url)`` picks the backend from ``HUB_STORE_URL``:
``file:///path`` or ``minio://host:port/bucket`` (credentials from the environment).
"""

from __future__ import annotations

from e_license_store.store.base import (
    ObjectExists,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    PresignedURLRefused,
    Retention,
    RetentionMode,
    StoreError,
)
from e_license_store.store.local import LocalStore


def open_store(url: str | None = None) -> ObjectStore:
    """The store at ``url`` (default: ``HUB_STORE_URL``, else ``$HUB_HOME/store``)."""
    from hub.settings import get_settings  # noqa: PLC0415 - pydantic-settings, ~0.4 s; only when a store opens

    url = url or get_settings().resolved_store_url()
    if url.startswith("file://"):
        return LocalStore.from_url(url)
    if url.startswith(("minio://", "minios://")):
        from e_license_store.store.minio_store import MinioStore  # noqa: PLC0415 - minio SDK, ~0.4 s, MinIO only

        return MinioStore.from_url(url)
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]!r}")


__all__ = [
    "ObjectExists",
    "ObjectInfo",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "PresignedURLRefused",
    "Retention",
    "RetentionMode",
    "StoreError",
    "open_store",
]
