"""The department's exchange share as the package connector reads it: OS errors as typed connector
errors, and the package file handed to the parser while hashing exactly the bytes it reads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorAuthError, ConnectorError, ConnectorUnavailable
from connectors.xml_refusals import PackageRejected, PrologGuard


class HashingReader:
    """The package file for the parser, hashing exactly the bytes the parser reads (one pass).

    Hashing in the parser's thread costs ~0.3 s per 500 MB (SHA-NI), under 1 % of the read; a
    hashing thread beside the parser could save no more than that (docs/decisions/0007).
    An I/O error on the share becomes :class:`ConnectorUnavailable`; reading past
    ``max_bytes`` (a package still growing) :class:`PackageRejected`. With a ``prolog``
    guard, every chunk goes to it before the parser gets it (a DOCTYPE is refused there).
    """

    def __init__(self, path: Path, *, max_bytes: int, where: str, prolog: PrologGuard | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.where = where
        self.prolog = prolog
        self.sha = hashlib.sha256()
        self.bytes = 0
        # a 1 MB buffer: lxml asks for 32 KB at a time, the share sees few large reads
        self._fh = open_on_share(path, where, buffering=1 << 20)

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._fh.read(n)
        except OSError as exc:
            raise share_error(exc, self.path, self.where, "reading") from exc
        self.bytes += len(data)
        if self.bytes > self.max_bytes:
            raise PackageRejected("package_too_large", f"more than max_package_bytes {self.max_bytes} bytes read")
        self.sha.update(data)
        if self.prolog is not None and not self.prolog.done:
            self.prolog.feed(data)
        return data

    def finish(self) -> str:
        """Hash the rest (a parser that stopped early must still report the file's hash)."""
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()

    def close(self) -> None:
        self._fh.close()


def share_error(exc: OSError, path: Path, where: str, doing: str) -> ConnectorError:
    """An OS error on the department's share as a typed connector error."""
    if isinstance(exc, PermissionError):
        return ConnectorAuthError(
            f"no permission {doing} {path.name}: {exc.strerror}",
            where=where,
            action="grant the hub's service account read/write on the exchange share",
        )
    return ConnectorUnavailable(
        f"the exchange share failed while {doing} {path.name}: {exc.strerror or exc}",
        where=where,
        action="check the department's exchange share (mount, network); the run retries and resumes at this package",
    )


def on_share(path: Path, where: str, doing: str, op: Any) -> Any:
    try:
        return op()
    except OSError as exc:
        raise share_error(exc, path, where, doing) from exc


def open_on_share(path: Path, where: str, buffering: int = -1) -> Any:
    return on_share(path, where, "opening", lambda: open(path, "rb", buffering=buffering))


def file_sha(path: Path, where: str) -> str:
    sha = hashlib.sha256()
    with open_on_share(path, where) as fh:
        while chunk := on_share(path, where, "reading", lambda: fh.read(1 << 20)):
            sha.update(chunk)
    return sha.hexdigest()
