"""Fault switches on running sandboxes (故障开关): one object per sandbox set, used by tests.

Tax faults go through the shared fault file (see :mod:`sandbox.faults`); database faults
kill the reader's connections on the server; land faults drop a bad package in the outbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sandbox.faults import HOSTILE_BILLION_LAUGHS, HOSTILE_XXE, FaultFile, TaxFaults
from sandbox.land.packages import build_package, serialise, sha256_of, write_package

if TYPE_CHECKING:
    from sandbox.prepared import Prepared


class Faults:
    """Switch faults on and off for one set of sandboxes."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.tax_file = FaultFile(prepared.faults_path)

    # -- tax (SOAP) -------------------------------------------------------------
    def tax(self, **changes: Any) -> TaxFaults:
        """Set tax faults: ``soap_fault=True``, ``slow_seconds=2.0``, ``http_503=3`` (or -1)."""
        return self.tax_file.set(**changes)

    def clear_tax(self) -> None:
        self.tax_file.clear()

    @contextmanager
    def tax_fault(self, **changes: Any) -> Iterator[TaxFaults]:
        """Faults on inside the block, all tax faults off after it."""
        try:
            yield self.tax(**changes)
        finally:
            self.clear_tax()

    # -- databases ------------------------------------------------------------
    def drop_connections(self, department: str) -> int:
        """Kill every other connection to a department database; returns how many were killed.

        PostgreSQL: ``pg_terminate_backend``; MariaDB: ``KILL``. SQLite has no server and
        nothing to drop (returns 0).
        """
        if department == "public_security":
            return self.prepared.person_registry.terminate_readers()
        if department == "commerce":
            return _kill_mariadb(self.prepared.commerce.sqlalchemy_url)
        raise ValueError(f"no database for department {department!r}")

    # -- land (XML packages) ----------------------------------------------------
    def _sample_package(self, name: str) -> bytes:
        pop = self.prepared.population
        records = [("property", r) for r in pop.property_rights.head(5).to_dict("records")]
        created = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        return serialise(build_package(f"LAND-FAULT-{name}", records, created), "UTF-8")

    def land_truncated_package(self) -> Path:
        """A package cut off mid-element (its sidecar matches the cut bytes: only parsing catches it)."""
        data = self._sample_package("TRUNCATED")
        cut = data[: len(data) // 2]
        return write_package(self.prepared.land.outbox_dir, "land_fault_truncated.xml", cut)

    def land_wrong_checksum_package(self) -> Path:
        """A well-formed package whose sidecar checksum does not match its bytes."""
        data = self._sample_package("BADSUM")
        return write_package(self.prepared.land.outbox_dir, "land_fault_badsum.xml", data, checksum="0" * 64)

    def land_hostile_package(self, kind: str = "xxe") -> Path:
        """A hostile package: ``xxe`` (external entity to /etc/passwd) or ``billion_laughs``."""
        data = {"xxe": HOSTILE_XXE, "billion_laughs": HOSTILE_BILLION_LAUGHS}[kind]
        return write_package(self.prepared.land.outbox_dir, f"land_fault_{kind}.xml", data)

    def checksum_of(self, path: Path) -> str:
        return sha256_of(path.read_bytes())


def _kill_mariadb(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    if engine.dialect.name not in {"mysql", "mariadb"}:
        return 0
    killed = 0
    try:
        with engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.text(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command <> 'Killed'"
                    )
                )
                .scalars()
                .all()
            )
            for pid in ids:
                try:
                    conn.execute(sa.text(f"KILL {int(pid)}"))
                    killed += 1
                except sa.exc.DBAPIError:
                    pass  # the connection ended on its own meanwhile
    finally:
        engine.dispose()
    return killed
