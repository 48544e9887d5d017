"""The object-store contract every backend meets (the contract test suite checks it).

* write-once: ``put`` of an existing key raises :class:`ObjectExists`, never replaces;
* every object carries its SHA-256, checked by the backend on upload and on read;
* retention (GOVERNANCE or COMPLIANCE, until a date) and legal hold block deletion;
  COMPLIANCE retention can only be extended;
* ``presigned_get`` gives a short-lived read URL.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class StoreError(RuntimeError):
    """Base of every store error."""


class ObjectExists(StoreError):
    """The key already holds an object (write-once)."""


class ObjectNotFound(StoreError, KeyError):
    """No object under that key."""


class ObjectLocked(StoreError):
    """Retention or legal hold forbids the operation."""


class ChecksumMismatch(StoreError):
    """Stored bytes do not match their recorded SHA-256."""


class PresignedURLRefused(StoreError):
    """A presigned URL is expired, forged or signed with other credentials."""


class RetentionMode(StrEnum):
    governance = "GOVERNANCE"
    compliance = "COMPLIANCE"


@dataclass(frozen=True)
class Retention:
    mode: RetentionMode
    until: dt.datetime

    def active(self, now: dt.datetime | None = None) -> bool:
        return self.until > (now or dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str
    version_id: str | None = None
    content_type: str = "application/octet-stream"


class ObjectStore(ABC):
    """A write-once, versioned, retention-aware object store."""

    #: short name for messages and benchmarks
    kind: str = "abstract"
    #: writes a batch keeps in flight at once (:meth:`LicenseService.issue_batch`): sealing and a
    #: local write are CPU, so about the cores; a network store's write is mostly waiting
    write_concurrency: int = 4

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        retention: Retention | None = None,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` once; :class:`ObjectExists` if the key is taken."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes (checked against its SHA-256); :class:`ObjectNotFound` if absent."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, SHA-256 and version, or None."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in lexical order."""

    @abstractmethod
    def set_retention(self, key: str, retention: Retention) -> None:
        """Apply or extend retention; shortening COMPLIANCE raises :class:`ObjectLocked`."""

    @abstractmethod
    def get_retention(self, key: str) -> Retention | None: ...

    @abstractmethod
    def set_legal_hold(self, key: str, on: bool) -> None: ...

    @abstractmethod
    def get_legal_hold(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete a version only where retention and legal hold allow; :class:`ObjectLocked` otherwise.

        The hub itself never deletes licence versions; this exists for housekeeping of
        objects whose retention has ended and to prove the lock holds.
        """

    @abstractmethod
    def presigned_get(self, key: str, expires: dt.timedelta = dt.timedelta(minutes=5)) -> str:
        """A URL that reads the object until ``expires`` from now."""

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (no-op by default)."""
