"""SM2/SM3 (GB/T 32918, GB/T 32905): every candidate library against the published vectors,
each other and the ``openssl`` command."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from bench.sm2_candidates import (
    CANDIDATES,
    SM3_VECTORS,
    VECTOR_D,
    VECTOR_K,
    VECTOR_MESSAGE,
    VECTOR_R,
    VECTOR_S,
    VECTOR_X,
    VECTOR_Y,
)
from e_license_store.sm2_openssl import SM2PrivateKey, SM2PublicKey, der_signature, parse_der_signature

POINT = b"\x04" + VECTOR_X + VECTOR_Y
NAMES = sorted(CANDIDATES)


@pytest.mark.parametrize("name", NAMES)
def test_sm3_vectors(name: str) -> None:
    for message, digest in SM3_VECTORS.items():
        assert CANDIDATES[name].sm3(message) == digest


def test_sm3_vectors_in_cryptography() -> None:
    for message, digest in SM3_VECTORS.items():
        h = hashes.Hash(hashes.SM3())
        h.update(message)
        assert h.finalize().hex() == digest == hashlib.new("sm3", message).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_published_signature_verifies_and_altered_message_does_not(name: str) -> None:
    verify = CANDIDATES[name].verifier(POINT)
    sig = der_signature(VECTOR_R, VECTOR_S)
    assert verify(sig, VECTOR_MESSAGE)
    assert not verify(sig, VECTOR_MESSAGE + b"!")
    assert not verify(der_signature(VECTOR_R, VECTOR_S ^ 1), VECTOR_MESSAGE)


@pytest.mark.parametrize("name", [n for n in NAMES if CANDIDATES[n].sign_with_k])
def test_published_signature_is_reproduced_with_its_k(name: str) -> None:
    sign_with_k = CANDIDATES[name].sign_with_k
    assert sign_with_k is not None
    assert sign_with_k(VECTOR_D, VECTOR_MESSAGE, VECTOR_K) == (VECTOR_R, VECTOR_S)


def test_openssl_derives_the_published_public_key() -> None:
    assert SM2PrivateKey.from_scalar(VECTOR_D).public_key().point() == POINT


@pytest.mark.parametrize("signer", NAMES)
def test_every_candidate_verifies_every_other(signer: str) -> None:
    sig = CANDIDATES[signer].signer(VECTOR_D, POINT)(b"licence 1101")
    assert parse_der_signature(sig)
    for name in NAMES:
        assert CANDIDATES[name].verifier(POINT)(sig, b"licence 1101"), name


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl command missing (Debian package openssl)")
    return exe


def test_openssl_cli_verifies_our_signature_and_we_verify_its(tmp_path: Path) -> None:
    exe = _openssl()
    key = SM2PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(key.pem())
    (tmp_path / "pub.pem").write_bytes(key.public_key().pem())
    msg = "营业执照 1101".encode()
    (tmp_path / "msg").write_bytes(msg)
    (tmp_path / "sig").write_bytes(key.sign(msg))
    common = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "msg")]
    ok = subprocess.run(
        [
            exe,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(tmp_path / "pub.pem"),
            "-sigfile",
            str(tmp_path / "sig"),
            *common,
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "Verified Successfully" in ok.stdout
    dgst = subprocess.run(
        [
            exe,
            "dgst",
            "-sm3",
            "-verify",
            str(tmp_path / "pub.pem"),
            "-sigopt",
            "distid:1234567812345678",
            "-signature",
            str(tmp_path / "sig"),
            str(tmp_path / "msg"),
        ],
        capture_output=True,
        text=True,
    )
    assert dgst.returncode == 0 and "Verified OK" in dgst.stdout
    # one changed byte in the message: openssl refuses
    (tmp_path / "msg").write_bytes(msg[:-1] + b"2")
    bad = subprocess.run(
        [
            exe,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(tmp_path / "pub.pem"),
            "-sigfile",
            str(tmp_path / "sig"),
            *common,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    # and the other way round: openssl signs, we verify
    (tmp_path / "msg").write_bytes(msg)
    subprocess.run(
        [exe, "pkeyutl", "-sign", "-inkey", str(tmp_path / "key.pem"), "-out", str(tmp_path / "sig2"), *common],
        check=True,
        capture_output=True,
    )
    theirs = (tmp_path / "sig2").read_bytes()
    assert SM2PublicKey.from_pem(key.public_key().pem()).verify(theirs, msg)
    assert CANDIDATES["gmalg"].verifier(key.public_key().point())(theirs, msg)


def test_openssl_reads_the_keys_we_write(tmp_path: Path) -> None:
    exe = _openssl()
    key = SM2PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(key.pem())
    out = subprocess.run([exe, "pkey", "-in", str(tmp_path / "key.pem"), "-pubout"], capture_output=True, check=True)
    assert SM2PublicKey.from_pem(out.stdout).point() == key.public_key().point()
