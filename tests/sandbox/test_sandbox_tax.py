"""The tax SOAP sandbox answers through SOAP: WSDL, paging, faults, WS-Security, notices."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
import zeep
from zeep.wsse.username import UsernameToken

from sandbox.runtime import Sandboxes

_WSDL: dict[str, zeep.wsdl.Document] = {}


def client(sb: Sandboxes, password: str | None = None, digest: bool = False) -> zeep.Client:
    """A zeep client; the WSDL is fetched and parsed once per sandbox (parsing dominates test time)."""
    token = UsernameToken(sb.tax.username, password or sb.tax.password, use_digest=digest)
    c = (
        zeep.Client(_WSDL[sb.tax.wsdl_url], wsse=token)
        if sb.tax.wsdl_url in _WSDL
        else zeep.Client(sb.tax.wsdl_url, wsse=token)
    )
    _WSDL.setdefault(sb.tax.wsdl_url, c.wsdl)
    return c


def test_wsdl_declares_every_operation(sandbox_embedded: Sandboxes) -> None:
    c = client(sandbox_embedded)
    ops = set(next(iter(next(iter(c.wsdl.services.values())).ports.values())).binding._operations)
    assert ops == {
        "ListChangedTaxpayers",
        "ListCaseSteps",
        "GetTaxpayer",
        "ReceiveLicenseNotice",
        "ListReceivedNotices",
    }


def test_list_changed_taxpayers_pages_in_order(sandbox_embedded: Sandboxes) -> None:
    c = client(sandbox_embedded)
    since = dt.datetime(2020, 1, 1)
    seen: list[tuple[dt.datetime, str]] = []
    token = None
    pages = 0
    while True:
        page = c.service.ListChangedTaxpayers(since=since, page_token=token, page_size=25)
        rows = page.taxpayers.Taxpayer if page.taxpayers else []
        seen += [(r.updated_at, r.taxpayer_code) for r in rows]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    expected = sandbox_embedded.population.taxpayers
    local_since = since
    n_expected = int((expected["updated_at"] >= local_since).sum())
    assert len(seen) == n_expected and pages > 1
    assert seen == sorted(seen)
    assert len({code for _, code in seen}) == len(seen)
    assert all(ts.utcoffset() == dt.timedelta(hours=8) and ts >= since.replace(tzinfo=ts.tzinfo) for ts, _ in seen)


def test_get_taxpayer_and_not_found_fault(sandbox_embedded: Sandboxes) -> None:
    c = client(sandbox_embedded)
    row = sandbox_embedded.population.taxpayers.iloc[0]
    got = c.service.GetTaxpayer(row["taxpayer_code"])
    assert got.taxpayer_name == row["taxpayer_name"]
    assert got.taxpayer_status == row["taxpayer_status"]
    with pytest.raises(zeep.exceptions.Fault) as err:
        c.service.GetTaxpayer("000000000000000")
    assert err.value.code.endswith("Client.NotFound")


def test_old_records_carry_15_digit_taxpayer_ids(sandbox_embedded: Sandboxes) -> None:
    codes = sandbox_embedded.population.taxpayers["taxpayer_code"]
    old = codes[codes.str.len() == 15]
    assert len(old) > 0
    got = client(sandbox_embedded).service.GetTaxpayer(old.iloc[0])
    assert got.taxpayer_code == old.iloc[0]


@pytest.mark.parametrize("digest", [False, True])
def test_ws_security_username_token(sandbox_embedded: Sandboxes, digest: bool) -> None:
    code = sandbox_embedded.population.taxpayers.iloc[0]["taxpayer_code"]
    assert client(sandbox_embedded, digest=digest).service.GetTaxpayer(code).taxpayer_code == code
    with pytest.raises(zeep.exceptions.Fault) as err:
        client(sandbox_embedded, password="wrong", digest=digest).service.GetTaxpayer(code)
    assert err.value.code.endswith("Client.Authentication")
    anonymous = zeep.Client(sandbox_embedded.tax.wsdl_url)
    with pytest.raises(zeep.exceptions.Fault) as err:
        anonymous.service.GetTaxpayer(code)
    assert err.value.code.endswith("Client.Authentication")


def test_license_notice_is_idempotent_by_key(sandbox_embedded: Sandboxes) -> None:
    c = client(sandbox_embedded)
    notice_type = c.get_type("ns0:LicenseNotice")
    notice = notice_type(
        idempotency_key="evt-tax-001",
        event_type="license.issued",
        license_id="L-0001",
        license_type_code="11100000",
        holder_code="91330300MA2H000001",
        holder_name="温州某公司",
        status="valid",
        issued_at=dt.datetime(2025, 7, 1, 9, 30),
        payload_json='{"a": 1}',
        signature="sig",
    )
    first = c.service.ReceiveLicenseNotice(notice=notice)
    again = c.service.ReceiveLicenseNotice(notice=notice)
    assert first.accepted and again.accepted
    assert first.notice_id == again.notice_id and again.duplicate and not first.duplicate
    received = [n for n in c.service.ListReceivedNotices() if n.notice.idempotency_key == "evt-tax-001"]
    assert len(received) == 1
    assert received[0].notice.license_id == "L-0001"
    assert received[0].notice.holder_name == "温州某公司"


def test_tax_faults_switch_on_and_off(sandbox_embedded: Sandboxes) -> None:
    c = client(sandbox_embedded)
    code = sandbox_embedded.population.taxpayers.iloc[0]["taxpayer_code"]
    faults = sandbox_embedded.faults
    with faults.tax_fault(soap_fault=True):
        with pytest.raises(zeep.exceptions.Fault) as err:
            c.service.GetTaxpayer(code)
        assert err.value.code.endswith("Server.Unavailable")
    assert c.service.GetTaxpayer(code).taxpayer_code == code
    with faults.tax_fault(http_503=2):
        for _ in range(2):
            with pytest.raises(zeep.exceptions.TransportError) as terr:
                c.service.GetTaxpayer(code)
            assert terr.value.status_code == 503
        assert c.service.GetTaxpayer(code).taxpayer_code == code  # the batch of two is used up
    with faults.tax_fault(slow_seconds=1.5), pytest.raises(requests.exceptions.Timeout):
        requests.get(sandbox_embedded.tax.wsdl_url, timeout=0.3)
    assert requests.get(sandbox_embedded.tax.wsdl_url, timeout=5).status_code == 200
