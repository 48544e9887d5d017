"""``newest_valid_license`` (intake's once-only lookup) answers as ``licenses_by_holder`` with the same
filters, and ``license_row`` as ``get_license``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert

from e_license_store.index import get_license, license_row, licenses_by_holder, newest_valid_license
from e_license_store.tables import LicenseIndexEntry
from hub.db import make_engine, session_factory

HOLDERS = ("91330322MA2ABCDE1X", "330322198001010011")
D = dt.date


def _row(n: int, holder: str, type_code: str, issued: dt.date, status: str, until: dt.date | None) -> dict[str, Any]:
    return {
        "license_id": f"{type_code}-113303220025678958-{n:013d}", "license_type_code": type_code,
        "license_type_name": type_code, "license_number": f"N{n}", "holder_code": holder, "holder_kind": "enterprise",
        "holder_name": "样本", "issuer_code": "113303220025678958", "issuer_name": "发证机关", "issue_date": issued,
        "valid_from": issued, "valid_until": until, "status": status, "version": 1 + n % 3,
        "object_key": f"licenses/{n}/v1.json", "content_sha256": "0" * 64, "content_fingerprint": "0" * 64,
        "key_id": "test", "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }  # fmt: skip


def test_newest_valid_license_equals_licenses_by_holder(hub_db_url: str) -> None:
    rows = [
        _row(1, HOLDERS[0], "1101", D(2020, 1, 1), "valid", None),
        _row(2, HOLDERS[0], "1101", D(2022, 5, 1), "valid", D(2024, 5, 1)),  # newer, expires
        _row(3, HOLDERS[0], "1101", D(2023, 1, 1), "revoked", None),  # newest, revoked
        _row(4, HOLDERS[0], "2101", D(2021, 3, 3), "valid", None),
        _row(5, HOLDERS[0], "2101", D(2021, 3, 3), "valid", None),  # same day: the smaller id first
        _row(6, HOLDERS[1], "1201", D(2019, 6, 1), "suspended", None),
        _row(7, HOLDERS[1], "1201", D(2025, 6, 1), "valid", D(2035, 6, 1)),
    ]
    engine = make_engine(hub_db_url)
    try:
        with session_factory(engine)() as s:
            s.execute(insert(LicenseIndexEntry), rows)
            s.commit()
            days = (D(2019, 1, 1), D(2020, 6, 1), D(2022, 5, 1), D(2024, 5, 1), D(2024, 5, 2), D(2026, 1, 1))
            answers = set()
            for holder in (*HOLDERS, "nobody"):
                for type_code in ("1101", "2101", "1201", "9999"):
                    for on in days:
                        want = licenses_by_holder(s, holder, type_codes=[type_code], status="valid", valid_on=on,
                                                  limit=1)  # fmt: skip
                        got = newest_valid_license(s, holder, type_code, on)
                        assert got == (want[0] if want else None), (holder, type_code, on)
                        answers.add(got.license_id if got else None)
            # the cases above reach every kind of answer: none, the older one, the newer one, a tie broken by id
            assert {None, rows[0]["license_id"], rows[1]["license_id"], rows[3]["license_id"],
                    rows[6]["license_id"]} <= answers  # fmt: skip
            assert rows[4]["license_id"] not in answers and rows[2]["license_id"] not in answers
    finally:
        engine.dispose()


def test_license_row_equals_get_license(hub_db_url: str) -> None:
    rows = [_row(1, HOLDERS[0], "1101", D(2020, 1, 1), "valid", None),
            _row(2, HOLDERS[1], "1201", D(2019, 6, 1), "revoked", D(2029, 6, 1))]  # fmt: skip
    engine = make_engine(hub_db_url)
    try:
        with session_factory(engine)() as s:
            s.execute(insert(LicenseIndexEntry), rows)
            s.commit()
            for license_id in (rows[0]["license_id"], rows[1]["license_id"], "1101-113303220025678958-missing"):
                assert license_row(s, license_id) == get_license(s, license_id)
            found = license_row(s, rows[1]["license_id"])
            assert found is not None and found.status == "revoked" and found.valid_until == D(2029, 6, 1)
            assert found.updated_at.tzinfo is not None
    finally:
        engine.dispose()
