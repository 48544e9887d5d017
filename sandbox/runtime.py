"""Bringing the four department sandboxes up (模拟部门系统启动) for tests, the demo and the CLI.

:func:`prepare` generates the city and loads every department's store; :func:`start_sandboxes`
also serves the tax SOAP service in a background thread and yields :class:`Sandboxes` with
the handles a connector needs (URLs, connection strings, directories), plus fault switches
and mutations for incremental tests.

``backend="embedded"``: SQLite files (population over SQL, commerce through the SQLite ODBC
driver). ``backend="servers"``: PostgreSQL for population and MariaDB over ODBC for commerce,
in the databases given (tests pass ``pg_database`` / ``mariadb_database``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbox.commerce.registry import CommerceRegistry, sqlite_connection_string
from sandbox.development_reform.platform import Platform
from sandbox.dirt import DirtProfile
from sandbox.faults import FaultFile
from sandbox.generator import Population, Sizes, generate, write
from sandbox.land.packages import LandOutbox
from sandbox.mutations import Mutations
from sandbox.prepared import LandHandle, Prepared, SqlHandle
from sandbox.public_security.registry import PersonRegistry
from sandbox.social_insurance.registry import InsuredRegistry, insured_persons
from sandbox.switches import Faults
from sandbox.tax.server import TaxServer, default_credentials
from sandbox.tax.store import TaxStore


class DatabaseTarget(Protocol):
    """A database on a shared server (``rigs.testing.TempDatabase`` fits)."""

    @property
    def sqlalchemy_url(self) -> str: ...

    @property
    def odbc_connection_string(self) -> str: ...


@dataclass(frozen=True)
class TaxHandle:
    """The tax SOAP service: WSDL URL and WS-Security credentials."""

    wsdl_url: str
    username: str
    password: str
    port: int
    store_path: Path
    faults_path: Path


@dataclass
class Sandboxes:
    """Running sandboxes: handles for connectors, ground truth, faults and mutations."""

    prepared: Prepared
    tax: TaxHandle
    public_security: SqlHandle
    commerce: SqlHandle
    land: LandHandle
    social_insurance: SqlHandle | None = field(default=None)
    #: the development-and-reform commission's approval platform (its step table, read over ODBC)
    development_reform: SqlHandle | None = field(default=None)
    faults: Any = field(default=None)
    mutations: Any = field(default=None)

    @property
    def ground_truth_path(self) -> Path:
        return self.prepared.ground_truth_path

    @property
    def population(self) -> Population:
        return self.prepared.population

    @property
    def dirt_report(self) -> dict[str, Any]:
        return self.prepared.population.dirt_report


def sandbox_dir(home: Path, seed: int) -> Path:
    return Path(home) / "sandbox" / str(seed)


def prepare(
    home: Path,
    seed: int = 2016,
    sizes: Sizes | None = None,
    backend: str = "embedded",
    pg: DatabaseTarget | None = None,
    mariadb: DatabaseTarget | None = None,
    profile: DirtProfile | None = None,
    land_batch: int = 100,
) -> Prepared:
    """Generate the city for ``seed`` and (re)load every department's store from scratch."""
    if backend not in {"embedded", "servers"}:
        raise ValueError(f"backend must be 'embedded' or 'servers', not {backend!r}")
    data_dir = sandbox_dir(home, seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    population = generate(seed, sizes or Sizes(), profile)
    write(population, data_dir)

    tax_store = TaxStore(data_dir / "tax.db")
    tax_store.load(population.taxpayers)
    faults = FaultFile(data_dir / "tax_faults.json")
    faults.clear()

    if backend == "servers":
        if pg is None or mariadb is None:
            raise ValueError("backend 'servers' needs a PostgreSQL and a MariaDB database")
        person_registry = PersonRegistry(pg.sqlalchemy_url, pg.odbc_connection_string)
        insured = InsuredRegistry(pg.sqlalchemy_url, pg.odbc_connection_string)
        commerce = CommerceRegistry(mariadb.odbc_connection_string, "mariadb", mariadb.sqlalchemy_url)
        platform = Platform(pg.sqlalchemy_url, pg.odbc_connection_string)
    else:
        ps_file = data_dir / "public_security.db"
        com_file = data_dir / "commerce.db"
        person_registry = PersonRegistry(f"sqlite:///{ps_file}", sqlite_connection_string(str(ps_file)))
        commerce = CommerceRegistry(sqlite_connection_string(str(com_file)), "sqlite", f"sqlite:///{com_file}")
        ins_file = data_dir / "social_insurance.db"
        insured = InsuredRegistry(f"sqlite:///{ins_file}", sqlite_connection_string(str(ins_file)))
        platform = Platform.embedded(data_dir)
    person_registry.load(population.person_registry)
    commerce.load(population.enterprise_registry)
    insured_rows, insured_truth = insured_persons(population, seed)
    insured.load(insured_rows)
    insured_truth.to_parquet(data_dir / "social_insurance_truth.parquet", index=False)

    platform.create()  # the commission's step table: its approval system fills it as cases come
    land = LandOutbox(data_dir / "land" / "outbox", batch_size=land_batch)
    land.clear()
    land.publish(population.property_rights, population.approval_results)
    return Prepared(
        home=Path(home),
        data_dir=data_dir,
        seed=seed,
        backend=backend,
        population=population,
        tax_store=tax_store,
        faults_path=faults.path,
        person_registry=person_registry,
        commerce=commerce,
        land=land,
        insured=insured,
        development_reform=platform,
    )


def attach(prepared: Prepared, port: int, username: str, password: str) -> Sandboxes:
    """Handles for prepared stores whose tax service listens on ``port``."""
    tax = TaxHandle(
        wsdl_url=f"http://127.0.0.1:{port}/tax?wsdl",
        username=username,
        password=password,
        port=port,
        store_path=prepared.tax_store.path,
        faults_path=prepared.faults_path,
    )
    sb = Sandboxes(
        prepared=prepared,
        tax=tax,
        public_security=prepared.public_security_handle(),
        commerce=prepared.commerce_handle(),
        land=prepared.land_handle(),
        social_insurance=prepared.social_insurance_handle(),
        development_reform=prepared.development_reform_handle(),
    )
    sb.faults = Faults(prepared)
    sb.mutations = Mutations(prepared)
    return sb


@contextmanager
def start_sandboxes(
    home: Path,
    seed: int = 2016,
    sizes: Sizes | None = None,
    backend: str = "embedded",
    pg: DatabaseTarget | None = None,
    mariadb: DatabaseTarget | None = None,
    profile: DirtProfile | None = None,
    land_batch: int = 100,
) -> Iterator[Sandboxes]:
    """Generate, load and serve the four sandboxes; stop the tax service on exit."""
    prepared = prepare(home, seed, sizes, backend, pg, mariadb, profile, land_batch)
    creds = default_credentials()
    server = TaxServer(prepared.tax_store, FaultFile(prepared.faults_path), creds).start()
    try:
        yield attach(prepared, server.port, creds.username, creds.password)
    finally:
        server.stop()
        prepared.person_registry.dispose()
        prepared.insured.dispose()


def summary(sb: Sandboxes) -> dict[str, Any]:
    """What a state file records about running sandboxes (no secrets)."""
    return {
        "seed": sb.prepared.seed,
        "backend": sb.prepared.backend,
        "data_dir": str(sb.prepared.data_dir),
        "tax": {"wsdl_url": sb.tax.wsdl_url, "port": sb.tax.port, "username": sb.tax.username},
        "public_security": asdict(sb.public_security),
        "commerce": asdict(sb.commerce),
        "social_insurance": asdict(sb.social_insurance) if sb.social_insurance else None,
        "land": {"outbox_dir": str(sb.land.outbox_dir), "xsd_path": str(sb.land.xsd_path)},
        "development_reform": asdict(sb.development_reform) if sb.development_reform else None,
        "ground_truth_path": str(sb.ground_truth_path),
        "counts": sb.population.counts(),
    }
