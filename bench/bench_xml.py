"""XML packages: the connector vs a bare lxml ``iterparse`` + XSD + extract loop, same package.

Target (issue 3): connector ≥ 0.8× the bare loop's records/s over a 500 MB package, and peak
RSS flat (at 500 MB ≤ at 50 MB + 50 MB). Each measurement runs in its own subprocess.
``--smoke`` uses a 2 MB package and asserts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
XSD = REPO / "tests" / "connectors" / "data" / "land_exchange_test.xsd"
NS = "urn:hub:sandbox:land:1"
FIELDS = {"unit_no": "@unitNo", "version": "@version", "certificate_no": "CertificateNo", "right_type": "RightType",
          "location": "Location", "area": "Area", "land_use": "LandUse", "register_date": "RegisterDate",
          "status": "Status", "owner_names": "Owner/Name[]", "owner_id_codes": "Owner/IdCode[]"}
RECORD = (
    '<PropertyRight unitNo="330322001001GB{i:05d}F{i:08d}" version="1"><CertificateNo>浙(2016)洞头区不动产权第{i:07d}号'
    "</CertificateNo><RightType>国有建设用地使用权/房屋所有权</RightType><Location>浙江省温州市洞头区北岙街道中心路{i}号</Location>"
    "<Area>89.50</Area><LandUse>住宅</LandUse><RegisterDate>2016-05-04</RegisterDate><Status>registered</Status>"
    "<Owner><Name>张三</Name><IdType>resident_id</IdType><IdCode>330322198001010011</IdCode><Share>1/2</Share>"
    "</Owner><Owner><Name>李四</Name><IdType>resident_id</IdType><IdCode>33032219800101002X</IdCode></Owner>"
    "</PropertyRight>\n"
)


def make_package(path: Path, megabytes: int) -> int:
    target = megabytes * 1024 * 1024
    sha = hashlib.sha256()
    n = 0
    with open(path, "wb") as fh:
        head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ExchangePackage xmlns="{NS}" packageId="B1" '
                'createdAt="2026-11-01T09:00:00+08:00" sender="330322">\n').encode()
        fh.write(head)
        sha.update(head)
        size = len(head)
        while size < target:
            chunk = "".join(RECORD.format(i=n + k) for k in range(1000)).encode()
            fh.write(chunk)
            sha.update(chunk)
            size += len(chunk)
            n += 1000
        tail = b"</ExchangePackage>\n"
        fh.write(tail)
        sha.update(tail)
    path.with_name(path.name + ".sha256").write_text(sha.hexdigest() + "\n")
    return n


def _bare(package: Path) -> int:
    """The peer: iterparse validating against the XSD, extracting the same fields, clearing as it goes."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(XSD)))
    q = f"{{{NS}}}"
    rows = 0
    out: list[tuple[object, ...]] = []
    for _, elem in etree.iterparse(str(package), events=("end",), tag=q + "PropertyRight", schema=schema):
        owners = elem.findall(q + "Owner")
        out.append((
            elem.get("unitNo"), elem.get("version"), elem.findtext(q + "CertificateNo"),
            elem.findtext(q + "RightType"), elem.findtext(q + "Location"), elem.findtext(q + "Area"),
            elem.findtext(q + "LandUse"), elem.findtext(q + "RegisterDate"), elem.findtext(q + "Status"),
            [o.findtext(q + "Name") for o in owners], [o.findtext(q + "IdCode") for o in owners],
        ))
        rows += 1
        if len(out) >= 10_000:
            out.clear()
        elem.clear(keep_tail=True)
        while elem.getprevious() is not None:
            del elem.getparent()[0]
    return rows


def _connector(package: Path, work: Path) -> int:
    from connectors.registry import make_connector

    block = {"protocol": "xml", "outbox": str(package.parent), "archive": str(work / "archive"), "xsd": str(XSD),
             "namespace": NS, "batch_size": 10_000,
             "datasets": {"property_rights": {"element": "PropertyRight", "key": "unit_no", "version": "version",
                                              "fields": FIELDS}}}
    connector = make_connector(block, name="bench_xml", work_root=work / "work")
    return sum(b.table.num_rows for b in connector.read("property_rights", None))


def _worker(mode: str, package: str, work: str) -> dict[str, float]:
    if mode == "connector":
        import connectors.xml_packages  # noqa: F401 — imports are start-up, not throughput
    started = time.perf_counter()
    rows = _bare(Path(package)) if mode == "bare" else _connector(Path(package), Path(work))
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run(mode: str, package: Path, work: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, str(package), str(work)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(argv[1], argv[2], argv[3])))
        return 0
    smoke = "--smoke" in argv
    big_mb, small_mb = (2, 1) if smoke else (500, 50)
    with tempfile.TemporaryDirectory(prefix="bench_xml_") as tmp:
        root = Path(tmp)
        results = {}
        for label, mb in (("big", big_mb), ("small", small_mb)):
            outbox = root / label / "outbox"
            outbox.mkdir(parents=True)
            package = outbox / "package.xml"
            n = make_package(package, mb)
            print(f"{label}: {mb} MB package with {n:,} records")
            if label == "big":
                results["bare"] = _run("bare", package, root / label)
            results[label] = _run("connector", package, root / label)
    bare, conn, small = results["bare"], results["big"], results["small"]
    ratio = conn["rate"] / bare["rate"]
    print(f"{'path':<40}{'records':>10}{'rec/s':>10}{'peak MB':>10}")
    for label, r in [("connector (validate, spill, ack)", conn), ("bare lxml iterparse + XSD + extract", bare),
                     (f"connector at {small_mb} MB", small)]:
        print(f"{label:<40}{int(r['rows']):>10,}{r['rate']:>10,.0f}{r['peak_mb']:>10.1f}")
    growth = conn["peak_mb"] - small["peak_mb"]
    print(f"connector / bare = {ratio:.2f}x (target >= 0.80); peak RSS growth {small_mb} -> {big_mb} MB = "
          f"{growth:.1f} MB (target <= 50)")
    if smoke:
        print("smoke run: targets not asserted")
        return 0
    return 0 if ratio >= 0.8 and growth <= 50 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
