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

Beside it: the field paths and the one-walk record plan (:mod:`connectors.xml_records`), the XSD's
root children and its constant-memory rewrite (:mod:`connectors.xml_schema`), the share's I/O and
the hashing reader (:mod:`connectors.xml_share`), the refusals (:mod:`connectors.xml_refusals`).

One job, one module: the connector's read of one package after another, from listing to
acknowledgement, with the resume and quarantine rules that tie those steps together.
"""

from __future__ import annotations

import os
import shutil
import string
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from lxml import etree

from connectors.base import Batch, CheckResult, State, WriteResult, with_meta
from connectors.config import dataset_block, get_connection, source_schema
from connectors.errors import (
    BadRecord,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorError,
    ConnectorUnavailable,
)
from connectors.xml_records import FieldPath, RecordPlan, arrow_type, content_version, element_depth
from connectors.xml_refusals import HARDENED, PackageRejected, PrologGuard, diagnose, schema_refusal
from connectors.xml_schema import XS, repeat_choices_as_sequences, root_children
from connectors.xml_share import HashingReader, file_sha, on_share, share_error
from hub.masking import mask_record
from hub.settings import REPO_ROOT, get_settings

#: how many package hashes the state remembers (the marker files are the long-term index)
DONE_MEMORY = 500


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
        return dict(source_schema()["$defs"]["xml"])

    def _where(self, dataset: str | None = None) -> str:
        return f"source={self.name} outbox={self.outbox}" + (f" dataset={dataset}" if dataset else "")

    @staticmethod
    def _expand(value: str) -> Path:
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
        root = self._work_root or get_settings().home / "connectors"
        return Path(root) / self.name / "packages"

    def schema(self) -> Any:
        """The XSD, parsed once with the same hardened settings as the packages."""
        if self._schema is None:
            xsd = self.block.get("xsd")
            if not xsd:
                raise ConnectorConfigError("source block has no xsd", where=self._where())
            path = Path(xsd) if Path(xsd).is_absolute() else REPO_ROOT / xsd
            if not path.exists():
                raise ConnectorConfigError(f"XSD {path} not found", where=self._where())
            parser = etree.XMLParser(**HARDENED)
            doc = etree.parse(str(path), parser)
            repeat_choices_as_sequences(doc)
            self._schema = etree.XMLSchema(doc)
            globals_ = [e.get("name") for e in doc.getroot().iterchildren(f"{XS}element")]
            self._root = self.block.get("root") or (globals_[0] if len(globals_) == 1 else None)
            if not self._root:
                raise ConnectorConfigError(
                    "the XSD declares several global elements; name the package root",
                    where=self._where(),
                    action="set source.root",
                )
            self._root_children = root_children(doc, self._root)
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
            raise share_error(exc, outbox, self._where(), "listing") from exc

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
            raise share_error(exc, sidecar, where, "reading") from exc
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
                sha = file_sha(package, where)
                if sha in done or self._marker(sha, dataset).exists():
                    if not preview:
                        self._finish(package, sha, dataset, rejected=True)
                    return
                size = on_share(package, where, "reading", lambda: package.stat().st_size)
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
        on_share(package, self._where(dataset), "acknowledging", acknowledge)

    def _parse(self, package: Path, ds: Mapping[str, Any], spill: Path, where: str) -> tuple[str, int, list[BadRecord]]:
        """One streaming, validating pass: (sha256, rows spilled, record-level bad records)."""
        size = on_share(package, where, "reading", lambda: package.stat().st_size)
        if size > self.max_bytes:
            raise PackageRejected("package_too_large", f"{size} bytes exceeds max_package_bytes {self.max_bytes}")
        fields = self._fields(ds)
        plan = RecordPlan(fields)
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
            pa.table({f.column: pa.array([], arrow_type(f)) for f in fields}),
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
            arrays = [pa.array(col, arrow_type(f)) for col, f in zip(cols, fields, strict=True)]
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
        source = HashingReader(package, max_bytes=self.max_bytes, where=where, prolog=PrologGuard())
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
                        depth = element_depth(elem)
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
                            versions.append("None" if version_col else content_version(values))
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
        source = HashingReader(package, max_bytes=self.max_bytes, where=where)
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


def _remember(done: list[str], sha: str) -> list[str]:
    return ([*done, sha] if sha not in done else list(done))[-DONE_MEMORY:]
