"""Issuing licences (sign + store + index + outbox) on the local backend and on an S3 server.

Targets (issue 5):
* local backend: ≥ 500 licences/s;
* against the S3 server (moto, in its own process): ≥ 0.8× the rate of bare ``minio``
  SDK PUTs of the same objects at the same concurrency (that server is the ceiling).
Printed beside them: the sign+store-only rate, bare PUT rates and the PDF rendering rate.

    python -m bench issue [--smoke] [-n N] [--threads T]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_LOCAL = 500.0
TARGET_S3_RATIO = 0.8


def _draft(i: int):  # type: ignore[no-untyped-def]
    from e_license_store.model import LicenseDraft
    from mappings.canonical.models import HolderKind

    return LicenseDraft(
        license_type_code="1101",
        license_number=f"3303220{i:08d}",
        holder_name=f"温州洞头第{i}号餐饮有限公司",
        holder_code=f"91330322MA{i:07d}X",
        holder_kind=HolderKind.enterprise,
        issuer_code="113303220025678912",
        issue_date=dt.date(2016, 5, 4),
        surface={
            "enterprise_name": f"温州洞头第{i}号餐饮有限公司",
            "address": "浙江省温州市洞头区北岙街道中心路12号",
            "business_scope": "餐饮服务；食品销售。",
        },
    )


def _source(i: int, run: str):  # type: ignore[no-untyped-def]
    from mappings.canonical.models import SourceRef

    return SourceRef(
        department="commerce", dataset="enterprise_registry", source_key=f"{run}-{i}", source_version="1", run_id=run
    )


BATCH = 500


def _batch_rate(n: int, threads: int, service, run: str) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Issue ``n`` licences through ``issue_batch`` (how DAG tasks issue a staged batch): (issue/s, created)."""
    started = time.perf_counter()
    created = 0
    for lo in range(0, n, BATCH):
        items = [(_draft(i), _source(i, run)) for i in range(lo, min(n, lo + BATCH))]
        out = service.issue_batch(items, concurrency=threads)
        assert all(r.created for r in out)
        created += len(out)
    return n / (time.perf_counter() - started), created


def _rate(n: int, threads: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    if threads <= 1:
        for i in range(n):
            fn(i)
    else:
        with cf.ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, range(n)))
    return n / (time.perf_counter() - started)


def _service(tmp: Path, store, name: str):  # type: ignore[no-untyped-def]
    from e_license_store.service import LicenseService
    from e_license_store.signing import load_keyring
    from hub.db import make_engine, migrate, session_factory

    url = f"sqlite:///{tmp / f'{name}.db'}"
    migrate(url, "licenses@head")
    engine = make_engine(url, pool_size=16)
    return LicenseService(store, session_factory(engine), load_keyring(tmp / "keys", create=True))


def bench_local(tmp: Path, n: int, threads: int) -> dict[str, float]:
    """Batch issue/s (and licences created), one-by-one issue/s, sign+store/s, bare put/s (and objects put)
    on the local filesystem store."""
    from e_license_store.model import LicenseDocument, Transition, object_key, seal
    from e_license_store.store.local import LocalStore

    store = LocalStore(tmp / "local-store")
    service = _service(tmp, store, "local")
    issue, created = _batch_rate(n, threads, service, "run-a")
    single = _rate(max(1, n // 10), 1, lambda i: service.issue(_draft(i), _source(i, "run-c")))

    def sign_store(i: int) -> None:
        lic = service.license_for(_draft(i), _source(i, "run-b"))
        doc = LicenseDocument(license=lic, transition=Transition.issued, recorded_at=dt.datetime.now(dt.UTC))
        store.put(object_key(lic.license_id, 1), seal(doc, service.signer).to_bytes())

    sign_only = _rate(n, threads, sign_store)
    payload = store.get(next(iter(store.list_keys("licenses/"))))
    bare = _rate(n, threads, lambda i: store.put(f"bare/{i}.json", payload))
    bare_objects = len(list(store.list_keys("bare/")))
    return {"issue": issue, "created": created, "single": single, "sign_store": sign_only, "bare": bare,
            "bare_objects": bare_objects}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def bench_s3(tmp: Path, n: int, threads: int) -> dict[str, float]:
    """Issue/s (licences created, objects stored) and bare PUT/s of the same objects (objects put) against
    moto's S3 server, same concurrency."""
    from e_license_store.store import open_store
    from e_license_store.store.minio_store import MinioStore, bare_put

    proc, endpoint = _start_moto()
    try:
        store = open_store(f"minio://bench:bench@{endpoint}/licenses?retention_mode=GOVERNANCE&retention_years=30")
        assert isinstance(store, MinioStore)
        service = _service(tmp, store, "s3")
        issue, created = _batch_rate(n, threads, service, "run-s3")
        keys = list(store.list_keys("licenses/"))
        payloads = [store.get(k) for k in keys]
        bare_store = open_store(f"minio://bench:bench@{endpoint}/bare?retention_mode=GOVERNANCE&retention_years=30")
        assert isinstance(bare_store, MinioStore)
        client = bare_store.client
        bare = _rate(len(payloads), threads, lambda i: bare_put(client, "bare", keys[i], payloads[i]))
        bare_objects = len(list(bare_store.list_keys("")))
        return {"issue": issue, "created": created, "stored": len(keys), "bare": bare, "bare_objects": bare_objects}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_pdf(tmp: Path, n: int) -> tuple[float, bool]:
    """(PDFs rendered/s, whether the first one is a PDF)."""
    from e_license_store.model import LicenseDocument, Transition
    from e_license_store.render import render_pdf
    from e_license_store.store.local import LocalStore

    service = _service(tmp, LocalStore(tmp / "pdf-store"), "pdf")
    docs = []
    for i in range(n):
        lic = service.license_for(_draft(i), _source(i, "pdf"))
        docs.append(LicenseDocument(license=lic, transition=Transition.issued, recorded_at=dt.datetime.now(dt.UTC)))
    first = render_pdf(docs[0], "sm2-0000000000000000")  # font loading is a one-off
    return _rate(n, 1, lambda i: render_pdf(docs[i], "sm2-0000000000000000")), first.startswith(b"%PDF-")


def run(n: int, n_s3: int, threads: int, pdfs: int) -> dict[str, Any]:
    """The figures: the local store's (:func:`bench_local`), S3's (:func:`bench_s3`) with the ratio to bare
    PUTs, the PDF rate, and whether the targets were met."""
    with tempfile.TemporaryDirectory(prefix="bench-issue-") as d:
        tmp = Path(d)
        local = bench_local(tmp, n, threads)
        s3 = bench_s3(tmp, n_s3, threads)
        pdf, pdf_ok = bench_pdf(tmp, pdfs)
    ratio = s3["issue"] / s3["bare"] if s3["bare"] else 0.0
    return {
        "n": n,
        "n_s3": n_s3,
        "local": local,
        "s3": s3,
        "s3_ratio": ratio,
        "pdf": pdf,
        "pdfs": pdfs,
        "pdf_ok": pdf_ok,
        "met": local["issue"] >= TARGET_LOCAL and ratio >= TARGET_S3_RATIO,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench issue")
    parser.add_argument("--smoke", action="store_true", help="tiny run; targets not evaluated")
    parser.add_argument("-n", type=int, default=None, help="licences per measurement")
    parser.add_argument("--threads", type=int, default=4, help="client concurrency (same for both sides)")
    args = parser.parse_args(argv)
    n = args.n or (20 if args.smoke else 3000)
    n_s3 = max(20, n // 3) if not args.smoke else 15
    print(
        f"issuing {n} business licences (local) / {n_s3} (S3), {args.threads} threads; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    f = run(n, n_s3, args.threads, 3 if args.smoke else 100)
    local, s3, issue = f["local"], f["s3"], f["local"]["issue"]
    print(f"local   issue_batch (sign+store+index+outbox) {issue:>7,.0f}/s   target ≥ {TARGET_LOCAL:,.0f}/s")
    print(
        f"        peers: issue() one at a time {local['single']:,.0f}/s | sign+store only {local['sign_store']:,.0f}/s"
        f" | bare local put {local['bare']:,.0f}/s"
    )
    print(
        f"S3/moto issue_batch {s3['issue']:>7,.0f}/s | bare minio-SDK PUTs of the same objects {s3['bare']:,.0f}/s"
        f" | ratio {f['s3_ratio']:.2f}   target ≥ {TARGET_S3_RATIO}"
    )
    print(f"PDF     render {f['pdf']:>8,.1f}/s (one thread; off the issuing path) | issue {issue:,.0f}/s")
    if args.smoke:
        print("smoke run: targets not evaluated")
        return 0
    print("MET" if f["met"] else "MISSED")
    return 0 if f["met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
