"""Loaded department stores and the handles a connector needs to reach them (no server running yet).

Its own module so that :mod:`sandbox.runtime` (which starts the sandboxes) and the fault switches
and mutations acting on loaded stores (:mod:`sandbox.switches`, :mod:`sandbox.mutations`) share
it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.commerce.registry import CommerceRegistry
from sandbox.development_reform.platform import Platform
from sandbox.generator import Population
from sandbox.land.packages import XSD_PATH, LandOutbox
from sandbox.public_security.registry import PersonRegistry
from sandbox.social_insurance.registry import InsuredRegistry
from sandbox.tax.store import TaxStore


@dataclass(frozen=True)
class SqlHandle:
    """A department database: SQLAlchemy URL, ODBC connection string, dialect, table name."""

    sqlalchemy_url: str
    odbc_connection_string: str
    dialect: str
    table: str


@dataclass(frozen=True)
class LandHandle:
    outbox_dir: Path
    xsd_path: Path


@dataclass
class Prepared:
    """Loaded department stores (no server running yet)."""

    home: Path
    data_dir: Path
    seed: int
    backend: str
    population: Population
    tax_store: TaxStore
    faults_path: Path
    person_registry: PersonRegistry
    commerce: CommerceRegistry
    land: LandOutbox
    #: the social-insurance bureau (人社局): insured persons, in the population registry's database
    insured: InsuredRegistry
    #: the development-and-reform commission's approval platform (its step table; empty until cases come)
    development_reform: Platform

    @property
    def social_insurance_truth_path(self) -> Path:
        """Which true person and employer each insured row belongs to (tests only)."""
        return self.data_dir / "social_insurance_truth.parquet"

    @property
    def ground_truth_path(self) -> Path:
        return self.data_dir / "ground_truth.parquet"

    def public_security_handle(self) -> SqlHandle:
        pr = self.person_registry
        return SqlHandle(pr.sqlalchemy_url, pr.odbc_connection_string, pr.dialect, pr.qualified_name)

    def commerce_handle(self) -> SqlHandle:
        c = self.commerce
        return SqlHandle(c.sqlalchemy_url, c.connection_string, c.dialect, "enterprise_registry")

    def social_insurance_handle(self) -> SqlHandle:
        ins = self.insured
        table = f"{ins.schema}.insured_person" if ins.schema else "insured_person"
        return SqlHandle(ins.sqlalchemy_url, ins.odbc_connection_string, ins.dialect, table)

    def development_reform_handle(self) -> SqlHandle:
        p = self.development_reform
        return SqlHandle(p.sqlalchemy_url, p.odbc_connection_string, p.dialect, p.table)

    def land_handle(self) -> LandHandle:
        return LandHandle(self.land.outbox_dir, XSD_PATH)
