"""The SM2 libraries measured for the seal, behind one small interface: for the benchmark and its
tests only (the product seals with :mod:`e_license_store.signing`).

Each candidate signs ``SM3(Z_A || M)`` with the default identifier ``1234567812345678`` and
speaks DER signatures here, so any candidate's signature can be checked by any other and
by the ``openssl`` command. See docs/decisions/0001-sm2-library.md for the choice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from e_license_store import sm2_openssl
from e_license_store.sm2_openssl import DEFAULT_ID, der_signature, parse_der_signature

#: GB/T 32918.5-2017 (GM/T 0003.5) example on the recommended curve: key, message, k and (r, s).
VECTOR_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
VECTOR_X = bytes.fromhex("09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020")
VECTOR_Y = bytes.fromhex("CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
VECTOR_MESSAGE = b"message digest"
VECTOR_K = bytes.fromhex("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
VECTOR_R = int("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3", 16)
VECTOR_S = int("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA", 16)

#: GB/T 32905-2016 SM3 examples: "abc" and "abcd" * 16.
SM3_VECTORS = {
    b"abc": "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
    b"abcd" * 16: "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732",
}


@dataclass(frozen=True)
class Candidate:
    """One library: ``signer(d, point)``/``verifier(point)`` make DER sign/verify functions.

    ``sign_with_k`` signs with a given ephemeral k (to reproduce the published (r, s));
    None when the library cannot take one.
    """

    name: str
    signer: Callable[[bytes, bytes], Callable[[bytes], bytes]]
    verifier: Callable[[bytes], Callable[[bytes, bytes], bool]]
    sm3: Callable[[bytes], str]
    sign_with_k: Callable[[bytes, bytes, bytes], tuple[int, int]] | None = None


def _rs(sig: bytes) -> tuple[int, int] | None:
    try:
        return parse_der_signature(sig)
    except ValueError:
        return None


# -- Debian's OpenSSL 3 through ctypes ---------------------------------------------------------
def _openssl_signer(d: bytes, _point: bytes) -> Callable[[bytes], bytes]:
    return sm2_openssl.SM2PrivateKey.from_scalar(d).sign


def _openssl_verifier(point: bytes) -> Callable[[bytes, bytes], bool]:
    key = sm2_openssl.SM2PublicKey.from_point(point)
    return lambda sig, msg: key.verify(sig, msg)


def _hashlib_sm3(data: bytes) -> str:
    import hashlib

    return hashlib.new("sm3", data).hexdigest()


# -- gmssl (pure Python) -----------------------------------------------------------------------
def _gmssl(d: bytes | None, point: bytes) -> object:
    from gmssl import sm2

    return sm2.CryptSM2(private_key=d.hex() if d else "", public_key=point[1:].hex())


def _gmssl_signer(d: bytes, point: bytes) -> Callable[[bytes], bytes]:
    c = _gmssl(d, point)

    def sign(msg: bytes) -> bytes:
        sig = c.sign_with_sm3(msg)  # type: ignore[attr-defined]
        return der_signature(int(sig[:64], 16), int(sig[64:], 16))

    return sign


def _gmssl_verifier(point: bytes) -> Callable[[bytes, bytes], bool]:
    c = _gmssl(None, point)

    def verify(sig: bytes, msg: bytes) -> bool:
        rs = _rs(sig)
        return bool(rs and c.verify_with_sm3(f"{rs[0]:064x}{rs[1]:064x}", msg))  # type: ignore[attr-defined]

    return verify


def _gmssl_with_k(d: bytes, msg: bytes, k: bytes) -> tuple[int, int]:
    from gmssl import sm2

    pub = sm2.CryptSM2(private_key=d.hex(), public_key="")
    point = pub._kg(int(d.hex(), 16), pub.ecc_table["g"])
    sig = sm2.CryptSM2(private_key=d.hex(), public_key=point).sign_with_sm3(msg, k.hex())
    return int(sig[:64], 16), int(sig[64:], 16)


def _gmssl_sm3(data: bytes) -> str:
    from gmssl import func, sm3

    return str(sm3.sm3_hash(func.bytes_to_list(data)))


# -- gmalg (pure Python) -----------------------------------------------------------------------
def _gmalg_signer(d: bytes, point: bytes) -> Callable[[bytes], bytes]:
    import gmalg

    s = gmalg.SM2(sk=d, uid=DEFAULT_ID, pk=point)

    def sign(msg: bytes) -> bytes:
        r, s_ = s.sign(msg)
        return der_signature(int.from_bytes(r, "big"), int.from_bytes(s_, "big"))

    return sign


def _gmalg_verifier(point: bytes) -> Callable[[bytes, bytes], bool]:
    import gmalg

    v = gmalg.SM2(uid=DEFAULT_ID, pk=point)

    def verify(sig: bytes, msg: bytes) -> bool:
        rs = _rs(sig)
        return bool(rs and v.verify(msg, rs[0].to_bytes(32, "big"), rs[1].to_bytes(32, "big")))

    return verify


def _gmalg_with_k(d: bytes, msg: bytes, k: bytes) -> tuple[int, int]:
    import gmalg

    s = gmalg.SM2(sk=d, uid=DEFAULT_ID, rnd_fn=lambda _bits: int.from_bytes(k, "big"))
    r, s_ = s.sign(msg)
    return int.from_bytes(r, "big"), int.from_bytes(s_, "big")


def _gmalg_sm3(data: bytes) -> str:
    import gmalg

    h = gmalg.SM3()
    h.update(data)
    return h.value().hex()


# -- snowland-smx (pysmx, pure Python) ---------------------------------------------------------
def _pysmx_signer(d: bytes, _point: bytes) -> Callable[[bytes], bytes]:
    from pysmx.SM2 import Sign

    def sign(msg: bytes) -> bytes:
        raw = Sign(msg, d.hex(), secrets.token_hex(32), 64, uid=DEFAULT_ID)
        return der_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))

    return sign


def _pysmx_verifier(point: bytes) -> Callable[[bytes, bytes], bool]:
    from pysmx.SM2 import Verify

    def verify(sig: bytes, msg: bytes) -> bool:
        rs = _rs(sig)
        if not rs:
            return False
        return bool(
            Verify(rs[0].to_bytes(32, "big") + rs[1].to_bytes(32, "big"), msg, point[1:].hex(), 64, uid=DEFAULT_ID)
        )

    return verify


def _pysmx_with_k(d: bytes, msg: bytes, k: bytes) -> tuple[int, int]:
    from pysmx.SM2 import Sign

    raw = Sign(msg, d.hex(), k.hex(), 64, uid=DEFAULT_ID)
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _pysmx_sm3(data: bytes) -> str:
    from pysmx.SM3 import digest

    return bytes(digest(data)).hex()


CANDIDATES: dict[str, Candidate] = {
    "openssl-ctypes": Candidate("openssl-ctypes", _openssl_signer, _openssl_verifier, _hashlib_sm3),
    "gmssl": Candidate("gmssl", _gmssl_signer, _gmssl_verifier, _gmssl_sm3, _gmssl_with_k),
    "gmalg": Candidate("gmalg", _gmalg_signer, _gmalg_verifier, _gmalg_sm3, _gmalg_with_k),
    "snowland-smx": Candidate("snowland-smx", _pysmx_signer, _pysmx_verifier, _pysmx_sm3, _pysmx_with_k),
}
