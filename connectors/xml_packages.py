"""The XML exchange-package connector (交换包接入, lxml): streaming, validated, hardened.

Departments such as land registration (不动产登记) drop packages into an outbox directory,
each with a ``<name>.xml.sha256`` sidecar. For every package not yet read:

1. the sidecar must match the SHA-256 computed while parsing (mismatch → quarantine);
2. the parser is hardened (:mod:`connectors.xml_refusals`): a DOCTYPE is refused by libxml2
   parsing the prolog, in any encoding, whatever precedes it; no entity expansion (an entity
   reference refuses the package), no network, ``huge_tree`` off (libxml2's depth and
   text-size limits stay on), a size limit per package and a depth limit per record;
3. records are extracted in one streaming ``iterparse`` pass validated against the XSD
   (``schema=``), each record's fields in one walk over its children, and processed elements
   cleared, keeping memory constant; rows are spilled to a local Arrow IPC file, and only once
   the whole package has validated are they emitted — a truncated or invalid package is
   quarantined *whole*, with its reason (libxml2's own message, line and column);
4. when every consuming dataset (``consumers``, default: the block's datasets) has read a
   package, it is acknowledged
   (``<name>.xml.ack`` holding the SHA-256 read) and moved to the archive.

A preview (``read(..., limit=N)``, ``hub connectors read``) changes nothing: no marker, no
acknowledgement, no move — a refused package is only reported as a bad record.

Idempotent by content hash: a package whose hash was already read is skipped. A resumed read
re-parses the package it stopped in and emits from its checkpoint offset. The exchange share
failing mid-read (unmounted, I/O error, a listed package gone) is :class:`ConnectorUnavailable`
— transient: nothing of that package was emitted, and the next run reads it again. Packages
declared in GB18030 (common in Chinese government feeds) are decoded by libxml2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import string
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.base import Batch, CheckResult, State, WriteResult, with_meta
from connectors.config import dataset_block, get_connection
from connectors.errors import (
    BadRecord,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorError,
    ConnectorUnavailable,
)
from connectors.xml_refusals import HARDENED, PackageRejected, PrologGuard, diagnose, schema_refusal
from hub.masking import mask_record
from hub.settings import REPO_ROOT

#: how many package hashes the state remembers (the marker files are the long-term index)
DONE_MEMORY = 500

_XS = "{http://www.w3.org/2001/XMLSchema}"


class _HashingReader:
    """The package file for the parser, hashing exactly the bytes the parser reads (one pass).

    Hashing in the parser's thread costs ~0.3 s per 500 MB (SHA-NI), under 1 % of the read; a
    hashing thread beside the parser could save no more than that (docs/decisions/0007).
    An I/O error on the share becomes :class:`ConnectorUnavailable`; reading past
    ``max_bytes`` (a package still growing) :class:`PackageRejected`. With a ``prolog``
    guard, every chunk goes to it before the parser gets it (a DOCTYPE is refused there).
    """

    def __init__(self, path: Path, *, max_bytes: int, where: str, prolog: PrologGuard | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.where = where
        self.prolog = prolog
        self.sha = hashlib.sha256()
        self.bytes = 0
        # a 1 MB buffer: lxml asks for 32 KB at a time, the share sees few large reads
        self._fh = _open_on_share(path, where, buffering=1 << 20)

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._fh.read(n)
        except OSError as exc:
            raise _share_error(exc, self.path, self.where, "reading") from exc
        self.bytes += len(data)
        if self.bytes > self.max_bytes:
            raise PackageRejected("package_too_large", f"more than max_package_bytes {self.max_bytes} bytes read")
        self.sha.update(data)
        if self.prolog is not None and not self.prolog.done:
            self.prolog.feed(data)
        return data

    def finish(self) -> str:
        """Hash the rest (a parser that stopped early must still report the file's hash)."""
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()

    def close(self) -> None:
        self._fh.close()


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


_UNSET = object()


class _RecordPlan:
    """A dataset's field paths compiled for one walk over each record's children.

    Gives the same values as :meth:`FieldPath.extract` field by field, which calls
    ``findall``/``findtext`` per field: lxml's ElementPath runs in Python, so that costs
    several times the parse itself. Here a record's children are visited once, the
    children of a nested element (``Owner/Name``) once per child.
    """

    def __init__(self, fields: Sequence[FieldPath]) -> None:
        self.size = len(fields)
        self.attrs = [(i, f.attr or "") for i, f in enumerate(fields) if f.child is None]
        # per child tag: (own-text columns, (attribute, column) pairs, grandchild tag -> columns)
        general: dict[str, tuple[list[int], list[tuple[str, int]], dict[str, list[int]]]] = {}
        for i, f in enumerate(fields):
            if f.child is None:
                continue
            texts, attrs, leaves = general.setdefault(f.child, ([], [], {}))
            if f.attr:
                attrs.append((f.attr, i))
            elif f.leaf:
                leaves.setdefault(f.leaf, []).append(i)
            else:
                texts.append(i)
        # a child whose only use is its own text in one scalar column: the common case, one lookup
        self.fast = {
            tag: texts[0]
            for tag, (texts, attrs, leaves) in general.items()
            if len(texts) == 1 and not attrs and not leaves and not fields[texts[0]].many
        }
        self.general = {tag: spec for tag, spec in general.items() if tag not in self.fast}
        self.fast_columns = list(self.fast.values())
        self.list_columns = [i for i, f in enumerate(fields) if f.child is not None and f.child not in self.fast]
        self.collapse = [i for i in self.list_columns if not fields[i].many]
        self.many_columns = [i for i in self.list_columns if fields[i].many]
        self.template: list[Any] = [None] * self.size
        for i in self.fast_columns:
            self.template[i] = _UNSET

    def extract(self, elem: Any) -> tuple[Any, ...]:
        """One record's values in field order; repeated paths as tuples."""
        vals = self.template[:]
        for i in self.list_columns:
            vals[i] = []
        for i, attr in self.attrs:
            vals[i] = elem.get(attr) if attr else elem.text
        fast, general = self.fast, self.general
        repeated: dict[int, list[Any]] | None = None
        for child in elem:
            tag = child.tag
            one = fast.get(tag)
            if one is not None:
                if vals[one] is _UNSET:
                    vals[one] = child.text
                else:
                    repeated = repeated if repeated is not None else {}
                    repeated.setdefault(one, [vals[one]]).append(child.text)
                continue
            spec = general.get(tag)
            if spec is None:
                continue
            texts, attrs, leaves = spec
            if texts:
                text = child.text
                for i in texts:
                    vals[i].append(text)
            for attr, i in attrs:
                vals[i].append(child.get(attr))
            if leaves:
                found: dict[str, str] = {}
                for grand in child:
                    gtag = grand.tag
                    if gtag in leaves and gtag not in found:
                        found[gtag] = grand.text or ""  # findtext: "" for an empty element
                for gtag, columns in leaves.items():
                    value = found.get(gtag)
                    for i in columns:
                        vals[i].append(value)
        for i in self.fast_columns:
            if vals[i] is _UNSET:
                vals[i] = None
        if repeated:
            for i, values in repeated.items():
                vals[i] = ";".join(v or "" for v in values)
        for i in self.collapse:
            values = vals[i]
            vals[i] = None if not values else values[0] if len(values) == 1 else ";".join(v or "" for v in values)
        # tuples of strings drop out of the garbage collector's tracking at its first pass, so the
        # batch of rows held until the next spill costs no full collections (lists would: ~20 %)
        for i in self.many_columns:
            vals[i] = tuple(vals[i])
        return tuple(vals)


class XmlPackageConnector:
    """Reads XML exchange packages from a department's outbox directory."""

    protocol = "xml"
    directions = frozenset({"read"})

    def __init__(self, name: str, block: Mapping[str, Any], *, work_root: Path | None = None) -> None:
        self.name = name
        self.personal_columns: dict[str, str] = {}
        self.block = dict(block)
        self.ns: str = self.block.get("namespace", "")
        self.batch_size = int(self.block.get("batch_size", 10_000))
        self.max_bytes = int(self.block.get("max_package_bytes", 2 * 1024**3))
        self.max_depth = int(self.block.get("max_depth", 32))
        self.pattern = self.block.get("pattern", "*.xml")
        self._work_root = work_root
        self._schema: Any = None
        self._root: str | None = None
        self._root_children: list[str] = []

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
            parser = etree.XMLParser(**HARDENED)
            doc = etree.parse(str(path), parser)
            _repeat_choices_as_sequences(doc)
            self._schema = etree.XMLSchema(doc)
            globals_ = [e.get("name") for e in doc.getroot().iterchildren(f"{_XS}element")]
            self._root = self.block.get("root") or (globals_[0] if len(globals_) == 1 else None)
            if not self._root:
                raise ConnectorConfigError(
                    "the XSD declares several global elements; name the package root",
                    where=self._where(),
                    action="set source.root",
                )
            self._root_children = _root_children(doc, self._root)
        return self._schema

    def _fields(self, ds: Mapping[str, Any]) -> list[FieldPath]:
        return [FieldPath.parse(col, path, self.ns) for col, path in ds["fields"].items()]

    # --- verbs -------------------------------------------------------------------------
    def check(self) -> CheckResult:
        try:
            outbox = self.outbox
            if not outbox.is_dir():
                raise ConnectorUnavailable(
                    f"outbox directory {outbox} does not exist or is not mounted",
                    where=self._where(),
                    action="mount the department's exchange share or fix the outbox path",
                )
            if not os.access(outbox, os.R_OK | os.X_OK):
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
            out[dataset] = {
                "type": "object",
                "properties": props,
                "x-source-key": ds["key"],
                "x-element": ds["element"],
            }
        return out

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        raise ConnectorConfigError(
            "XML packages are pull-only here",
            where=self._where(dataset),
            action="push to this department through its webhook or SOAP connector",
        )

    def _pending(self) -> list[Path]:
        outbox = self.outbox
        try:
            if not outbox.is_dir():
                raise ConnectorUnavailable(
                    f"outbox directory {outbox} does not exist or is not mounted",
                    where=self._where(),
                    action="mount the department's exchange share or fix the outbox path",
                )
            # a package is complete once its sidecar exists (the department writes it last)
            return sorted(p for p in outbox.glob(self.pattern) if p.with_name(p.name + ".sha256").exists())
        except OSError as exc:
            raise _share_error(exc, outbox, self._where(), "listing") from exc

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        ds = dataset_block(self.block, dataset, where=self._where(dataset))
        state = dict(state or {})
        done: list[str] = list(state.get("done") or [])
        current = state.get("current") or {}
        emitted = 0
        for package in self._pending():
            if not package.exists():
                if package.with_name(package.name + ".ack").exists():
                    continue  # acknowledged and archived meanwhile by another dataset's read
                # listed a moment ago, now gone without an acknowledgement: the share went away
                # (unmounted, or a stale handle); stop here, the next run resumes with this package
                raise ConnectorUnavailable(
                    f"package {package.name} was listed but can no longer be read",
                    where=self._where(dataset),
                    action="check the department's exchange share (mount, network); the run retries and "
                    "resumes at this package",
                )
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
        self,
        package: Path,
        dataset: str,
        ds: Mapping[str, Any],
        state: State,
        done: list[str],
        current: Mapping[str, Any],
        limit: int | None,
    ) -> Iterator[Batch]:
        where = self._where(dataset)
        preview = limit is not None  # a preview changes nothing: no marker, acknowledgement or move
        sidecar = package.with_name(package.name + ".sha256")
        try:
            expected = (sidecar.read_text(encoding="ascii", errors="replace").split() or [""])[0].lower()
        except OSError as exc:
            raise _share_error(exc, sidecar, where, "reading") from exc
        self.work.mkdir(parents=True, exist_ok=True)
        spill = self.work / f"spill-{uuid.uuid4().hex}.arrow"
        try:
            try:
                sha, rows, bad = self._parse(package, ds, spill, where)
                if sha != expected:
                    raise PackageRejected(
                        "checksum_mismatch",
                        f"sidecar says sha256 {expected[:16]}…, the package read has {sha[:16]}…; "
                        "the package was altered or cut in transit — the department must resend it",
                    )
            except PackageRejected as rej:
                sha = _file_sha(package, where)
                if sha in done or self._marker(sha, dataset).exists():
                    if not preview:
                        self._finish(package, sha, dataset, rejected=True)
                    return
                size = _on_share(package, where, "reading", lambda: package.stat().st_size)
                bad_pkg = BadRecord(
                    rej.reason_code,
                    rej.reason,
                    source_key=package.name,
                    source_version=sha,
                    raw={"package": package.name, "bytes": size},
                    source_ref=str(package),
                )
                yield Batch(
                    with_meta(pa.table({}), pa.array([], pa.string()), pa.array([], pa.string())),
                    [bad_pkg],
                    {**state, "done": _remember(done, sha), "current": None},
                )
                if not preview:
                    self._finish(package, sha, dataset, rejected=True)
                return
            if sha in done or self._marker(sha, dataset).exists():
                if not preview:
                    self._finish(package, sha, dataset, rejected=False)  # same content read before: idempotent
                return
            skip = int(current.get("offset", 0)) if current.get("sha") == sha else 0
            yield from self._emit(spill, rows, bad, skip, sha, state, done, limit)
            if not preview:
                self._finish(package, sha, dataset, rejected=False)
        finally:
            spill.unlink(missing_ok=True)

    def _emit(
        self,
        spill: Path,
        rows: int,
        bad: list[BadRecord],
        skip: int,
        sha: str,
        state: State,
        done: list[str],
        limit: int | None,
    ) -> Iterator[Batch]:
        if not rows:
            yield Batch(
                with_meta(pa.table({}), pa.array([], pa.string()), pa.array([], pa.string())),
                bad,
                {**state, "done": _remember(done, sha), "current": None},
            )
            return
        offset = 0
        # read batch by batch, not memory-mapped: mapped pages would count against the flat RSS
        with pa.OSFile(str(spill), "rb") as source:
            spilled = pa.ipc.open_file(source)
            for index in range(spilled.num_record_batches):
                table = pa.Table.from_batches([spilled.get_batch(index)])
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
        target = self.archive / ("rejected" if rejected else "accepted")

        def acknowledge() -> None:
            tmp.write_text(sha + "\n", encoding="ascii")
            os.replace(tmp, ack)
            target.mkdir(parents=True, exist_ok=True)
            for f in (package, package.with_name(package.name + ".sha256")):
                if f.exists():
                    shutil.move(str(f), target / f.name)

        # the marker is written: a failed acknowledgement is repeated by the next run, nothing re-emitted
        _on_share(package, self._where(dataset), "acknowledging", acknowledge)

    def _parse(self, package: Path, ds: Mapping[str, Any], spill: Path, where: str) -> tuple[str, int, list[BadRecord]]:
        """One streaming, validating pass: (sha256, rows spilled, record-level bad records)."""
        from lxml import etree

        size = _on_share(package, where, "reading", lambda: package.stat().st_size)
        if size > self.max_bytes:
            raise PackageRejected("package_too_large", f"{size} bytes exceeds max_package_bytes {self.max_bytes}")
        fields = self._fields(ds)
        plan = _RecordPlan(fields)
        schema = self.schema()
        q = (lambda n: f"{{{self.ns}}}{n}") if self.ns else (lambda n: n)
        tag, root_tag = q(ds["element"]), q(str(self._root))
        # the root's other children end too, so they are cleared as they come, not only when the
        # next record arrives (a run of other records would otherwise stay in the tree)
        tags = {tag, root_tag, *(q(t) for t in self._root_children)}
        columns = list(ds["fields"])
        key_col, version_col = ds["key"], ds.get("version")
        key_i = columns.index(key_col) if key_col in columns else None
        version_i = columns.index(version_col) if version_col in columns else None
        arrow_schema = with_meta(
            pa.table({f.column: pa.array([], _arrow_type(f)) for f in fields}),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        ).schema
        writer: Any = None
        sink: Any = None
        spilled = 0
        bad: list[BadRecord] = []
        rows: list[tuple[Any, ...]] = []
        versions: list[str] = []

        def flush() -> None:
            nonlocal writer, sink, spilled, versions
            if not rows:
                return
            cols = list(zip(*rows, strict=True))
            arrays = [pa.array(col, _arrow_type(f)) for col, f in zip(cols, fields, strict=True)]
            assert key_i is not None  # rows only exist when keys do
            keys = (
                arrays[key_i]
                if arrow_schema.field(key_i).type == pa.string()
                else pa.array([str(k) for k in cols[key_i]], pa.string())
            )
            if version_i is not None:
                versions = [str(v) for v in cols[version_i]]
            table = with_meta(pa.Table.from_arrays(arrays, names=columns), keys, pa.array(versions, pa.string()))
            if writer is None:
                sink = pa.OSFile(str(spill), "wb")
                writer = pa.ipc.new_file(sink, arrow_schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))
            writer.write_table(table)
            spilled += len(rows)
            rows.clear()
            versions = []

        root: Any = None  # the root seen to start: the one document a package may hold
        closed = False
        failure: Exception | None = None
        last_parent: Any = None
        source = _HashingReader(package, max_bytes=self.max_bytes, where=where, prolog=PrologGuard())
        try:
            context = etree.iterparse(
                source,
                events=("start", "end"),
                tag=sorted(tags),
                schema=schema,
                remove_comments=True,
                remove_pis=True,
                **HARDENED,
            )
            for event, elem in context:
                if event == "start":
                    if elem.getparent() is None:
                        if root is not None:
                            # a second root: lxml forgave an error it could not see and restarted
                            # on the next chunk (connectors.xml_refusals); nothing after it counts
                            closed = False
                            break
                        root = elem
                    continue
                if elem is root:
                    closed = True
                    continue
                etag = elem.tag
                parent = elem.getparent()
                if etag == tag:
                    if parent is not last_parent:  # records share their parent: walk up once per parent
                        depth = _depth(elem)
                        if depth > self.max_depth:
                            raise PackageRejected("xml_too_deep", f"record nested {depth} levels deep")
                        last_parent = parent
                    values = plan.extract(elem)
                    key = values[key_i] if key_i is not None else None
                    if not key:
                        bad.append(
                            BadRecord(
                                "missing_source_key",
                                f"{ds['element']} has no {key_col}",
                                source_ref=f"{package.name}:{elem.sourceline}",
                                raw=mask_record(
                                    {c: v for c, v in zip(columns, values, strict=True) if isinstance(v, str)},
                                    self.personal_columns,
                                ),
                            )
                        )
                    else:
                        rows.append(values)
                        if version_i is None:
                            versions.append("None" if version_col else _content_version(values))
                        if len(rows) >= self.batch_size:
                            flush()
                elif parent is None or parent.getparent() is not None:
                    continue  # that name nested inside a record: the record's own content, not a sibling
                elem.clear(keep_tail=True)
                # drop processed siblings so the parent does not grow (constant memory)
                while elem.getprevious() is not None:
                    del parent[0]
            flush()
            # the root's end event proves the end: with an XSD plugged in, lxml (6.1) raises
            # nothing for a truncated package or a fatal error it forgave
            if closed:
                return source.finish(), spilled, bad
        except etree.XMLSyntaxError as exc:
            failure = exc
        finally:
            source.close()
            if writer is not None:
                writer.close()
                sink.close()
        raise self._refusal(package, where, tags, root_tag, failure)

    def _refusal(
        self, package: Path, where: str, tags: set[str], root_tag: str, failure: Exception | None
    ) -> PackageRejected:
        """Why the validating pass failed, in libxml2's words: a second pass without the XSD."""
        source = _HashingReader(package, max_bytes=self.max_bytes, where=where)
        try:
            found = diagnose(source, tags, root_tag)
        finally:
            source.close()
        if found is not None:
            return found
        if failure is not None:
            return schema_refusal(failure)
        return PackageRejected(
            "xml_not_well_formed",
            f"the validating parser stopped before </{self._root}> without an error; "
            "the department must check and resend the package",
        )


def _content_version(values: Sequence[Any]) -> str:
    """Without a version field, a record's version is the hash of its content.

    Hashed in the form it has always been hashed in (a list, repeated paths as lists), so
    versions stay stable across releases and unchanged records are not re-emitted.
    """
    as_lists = [list(v) if isinstance(v, tuple) else v for v in values]
    return hashlib.sha256(repr(as_lists).encode()).hexdigest()[:16]


def _arrow_type(field: FieldPath) -> pa.DataType:
    # a repeated path ("Owner/Name[]") is a list column; "[]" on the record's own attribute has one value
    return pa.list_(pa.string()) if field.many and field.child is not None else pa.string()


def _depth(elem: Any) -> int:
    depth = 0
    node = elem
    while node is not None:
        depth += 1
        node = node.getparent()
    return depth


def _root_children(doc: Any, root: str) -> list[str]:
    """Local names of the elements the XSD allows directly under the package root.

    Follows the root's inline or named complex type through sequence/choice/all; an ``xs:any``
    or a construct not followed here yields what was found so far (those other children are
    then cleared when the next record arrives, as before).
    """
    top = doc.getroot()
    types = {t.get("name"): t for t in top.iterchildren(f"{_XS}complexType")}
    decl = next((e for e in top.iterchildren(f"{_XS}element") if e.get("name") == root), None)
    if decl is None:
        return []
    ctype = decl.find(f"{_XS}complexType")
    if ctype is None and decl.get("type"):
        ctype = types.get(decl.get("type").rpartition(":")[2])
    names: list[str] = []
    stack = [ctype] if ctype is not None else []
    while stack:
        node = stack.pop()
        for child in node.iterchildren(f"{_XS}sequence", f"{_XS}choice", f"{_XS}all", f"{_XS}element"):
            if child.tag == f"{_XS}element":
                name = child.get("name") or (child.get("ref") or "").rpartition(":")[2]
                if name:
                    names.append(name)
            else:
                stack.append(child)
    return names


def _repeat_choices_as_sequences(doc: Any) -> None:
    """Rewrite each repeated ``xs:choice`` as a repeated ``xs:sequence`` holding that choice.

    ``<choice min max>A|B</choice>`` and ``<sequence min max><choice>A|B</choice></sequence>``
    accept exactly the same children, but libxml2 (2.14) compiles the first into an automaton
    whose streaming validation keeps state for every repetition: validating a package whose
    root is ``<choice maxOccurs="unbounded">`` of records (the land XSD's) grew by ~100 MB per
    800,000 records, and was slower. The second form validates in constant memory. Only the
    schema document given is rewritten (not ``xs:include``-d ones).
    """
    for choice in list(doc.iter(f"{_XS}choice")):
        if choice.get("maxOccurs", "1") == "1":
            continue
        sequence = choice.makeelement(f"{_XS}sequence", {})
        for occurs in ("minOccurs", "maxOccurs"):
            if occurs in choice.attrib:
                sequence.set(occurs, choice.attrib.pop(occurs))
        choice.addprevious(sequence)
        sequence.append(choice)  # moves the choice into the sequence


def _share_error(exc: OSError, path: Path, where: str, doing: str) -> ConnectorError:
    """An OS error on the department's share as a typed connector error."""
    if isinstance(exc, PermissionError):
        return ConnectorAuthError(
            f"no permission {doing} {path.name}: {exc.strerror}",
            where=where,
            action="grant the hub's service account read/write on the exchange share",
        )
    return ConnectorUnavailable(
        f"the exchange share failed while {doing} {path.name}: {exc.strerror or exc}",
        where=where,
        action="check the department's exchange share (mount, network); the run retries and resumes at this package",
    )


def _on_share(path: Path, where: str, doing: str, op: Any) -> Any:
    try:
        return op()
    except OSError as exc:
        raise _share_error(exc, path, where, doing) from exc


def _open_on_share(path: Path, where: str, buffering: int = -1) -> Any:
    return _on_share(path, where, "opening", lambda: open(path, "rb", buffering=buffering))


def _file_sha(path: Path, where: str) -> str:
    sha = hashlib.sha256()
    with _open_on_share(path, where) as fh:
        while chunk := _on_share(path, where, "reading", lambda: fh.read(1 << 20)):
            sha.update(chunk)
    return sha.hexdigest()


def _remember(done: list[str], sha: str) -> list[str]:
    return ([*done, sha] if sha not in done else list(done))[-DONE_MEMORY:]
