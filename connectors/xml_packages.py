"""The XML exchange-package connector (交换包接入, lxml): streaming, validated, hardened.

Departments such as land registration (不动产登记) drop packages into an outbox directory,
each with a ``<name>.xml.sha256`` sidecar. For every package not yet read:

1. the sidecar must match the SHA-256 computed while parsing (mismatch → quarantine);
2. the parser is hardened: no DTD (a DOCTYPE is refused), no entity expansion, no network,
   ``huge_tree`` off (libxml2's depth and text-size limits stay on), a size limit per package
   and a depth limit per record;
3. records are extracted in one streaming ``iterparse`` pass validated against the XSD
   (``schema=``), ``elem.clear()`` keeping memory constant; they are spilled to a local
   Parquet file, and only once the whole package has validated are they emitted — a
   truncated or invalid package is quarantined *whole*, with its reason;
4. when every consuming dataset (``consumers``, default: the block's datasets) has read a
   package, it is acknowledged
   (``<name>.xml.ack`` holding the SHA-256 read) and moved to the archive.

Idempotent by content hash: a package whose hash was already read is skipped. Packages
declared in GB18030 (common in Chinese government feeds) are decoded by libxml2.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import string
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import Batch, CheckResult, State, WriteResult, with_meta
from connectors.config import dataset_block, get_connection
from connectors.errors import BadRecord, ConnectorConfigError, ConnectorError, ConnectorUnavailable
from hub.settings import REPO_ROOT

#: how many package hashes the state remembers (the marker files are the long-term index)
DONE_MEMORY = 500


class _HashingReader:
    """A file wrapper that hashes exactly the bytes the parser reads (one pass over the file)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.bytes += len(data)
        return data

    def finish(self) -> str:
        """Hash the rest (a parser that stopped early must still report the file's hash)."""
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()


class PackageRejected(Exception):
    """A whole package refused, with a stable reason code."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


@dataclass(frozen=True)
class FieldPath:
    """One output column: ``@attr``, ``Child``, ``Child/@attr``, ``Child/Grand``; ``[]`` = list."""

    column: str
    child: str | None
    leaf: str | None
    attr: str | None
    many: bool

    @classmethod
    def parse(cls, column: str, path: str, ns: str) -> FieldPath:
        many = path.endswith("[]")
        path = path.removesuffix("[]")
        q = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
        parts = path.split("/")
        if len(parts) == 1:
            p = parts[0]
            return cls(column, None, None, p[1:], many) if p.startswith("@") else cls(column, q(p), None, None, many)
        if len(parts) == 2:
            a, b = parts
            if b.startswith("@"):
                return cls(column, q(a), None, b[1:], many)
            return cls(column, q(a), q(b), None, many)
        raise ConnectorConfigError(f"field path {path!r} is deeper than Child/Grandchild")

    def extract(self, elem: Any) -> Any:
        if self.child is None:
            return elem.get(self.attr) if self.attr else elem.text
        nodes = elem.findall(self.child)
        if self.attr:
            values = [n.get(self.attr) for n in nodes]
        else:
            values = [n.findtext(self.leaf) if self.leaf else n.text for n in nodes]
        if self.many:
            return values
        if not values:
            return None
        # repeated children in a scalar column: ';'-joined, in document order
        return values[0] if len(values) == 1 else ";".join(v or "" for v in values)


class XmlPackageConnector:
    """Reads XML exchange packages from a department's outbox directory."""

    protocol = "xml"

    def __init__(self, name: str, block: Mapping[str, Any], *, work_root: Path | None = None) -> None:
        self.name = name
        self.block = dict(block)
        self.ns: str = self.block.get("namespace", "")
        self.batch_size = int(self.block.get("batch_size", 10_000))
        self.max_bytes = int(self.block.get("max_package_bytes", 2 * 1024**3))
        self.max_depth = int(self.block.get("max_depth", 32))
        self.pattern = self.block.get("pattern", "*.xml")
        self._work_root = work_root
        self._schema: Any = None
        self._root: str | None = None

    # --- configuration -----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        from connectors.config import source_schema

        return dict(source_schema()["$defs"]["xml"])

    def _where(self, dataset: str | None = None) -> str:
        return f"source={self.name} outbox={self.outbox}" + (f" dataset={dataset}" if dataset else "")

    @staticmethod
    def _expand(value: str) -> Path:
        from hub.settings import get_settings

        env = {**os.environ, "HUB_HOME": str(get_settings().home)}
        return Path(string.Template(value).safe_substitute(env)).expanduser()

    @property
    def outbox(self) -> Path:
        if self.block.get("conn_id"):
            path = get_connection(self.block["conn_id"]).extra.get("path")
            if not path:
                raise ConnectorConfigError("the Connection has no extra.path (the outbox directory)")
            return self._expand(str(path))
        if not self.block.get("outbox"):
            raise ConnectorConfigError("source block has neither conn_id nor outbox")
        return self._expand(str(self.block["outbox"]))

    @property
    def archive(self) -> Path:
        if self.block.get("archive"):
            return self._expand(str(self.block["archive"]))
        return self.outbox.parent / "archive"

    @property
    def work(self) -> Path:
        from hub.settings import get_settings

        root = self._work_root or get_settings().home / "connectors"
        return Path(root) / self.name / "packages"

    def schema(self) -> Any:
        """The XSD, parsed once with the same hardened settings as the packages."""
        if self._schema is None:
            from lxml import etree

            xsd = self.block.get("xsd")
            if not xsd:
                raise ConnectorConfigError("source block has no xsd", where=self._where())
            path = Path(xsd) if Path(xsd).is_absolute() else REPO_ROOT / xsd
            if not path.exists():
                raise ConnectorConfigError(f"XSD {path} not found", where=self._where())
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            doc = etree.parse(str(path), parser)
            self._schema = etree.XMLSchema(doc)
            xs = "{http://www.w3.org/2001/XMLSchema}"
            globals_ = [e.get("name") for e in doc.getroot().iterchildren(f"{xs}element")]
            self._root = self.block.get("root") or (globals_[0] if len(globals_) == 1 else None)
            if not self._root:
                raise ConnectorConfigError("the XSD declares several global elements; name the package root",
                                           where=self._where(), action="set source.root")
        return self._schema

    def _fields(self, ds: Mapping[str, Any]) -> list[FieldPath]:
        return [FieldPath.parse(col, path, self.ns) for col, path in ds["fields"].items()]

    # --- verbs -------------------------------------------------------------------------
    def check(self) -> CheckResult:
        try:
            outbox = self.outbox
            if not outbox.is_dir():
                raise ConnectorUnavailable(f"outbox directory {outbox} does not exist or is not mounted",
                                           where=self._where(),
                                           action="mount the department's exchange share or fix the outbox path")
            if not os.access(outbox, os.R_OK | os.X_OK):
                from connectors.errors import ConnectorAuthError

                raise ConnectorAuthError(f"no permission to read {outbox}", where=self._where())
            self.schema()
        except ConnectorError as exc:
            return CheckResult(False, str(exc), type(exc).__name__)
        return CheckResult(True, f"outbox {self.outbox} readable, {len(self._pending())} package(s) waiting")

    def discover(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for dataset, ds in (self.block.get("datasets") or {}).items():
            props = {
                col: {"type": "array", "items": {"type": ["string", "null"]}}
                if path.endswith("[]")
                else {"type": ["string", "null"]}
                for col, path in ds["fields"].items()
            }
            out[dataset] = {"type": "object", "properties": props, "x-source-key": ds["key"],
                            "x-element": ds["element"]}
        return out

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        raise ConnectorConfigError("XML packages are pull-only here", where=self._where(dataset),
                                   action="push to this department through its webhook or SOAP connector")

    def _pending(self) -> list[Path]:
        outbox = self.outbox
        if not outbox.is_dir():
            raise ConnectorUnavailable(f"outbox directory {outbox} does not exist or is not mounted",
                                       where=self._where())
        # a package is complete once its sidecar exists (the department writes it last)
        return sorted(p for p in outbox.glob(self.pattern) if p.with_name(p.name + ".sha256").exists())

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        ds = dataset_block(self.block, dataset, where=self._where(dataset))
        state = dict(state or {})
        done: list[str] = list(state.get("done") or [])
        current = state.get("current") or {}
        emitted = 0
        for package in self._pending():
            if not package.exists():  # archived meanwhile by another dataset's read
                continue
            for batch in self._read_package(package, dataset, ds, state, done, current, limit):
                yield batch
                state, emitted = batch.checkpoint, emitted + batch.table.num_rows
                done = list(state.get("done") or [])
                if limit is not None and emitted >= limit:
                    return
            current = {}

    def _marker(self, sha: str, dataset: str) -> Path:
        return self.work / sha[:2] / sha / f"{dataset}.done"

    def _read_package(
        self, package: Path, dataset: str, ds: Mapping[str, Any], state: State, done: list[str],
        current: Mapping[str, Any], limit: int | None,
    ) -> Iterator[Batch]:
        sidecar = package.with_name(package.name + ".sha256")
        expected = (sidecar.read_text(encoding="ascii", errors="replace").split() or [""])[0].lower()
        self.work.mkdir(parents=True, exist_ok=True)
        spill = self.work / f"spill-{uuid.uuid4().hex}.parquet"
        try:
            try:
                sha, rows, bad = self._parse(package, ds, spill)
                if sha != expected:
                    raise PackageRejected(
                        "checksum_mismatch",
                        f"sidecar says sha256 {expected[:16]}…, the package read has {sha[:16]}…; "
                        "the package was altered or cut in transit — the department must resend it",
                    )
            except PackageRejected as rej:
                sha = _file_sha(package)
                if sha in done or self._marker(sha, dataset).exists():
                    self._finish(package, sha, dataset, rejected=True)
                    return
                bad_pkg = BadRecord(rej.reason_code, rej.reason, source_key=package.name, source_version=sha,
                                    raw={"package": package.name, "bytes": package.stat().st_size},
                                    source_ref=str(package))
                yield Batch(with_meta(pa.table({}), pa.array([], pa.string()), pa.array([], pa.string())),
                            [bad_pkg], {**state, "done": _remember(done, sha), "current": None})
                self._finish(package, sha, dataset, rejected=True)
                return
            if sha in done or self._marker(sha, dataset).exists():
                self._finish(package, sha, dataset, rejected=False)  # same content read before: idempotent
                return
            skip = int(current.get("offset", 0)) if current.get("sha") == sha else 0
            yield from self._emit(spill, rows, bad, skip, sha, package, state, done, limit)
            if limit is None:  # a preview never acknowledges
                self._finish(package, sha, dataset, rejected=False)
        finally:
            spill.unlink(missing_ok=True)

    def _emit(
        self, spill: Path, rows: int, bad: list[BadRecord], skip: int, sha: str, package: Path,
        state: State, done: list[str], limit: int | None,
    ) -> Iterator[Batch]:
        offset = 0
        if rows:
            pf = pq.ParquetFile(spill)
            for rb in pf.iter_batches(batch_size=self.batch_size):
                table = pa.Table.from_batches([rb])
                start = offset
                offset += table.num_rows
                if offset <= skip:
                    continue
                if start < skip:
                    table = table.slice(skip - start)
                if limit is not None:
                    table = table.slice(0, limit)
                last = offset >= rows
                checkpoint = (
                    {**state, "done": _remember(done, sha), "current": None}
                    if last
                    else {**state, "done": done, "current": {"sha": sha, "offset": offset}}
                )
                yield Batch(table, bad if last else [], checkpoint)
                if limit is not None:
                    return
        else:
            yield Batch(with_meta(pa.table({}), pa.array([], pa.string()), pa.array([], pa.string())), bad,
                        {**state, "done": _remember(done, sha), "current": None})

    def _finish(self, package: Path, sha: str, dataset: str, *, rejected: bool) -> None:
        """Mark (package, dataset) done; when every dataset is done, acknowledge and archive."""
        marker = self._marker(sha, dataset)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        # several mapping files may read one outbox (land: property rights and approval results);
        # ``consumers`` names every dataset that must read a package before it is archived
        datasets = list(self.block.get("consumers") or self.block.get("datasets") or {})
        if not all(self._marker(sha, d).exists() for d in datasets) and not rejected:
            return
        ack = package.with_name(package.name + ".ack")
        tmp = ack.with_name(ack.name + ".tmp")
        tmp.write_text(sha + "\n", encoding="ascii")
        os.replace(tmp, ack)
        target = self.archive / ("rejected" if rejected else "accepted")
        target.mkdir(parents=True, exist_ok=True)
        for f in (package, package.with_name(package.name + ".sha256")):
            if f.exists():
                shutil.move(str(f), target / f.name)

    def _parse(self, package: Path, ds: Mapping[str, Any], spill: Path) -> tuple[str, int, list[BadRecord]]:
        """One streaming, validating pass: (sha256, rows spilled, record-level bad records)."""
        from lxml import etree

        size = package.stat().st_size
        if size > self.max_bytes:
            raise PackageRejected("package_too_large", f"{size} bytes exceeds max_package_bytes {self.max_bytes}")
        _refuse_doctype(package)
        fields = self._fields(ds)
        schema = self.schema()
        tag = f"{{{self.ns}}}{ds['element']}" if self.ns else ds["element"]
        root_tag = f"{{{self.ns}}}{self._root}" if self.ns else str(self._root)
        closed = False
        key_col, version_col = ds["key"], ds.get("version")
        columns: dict[str, list[Any]] = {f.column: [] for f in fields}
        writer: pq.ParquetWriter | None = None
        rows = 0
        bad: list[BadRecord] = []
        keys: list[str] = []
        versions: list[str] = []

        def flush() -> None:
            nonlocal writer, keys, versions
            if not keys:
                return
            table = with_meta(
                pa.table({c: _column(v) for c, v in columns.items()}),
                pa.array(keys, pa.string()),
                pa.array(versions, pa.string()),
            )
            if writer is None:
                writer = pq.ParquetWriter(spill, table.schema)
            writer.write_table(table)
            for v in columns.values():
                v.clear()
            keys, versions = [], []

        with open(package, "rb") as fh:
            reader = _HashingReader(fh)
            context = etree.iterparse(
                reader, events=("end",), tag=(tag, root_tag), schema=schema, resolve_entities=False,
                no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False, remove_comments=True,
                remove_pis=True,
            )
            try:
                for _, elem in context:
                    if elem.tag == root_tag:
                        closed = True
                        continue
                    depth = _depth(elem)
                    if depth > self.max_depth:
                        raise PackageRejected("xml_too_deep", f"record nested {depth} levels deep")
                    values = [f.extract(elem) for f in fields]
                    record = dict(zip(columns, values, strict=True))
                    key = record.get(key_col)
                    if not key:
                        bad.append(BadRecord("missing_source_key", f"{ds['element']} has no {key_col}",
                                             source_ref=f"{package.name}:{elem.sourceline}",
                                             raw={k: v for k, v in record.items() if isinstance(v, str)}))
                    else:
                        for col, v in zip(columns.values(), values, strict=True):
                            col.append(v)
                        keys.append(str(key))
                        versions.append(str(record.get(version_col)) if version_col else _content_version(values))
                        rows += 1
                    elem.clear(keep_tail=True)
                    # drop processed siblings so the root does not grow (constant memory)
                    while elem.getprevious() is not None:
                        del elem.getparent()[0]
                    if len(keys) >= self.batch_size:
                        flush()
                flush()
                if not closed:
                    # lxml's iterparse with resolve_entities=False and a schema does not raise on a
                    # truncated document (lxml 6.1 / libxml2 2.14): the root's end event proves the end
                    raise PackageRejected("xml_truncated", f"the package ends before </{self._root}> "
                                          "(truncated in transit?); the department must resend it")
            except etree.XMLSyntaxError as exc:
                raise PackageRejected(*_syntax_reason(exc)) from exc
            finally:
                if writer is not None:
                    writer.close()
            sha = reader.finish()
        return sha, rows, bad


def _content_version(values: list[Any]) -> str:
    """Without a version field, a record's version is the hash of its content."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _column(values: list[Any]) -> pa.Array:
    if values and isinstance(next((v for v in values if v is not None), None), list):
        return pa.array(values, pa.list_(pa.string()))
    return pa.array(values, pa.string())


def _depth(elem: Any) -> int:
    depth = 0
    node = elem
    while node is not None:
        depth += 1
        node = node.getparent()
    return depth


_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _refuse_doctype(package: Path) -> None:
    """DTDs are forbidden (entity bombs, external entities): refuse before parsing."""
    with open(package, "rb") as fh:
        head = fh.read(64 * 1024)
    root_start = re.search(rb"<[A-Za-z_]", head)
    prolog = head[: root_start.start()] if root_start else head
    if _DOCTYPE.search(prolog):
        raise PackageRejected("xml_dtd_forbidden", "the package declares a DTD; DTDs and entities are refused")


def _syntax_reason(exc: Exception) -> tuple[str, str]:
    text = str(exc)
    if "validity error" in text or "Schemas validity" in text or "Element '" in text:
        return "xml_schema_invalid", f"does not match the XSD: {text[:300]}"
    if any(s in text for s in ("Premature end", "EndTag", "Extra content", "expected '>'", "not properly terminated")):
        return "xml_truncated", f"the package ends early (truncated in transit?): {text[:300]}"
    return "xml_not_well_formed", f"not well-formed XML: {text[:300]}"


def _file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _remember(done: list[str], sha: str) -> list[str]:
    return ([*done, sha] if sha not in done else list(done))[-DONE_MEMORY:]
