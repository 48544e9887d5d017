"""Verifying a licence someone presents (证照核验): seal, hash, status and revocation.

Accepts the stored envelope (JSON) or the rendered PDF. With a database session the
result also says whether the repository knows this exact version and what the licence's
*current* status is, so a revoked or superseded licence is reported as such even when
the presented copy says "valid".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from e_license_store.canonical_json import sha256_hex
from e_license_store.files import FileBinding, parse_binding
from e_license_store.index import get_license
from e_license_store.model import Envelope, binding_key, object_key, parse_envelope
from e_license_store.signing import KeyRing
from e_license_store.store.base import ObjectStore, StoreError
from e_license_store.tables import LicenseVersionEntry

#: the largest licence file verified (signed JSON or PDF): the API's upload forms and the CLI alike
MAX_FILE_BYTES = 10 * 1024 * 1024

PDF_SUBJECT_RE = re.compile(rb"hub-license:([0-9A-Z\-]{10,60}):v([0-9]{1,9})")
COPY_SUBJECT_RE = re.compile(rb"hub-license-copy:([0-9A-Z\-]{10,60}):v([0-9]{1,9})")


@dataclass
class VerificationResult:
    """What verification found. ``ok`` only when authentic, known, current and valid."""

    license_id: str | None = None
    version: int | None = None
    well_formed: bool = False
    signature_ok: bool = False
    hash_ok: bool = False
    key_id: str | None = None
    algorithm: str | None = None
    document_status: str | None = None
    status: str | None = None
    revoked: bool = False
    current_version: int | None = None
    file_sha256: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def is_current(self) -> bool:
        return self.current_version is None or self.current_version == self.version

    @property
    def ok(self) -> bool:
        return (
            self.well_formed
            and self.signature_ok
            and self.hash_ok
            and self.status == "valid"
            and not self.revoked
            and self.is_current
            and not self.problems
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "license_id": self.license_id,
            "version": self.version,
            "well_formed": self.well_formed,
            "signature_ok": self.signature_ok,
            "hash_ok": self.hash_ok,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "document_status": self.document_status,
            "status": self.status,
            "revoked": self.revoked,
            "current_version": self.current_version,
            "file_sha256": self.file_sha256,
            "problems": list(self.problems),
        }


def verify_license(
    envelope: Envelope | bytes,
    keyring: KeyRing,
    *,
    session: Session | None = None,
    result: VerificationResult | None = None,
) -> VerificationResult:
    """Verify a licence envelope: signature over its canonical document, hash, repository status."""
    res = result or VerificationResult()
    if isinstance(envelope, bytes):
        try:
            envelope = parse_envelope(envelope)
        except ValueError as exc:
            res.problems.append(f"malformed: {exc}")
            return res
    res.well_formed = True
    doc = envelope.document
    lic = doc.license
    res.license_id, res.version = lic.license_id, lic.version
    res.key_id, res.algorithm = envelope.signature.key_id, envelope.signature.algorithm
    res.document_status = res.status = str(lic.status)
    data = doc.canonical()
    res.signature_ok = keyring.verify(envelope.signature, data)
    if not res.signature_ok:
        known = envelope.signature.key_id in keyring.key_ids
        res.problems.append("signature does not verify" if known else f"unknown key {envelope.signature.key_id}")
    res.hash_ok = sha256_hex(data) == envelope.document_sha256
    if not res.hash_ok:
        res.problems.append("document hash differs from the sealed hash")
    if session is not None:
        recorded = session.get(LicenseVersionEntry, (lic.license_id, lic.version))
        if recorded is None:
            res.hash_ok = False
            res.problems.append("this version is unknown to the repository")
        elif recorded.content_sha256 != envelope.document_sha256:
            res.hash_ok = False
            res.problems.append("hash differs from the repository's record of this version")
        current = get_license(session, lic.license_id)
        if current is not None:
            res.status = current.status
            res.current_version = current.version
            if current.version != lic.version and current.status != "revoked":
                res.problems.append(f"superseded by version {current.version}")
    res.revoked = res.status == "revoked"
    if res.revoked:
        res.problems.append("licence is revoked")
    elif res.status not in (None, "valid"):
        res.problems.append(f"licence is {res.status}")
    return res


def verify_file(
    data: bytes,
    keyring: KeyRing,
    *,
    session: Session | None = None,
    store: ObjectStore | None = None,
) -> VerificationResult:
    """Verify presented bytes: a licence envelope (JSON) or its rendered PDF.

    A PDF is checked through its signed binding in the store (file hash → licence version),
    then the bound licence version is verified like an envelope.
    """
    if not data.startswith(b"%PDF"):
        return verify_license(data, keyring, session=session)
    res = VerificationResult(file_sha256=hashlib.sha256(data).hexdigest())
    match = PDF_SUBJECT_RE.search(data)
    if match is None:
        copy = COPY_SUBJECT_RE.search(data)
        if copy is not None:
            res.license_id, res.version = copy.group(1).decode(), int(copy.group(2))
            res.problems.append(
                f"a masked copy (副本) of {res.license_id} v{res.version}: a copy carries no seal; verify the original"
            )
            return res
        res.problems.append("PDF does not name a licence")
        return res
    license_id, version = match.group(1).decode(), int(match.group(2))
    res.license_id, res.version = license_id, version
    if store is None:
        res.problems.append("a PDF can only be verified against the repository (no store given)")
        return res
    try:
        binding = parse_binding(store.get(binding_key(license_id, version)))
        envelope = store.get(object_key(license_id, version))
    except (StoreError, ValueError) as exc:
        res.problems.append(f"no file binding for {license_id} v{version}: {exc}")
        return res
    binding_ok = binding.verify(keyring) and binding.license_id == license_id and binding.version == version
    file_ok = binding.file_sha256 == res.file_sha256
    if not binding_ok:
        res.problems.append("file binding signature does not verify")
    if not file_ok:
        res.problems.append("file hash differs from the signed binding (file altered)")
    verify_license(envelope, keyring, session=session, result=res)
    res.signature_ok = res.signature_ok and binding_ok
    res.hash_ok = res.hash_ok and file_ok
    return res


class IntegrityFailure(Exception):
    """What the repository holds for a licence version fails its seal or binding check."""

    def __init__(self, license_id: str, version: int, problems: list[str]) -> None:
        super().__init__(f"{license_id} v{version}: {'; '.join(problems)}")
        self.license_id, self.version, self.problems = license_id, version, problems


class ReadVerifier:
    """Verifies every licence object the hub serves (验真后出证), before it is served.

    A served envelope must be either the very bytes the hub sealed and wrote — their SHA-256
    equal to the one the index recorded in the same transaction as the version
    (``object_sha256``) — or, where the index recorded none (rows rebuilt from the store,
    older rows), an envelope whose signature verifies over its document, whose document hash
    holds, and whose id, version and hash are the ones the index records. A recorded hash that
    differs means the object was rewritten: refused, whatever its signature says. A served
    file must match the signed binding of its version. Signature verdicts are remembered by the
    SHA-256 of the exact bytes checked, so a rewritten object is checked afresh, never served
    on a stale verdict; what is served is hashed on every read.
    """

    def __init__(self, keyring: KeyRing, *, max_entries: int = 100_000, max_parsed: int = 4096) -> None:
        self.keyring = keyring
        self.max_entries = max_entries
        self.max_parsed = max_parsed
        self._good: set[str] = set()
        #: verified envelopes by the same key, parsed once (the most recently verified ones)
        self._parsed: dict[str, Envelope] = {}

    def _remember(self, key: str) -> None:
        if len(self._good) >= self.max_entries:
            self._good.clear()
        self._good.add(key)

    def check(
        self, data: bytes, *, license_id: str, version: int, content_sha256: str, object_sha256: str | None = None
    ) -> str:
        """Verify ``data`` as the stored object of ``license_id`` v``version``; returns the cache
        key of the verdict (:class:`IntegrityFailure` if it fails)."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"e:{digest}:{license_id}:{version}:{content_sha256}"
        if object_sha256 is not None:
            if digest != object_sha256:
                raise IntegrityFailure(license_id, version, ["the stored object differs from the one the hub wrote"])
            return key
        if key not in self._good:
            self._verify(self._parse(data, license_id, version), license_id, version, content_sha256)
            self._remember(key)
        return key

    @staticmethod
    def _parse(data: bytes, license_id: str, version: int) -> Envelope:
        try:
            return parse_envelope(data)
        except ValueError as exc:
            raise IntegrityFailure(license_id, version, [f"malformed: {exc}"]) from None

    def _verify(self, envelope: Envelope, license_id: str, version: int, content_sha256: str) -> None:
        problems = []
        lic = envelope.document.license
        if (lic.license_id, lic.version) != (license_id, version):
            problems.append(f"the object holds {lic.license_id} v{lic.version}")
        if envelope.document_sha256 != content_sha256:
            problems.append("sealed hash differs from the index's record")
        data_doc = envelope.document.canonical()
        if sha256_hex(data_doc) != envelope.document_sha256:
            problems.append("document hash differs from the sealed hash")
        if not self.keyring.verify(envelope.signature, data_doc):
            problems.append("signature does not verify")
        if problems:
            raise IntegrityFailure(license_id, version, problems)

    def envelope(
        self, data: bytes, *, license_id: str, version: int, content_sha256: str, object_sha256: str | None = None
    ) -> Envelope:
        """The envelope in ``data`` once verified (:meth:`check`), parsed once per verified bytes."""
        key = self.check(
            data, license_id=license_id, version=version, content_sha256=content_sha256, object_sha256=object_sha256
        )
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parse(data, license_id, version)
            if len(self._parsed) >= self.max_parsed:
                self._parsed.pop(next(iter(self._parsed)))  # the oldest
            self._parsed[key] = parsed
        return parsed

    def binding(self, binding: bytes, *, license_id: str, version: int) -> FileBinding:
        """The signed binding of ``license_id`` v``version`` in ``binding``, once its signature verifies."""
        key = f"b:{hashlib.sha256(binding).hexdigest()}:{license_id}:{version}"
        try:
            bound = parse_binding(binding)
        except ValueError as exc:
            raise IntegrityFailure(license_id, version, [f"malformed file binding: {exc}"]) from None
        if key not in self._good:
            if (bound.license_id, bound.version) != (license_id, version):
                raise IntegrityFailure(license_id, version, [f"the binding names {bound.license_id} v{bound.version}"])
            if not bound.verify(self.keyring):
                raise IntegrityFailure(license_id, version, ["file binding signature does not verify"])
            self._remember(key)
        return bound

    def file(self, content: bytes, binding: bytes, *, license_id: str, version: int) -> None:
        """Check a licence file against the signed binding of ``license_id`` v``version``."""
        bound = self.binding(binding, license_id=license_id, version=version)
        if bound.file_sha256 != hashlib.sha256(content).hexdigest():
            raise IntegrityFailure(license_id, version, ["file hash differs from the signed binding (file altered)"])
