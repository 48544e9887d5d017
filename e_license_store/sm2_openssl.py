"""SM2 signatures with SM3 (GB/T 32918, GB/T 32905) through Debian's OpenSSL 3 ``libcrypto`` (国密 SM2/SM3).

``cryptography`` exposes SM3 but not SM2 keys, and the pure-Python SM2 packages are two
orders of magnitude slower (see docs/decisions/0001-sm2-library.md), so this module
binds the few ``EVP_*`` calls it needs with :mod:`ctypes`. Signatures are DER
``SM2Signature`` (``SEQUENCE { r INTEGER, s INTEGER }``, GM/T 0009), made over
``SM3(Z_A || M)`` with the distinguishing identifier ``1234567812345678`` (the GM/T 0009
default, also OpenSSL's), so ``openssl pkeyutl -verify -rawin -digest sm3`` checks them.

Objects here hold C pointers: create them in the process that uses them (pass PEM bytes,
not keys, to worker processes).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import textwrap
from functools import lru_cache
from typing import Any

DEFAULT_ID = b"1234567812345678"

# DER of the two object identifiers an SM2 key carries.
_OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2_CURVE = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301
_BIO_CTRL_INFO = 3


class OpenSSLError(RuntimeError):
    """A libcrypto call failed."""


@lru_cache(maxsize=1)
def _lib() -> Any:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    lib = ctypes.CDLL(name)
    vp, cp, ci, cl, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_long, ctypes.c_size_t
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "OpenSSL_version_num": (ctypes.c_ulong, []),
        "BIO_new_mem_buf": (vp, [cp, ci]),
        "BIO_new": (vp, [vp]),
        "BIO_s_mem": (vp, []),
        "BIO_ctrl": (cl, [vp, ci, cl, vp]),
        "BIO_free": (ci, [vp]),
        "PEM_read_bio_PrivateKey": (vp, [vp, vp, vp, vp]),
        "PEM_read_bio_PUBKEY": (vp, [vp, vp, vp, vp]),
        "PEM_write_bio_PKCS8PrivateKey": (ci, [vp, vp, vp, vp, ci, vp, vp]),
        "PEM_write_bio_PUBKEY": (ci, [vp, vp]),
        "d2i_PUBKEY": (vp, [vp, ctypes.POINTER(cp), cl]),
        "d2i_AutoPrivateKey": (vp, [vp, ctypes.POINTER(cp), cl]),
        "i2d_PUBKEY": (ci, [vp, ctypes.POINTER(vp)]),
        "CRYPTO_free": (None, [vp, cp, ci]),
        "EVP_PKEY_CTX_new_from_name": (vp, [vp, cp, vp]),
        "EVP_PKEY_CTX_new": (vp, [vp, vp]),
        "EVP_PKEY_CTX_free": (None, [vp]),
        "EVP_PKEY_keygen_init": (ci, [vp]),
        "EVP_PKEY_generate": (ci, [vp, ctypes.POINTER(vp)]),
        "EVP_PKEY_free": (None, [vp]),
        "EVP_PKEY_is_a": (ci, [vp, cp]),
        "EVP_PKEY_get_octet_string_param": (ci, [vp, cp, vp, sz, ctypes.POINTER(sz)]),
        "EVP_PKEY_CTX_set1_id": (ci, [vp, cp, ci]),
        "EVP_MD_CTX_new": (vp, []),
        "EVP_MD_CTX_free": (None, [vp]),
        "EVP_MD_CTX_set_pkey_ctx": (None, [vp, vp]),
        "EVP_sm3": (vp, []),
        "EVP_DigestSignInit": (ci, [vp, vp, vp, vp, vp]),
        "EVP_DigestSign": (ci, [vp, cp, ctypes.POINTER(sz), cp, sz]),
        "EVP_DigestVerifyInit": (ci, [vp, vp, vp, vp, vp]),
        "EVP_DigestVerify": (ci, [vp, cp, sz, cp, sz]),
        "EVP_MD_CTX_copy_ex": (ci, [vp, vp]),
        "EVP_DigestSignUpdate": (ci, [vp, cp, sz]),
        "EVP_DigestSignFinal": (ci, [vp, cp, ctypes.POINTER(sz)]),
        "EVP_DigestVerifyUpdate": (ci, [vp, cp, sz]),
        "EVP_DigestVerifyFinal": (ci, [vp, cp, sz]),
        "ERR_clear_error": (None, []),
    }
    for fn, (restype, argtypes) in sigs.items():
        f = getattr(lib, fn)
        f.restype = restype
        f.argtypes = argtypes
    return lib


def available() -> bool:
    """True when libcrypto (OpenSSL ≥ 3) with SM2 is loadable here."""
    try:
        lib = _lib()
        return bool(lib.OpenSSL_version_num() >= 0x30000000) and bool(lib.EVP_sm3())
    except (OSError, AttributeError):
        return False


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _tlv(0x02, body)


def der_signature(r: int, s: int) -> bytes:
    """DER ``SM2Signature`` from the two integers (the form OpenSSL produces)."""
    return _tlv(0x30, _der_int(r) + _der_int(s))


def parse_der_signature(sig: bytes) -> tuple[int, int]:
    """``(r, s)`` from a DER ``SM2Signature``; ValueError if it is not one."""

    def read(buf: bytes, pos: int, tag: int) -> tuple[bytes, int]:
        if pos >= len(buf) or buf[pos] != tag:
            raise ValueError("not a DER SM2 signature")
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[pos : pos + n], "big")
            pos += n
        body = buf[pos : pos + length]
        if len(body) != length:
            raise ValueError("truncated DER SM2 signature")
        return body, pos + length

    seq, end = read(sig, 0, 0x30)
    if end != len(sig):
        raise ValueError("trailing bytes after DER SM2 signature")
    r_bytes, pos = read(seq, 0, 0x02)
    s_bytes, pos = read(seq, pos, 0x02)
    if pos != len(seq):
        raise ValueError("trailing bytes inside DER SM2 signature")
    return int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")


def public_key_der(point: bytes) -> bytes:
    """SubjectPublicKeyInfo DER for an uncompressed SM2 point ``04 || x || y``."""
    if len(point) != 65 or point[0] != 4:
        raise ValueError("expected an uncompressed 65-byte SM2 point")
    alg = _tlv(0x30, _OID_EC_PUBLIC_KEY + _OID_SM2_CURVE)
    return _tlv(0x30, alg + _tlv(0x03, b"\x00" + point))


def private_key_der(d: bytes) -> bytes:
    """PKCS#8 DER for an SM2 private scalar (OpenSSL derives the public point when loading)."""
    ec_priv = _tlv(0x30, _der_int(1) + _tlv(0x04, d.rjust(32, b"\x00")))
    alg = _tlv(0x30, _OID_EC_PUBLIC_KEY + _OID_SM2_CURVE)
    return _tlv(0x30, _der_int(0) + alg + _tlv(0x04, ec_priv))


class _PKey:
    """Owns one ``EVP_PKEY*``."""

    def __init__(self, ptr: int | None, what: str) -> None:
        if not ptr:
            _lib().ERR_clear_error()
            raise OpenSSLError(f"libcrypto could not load {what}")
        self._ptr: int | None = ptr
        if not _lib().EVP_PKEY_is_a(ptr, b"SM2"):
            raise OpenSSLError(f"{what} is not an SM2 key")

    @property
    def ptr(self) -> int:
        assert self._ptr is not None
        return self._ptr

    def __del__(self) -> None:
        if getattr(self, "_ptr", None):
            _lib().EVP_PKEY_free(self._ptr)
            self._ptr = None

    def public_point(self) -> bytes:
        buf = ctypes.create_string_buffer(65)
        out = ctypes.c_size_t(0)
        if not _lib().EVP_PKEY_get_octet_string_param(self.ptr, b"encoded-pub-key", buf, 65, ctypes.byref(out)):
            raise OpenSSLError("cannot read the SM2 public point")
        return buf.raw[: out.value]

    def public_der(self) -> bytes:
        out = ctypes.c_void_p()
        n = _lib().i2d_PUBKEY(self.ptr, ctypes.byref(out))
        if n <= 0:
            raise OpenSSLError("cannot encode the SM2 public key")
        try:
            return ctypes.string_at(out, n)
        finally:
            _lib().CRYPTO_free(out, b"sm2_openssl", 0)


def _bio_from(data: bytes) -> int:
    bio = _lib().BIO_new_mem_buf(data, len(data))
    if not bio:
        raise OpenSSLError("BIO_new_mem_buf failed")
    return int(bio)


def _bio_read_all(bio: int) -> bytes:
    ptr = ctypes.c_void_p()
    n = _lib().BIO_ctrl(bio, _BIO_CTRL_INFO, 0, ctypes.byref(ptr))
    return ctypes.string_at(ptr, n)


def _d2i(fn: Any, der: bytes) -> int | None:
    buf = ctypes.c_char_p(der)
    return fn(None, ctypes.byref(buf), len(der))  # type: ignore[no-any-return]


def _digest_ctx(pkey: _PKey, sign: bool, ident: bytes) -> tuple[int, int]:
    lib = _lib()
    mctx = lib.EVP_MD_CTX_new()
    pctx = lib.EVP_PKEY_CTX_new(pkey.ptr, None)
    if not mctx or not pctx:
        raise OpenSSLError("out of memory")
    if lib.EVP_PKEY_CTX_set1_id(pctx, ident, len(ident)) <= 0:
        raise OpenSSLError("EVP_PKEY_CTX_set1_id failed")
    lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
    init = lib.EVP_DigestSignInit if sign else lib.EVP_DigestVerifyInit
    if init(mctx, None, lib.EVP_sm3(), None, pkey.ptr) != 1:
        lib.EVP_MD_CTX_free(mctx)
        lib.EVP_PKEY_CTX_free(pctx)
        raise OpenSSLError("EVP_Digest*Init with SM3 failed")
    return int(mctx), int(pctx)


class _Template:
    """A digest-sign/verify context initialised once, with Z_A already absorbed.

    Each operation copies it (``EVP_MD_CTX_copy_ex``) instead of repeating the provider
    fetches and the Z_A hash of ``EVP_Digest*Init``; copies are independent, so one
    template serves every thread.
    """

    def __init__(self, pkey: _PKey, sign: bool, ident: bytes) -> None:
        lib = _lib()
        self._pkey = pkey  # keep the key alive as long as the template
        mctx, self._pctx = _digest_ctx(pkey, sign, ident)
        self._mctx: int | None = mctx
        update = lib.EVP_DigestSignUpdate if sign else lib.EVP_DigestVerifyUpdate
        if update(self._mctx, b"", 0) != 1:  # computes Z_A now
            raise OpenSSLError("absorbing Z_A failed")

    def copy(self) -> int:
        lib = _lib()
        ctx = lib.EVP_MD_CTX_new()
        if not ctx or lib.EVP_MD_CTX_copy_ex(ctx, self._mctx) != 1:
            lib.EVP_MD_CTX_free(ctx)
            raise OpenSSLError("EVP_MD_CTX_copy_ex failed")
        return int(ctx)

    def __del__(self) -> None:
        lib = _lib()
        if getattr(self, "_mctx", None):
            lib.EVP_MD_CTX_free(self._mctx)
            lib.EVP_PKEY_CTX_free(self._pctx)
            self._mctx = None


class SM2PublicKey:
    """An SM2 verification key (公钥)."""

    def __init__(self, pkey: _PKey) -> None:
        self._pkey = pkey
        self._templates: dict[bytes, _Template] = {}

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PublicKey:
        bio = _bio_from(pem)
        try:
            return cls(_PKey(_lib().PEM_read_bio_PUBKEY(bio, None, None, None), "SM2 public key PEM"))
        finally:
            _lib().BIO_free(bio)

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        return cls(_PKey(_d2i(_lib().d2i_PUBKEY, der), "SM2 public key DER"))

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        return cls.from_der(public_key_der(point))

    def point(self) -> bytes:
        """The uncompressed point ``04 || x || y``."""
        return self._pkey.public_point()

    def der(self) -> bytes:
        return self._pkey.public_der()

    def pem(self) -> bytes:
        b64 = base64.b64encode(self.der()).decode()
        body = "\n".join(textwrap.wrap(b64, 64))
        return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n".encode()

    def verify(self, signature: bytes, message: bytes, ident: bytes = DEFAULT_ID) -> bool:
        lib = _lib()
        template = self._templates.get(ident)
        if template is None:
            template = self._templates[ident] = _Template(self._pkey, False, ident)
        ctx = template.copy()
        try:
            ok = (
                lib.EVP_DigestVerifyUpdate(ctx, message, len(message)) == 1
                and lib.EVP_DigestVerifyFinal(ctx, signature, len(signature)) == 1
            )
        finally:
            lib.EVP_MD_CTX_free(ctx)
        if not ok:
            lib.ERR_clear_error()
        return bool(ok)


class SM2PrivateKey:
    """An SM2 signing key (私钥)."""

    def __init__(self, pkey: _PKey) -> None:
        self._pkey = pkey
        self._templates: dict[bytes, _Template] = {}

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        lib = _lib()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise OpenSSLError("this libcrypto has no SM2")
        try:
            out = ctypes.c_void_p()
            if lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, ctypes.byref(out)) != 1:
                raise OpenSSLError("SM2 key generation failed")
            return cls(_PKey(out.value, "generated SM2 key"))
        finally:
            lib.EVP_PKEY_CTX_free(ctx)

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PrivateKey:
        bio = _bio_from(pem)
        try:
            return cls(_PKey(_lib().PEM_read_bio_PrivateKey(bio, None, None, None), "SM2 private key PEM"))
        finally:
            _lib().BIO_free(bio)

    @classmethod
    def from_scalar(cls, d: bytes) -> SM2PrivateKey:
        return cls(_PKey(_d2i(_lib().d2i_AutoPrivateKey, private_key_der(d)), "SM2 private scalar"))

    def pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (the key directory is protected by file permissions)."""
        lib = _lib()
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            if lib.PEM_write_bio_PKCS8PrivateKey(bio, self._pkey.ptr, None, None, 0, None, None) != 1:
                raise OpenSSLError("cannot write the SM2 private key")
            return _bio_read_all(bio)
        finally:
            lib.BIO_free(bio)

    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey.from_der(self._pkey.public_der())

    def sign(self, message: bytes, ident: bytes = DEFAULT_ID) -> bytes:
        """DER signature over ``SM3(Z_A || message)``."""
        lib = _lib()
        template = self._templates.get(ident)
        if template is None:
            template = self._templates[ident] = _Template(self._pkey, True, ident)
        ctx = template.copy()
        try:
            buf = ctypes.create_string_buffer(80)
            n = ctypes.c_size_t(80)
            if (
                lib.EVP_DigestSignUpdate(ctx, message, len(message)) != 1
                or lib.EVP_DigestSignFinal(ctx, buf, ctypes.byref(n)) != 1
            ):
                lib.ERR_clear_error()
                raise OpenSSLError("SM2 signing failed")
            return buf.raw[: n.value]
        finally:
            lib.EVP_MD_CTX_free(ctx)
