"""The mapping engine (映射引擎): department batches → canonical records, whole batch at a time.

``load_mapping(path)`` checks a mapping file (schema + semantics) and returns a
:class:`DatasetMapping`; ``DatasetMapping.apply(batch)`` maps a pyarrow Table or pandas DataFrame of
source rows to a :class:`MappedBatch`: canonical ``records`` (plus ``_source_key`` and
``_source_version``), ``rejects`` (rows that cannot become a record at all, with
``reason_code``/``reason``) and ``tombstones`` (``_deleted`` rows). Counts reconcile:
``rows_in == len(records) + len(rejects) + len(tombstones)``.

Column work is vectorised (pandas/Arrow); nested repeated elements (land ``Owner``) are
flattened with Arrow, normalised as one column each and re-assembled by list offsets.

One job, one module: applying one mapping file to one batch; the file's schema is in
:mod:`mappings.spec`, its checks in :mod:`mappings.check`, the normalisers in :mod:`mappings.normalizers`.
"""

from __future__ import annotations

import datetime as dt
import os
import typing
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hub import safe_yaml
from mappings.check import Problem, canonical_fields, check_file, list_item_model, required_fields
from mappings.normalizers import _as_str, apply_normalizer, date, number, timestamp
from mappings.spec import AttributeSpec, FieldSpec, LicenseSpec, MappingSpec, NestedSpec, field_spec, parse_spec
from mappings.yamlmarks import load_marked_file

SOURCE_KEY = "_source_key"
SOURCE_VERSION = "_source_version"
DELETED = "_deleted"
DEPARTMENT = "_department"
#: prefix of the column keeping a code as the department gave it, where a normaliser turned it
#: into another code (a 15-digit resident id into its 18 digits): the identity step lists it
#: among the identity's legacy codes
GIVEN = "_given_"
DATASET = "_dataset"
REJECT_COLUMNS = [SOURCE_KEY, SOURCE_VERSION, "reason_code", "reason"]


class MappingError(ValueError):
    """A mapping file failed its checks; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class MappedBatch:
    """The outcome of mapping one batch: records, rejects, tombstones and the counts."""

    records: pd.DataFrame
    rejects: pd.DataFrame
    tombstones: pd.DataFrame
    rows_in: int
    department: str = ""
    dataset: str = ""
    entity: str = ""

    @property
    def mapped(self) -> int:
        return len(self.records)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def deleted(self) -> int:
        return len(self.tombstones)

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.mapped + self.rejected + self.deleted

    def counts(self) -> dict[str, int]:
        return {"in": self.rows_in, "mapped": self.mapped, "rejected": self.rejected, "deleted": self.deleted}


@dataclass
class DatasetMapping:
    """A checked department mapping, ready to apply to batches."""

    spec: MappingSpec
    path: Path | None = None
    _field_types: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._field_types = canonical_fields(self.spec.entity)

    # Convenience pass-throughs used by the DAG factory.
    @property
    def department(self) -> str:
        return self.spec.department

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    @property
    def entity(self) -> str:
        return self.spec.entity

    @property
    def name(self) -> str:
        return f"{self.spec.department}_{self.spec.dataset}"

    @property
    def licenses(self) -> tuple[LicenseSpec, ...]:
        return self.spec.licenses

    @property
    def source(self) -> dict[str, Any]:
        """The ``source:`` block, for ``connectors.registry.make_connector``."""
        return dict(self.spec.source)

    @property
    def pool(self) -> str:
        return self.spec.pool

    @property
    def schedule(self) -> str | None:
        return self.spec.schedule

    @property
    def expectation_suite(self) -> str:
        return self.spec.expectation_suite

    @property
    def quarantine_threshold(self) -> float:
        return self.spec.quarantine_threshold

    def source_columns(self) -> set[str]:
        """Top-level source columns this mapping reads (for connectors that project)."""
        cols: set[str] = set()
        for f in (*self.spec.fields, *(a.field for a in self.spec.attributes)):
            cols.update(p.split(".", 1)[0] for p in f.source_paths)
        for n in self.spec.nested:
            if n.source is not None:
                cols.add(n.source.split(".", 1)[0])
            for f in n.fields:
                if n.split is not None:
                    cols.update(p.split(".", 1)[0] for p in f.source_paths)
        for extra in (self.spec.source_key, self.spec.source_version):
            if extra:
                cols.add(extra.split(".", 1)[0])
        return cols

    def apply(self, batch: pa.Table | pd.DataFrame) -> MappedBatch:
        """Map a whole batch of source rows to canonical records (vectorised)."""
        table = _to_arrow(batch)
        n = table.num_rows
        index = pd.RangeIndex(n)
        with _column_pool(n) as pool:
            # the columns are independent: Arrow's kernels release the GIL, so a large batch's
            # columns are normalised on both cores (results kept in the spec's field order)
            key_job = pool.submit(self._meta, table, SOURCE_KEY, self.spec.source_key, index)
            version_job = pool.submit(self._meta, table, SOURCE_VERSION, self.spec.source_version, index)
            field_jobs = [(f.name, pool.submit(self._field, table, f, index)) for f in self.spec.fields]
            field_jobs += [(a.name, pool.submit(self._attribute, table, a, index)) for a in self.spec.attributes]
            keys = key_job.result()
            versions = version_job.result()
            fields = [(name, job.result()) for name, job in field_jobs]
        deleted = (
            pd.Series(table[DELETED].to_numpy(zero_copy_only=False), index=index).fillna(False).astype(bool)
            if DELETED in table.column_names
            else pd.Series(False, index=index)
        )
        tombstones = pd.DataFrame({SOURCE_KEY: keys[deleted], SOURCE_VERSION: versions[deleted]})

        out: dict[str, pd.Series] = {SOURCE_KEY: keys, SOURCE_VERSION: versions}
        out.update(fields)
        for f in self.spec.fields:
            given = _as_given(table, f, index, out[f.name])
            if given is not None:
                out[GIVEN + f.name] = given
        for nested in self.spec.nested:
            out[nested.name] = _nested(table, nested, index, list_item_model(self._field_types[nested.name]))
        records = pd.DataFrame(out, index=index)
        records.insert(0, DATASET, self.spec.dataset)
        records.insert(0, DEPARTMENT, self.spec.department)

        reason_code = pd.Series(pd.NA, index=index, dtype="str")
        reason = pd.Series(pd.NA, index=index, dtype="str")

        def reject(mask: pd.Series, code: str, text: str) -> None:
            new = mask & reason_code.isna() & ~deleted
            reason_code[new] = code
            reason[new] = text

        reject(keys.isna() | (keys == ""), "missing_source_key", "the record has no source key")
        required = set(required_fields(self.spec.entity)) | {
            f.name for f in (*self.spec.fields, *(a.field for a in self.spec.attributes)) if f.required
        }
        for name in sorted(required & set(out)):
            values = records[name]
            missing = values.isna()
            if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
                missing |= values.astype("str") == ""
            reject(missing, "missing_required", f"required field {name!r} is empty after normalisation")
        dup = records.duplicated(subset=[SOURCE_KEY, SOURCE_VERSION], keep="first") & keys.notna()
        reject(dup, "duplicate_record", "the same key and version appear earlier in the batch")

        bad = reason_code.notna()
        rejects = pd.DataFrame(
            {
                SOURCE_KEY: keys[bad],
                SOURCE_VERSION: versions[bad],
                "reason_code": reason_code[bad],
                "reason": reason[bad],
            }
        ).reset_index(drop=True)
        records = records[~bad & ~deleted].reset_index(drop=True)
        return MappedBatch(
            records=records,
            rejects=rejects,
            tombstones=tombstones.reset_index(drop=True),
            rows_in=n,
            department=self.spec.department,
            dataset=self.spec.dataset,
            entity=self.spec.entity,
        )

    def _meta(self, table: pa.Table, column: str, fallback: str | None, index: pd.Index) -> pd.Series:
        if column in table.column_names:
            values = _series(table[column], index)
        elif fallback is not None:
            values = _series(_column(table, fallback), index)
        else:
            return pd.Series(pd.NA, index=index, dtype="str")
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            return timestamp(values)
        return _as_str(values)

    def _coerce(self, name: str, values: pd.Series) -> pd.Series:
        return _coerce_to(self._field_types.get(name), values)

    def _field(self, table: pa.Table, f: FieldSpec, index: pd.Index) -> pd.Series:
        return self._coerce(f.name, _evaluate(table, f, index))

    def _attribute(self, table: pa.Table, a: AttributeSpec, index: pd.Index) -> pd.Series:
        """A department's own attribute, coerced to its declared type."""
        return _coerce_to(ATTRIBUTE_TYPES[a.type], _evaluate(table, a.field, index))


#: an own attribute's declared type → the Python type its column is coerced to
ATTRIBUTE_TYPES: dict[str, type] = {"text": str, "date": dt.date, "number": float, "integer": int}


#: Batches from this many rows on have their columns normalised on several threads.
PARALLEL_ROWS = 50_000


class _Inline:
    """The executor interface, running each job at once in the caller's thread."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        job: Future[Any] = Future()
        try:
            job.set_result(fn(*args))
        except BaseException as exc:  # raised again by result(), as a pool's would be
            job.set_exception(exc)
        return job


@contextmanager
def _column_pool(rows: int) -> Iterator[Any]:
    workers = min(4, os.cpu_count() or 1)
    if rows < PARALLEL_ROWS or workers < 2:
        yield _Inline()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="map-column") as pool:
        yield pool


def _coerce_to(annotation: Any, values: pd.Series) -> pd.Series:
    """Give a column the dtype its canonical type implies (dates, numbers, text)."""
    base = _base_type(annotation)
    if base is dt.date:
        return values if pd.api.types.is_datetime64_any_dtype(values.dtype) else date(values)
    if base is float:
        return number(values)
    if base is int:
        return pd.to_numeric(values, errors="coerce").astype("Int64")
    if base is str or (isinstance(base, type) and issubclass(base, str)):
        return _as_str(values)
    return values


def _base_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return args[0]
    return annotation


def _to_arrow(batch: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch.combine_chunks() if batch.num_rows else batch
    if isinstance(batch, pd.DataFrame):
        return pa.Table.from_pandas(batch.reset_index(drop=True), preserve_index=False)
    raise TypeError(f"a batch is a pyarrow.Table or pandas.DataFrame, not {type(batch).__name__}")


def _column(table: pa.Table, path: str) -> pa.ChunkedArray | pa.Array:
    """A source column, or ``Parent.Child`` inside a struct column; missing → all nulls."""
    if path in table.column_names:
        return table[path]
    head, _, rest = path.partition(".")
    if rest and head in table.column_names:
        arr: pa.ChunkedArray | pa.Array = table[head]
        for part in rest.split("."):
            if not pa.types.is_struct(arr.type) or arr.type.get_field_index(part) < 0:
                return pa.nulls(table.num_rows, pa.string())
            arr = pc.struct_field(arr, part)
        return arr
    return pa.nulls(table.num_rows, pa.string())


def _series(arr: pa.ChunkedArray | pa.Array, index: pd.Index) -> pd.Series:
    if pa.types.is_null(arr.type):
        return pd.Series(pd.NA, index=index, dtype="str")
    if pa.types.is_decimal(arr.type):
        arr = arr.cast(pa.float64())
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("ns"))
    values = arr.to_pandas()
    if isinstance(values, pd.Series):
        return values.set_axis(index)
    return pd.Series(values, index=index)


def _evaluate(table: pa.Table, f: FieldSpec, index: pd.Index) -> pd.Series:
    """The raw value of a field spec over the whole batch, then its normalisers in order."""
    if f.has_const:
        values = pd.Series([f.const] * len(index), index=index)
        if isinstance(f.const, str) or f.const is None:
            values = values.astype("str")
    elif f.source is not None:
        values = _series(_column(table, f.source), index)
    elif f.coalesce:
        values = _series(_column(table, f.coalesce[0]), index)
        for path in f.coalesce[1:]:
            nxt = _series(_column(table, path), index)
            values = values.where(values.notna() & (values.astype("str") != ""), nxt)
    else:
        parts = [_as_str(_series(_column(table, p), index)) for p in f.concat]
        values = parts[0].fillna("")
        for part in parts[1:]:
            values = values.str.cat(part.fillna(""), sep=f.sep)
        values = values.where(pd.concat(parts, axis=1).notna().any(axis=1))
    for name, params in f.normalizers:
        values = apply_normalizer(values, name, dict(params))
    return values


#: normalisers that turn one code into another (not only clean it)
CONVERTING = ("resident_id",)


def _as_given(table: pa.Table, f: FieldSpec, index: pd.Index, final: pd.Series) -> pd.Series | None:
    """The code before a converting normaliser, where it differs from the result; else ``None``."""
    names = [n for n, _ in f.normalizers]
    cut = next((i for i, n in enumerate(names) if n in CONVERTING), None)
    if cut is None:
        return None
    before = _evaluate(table, FieldSpec(**{**vars(f), "normalizers": f.normalizers[:cut]}), index)
    before = _as_str(before)
    changed = before.notna() & (before != _as_str(final)).fillna(True)
    return before.where(changed) if changed.any() else None


def _nested(table: pa.Table, spec: NestedSpec, index: pd.Index, item_model: Any) -> pd.Series:
    """Map a repeated element to a column of lists of canonical dicts (one dict per element)."""
    if spec.split is not None:
        offsets, child_table = _split_children(table, spec)
    else:
        offsets, child_table = _struct_children(table, spec.source or "")
    n_children = child_table.num_rows
    child_index = pd.RangeIndex(n_children)
    item_types = {n: f.annotation for n, f in item_model.model_fields.items()} if item_model else {}
    columns = []
    for f in spec.fields:
        if n_children:
            values = _coerce_to(item_types.get(f.name), _evaluate(child_table, f, child_index))
            columns.append(pa.array(values.to_numpy(dtype=object), from_pandas=True))
        else:
            columns.append(pa.array([], pa.string()))
    struct = pa.StructArray.from_arrays(columns, names=[f.name for f in spec.fields])
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)
    return pd.Series(lists.to_pylist(), index=index, dtype=object)


def _struct_children(table: pa.Table, source: str) -> tuple[np.ndarray, pa.Table]:
    """List offsets and the flattened child rows of a list-of-structs column."""
    arr = _column(table, source)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    if pa.types.is_struct(arr.type):
        # A single element where a list was expected: a list of one.
        arr = pa.ListArray.from_arrays(pa.array(np.arange(len(arr) + 1, dtype=np.int32)), arr)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return np.zeros(table.num_rows + 1, dtype=np.int32), pa.table({})
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    children = pc.list_flatten(arr)
    if not pa.types.is_struct(children.type):
        return np.zeros(table.num_rows + 1, dtype=np.int32), pa.table({})
    names = [children.type.field(i).name for i in range(children.type.num_fields)]
    return offsets, pa.Table.from_arrays([children.field(i) for i in range(len(names))], names=names)


def _split_children(table: pa.Table, spec: NestedSpec) -> tuple[np.ndarray, pa.Table]:
    """Offsets and child rows from parallel ``sep``-joined columns (flattened repeated elements).

    Children line up by position; a row has as many children as its longest column, and a
    column with fewer parts contributes missing values for the rest.
    """
    sep = spec.split or ";"
    n = table.num_rows
    paths = sorted({p for f in spec.fields for p in f.source_paths})
    parts: dict[str, pd.Series] = {}
    for path in paths:
        col = _column(table, path)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks else pa.array([], pa.string())
        col = col.cast(pa.string())
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        lists = pc.split_pattern(col, pattern=sep)
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
        parent = np.repeat(np.arange(n), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, dtype=np.int64)
        position = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
        flat = pc.list_flatten(lists).to_pandas()
        parts[path] = pd.Series(np.asarray(flat, dtype=object), index=pd.MultiIndex.from_arrays([parent, position]))
    if not parts:
        return np.zeros(n + 1, dtype=np.int32), pa.table({})
    frame = pd.concat(parts, axis=1).sort_index()
    parents = frame.index.get_level_values(0).to_numpy()
    counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    columns = {p: pa.array(frame[p].to_numpy(dtype=object), pa.string(), from_pandas=True) for p in paths}
    return offsets, pa.table(columns)


def load_mapping(path: str | Path) -> DatasetMapping:
    """Load and check one mapping file; raise :class:`MappingError` listing every problem."""
    p = Path(path)
    problems = check_file(p)
    if problems:
        raise MappingError(problems)
    doc = load_marked_file(p)
    return DatasetMapping(spec=parse_spec(doc.data), path=p)


#: Where the shipped mapping files live (``load_all``'s default).
MAPPINGS_DIR = Path(__file__).parent


#: Where the departments' case-step feeds live (their approval systems' steps into the case
#: repository): mapping files like the others, kept apart because their DAG ends in the step log.
STEP_FEEDS_DIR = MAPPINGS_DIR / "case_steps"


def mapping_files(directory: str | Path) -> list[Path]:
    """The mapping files of a directory (``*.yaml``, sorted; sub-folders are not mappings)."""
    return sorted(Path(directory).glob("*.yaml"))


def load_all(directory: str | Path | None = None) -> dict[str, DatasetMapping]:
    """Every mapping in ``directory`` (default: the shipped ``mappings/``), by ``department_dataset``."""
    directory = Path(directory) if directory is not None else MAPPINGS_DIR
    out: dict[str, DatasetMapping] = {}
    problems: list[Problem] = []
    for path in mapping_files(directory):
        try:
            m = load_mapping(path)
        except MappingError as exc:
            problems.extend(exc.problems)
            continue
        if m.name in out:
            problems.append(Problem(str(path), 1, f"{m.name!r} is already defined in {out[m.name].path}"))
        out[m.name] = m
    if problems:
        raise MappingError(problems)
    return out


@dataclass(frozen=True)
class DeclaredAttribute:
    """A department's own attribute as a mapping declares it, with whose identity carries it."""

    identity_kind: str
    department: str
    spec: AttributeSpec


def declared_attributes(directory: str | Path | None = None) -> tuple[DeclaredAttribute, ...]:
    """The own attributes every mapping file declares (golden records and masking need them
    beyond a single feed). A file that does not load is skipped: ``hub mappings check`` reports it."""
    out: list[DeclaredAttribute] = []
    for path in mapping_files(Path(directory) if directory is not None else MAPPINGS_DIR):
        try:
            data = safe_yaml.load_file(path)
            for name, raw in (data.get("attributes") or {}).items():
                spec = AttributeSpec(
                    field=field_spec(name, raw),
                    type=str(raw["type"]),
                    personal=raw.get("personal"),
                    allowed=tuple(raw.get("allowed") or ()),
                    golden=bool(raw.get("golden", True)),
                )
                out.append(DeclaredAttribute(str(data["identity_kind"]), str(data["department"]), spec))
        except (safe_yaml.YamlError, OSError, KeyError, TypeError, AttributeError):
            continue
    return tuple(out)


def iter_problems(paths: Iterable[str | Path]) -> list[Problem]:
    """Problems of several files (the CLI's ``check``)."""
    out: list[Problem] = []
    for p in paths:
        out.extend(check_file(p))
    return out
