"""Fixtures for the connector tests: SQL sources with fault injection, the tax sandbox's SOAP service, XML packages."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connector
from connectors.registry import make_connector
from rigs.testing import TempDatabase
from tests.connectors.faultproxy import FaultProxy

BASE_TS = dt.datetime(2026, 11, 1, 9, 0, 0)  # naive, Asia/Shanghai local time as departments store it


def conn_env(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """Define an Airflow Connection the Airflow way: AIRFLOW_CONN_<ID> in JSON form."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


class SqlHarness:
    """A department table in a throwaway PostgreSQL or MariaDB database, read through ODBC."""

    capabilities = frozenset({"auth", "late_commit", "deletes", "bad_records", "faults", "updates"})

    def __init__(self, db: TempDatabase, monkeypatch: pytest.MonkeyPatch, rows: int = 120) -> None:
        self.db = db
        self.kind = db.kind
        self.name = f"test_{self.kind}"
        self.proxy = FaultProxy(db.host, db.port).start()
        self._next = 0
        self._tick = 0
        if self.kind == "postgresql":
            self.dataset, self.table, self.key = "person_registry", "person_registry", "person_no"
            self.schema: str | None = "population"
        else:
            self.dataset, self.table, self.key = "enterprise_registry", "enterprise_registry", "ent_id"
            self.schema = None
        self._create()
        self.add_records(rows)
        base = {"host": "127.0.0.1", "schema": db.name, "login": db.user, "conn_type": "odbc"}
        conn_env(monkeypatch, f"{self.name}_ok", **base, port=self.proxy.port)
        bad_login = {"login": "no_such_role_hub"} if self.kind == "postgresql" else {"password": "wrong-password"}
        conn_env(monkeypatch, f"{self.name}_badauth", **{**base, **bad_login}, port=db.port)
        conn_env(monkeypatch, f"{self.name}_down", **base, port=1)

    # --- direct access to the source -----------------------------------------------------
    def _sql(self, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]] = (), many: bool = False) -> list[Any]:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.db.sqlalchemy_url.replace("postgresql+psycopg", "postgresql")) as c:
                if many:
                    c.cursor().executemany(sql, params)  # type: ignore[arg-type]
                    return []
                cur = c.execute(sql, params)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
        import pymysql

        c = pymysql.connect(
            host=self.db.host,
            port=self.db.port,
            user=self.db.user,
            database=self.db.name,
            autocommit=True,
            charset="utf8mb4",
        )
        try:
            with c.cursor() as cur:
                if many:
                    cur.executemany(sql, params)
                    return []
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            c.close()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def _create(self) -> None:
        if self.kind == "postgresql":
            self._sql("CREATE SCHEMA population")
            self._sql(
                "CREATE TABLE population.person_registry (person_no BIGINT PRIMARY KEY, resident_id VARCHAR(18),"
                " name VARCHAR(50), sex CHAR(1), birth_date DATE, address VARCHAR(200), status VARCHAR(10),"
                " phone VARCHAR(20), updated_at TIMESTAMP WITHOUT TIME ZONE)"
            )
        else:
            self._sql(
                "CREATE TABLE enterprise_registry (ent_id BIGINT PRIMARY KEY, uscc CHAR(18), ent_name VARCHAR(200),"
                " legal_rep_id VARCHAR(18), legal_rep_name VARCHAR(50), reg_capital DECIMAL(18,4),"
                " established_date DATE, address VARCHAR(200), status VARCHAR(10), updated_at DATETIME(6))"
            )

    def _row(self, i: int, ts: dt.datetime | None) -> tuple[Any, ...]:
        if self.kind == "postgresql":
            address = f"浙江省温州市洞头区路{i}号" + "x" * 80
            return (
                i,
                f"33032219800101{i % 10000:04d}",
                f"张{i}",
                "1",
                dt.date(1980, 1, 1),
                address,
                "alive",
                "13812345678",
                ts,
            )
        return (
            i,
            f"91330322MA2{i:07d}",
            f"洞头企业{i}有限公司",
            f"33032219800101{i % 10000:04d}",
            f"李{i}",
            "100.5000",
            dt.date(2015, 1, 1),
            f"浙江省温州市洞头区路{i}号" + "y" * 80,
            "存续",
            ts,
        )

    def _insert_sql(self) -> str:
        n = 9 if self.kind == "postgresql" else 10
        ph = ", ".join(["%s"] * n)
        return f"INSERT INTO {self.qualified} VALUES ({ph})"

    def _ts(self) -> dt.datetime:
        self._tick += 1
        return BASE_TS + dt.timedelta(seconds=self._tick, microseconds=self._tick % 7)

    def add_records(self, n: int) -> list[str]:
        rows = []
        for _ in range(n):
            self._next += 1
            rows.append(self._row(self._next, self._ts()))
        self._sql(self._insert_sql(), rows, many=True)
        return [str(r[0]) for r in rows]

    def update_record(self, key: str) -> None:
        self._sql(
            f"UPDATE {self.qualified} SET status = %s, updated_at = %s WHERE {self.key} = %s",
            ("moved" if self.kind == "postgresql" else "注销", self._ts(), int(key)),
        )

    def delete_record(self, key: str) -> None:
        self._sql(f"DELETE FROM {self.qualified} WHERE {self.key} = %s", (int(key),))

    def add_bad_record(self) -> str:
        self._next += 1
        self._sql(self._insert_sql(), [self._row(self._next, None)], many=True)
        return str(self._next)

    def current_keys(self) -> set[str]:
        rows = self._sql(f"SELECT {self.key} FROM {self.qualified} WHERE updated_at IS NOT NULL")
        return {str(r[0]) for r in rows}

    @contextlib.contextmanager
    def late_commit(self) -> Iterator[str]:
        """A long transaction writes a row stamped T1, a short one commits T2 > T1, then T1 commits."""
        self._next += 1
        late_key, early_ts = self._next, self._ts()
        row = self._row(late_key, early_ts)
        if self.kind == "postgresql":
            import psycopg

            conn: Any = psycopg.connect(self.db.sqlalchemy_url.replace("postgresql+psycopg", "postgresql"))
            conn.execute(self._insert_sql(), row)
        else:
            import pymysql

            conn = pymysql.connect(
                host=self.db.host, port=self.db.port, user=self.db.user, database=self.db.name, charset="utf8mb4"
            )
            conn.begin()
            with conn.cursor() as cur:
                cur.execute(self._insert_sql(), row)
        try:
            self.add_records(1)  # committed, later timestamp: the reader's watermark passes T1
            yield str(late_key)
            conn.commit()
        finally:
            conn.close()

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """The next connection through the proxy is cut after a few kilobytes of results."""
        self.proxy.cut_after_bytes = 9_000
        try:
            yield
        finally:
            self.proxy.cut_after_bytes = None

    # --- connectors ----------------------------------------------------------------------
    def block(self, conn_id: str) -> dict[str, Any]:
        dataset: dict[str, Any] = {
            "table": self.table,
            "key": self.key,
            "watermark": "updated_at",
            "lookback_seconds": 3600,
            "reconcile_every_seconds": 0,
        }
        if self.schema:
            dataset["schema"] = self.schema
        return {
            "protocol": "sql",
            "conn_id": conn_id,
            "dialect": "postgresql" if self.kind == "postgresql" else "mariadb",
            "odbc_driver": "PostgreSQL Unicode" if self.kind == "postgresql" else "MariaDB Unicode",
            "batch_size": 25,
            "timeout_seconds": 5,
            "retry": {"attempts": 2, "base_delay_seconds": 0.01, "max_delay_seconds": 0.05},
            "datasets": {self.dataset: dataset},
        }

    def connector(self) -> Connector:
        return make_connector(self.block(f"{self.name}_ok"), name=self.name)

    def connector_bad_credentials(self) -> Connector:
        return make_connector(self.block(f"{self.name}_badauth"), name=self.name)

    def connector_unreachable(self) -> Connector:
        return make_connector(self.block(f"{self.name}_down"), name=self.name)

    def close(self) -> None:
        self.proxy.stop()


@pytest.fixture()
def pg_harness(
    pg_database: TempDatabase, odbc_postgres: None, monkeypatch: pytest.MonkeyPatch, hub_db_url: str
) -> Iterator[SqlHarness]:
    h = SqlHarness(pg_database, monkeypatch)
    yield h
    h.close()


@pytest.fixture()
def mariadb_harness(
    mariadb_database: TempDatabase, odbc_mariadb: None, monkeypatch: pytest.MonkeyPatch, hub_db_url: str
) -> Iterator[SqlHarness]:
    h = SqlHarness(mariadb_database, monkeypatch)
    yield h
    h.close()


class SoapHarness:
    """The tax sandbox's SOAP service (:mod:`sandbox.tax`, WS-Security on) on a store of its own,
    filled and changed by the test; faults through its fault file."""

    capabilities = frozenset({"auth", "bad_records", "faults", "updates"})
    dataset = "taxpayers"
    name = "test_tax_soap"

    def __init__(self, work: Path, monkeypatch: pytest.MonkeyPatch, rows: int = 90) -> None:
        from sandbox.faults import FaultFile
        from sandbox.tax.server import TaxServer
        from sandbox.tax.store import TaxStore
        from sandbox.tax.wsgi import Credentials

        work.mkdir(parents=True, exist_ok=True)
        self.store = TaxStore(work / "tax.db")
        self.store.create()
        self.faults = FaultFile(work / "faults.json")
        self.server = TaxServer(self.store, self.faults, Credentials("hub", "sandbox-secret")).start()
        self._n = 0
        self._tick = 0
        self.add_records(rows)
        base = {"conn_type": "http", "host": "127.0.0.1", "login": "hub", "extra": {"wsdl_path": "/tax?wsdl"}}
        conn_env(monkeypatch, "tax_ok", **base, port=self.server.port, password="sandbox-secret")
        conn_env(monkeypatch, "tax_badauth", **base, port=self.server.port, password="wrong")
        conn_env(monkeypatch, "tax_down", **base, port=1, password="sandbox-secret")

    def _ts(self) -> dt.datetime:
        self._tick += 1
        return (BASE_TS + dt.timedelta(seconds=self._tick)).replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))

    def _record(self, code: str) -> dict[str, Any]:
        return {
            "taxpayer_code": code,
            "taxpayer_name": f"洞头企业{code[-4:]}",
            "legal_rep_id": "330322198001010011",
            "legal_rep_name": "王五",
            "reg_address": "浙江省温州市洞头区北岙街道1号",
            "tax_authority_code": "13303220000",
            "tax_authority_name": "国家税务总局温州市洞头区税务局",
            "registration_date": dt.date(2015, 3, 1),
            "taxpayer_status": "01",
            "credit_rating": "A",
            "updated_at": self._ts(),
        }

    def add_records(self, n: int) -> list[str]:
        keys = []
        for _ in range(n):
            self._n += 1
            code = f"91330322MA2{self._n:07d}"
            self.store.upsert(self._record(code))
            keys.append(code)
        return keys

    def update_record(self, key: str) -> None:
        assert self.store.update_status(key, "02", self._ts())

    def delete_record(self, key: str) -> None:
        raise NotImplementedError("the tax listing has no deletes")

    def add_bad_record(self) -> str:
        """A registration whose taxpayer code is blank (a department's dirt): it cannot be tracked."""
        code = "   "
        self.store.upsert(self._record(code))
        return code

    def current_keys(self) -> set[str]:
        keys: set[str] = set()
        token: str | None = None
        while True:
            rows, token = self.store.changed_since(None, token, 1000)
            keys.update(str(r["taxpayer_code"]) for r in rows if str(r["taxpayer_code"]).strip())
            if token is None:
                return keys

    def late_commit(self) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError("a SOAP listing has no transactions")

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """HTTP 503 until switched off (the sandbox's fault file)."""
        self.faults.set(http_503=-1)
        try:
            yield
        finally:
            self.faults.clear()

    def block(self, conn_id: str) -> dict[str, Any]:
        return {
            "protocol": "soap",
            "conn_id": conn_id,
            "timeout_seconds": 5,
            "page_size": 20,
            "batch_size": 20,
            "retry": {"attempts": 2, "base_delay_seconds": 0.01, "max_delay_seconds": 0.05},
            "datasets": {
                "taxpayers": {
                    "operation": "ListChangedTaxpayers",
                    "items": "taxpayers",
                    "key": "taxpayer_code",
                    "watermark": "updated_at",
                    "push": {"operation": "ReceiveLicenseNotice", "argument": "notice"},
                }
            },
        }

    def connector(self) -> Connector:
        return make_connector(self.block("tax_ok"), name=self.name)

    def connector_bad_credentials(self) -> Connector:
        return make_connector(self.block("tax_badauth"), name=self.name)

    def connector_unreachable(self) -> Connector:
        return make_connector(self.block("tax_down"), name=self.name)

    def close(self) -> None:
        self.server.stop()


@pytest.fixture()
def soap_harness(monkeypatch: pytest.MonkeyPatch, hub_db_url: str, tmp_path: Path) -> Iterator[SoapHarness]:
    h = SoapHarness(tmp_path / "tax", monkeypatch)
    yield h
    h.close()


LAND_NS = "urn:hub:sandbox:land:1"
TEST_XSD = "tests/connectors/data/land_exchange_test.xsd"


def land_package(records: list[tuple[str, int]], *, encoding: str = "UTF-8", approvals: int = 0) -> bytes:
    """An exchange package with PropertyRight records (unitNo, version) and some ApprovalResults."""
    parts = [
        f'<?xml version="1.0" encoding="{encoding}"?>\n',
        f'<ExchangePackage xmlns="{LAND_NS}" packageId="P1" createdAt="2026-11-01T09:00:00+08:00" sender="330322">\n',
    ]
    for unit, version in records:
        parts.append(
            f'<PropertyRight unitNo="{unit}" version="{version}"><CertificateNo>浙(2016)洞头区不动产权第{unit[-7:]}号'
            "</CertificateNo><RightType>国有建设用地使用权/房屋所有权</RightType><Location>浙江省温州市洞头区北岙街道</Location>"
            "<Area>89.50</Area><LandUse>住宅</LandUse><RegisterDate>2016-05-04</RegisterDate><Status>registered</Status>"
            "<Owner><Name>张三</Name><IdType>resident_id</IdType><IdCode>330322198001010011</IdCode>"
            "<Share>1/2</Share></Owner><Owner><Name>李四</Name><IdType>resident_id</IdType>"
            "<IdCode>33032219800101002X</IdCode></Owner></PropertyRight>\n"
        )
    for i in range(approvals):
        parts.append(
            f'<ApprovalResult approvalNo="YS{i:06d}" version="1"><ApprovalType>land_use_pre_review</ApprovalType>'
            "<ProjectName>洞头港区项目</ProjectName><Applicant><Name>洞头企业</Name><IdType>uscc</IdType>"
            '<IdCode>91330322MA2AAAAA1X</IdCode></Applicant><Issuer code="330322">温州市洞头区自然资源局</Issuer>'
            "<Opinion>同意</Opinion><Conclusion>approved</Conclusion><IssueDate>2016-03-01</IssueDate>"
            "<ValidUntil>2019-03-01</ValidUntil><LandArea>12000.5</LandArea><Location>洞头</Location>"
            "</ApprovalResult>\n"
        )
    parts.append("</ExchangePackage>\n")
    return "".join(parts).encode(encoding)


def land_source_block(outbox: Any, archive: Any, *, batch_size: int = 25) -> dict[str, Any]:
    return {
        "protocol": "xml",
        "outbox": str(outbox),
        "archive": str(archive),
        "xsd": TEST_XSD,
        "namespace": LAND_NS,
        "batch_size": batch_size,
        "datasets": {
            "property_rights": {
                "element": "PropertyRight",
                "key": "unit_no",
                "version": "version",
                "fields": {
                    "unit_no": "@unitNo",
                    "version": "@version",
                    "certificate_no": "CertificateNo",
                    "area": "Area",
                    "register_date": "RegisterDate",
                    "status": "Status",
                    "owner_names": "Owner/Name[]",
                    "owner_id_types": "Owner/IdType[]",
                    "owner_id_codes": "Owner/IdCode[]",
                    "owner_id_types_joined": "Owner/IdType",
                    "owner_shares": "Owner/Share",
                },
            },
            "approval_results": {
                "element": "ApprovalResult",
                "key": "approval_no",
                "version": "version",
                "fields": {
                    "approval_no": "@approvalNo",
                    "version": "@version",
                    "approval_type": "ApprovalType",
                    "applicant_id_code": "Applicant/IdCode",
                    "issuer_code": "Issuer/@code",
                    "conclusion": "Conclusion",
                    "valid_until": "ValidUntil",
                },
            },
        },
    }


class XmlHarness:
    """Land packages dropped into an outbox directory, as the land department does.

    The first ``rows`` records arrive in packages of at most ``PACKAGE_RECORDS``; faults: the
    exchange share drops after the first waiting package (:mod:`sandbox.land.share`).
    """

    capabilities = frozenset({"bad_records", "faults", "updates"})
    PACKAGE_RECORDS = 50
    dataset = "property_rights"
    name = "test_land_xml"

    def __init__(self, root: Any, rows: int = 120) -> None:
        from pathlib import Path

        self.root = Path(root)
        self.outbox = self.root / "land" / "outbox"
        self.outbox.mkdir(parents=True)
        self.archive = self.root / "land" / "archive"
        self._n = 0
        self._pkg = 0
        self.versions: dict[str, int] = {}
        for start in range(0, rows, self.PACKAGE_RECORDS):
            self.add_records(min(self.PACKAGE_RECORDS, rows - start))

    def drop(self, content: bytes, *, checksum: str | None = None) -> str:
        import hashlib

        self._pkg += 1
        name = f"pkg-{self._pkg:05d}.xml"
        (self.outbox / name).write_bytes(content)
        digest = checksum or hashlib.sha256(content).hexdigest()
        (self.outbox / f"{name}.sha256").write_text(f"{digest}  {name}\n")
        return name

    def add_records(self, n: int) -> list[str]:
        units = []
        for _ in range(n):
            self._n += 1
            unit = f"330322001001GB{self._n:05d}F{self._n:08d}"
            self.versions[unit] = 1
            units.append(unit)
        if units:
            self.drop(land_package([(u, 1) for u in units], approvals=2))
        return units

    def update_record(self, key: str) -> None:
        self.versions[key] += 1
        self.drop(land_package([(key, self.versions[key])]))

    def delete_record(self, key: str) -> None:
        raise NotImplementedError

    def add_bad_record(self) -> str:
        content = land_package([("330322001001GB99999F99999999", 1)])
        return self.drop(content[: len(content) // 2])  # truncated in transit

    def current_keys(self) -> set[str]:
        return set(self.versions)

    def late_commit(self) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """The exchange share drops after the first waiting package: later ones no longer open."""
        from sandbox.land.share import share_drops_after

        with share_drops_after(self.outbox, readable=1) as dropped:
            assert dropped, "the fault needs a second waiting package"
            yield

    def connector(self) -> Connector:
        return make_connector(
            land_source_block(self.outbox, self.archive), name=self.name, work_root=self.root / "work"
        )

    def connector_bad_credentials(self) -> Connector:
        raise NotImplementedError

    def connector_unreachable(self) -> Connector:
        return make_connector(
            land_source_block(self.root / "not-mounted", self.archive), name=self.name, work_root=self.root / "work"
        )


@pytest.fixture()
def xml_harness(tmp_path: Any, hub_db_url: str) -> XmlHarness:
    return XmlHarness(tmp_path / "xmlsrc")
