"""The hub's electronic seal (电子印章): SM2/SM3 signatures, Ed25519 as a second algorithm.

Keys live in a directory (``HUB_SIGNING_KEY_DIR``, default ``$HUB_HOME/keys``), never in
the repository:

* ``<key id>.key.pem`` — private key (PKCS#8, mode 0600); may be removed once retired;
* ``<key id>.pub.pem`` — public key, kept forever so old licences still verify;
* ``active`` — the key id new signatures use.

A key id is ``<alg>-<first 16 hex of SHA-256 of the SubjectPublicKeyInfo DER>``, so it
names exactly one public key. Rotation (:func:`rotate`) writes a new key and moves
``active``; nothing is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from e_license_store import sm2_openssl


class Algorithm(StrEnum):
    sm2_sm3 = "SM2-SM3"
    ed25519 = "Ed25519"


_PREFIX = {Algorithm.sm2_sm3: "sm2", Algorithm.ed25519: "ed25519"}


class KeyError_(LookupError):
    """No key with that id in the key ring."""


class NoSigningKey(RuntimeError):
    """The key ring has no active private key."""


@dataclass(frozen=True)
class Signature:
    """A detached signature: which algorithm, which key, the signature bytes."""

    algorithm: str
    key_id: str
    value: bytes

    def to_json(self) -> dict[str, str]:
        return {"alg": self.algorithm, "key_id": self.key_id, "value": base64.b64encode(self.value).decode()}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> Signature:
        text = str(data["value"])
        value = base64.b64decode(text, validate=True)
        # base64 ignores the unused low bits of its last character: insist on the one canonical
        # spelling, or a changed byte there would go unnoticed
        if base64.b64encode(value).decode() != text:
            raise ValueError("signature value is not canonical base64")
        return cls(str(data["alg"]), str(data["key_id"]), value)


class VerifyKey(Protocol):
    key_id: str
    algorithm: Algorithm

    def verify(self, signature: bytes, data: bytes) -> bool: ...

    def public_pem(self) -> bytes: ...


class SigningKey(VerifyKey, Protocol):
    def sign(self, data: bytes) -> bytes: ...


def key_id_for(algorithm: Algorithm, spki_der: bytes) -> str:
    return f"{_PREFIX[algorithm]}-{hashlib.sha256(spki_der).hexdigest()[:16]}"


class SM2VerifyKey:
    algorithm = Algorithm.sm2_sm3

    def __init__(self, public: sm2_openssl.SM2PublicKey) -> None:
        self._public = public
        self.key_id = key_id_for(self.algorithm, public.der())

    def verify(self, signature: bytes, data: bytes) -> bool:
        return self._public.verify(signature, data)

    def public_pem(self) -> bytes:
        return self._public.pem()


class SM2SigningKey(SM2VerifyKey):
    def __init__(self, private: sm2_openssl.SM2PrivateKey) -> None:
        super().__init__(private.public_key())
        self._private = private

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def private_pem(self) -> bytes:
        return self._private.pem()


class Ed25519VerifyKey:
    algorithm = Algorithm.ed25519

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.key_id = key_id_for(self.algorithm, self.public_der())

    def public_der(self) -> bytes:
        return self._public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        return self._public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Ed25519SigningKey(Ed25519VerifyKey):
    def __init__(self, private: Ed25519PrivateKey) -> None:
        super().__init__(private.public_key())
        self._private = private

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def generate_key(algorithm: Algorithm = Algorithm.sm2_sm3) -> SM2SigningKey | Ed25519SigningKey:
    if algorithm == Algorithm.sm2_sm3:
        return SM2SigningKey(sm2_openssl.SM2PrivateKey.generate())
    return Ed25519SigningKey(Ed25519PrivateKey.generate())


def _is_sm2_pem(pem: bytes) -> bool:
    # An SM2 key is an EC key on the SM2 curve; cryptography cannot load it, libcrypto can.
    try:
        serialization.load_pem_public_key(pem) if b"PUBLIC" in pem else serialization.load_pem_private_key(pem, None)
    except Exception:
        return True
    return False


def load_private_pem(pem: bytes) -> SM2SigningKey | Ed25519SigningKey:
    if _is_sm2_pem(pem):
        return SM2SigningKey(sm2_openssl.SM2PrivateKey.from_pem(pem))
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("only SM2 and Ed25519 signing keys are supported")
    return Ed25519SigningKey(key)


def load_public_pem(pem: bytes) -> SM2VerifyKey | Ed25519VerifyKey:
    if _is_sm2_pem(pem):
        return SM2VerifyKey(sm2_openssl.SM2PublicKey.from_pem(pem))
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("only SM2 and Ed25519 public keys are supported")
    return Ed25519VerifyKey(key)


class KeyRing:
    """The active signing key plus every public key ever used (for old licences)."""

    def __init__(self, active: SigningKey | None, verify_keys: Mapping[str, VerifyKey]) -> None:
        self.active = active
        self._verify = dict(verify_keys)
        if active is not None:
            self._verify.setdefault(active.key_id, active)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._verify)

    def verify_key(self, key_id: str) -> VerifyKey:
        try:
            return self._verify[key_id]
        except KeyError:
            raise KeyError_(f"unknown signing key {key_id!r}") from None

    def sign(self, data: bytes) -> Signature:
        if self.active is None:
            raise NoSigningKey("no active signing key (HUB_SIGNING_KEY_DIR)")
        return Signature(self.active.algorithm.value, self.active.key_id, self.active.sign(data))

    def verify(self, signature: Signature, data: bytes) -> bool:
        """True only if the key is known, the algorithm matches it and the signature checks."""
        key = self._verify.get(signature.key_id)
        if key is None or key.algorithm.value != signature.algorithm:
            return False
        return key.verify(signature.value, data)


def default_key_dir() -> Path:
    from hub.settings import get_settings  # noqa: PLC0415 - pydantic-settings, ~0.4 s; only for the default key dir

    env = os.environ.get("HUB_SIGNING_KEY_DIR")
    return Path(env) if env else get_settings().home / "keys"


def write_key(key_dir: Path, key: SM2SigningKey | Ed25519SigningKey, *, activate: bool = True) -> str:
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    priv = key_dir / f"{key.key_id}.key.pem"
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_pem())
    (key_dir / f"{key.key_id}.pub.pem").write_bytes(key.public_pem())
    if activate:
        tmp = key_dir / "active.tmp"
        tmp.write_text(key.key_id + "\n")
        tmp.replace(key_dir / "active")
    return key.key_id


def rotate(key_dir: Path | None = None, algorithm: Algorithm = Algorithm.sm2_sm3) -> str:
    """Make a new key the active one; earlier public keys stay for verification."""
    return write_key(key_dir or default_key_dir(), generate_key(algorithm))


def load_keyring(key_dir: Path | None = None, *, create: bool = False) -> KeyRing:
    """The key ring in ``key_dir`` (default ``HUB_SIGNING_KEY_DIR`` or ``$HUB_HOME/keys``).

    ``create=True`` (the demo) generates an SM2 key when the directory has none.
    """
    key_dir = key_dir or default_key_dir()
    active_file = key_dir / "active"
    if not active_file.exists():
        if not create:
            return KeyRing(None, _public_keys(key_dir))
        rotate(key_dir)
    verify_keys = _public_keys(key_dir)
    active_id = active_file.read_text().strip()
    priv = key_dir / f"{active_id}.key.pem"
    active = load_private_pem(priv.read_bytes()) if priv.exists() else None
    if active is not None and active.key_id != active_id:
        raise ValueError(f"key file {priv.name} holds key {active.key_id}, not {active_id}")
    return KeyRing(active, verify_keys)


def _public_keys(key_dir: Path) -> dict[str, VerifyKey]:
    out: dict[str, VerifyKey] = {}
    if not key_dir.is_dir():
        return out
    for pub in sorted(key_dir.glob("*.pub.pem")):
        key = load_public_pem(pub.read_bytes())
        out[key.key_id] = key
    return out
