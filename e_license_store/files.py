"""The binding of a rendered licence file to its licence version (文件绑定).

A binding is a signed statement "file with SHA-256 *h* is the surface of licence *id*
version *v*", stored beside the file; whoever holds the PDF can check it without
trusting where the file came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from e_license_store.canonical_json import canonical_bytes, parse_canonical
from e_license_store.signing import KeyRing, Signature


@dataclass(frozen=True)
class FileBinding:
    license_id: str
    version: int
    file_key: str
    file_sha256: str
    rendered_at: dt.datetime
    signature: Signature

    def statement(self) -> dict[str, object]:
        return {
            "license_id": self.license_id,
            "version": self.version,
            "file_key": self.file_key,
            "file_sha256": self.file_sha256,
            "rendered_at": self.rendered_at.isoformat(),
        }

    def to_bytes(self) -> bytes:
        return canonical_bytes({"binding": self.statement(), "signature": self.signature.to_json()})

    def verify(self, keyring: KeyRing) -> bool:
        return keyring.verify(self.signature, canonical_bytes(self.statement()))


def bind_file(
    keyring: KeyRing, license_id: str, version: int, file_key: str, file_sha256: str, rendered_at: dt.datetime
) -> FileBinding:
    statement = {
        "license_id": license_id,
        "version": version,
        "file_key": file_key,
        "file_sha256": file_sha256,
        "rendered_at": rendered_at.isoformat(),
    }
    return FileBinding(
        license_id, version, file_key, file_sha256, rendered_at, keyring.sign(canonical_bytes(statement))
    )


def parse_binding(data: bytes) -> FileBinding:
    raw = parse_canonical(data)
    if not isinstance(raw, dict) or set(raw) != {"binding", "signature"}:
        raise ValueError("not a file binding")
    b = raw["binding"]
    return FileBinding(
        str(b["license_id"]),
        int(b["version"]),
        str(b["file_key"]),
        str(b["file_sha256"]),
        dt.datetime.fromisoformat(b["rendered_at"]),
        Signature.from_json(raw["signature"]),
    )
