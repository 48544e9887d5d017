"""Record lineage as the pipeline writes it (记录血缘): one row per batch, one per accepted record.

The validate step calls :func:`record_batch` for every batch it accepts records from, in the
transaction that quarantines the batch's refused rows. It writes, set-based:

* the mapping file's content once per SHA-256 (:class:`hub.models.LineageMapping`): each
  canonical field's source fields and normalisers and each licence field's canonical field,
  so lineage still says what a run applied after the file has changed;
* one :class:`hub.models.LineageBatch`: run, department, dataset, staged batch, mapping hash,
  expectation suite and the SHA-256 of its file, when the batch was pulled;
* one :class:`hub.models.LineageRecord` per accepted record (source key and version), all in
  one bulk insert (``executemany`` of many-row statements on SQLite, ``COPY`` on PostgreSQL).

A retried validate replaces what its earlier attempt wrote for the same batch. Nothing here
reads the staged object again, so retention may purge it. :mod:`recognition.lineage` reads it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.models import LineageBatch, LineageMapping, LineageRecord, StagedBatch
from identity._bulk import insert_columns
from validation.suites import SUITES_DIR

#: (path, mtime_ns, size) → SHA-256 of the file's bytes
_DIGESTS: dict[tuple[str, int, int], str] = {}

#: licence roles whose licence field has another name
LICENSE_FIELD = {"number": "license_number"}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, kept per process while the file is unchanged."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _DIGESTS[key] = digest
    return digest


def suite_sha256(suite: str) -> str:
    """The expectation suite's version: SHA-256 of its JSON file."""
    return file_sha256(SUITES_DIR / f"{suite}.json")


def _normalizer(ref: tuple[str, tuple[tuple[str, Any], ...]]) -> str:
    name, params = ref
    return name if not params else name + "(" + ", ".join(f"{k}={v}" for k, v in params) + ")"


def _field(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"from": list(f.source_paths), "normalizers": [_normalizer(n) for n in f.normalizers]}
    if f.has_const:
        out["const"] = f.const
    if f.concat:
        out["concat_sep"] = f.sep
    return out


def mapping_summary(mapping: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(canonical field → its source fields and normalisers, licence type → licence field → canonical field)."""
    spec = mapping.spec
    fields = {f.name: _field(f) for f in spec.fields}
    fields.update({a.name: _field(a.field) for a in spec.attributes})
    for nested in spec.nested:
        for f in nested.fields:
            fields[f"{nested.name}[].{f.name}"] = {**_field(f), "element": nested.source}
    licenses = {
        lic.type_code: {LICENSE_FIELD.get(role, role): ref for role, ref in lic.referenced_fields().items()}
        for lic in spec.licenses
    }
    return fields, licenses


def mapping_version(session: Session, mapping: Any) -> str:
    """The SHA-256 of the mapping file as applied now, its content recorded on first sight."""
    path = Path(mapping.path)
    digest = file_sha256(path)
    if session.get(LineageMapping, digest) is None:
        fields, licenses = mapping_summary(mapping)
        session.add(
            LineageMapping(mapping_sha256=digest, mapping=mapping.name, mapping_file=path.name,
                           mapping_version=int(mapping.spec.version), fields=fields, licenses=licenses)
        )  # fmt: skip
        session.flush()
    return digest


def _pulled_at(session: Session, mapping: str, staged_ref: str) -> dt.datetime:
    created = session.scalar(
        select(StagedBatch.created_at).where(StagedBatch.mapping == mapping, StagedBatch.staged_ref == staged_ref)
    )
    return created or dt.datetime.now(dt.UTC)


def _texts(records: pd.DataFrame, column: str) -> np.ndarray:
    """A column as an object array of text, ``""`` for a missing value (what the driver binds)."""
    if column not in records:
        return np.full(len(records), "", dtype=object)
    values = records[column]
    if values.dtype != object:
        values = values.astype(object)
    out = values.to_numpy(dtype=object)
    missing = pd.isna(out)
    if missing.any():
        out = out.copy()
        out[missing] = ""
    return out


def record_batch(
    session: Session,
    mapping: Any,
    *,
    run_id: str,
    staged_ref: str,
    records: pd.DataFrame,
    model_version: str | None = None,
) -> int:
    """Record the lineage of one batch's accepted ``records`` (columns ``_source_key`` and
    ``_source_version``, as the mapping writes them); returns the batch's lineage id."""
    suite = mapping.spec.expectation_suite
    digest = mapping_version(session, mapping)
    earlier = session.scalar(
        select(LineageBatch.id).where(
            LineageBatch.mapping == mapping.name, LineageBatch.run_id == run_id, LineageBatch.staged_ref == staged_ref
        )
    )
    if earlier is not None:  # a retried attempt: its records replace the earlier attempt's
        session.execute(delete(LineageRecord).where(LineageRecord.batch_id == earlier))
        session.execute(delete(LineageBatch).where(LineageBatch.id == earlier))
    # the mapping rejected records without a key and repeats of a key and version: no filtering here
    keys = _texts(records, "_source_key")
    versions = _texts(records, "_source_version")
    try:  # in key order the rows land on neighbouring pages of the key's B-tree: a fifth less time, measured
        order = np.argsort(keys, kind="stable")
        keys, versions = keys[order], versions[order]
    except TypeError:  # keys of mixed types cannot be ordered: written as they come
        pass
    batch = LineageBatch(
        run_id=run_id, mapping=mapping.name, department=mapping.department, dataset=mapping.dataset,
        staged_ref=staged_ref, mapping_sha256=digest, suite=suite, suite_sha256=suite_sha256(suite),
        model_version=model_version, records=len(keys), pulled_at=_pulled_at(session, mapping.name, staged_ref),
    )  # fmt: skip
    session.add(batch)
    session.flush()
    if len(keys):
        insert_columns(
            session,
            LineageRecord.__table__,  # type: ignore[arg-type]
            ("source_key", "source_version"),
            (keys, versions),
            constants={"batch_id": int(batch.id)},
        )
    return int(batch.id)


def set_model_version(session: Session, mapping: Any, *, run_id: str, staged_ref: str, model_version: str) -> None:
    """Name the matching model that placed records of a batch on its lineage row (resolve runs after
    validate wrote it): the identity links of the batch's records name the same version."""
    session.execute(
        update(LineageBatch)
        .where(LineageBatch.mapping == mapping.name, LineageBatch.run_id == run_id,
               LineageBatch.staged_ref == staged_ref)
        .values(model_version=model_version)
    )  # fmt: skip
