"""One contract, every backend: the local store, MinIO's SDK against moto's S3 server, and a
real MinIO when ``HUB_TEST_MINIO_URL`` is set.

moto neither checks credentials nor presigned-URL expiry: those two are tested on the
local backend and on real MinIO only.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.index import get_license, licenses_by_holder, reindex
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing
from e_license_store.store import open_store
from e_license_store.store.base import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    PresignedURLRefused,
    Retention,
    RetentionMode,
)
from e_license_store.store.local import LocalStore
from e_license_store.store.minio_store import MinioStore
from e_license_store.verify import verify_file
from tests.e_license_store.conftest import USCC, business_draft, source

BACKENDS = ["local", "moto", pytest.param("minio", marks=pytest.mark.minio)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


def _minio_url(base: str, bucket: str, retention: str) -> str:
    base = base.rstrip("/")
    return f"{base}/{bucket}?retention_mode={retention}&retention_years=1"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Callable[[str], ObjectStore]]]:
    """(name, factory): the factory opens a store with the given bucket default retention ("NONE" for none)."""
    bucket = f"lic-{uuid.uuid4().hex[:12]}"
    if request.param == "local":
        yield "local", lambda _retention: LocalStore(tmp_path / "store")
    elif request.param == "moto":
        endpoint = request.getfixturevalue("moto_endpoint")
        yield "moto", lambda retention: open_store(_minio_url(f"minio://test:test@{endpoint}", bucket, retention))
    else:
        url = os.environ.get("HUB_TEST_MINIO_URL")
        if not url:
            pytest.skip("HUB_TEST_MINIO_URL not set (real MinIO)")
        yield "minio", lambda retention: open_store(_minio_url(url, bucket, retention))


def _fetch(store: ObjectStore, url: str) -> bytes:
    if isinstance(store, LocalStore):
        return store.open_presigned(url)
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own presigned http URL
        return bytes(resp.read())


def test_put_get_stat_and_list(backend: tuple[str, Callable[[str], ObjectStore]]) -> None:
    store = backend[1]("NONE")
    info = store.put("licenses/A/v000001.json", b'{"a":1}', content_type="application/json")
    store.put("licenses/A/v000002.json", b'{"a":2}')
    store.put("licenses/B/v000001.json", b'{"b":1}')
    assert store.get("licenses/A/v000001.json") == b'{"a":1}'
    st = store.stat("licenses/A/v000001.json")
    assert st is not None and st.sha256 == info.sha256 and st.size == 7 and st.version_id
    assert st.content_type == "application/json"
    assert list(store.list_keys("licenses/A/")) == ["licenses/A/v000001.json", "licenses/A/v000002.json"]
    assert list(store.list_keys("licenses/")) == sorted(list(store.list_keys("licenses/")))
    assert store.stat("licenses/C/v000001.json") is None
    with pytest.raises(ObjectNotFound):
        store.get("licenses/C/v000001.json")


def test_write_once_refuses_overwrite(backend: tuple[str, Callable[[str], ObjectStore]]) -> None:
    store = backend[1]("NONE")
    store.put("k/v1", b"first")
    with pytest.raises(ObjectExists):
        store.put("k/v1", b"second")
    assert store.get("k/v1") == b"first"


def test_retention_blocks_delete_and_compliance_only_extends(backend: tuple[str, Callable[[str], ObjectStore]]) -> None:
    store = backend[1]("NONE")
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    store.put("r/gov", b"x", retention=Retention(RetentionMode.governance, until))
    got = store.get_retention("r/gov")
    assert got is not None and got.mode == RetentionMode.governance and abs((got.until - until).total_seconds()) < 2
    with pytest.raises(ObjectLocked):
        store.delete("r/gov")
    store.put("r/comp", b"y")
    store.set_retention("r/comp", Retention(RetentionMode.compliance, until))
    with pytest.raises(ObjectLocked):
        store.set_retention("r/comp", Retention(RetentionMode.compliance, until - dt.timedelta(days=1)))
    store.set_retention("r/comp", Retention(RetentionMode.compliance, until + dt.timedelta(days=1)))
    assert store.get_retention("r/comp").until > until  # type: ignore[union-attr]
    with pytest.raises(ObjectLocked):
        store.delete("r/comp")
    assert store.get("r/comp") == b"y"


def test_bucket_default_retention_applies_without_a_request_per_object(
    backend: tuple[str, Callable[[str], ObjectStore]],
) -> None:
    name, factory = backend
    store = factory("GOVERNANCE")
    store.put("d/obj", b"z")
    if name == "local":
        assert store.get_retention("d/obj") is None  # the local store keeps retention per object only
        return
    got = store.get_retention("d/obj")
    assert got is not None and got.mode == RetentionMode.governance and got.active()
    with pytest.raises(ObjectLocked):
        store.delete("d/obj")


def test_legal_hold_blocks_delete_until_released(backend: tuple[str, Callable[[str], ObjectStore]]) -> None:
    store = backend[1]("NONE")
    store.put("h/obj", b"held")
    store.set_legal_hold("h/obj", True)
    assert store.get_legal_hold("h/obj") is True
    with pytest.raises(ObjectLocked):
        store.delete("h/obj")
    store.set_legal_hold("h/obj", False)
    assert store.get_legal_hold("h/obj") is False
    store.delete("h/obj")
    assert store.stat("h/obj") is None


def test_presigned_get_reads_the_object(backend: tuple[str, Callable[[str], ObjectStore]]) -> None:
    store = backend[1]("NONE")
    store.put("p/obj", "电子证照".encode())
    url = store.presigned_get("p/obj", dt.timedelta(seconds=60))
    assert _fetch(store, url) == "电子证照".encode()
    with pytest.raises(ObjectNotFound):
        store.presigned_get("p/missing")


def test_service_on_every_backend(
    backend: tuple[str, Callable[[str], ObjectStore]], sessions: sessionmaker[Session], keyring: KeyRing
) -> None:
    store = backend[1]("GOVERNANCE")
    service = LicenseService(store, sessions, keyring)
    first = service.issue(business_draft(), source())
    again = service.issue(business_draft(), source())
    assert not again.created and again.version == first.version == 1
    service.revoke(first.license_id, "吊销")
    with sessions() as s:
        res = verify_file(store.get(first.object_key), keyring, session=s)
        assert res.signature_ok and res.revoked and not res.ok
        before = get_license(s, first.license_id)
        assert reindex(s, store, keyring=service.signer) == 2
        s.commit()
        assert get_license(s, first.license_id) == before
        assert [r.status for r in licenses_by_holder(s, USCC)] == ["revoked"]


# -- what moto cannot show: expiry and credentials (local backend and real MinIO) -----------------
def test_local_presigned_url_expires_and_needs_the_stores_secret(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", secret=b"one")
    store.put("k", b"v")
    url = store.presigned_get("k", dt.timedelta(seconds=30))
    assert store.open_presigned(url) == b"v"
    with pytest.raises(PresignedURLRefused, match="expired"):
        store.open_presigned(url, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=31))
    with pytest.raises(PresignedURLRefused, match="credentials"):
        LocalStore(tmp_path / "s", secret=b"two").open_presigned(url)
    with pytest.raises(PresignedURLRefused):
        store.open_presigned(url.replace("/k?", "/other?"))


@pytest.mark.minio
def test_real_minio_presigned_expiry_and_credential_refusal() -> None:
    url = os.environ.get("HUB_TEST_MINIO_URL")
    if not url:
        pytest.skip("HUB_TEST_MINIO_URL not set (real MinIO)")
    bucket = f"lic-{uuid.uuid4().hex[:12]}"
    store = open_store(_minio_url(url, bucket, "NONE"))
    assert isinstance(store, MinioStore)
    store.put("k", b"v")
    presigned = store.presigned_get("k", dt.timedelta(seconds=1))
    deadline = time.monotonic() + 15
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            urllib.request.urlopen(presigned, timeout=5).read()  # noqa: S310
        except urllib.error.HTTPError as exc:
            refused = exc.code == 403
    assert refused, "presigned URL still valid after its expiry"
    from minio import Minio
    from minio.error import S3Error

    wrong = Minio(
        store.client._base_url.host,
        access_key="nobody",
        secret_key="wrong-secret",
        secure=store.client._base_url.is_https,
    )
    with pytest.raises(S3Error):
        wrong.get_object(bucket, "k")


def test_licence_retention_from_bucket_default_or_per_object(
    moto_endpoint: str, sessions: sessionmaker[Session], keyring: KeyRing
) -> None:
    """Business licences keep 30 years: covered by a 30-year bucket rule, or carried by the upload
    itself when the bucket's rule is shorter; either way the licence costs the store one request."""
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 30 - 1)
    for bucket_years, lock_headers in ((30, False), (1, True)):
        store = open_store(
            f"minio://test:test@{moto_endpoint}/lic-{uuid.uuid4().hex[:12]}"
            f"?retention_mode=GOVERNANCE&retention_years={bucket_years}"
        )
        assert isinstance(store, MinioStore)
        requests: list[tuple[str, dict[str, object]]] = []
        original = store.client._url_open

        def spy(
            method: str,
            *args: object,
            _orig: Callable[..., object] = original,
            _requests: list[tuple[str, dict[str, object]]] = requests,
            **kwargs: object,
        ) -> object:
            _requests.append((method, dict(kwargs.get("headers") or {})))  # type: ignore[call-overload]
            return _orig(method, *args, **kwargs)

        store.client._url_open = spy  # type: ignore[method-assign,assignment]
        issued = LicenseService(store, sessions, keyring).issue(business_draft(), source(f"r{bucket_years}"))
        assert [method for method, _ in requests] == ["PUT"]
        headers = requests[0][1]
        assert ("x-amz-object-lock-mode" in headers) is lock_headers
        assert ("Content-MD5" in headers) is lock_headers
        store.client._url_open = original  # type: ignore[method-assign]
        got = store.get_retention(issued.object_key)
        assert got is not None and got.mode == RetentionMode.governance and got.until >= horizon
