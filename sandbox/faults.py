"""Fault injection for the sandboxes (故障注入), switchable per test.

Protocol faults of the tax SOAP service live in a small JSON file the service reads on
every request, so the same switch works whether the service runs in a thread of the test
process or as a detached process started by ``hub sandbox up``. Database and package
faults act directly on the sandbox (kill the reader's connection, drop a bad package).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: a dataclass of fault switches whose fields all have defaults (no fault)
F = TypeVar("F", bound="DataclassInstance")


@dataclass(frozen=True)
class TaxFaults:
    """What the tax service does wrong right now.

    - ``soap_fault``: answer every operation with a SOAP ``Server.Unavailable`` fault.
    - ``slow_seconds``: delay every answer by this long.
    - ``http_503``: answer the next N requests with HTTP 503 (``-1``: until switched off).
    """

    soap_fault: bool = False
    slow_seconds: float = 0.0
    http_503: int = 0


class SwitchFile(Generic[F]):
    """A dataclass of fault switches kept as JSON in a small file, read and changed under a file
    lock: a test and the service it talks to (a thread or a detached process) share it. A missing
    or unreadable file means no fault; unknown keys are ignored."""

    kind: type[F]

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> F:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return self.kind()
        return self.kind(**{k: v for k, v in data.items() if k in {f.name for f in fields(self.kind)}})

    def _write(self, faults: F) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(faults)))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        with self._locked():
            self._write(self.kind())


class FaultFile(SwitchFile[TaxFaults]):
    """The fault switches shared between a test and the tax service it talks to."""

    kind = TaxFaults

    def read(self) -> TaxFaults:
        with self._locked():
            return self._read()

    def set(self, **changes: Any) -> TaxFaults:
        with self._locked():
            faults = replace(self._read(), **changes)
            self._write(faults)
            return faults

    def take_503(self) -> bool:
        """Whether this request must be answered with 503 (consumes one of a counted batch)."""
        with self._locked():
            faults = self._read()
            if faults.http_503 == 0:
                return False
            if faults.http_503 > 0:
                self._write(replace(faults, http_503=faults.http_503 - 1))
            return True


HOSTILE_XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ExchangePackage [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ExchangePackage xmlns="urn:hub:sandbox:land:1" packageId="LAND-HOSTILE-XXE"
  createdAt="2025-06-30T18:00:00+08:00" sender="330322">
  <ApprovalResult approvalNo="HOSTILE-1" version="1"><ApprovalType>land_use_pre_review</ApprovalType>
    <ProjectName>&xxe;</ProjectName></ApprovalResult>
</ExchangePackage>
"""

HOSTILE_BILLION_LAUGHS = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<ExchangePackage xmlns="urn:hub:sandbox:land:1" packageId="LAND-HOSTILE-LOL"
  createdAt="2025-06-30T18:00:00+08:00" sender="330322">
  <ApprovalResult approvalNo="HOSTILE-2" version="1"><ApprovalType>land_use_pre_review</ApprovalType>
    <ProjectName>&lol9;</ProjectName></ApprovalResult>
</ExchangePackage>
"""
