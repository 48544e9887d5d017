"""SM2/SM3 sign and verify rates, no I/O, both cores: every candidate library side by side.

Target (issue 5): SM2 sign ≥ 2,000/s and verify ≥ 2,000/s with both cores, for the
library the seal uses (OpenSSL libcrypto through ctypes). The pure-Python candidates
and Ed25519 are printed as peers. Each worker process loads its own key (ctypes objects
do not cross processes) and all workers start at the same instant and run for the same
window, so the sum of their counts over the window is the machine's rate.

    python -m bench signing [--smoke] [--seconds N] [--procs N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from typing import Any

TARGET_SIGN = 2000.0
TARGET_VERIFY = 2000.0
SEAL_LIBRARY = "openssl-ctypes"


def _message() -> bytes:
    """A realistic payload: the canonical JSON of a business licence document (~1 KB)."""
    import datetime as dt

    from e_license_store.model import LicenseDocument, Transition
    from mappings.canonical.models import HolderKind, License, SourceRef

    lic = License(
        license_id="1101-113303220025678912-25F0XZPCBG3C6",
        license_type_code="1101",
        license_type_name="营业执照",
        license_number="330322000012345",
        holder_name="温州洞头海景餐饮有限公司",
        holder_code="91330322MA2C8XYZ1K",
        holder_kind=HolderKind.enterprise,
        issuer_name="市场监督管理局",
        issuer_code="113303220025678912",
        issue_date=dt.date(2016, 5, 4),
        valid_from=dt.date(2016, 5, 4),
        surface={
            "enterprise_name": "温州洞头海景餐饮有限公司",
            "address": "浙江省温州市洞头区北岙街道中心路12号",
            "business_scope": "餐饮服务；食品销售；" * 8,
        },
        source=SourceRef(department="commerce", dataset="enterprise_registry", source_key="ent-1", source_version="1"),
    )
    doc = LicenseDocument(
        license=lic, transition=Transition.issued, recorded_at=dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    )
    return doc.canonical()


def _operation(library: str, op: str) -> Callable[[], object]:
    from bench.sm2_candidates import CANDIDATES, VECTOR_D, VECTOR_X, VECTOR_Y

    msg = _message()
    point = b"\x04" + VECTOR_X + VECTOR_Y
    if library == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        sig = key.sign(msg)
        pub = key.public_key()
        return (lambda: key.sign(msg)) if op == "sign" else (lambda: pub.verify(sig, msg))
    cand = CANDIDATES[library]
    sign = cand.signer(VECTOR_D, point)
    if op == "sign":
        return lambda: sign(msg)
    sig = sign(msg)
    verify = cand.verifier(point)
    assert verify(sig, msg)
    return lambda: verify(sig, msg)


def _worker(args: tuple[str, str, float, float]) -> tuple[int, float, float]:
    """(operations, wall seconds, CPU seconds): at least 3 operations even when slow."""
    library, op, start_at, seconds = args
    fn = _operation(library, op)
    fn()  # warm up (imports, key load)
    while time.time() < start_at:  # all workers begin together
        time.sleep(0.001)
    end = start_at + seconds
    n = 0
    cpu0 = time.process_time()
    while time.time() < end or n < 3:
        fn()
        n += 1
    return n, time.time() - start_at, time.process_time() - cpu0


def _warm(_: int) -> int:
    _operation(SEAL_LIBRARY, "sign")()
    return 0


def measure(pool: Any, library: str, op: str, procs: int, seconds: float) -> tuple[float, float, int]:
    """(wall-clock ops/s, ops per CPU-second × procs, operations done) over ``procs`` processes for
    ``seconds``.

    The second figure is what ``procs`` otherwise idle cores would do; on a shared machine
    the first can be far lower.
    """
    start_at = time.time() + 0.5  # workers are warm: half a second to receive the task
    results = pool.map(_worker, [(library, op, start_at, seconds)] * procs, chunksize=1)
    wall = sum(n / elapsed for n, elapsed, _ in results)
    per_cpu = sum(n / cpu for n, _, cpu in results if cpu > 0)
    return wall, per_cpu, sum(n for n, _, _ in results)


def openssl_speed(procs: int, seconds: float) -> tuple[float, float] | None:
    """``openssl speed -elapsed -multi N sm2``: the C ceiling (sign/s, verify/s, wall clock)."""
    import re
    import shutil
    import subprocess

    exe = shutil.which("openssl")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "speed", "-elapsed", "-multi", str(procs), "-seconds", str(max(1, int(seconds))), "sm2"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    m = re.search(r"SM2 \(CurveSM2\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out)
    return (float(m.group(1)), float(m.group(2))) if m else None


NOTES = {SEAL_LIBRARY: "the seal (C, libcrypto 3)", "ed25519": "second algorithm, not SM2"}


def run(libraries: list[str], procs: int, seconds: float, peer_seconds: float) -> dict[str, Any]:
    """The figures: per library, sign and verify rates (wall clock and per CPU-second) and the operations
    done (every verification of the workers' signature succeeded, or the worker fails); ``openssl
    speed``'s ceiling when openssl is here; whether the seal met its targets."""
    per_library: dict[str, dict[str, float]] = {}
    pool = mp.get_context("spawn").Pool(procs)
    pool.map(_warm, range(procs), chunksize=1)
    for lib in libraries:
        window = seconds if lib == SEAL_LIBRARY else peer_seconds
        s, s_cpu, signed = measure(pool, lib, "sign", procs, window)
        v, v_cpu, verified = measure(pool, lib, "verify", procs, window)
        per_library[lib] = {"sign": s, "verify": v, "sign_cpu": s_cpu, "verify_cpu": v_cpu,
                            "signed": signed, "verified": verified}  # fmt: skip
    pool.close()
    pool.join()
    seal = per_library[SEAL_LIBRARY]
    return {
        "procs": procs,
        "seconds": seconds,
        "peer_seconds": peer_seconds,
        "libraries": per_library,
        "openssl": openssl_speed(procs, seconds),
        "met": seal["sign"] >= TARGET_SIGN and seal["verify"] >= TARGET_VERIFY,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench signing")
    parser.add_argument("--smoke", action="store_true", help="tiny run; targets not evaluated")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--procs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.2 if args.smoke else 3.0)
    peer_seconds = seconds if args.smoke else max(1.0, seconds / 2)
    libraries = (
        [SEAL_LIBRARY, "gmssl", "ed25519"]
        if args.smoke
        else [SEAL_LIBRARY, "gmssl", "gmalg", "snowland-smx", "ed25519"]
    )
    load = os.getloadavg()[0]
    print(
        f"SM2 with SM3 over a {len(_message())}-byte canonical licence document, {args.procs} processes, "
        f"{seconds:.1f}s window (peers {peer_seconds:.1f}s); load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'library':<16}{'sign/s':>10}{'verify/s':>10}{'sign/cpu-s':>12}{'verify/cpu-s':>14}  note")
    print("  (…/cpu-s: per CPU-second of the workers × processes = the rate on otherwise idle cores)")
    f = run(libraries, args.procs, seconds, peer_seconds)
    for lib, r in f["libraries"].items():
        note = NOTES.get(lib, "pure Python peer")
        print(
            f"{lib:<16}{r['sign']:>10,.0f}{r['verify']:>10,.0f}{r['sign_cpu']:>12,.0f}{r['verify_cpu']:>14,.0f}  {note}"
        )
    ceiling = f["openssl"]
    if ceiling:
        print(
            f"{'openssl speed':<16}{ceiling[0]:>10,.0f}{ceiling[1]:>10,.0f}{'':>12}{'':>14}  "
            "C only, no Python: the ceiling for any binding (same window, wall clock)"
        )
    seal = f["libraries"][SEAL_LIBRARY]
    print(
        f"target: sign ≥ {TARGET_SIGN:,.0f}/s and verify ≥ {TARGET_VERIFY:,.0f}/s with {args.procs} processes "
        f"— {SEAL_LIBRARY}: sign {seal['sign']:,.0f}/s, verify {seal['verify']:,.0f}/s"
    )
    if args.smoke:
        print("smoke run: targets not evaluated")
        return 0
    print("MET" if f["met"] else "MISSED")
    return 0 if f["met"] else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
