"""Property: no endpoint, with any scopes short of ``personal:read``, releases personal data.

Hypothesis generates licences of every catalogue type — held by persons, by enterprises and
by sole proprietors (个体工商户), with names, resident ids, addresses, phones and co-owners
in the fields the catalogue marks personal, and ids and phones hidden in free text — and
scope sets drawn from every scope a consumer can hold except ``personal:read``. Every
endpoint that answers about a licence is called with each scope set; the answers (JSON,
the copy of a file — PDFs read back with ``pdftotext`` and their QR codes decoded with
``zbarimg`` from a ``pdftoppm`` raster, not raw compressed bytes), the problem details, the
audit log and the captured log lines must not contain any generated personal value whole.
Every consumer also subscribes to licence events, at a receiver its operator allowed: what the
delivery worker pushes (bodies and ``webhook-id``) is held to the same rule.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from e_license_store.catalogue import load_catalogue
from e_license_store.model import LicenseDraft
from e_license_store.render import ensure_file
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, migrate, session_factory, session_scope
from identifiers.resident_id import calc_check_digit
from identifiers.uscc import calc_check_digit as uscc_check
from mappings.canonical.models import HolderKind, SourceRef
from recognition import delivery, destinations, subscriptions
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from recognition.schemas import EventType
from tests.conftest import require
from tests.recognition.rec_helpers import Receiver


@pytest.fixture(scope="module", autouse=True)
def _pdf_tools() -> None:
    require(
        all(shutil.which(t) for t in ("pdftotext", "pdftoppm", "zbarimg")),
        "poppler-utils and zbar-tools (installed by make) read the PDFs and their QR codes",
    )


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐"
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国文辉"
STREETS = ("中心路", "人民路", "海霞路", "环岛西路", "学院路")
CATALOGUE = load_catalogue()
TYPES = sorted(CATALOGUE)
LICENCE_EVENTS = [e.value for e in EventType if not e.value.startswith("identity.")]
SCOPE_ATOMS = sorted(
    {"licenses:read:*", "licenses:file", "licenses:verify", "recognitions:read", "fields:*", "metrics:read",
     "subscriptions:manage", "deliveries:read"}
    | {f"licenses:read:{t}" for t in TYPES}
    | {f"fields:{f.name}" for t in CATALOGUE.values() for f in t.surface_fields}
)  # fmt: skip


def resident_id(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["330322", "330302", "110105", "440106"]))
    born = draw(st.dates(dt.date(1930, 1, 1), dt.date(2010, 12, 31)))
    body = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + calc_check_digit(body)


def person_name(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(SURNAMES)) + "".join(draw(st.lists(st.sampled_from(GIVEN), min_size=1, max_size=2)))


def uscc(draw: st.DrawFn, *, sole: bool) -> str:
    body = ("92" if sole else "91") + "330322" + "".join(draw(st.lists(st.sampled_from("0123456789ABCDEFGH"),
                                                                      min_size=9, max_size=9)))  # fmt: skip
    return body + uscc_check(body)


@dataclass
class Case:
    draft: LicenseDraft
    secrets: list[str] = field(default_factory=list)  # personal values that must never appear whole
    render_pdf: bool = False


@st.composite
def cases(draw: st.DrawFn) -> Case:
    type_code = draw(st.sampled_from(TYPES))
    ltype = CATALOGUE[type_code]
    holder_kind = draw(st.sampled_from(["person", "enterprise"] if ltype.holder_kind == "any" else [ltype.holder_kind]))
    sole = holder_kind == "enterprise" and draw(st.booleans())
    secrets: list[str] = []
    owner = person_name(draw)
    rid, phone = resident_id(draw), f"1{draw(st.sampled_from('3589'))}{draw(st.integers(0, 10**9 - 1)):09d}"
    address = f"浙江省温州市洞头区{draw(st.sampled_from(STREETS))}{draw(st.integers(1, 999))}号"
    if holder_kind == "person":
        code, name = rid, owner
        secrets += [rid, owner]
    elif sole:
        code, name = uscc(draw, sole=True), f"洞头区{owner}小吃店"
        secrets += [owner]
    else:
        code, name = uscc(draw, sole=False), "温州洞头海景餐饮有限公司"
    other = person_name(draw)
    surface: dict[str, Any] = {}
    for f in ltype.surface_fields:
        kind = f.personal
        if kind in ("name",):
            surface[f.name] = other
            secrets.append(other)
        elif kind == "party_name":
            surface[f.name] = name
        elif kind == "address":
            surface[f.name] = address
            secrets.append(address)
        elif kind == "person_text":
            surface[f.name] = f"{owner}、{other}共同共有"
            secrets += [owner, other]
        elif kind in ("resident_id", "code"):
            surface[f.name] = rid
            secrets.append(rid)
        elif kind == "phone":
            surface[f.name] = phone
            secrets.append(phone)
        elif f.required or draw(st.booleans()):
            # free text of no personal kind, sometimes quoting an id or a phone (scrubbed by shape)
            hidden = draw(st.sampled_from(["", f"（联系人电话{phone}）", f"身份证号{rid}"]))
            surface[f.name] = f"{f.label}内容{hidden}"
            if hidden:
                secrets.append(phone if "电话" in hidden else rid)
    draft = LicenseDraft(
        license_type_code=type_code, license_number=f"N{draw(st.integers(0, 10**9)):010d}", holder_name=name,
        holder_code=code, holder_kind=HolderKind(holder_kind), issuer_code="113303220025678912",
        issue_date=dt.date(2020, 1, 2), surface=surface,
    )  # fmt: skip
    return Case(draft, sorted({s for s in secrets if len(s) >= 2}), draw(st.booleans()))


@dataclass
class Hub:
    root: Path
    engine: Any
    service: LicenseService
    directory: LicenseDirectory
    client: TestClient
    sessions: Any
    receiver: Receiver
    made: int = 0


@pytest.fixture(scope="module")
def hub_world() -> Iterator[Hub]:
    root = Path(tempfile.mkdtemp(prefix="privacy_"))
    rotate(root / "keys")
    url = f"sqlite:///{root / 'hub.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    store, keyring = LocalStore(root / "store"), load_keyring(root / "keys")
    directory = LicenseDirectory(store, keyring)
    app = create_app(engine=engine, directory=directory, config=RecognitionSettings(api_key_cache_seconds=0.0))
    receiver = Receiver()
    receiver.start()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Hub(root, engine, LicenseService(store, sessions, keyring), directory, client, sessions, receiver)
    receiver.stop()
    engine.dispose()
    shutil.rmtree(root, ignore_errors=True)


def _pdf_text(pdf: bytes, work: Path) -> str:
    path = work / "f.pdf"
    path.write_bytes(pdf)
    words = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True).stdout
    subprocess.run(["pdftoppm", "-r", "110", "-png", "-singlefile", str(path), str(work / "page")], check=True)
    qr = subprocess.run(["zbarimg", "-q", "--raw", str(work / "page.png")], capture_output=True).stdout
    assert qr.strip(), "the file carries a readable QR code"
    return words.decode() + "\n" + qr.decode()


def _answers(hub: Hub, case: Case, license_id: str, token: str, work: Path) -> list[str]:
    """Every answer about the licence to this key, as text a person or program could read."""
    h = {"Authorization": f"Bearer {token}"}
    c = hub.client
    out = []
    code = case.draft.holder_code
    for path in (f"/v1/holders/{code}/licenses", f"/v1/holders/{code}/recognitions", f"/v1/licenses/{license_id}",
                 f"/v1/holders/{code}/licenses?limit=0", f"/v1/licenses/{code}"):  # fmt: skip
        out.append(c.get(path, headers=h).text)
    res = c.get(f"/v1/licenses/{license_id}/file", headers=h)
    if res.status_code == 200 and res.headers["content-type"] == "application/pdf":
        out.append(_pdf_text(res.content, work))
        verdict = c.post("/v1/licenses/verify", files={"file": ("f.pdf", res.content, "application/pdf")}, headers=h)
        out.append(verdict.text)
    else:
        out.append(res.text)
    out.append(c.post("/v1/licenses/verify", json={"license_id": license_id}, headers=h).text)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])  # fmt: skip
@given(case=cases(), scope_sets=st.lists(st.sets(st.sampled_from(SCOPE_ATOMS), max_size=8), min_size=2, max_size=3))
def test_no_endpoint_releases_personal_data_without_personal_read(
    hub_world: Hub, case: Case, scope_sets: list[set[str]], caplog: pytest.LogCaptureFixture
) -> None:
    hub = hub_world
    hub.made += 1
    source = SourceRef(department="test", dataset="privacy", source_key=f"k{hub.made}", source_version="1")
    license_id = hub.service.issue(case.draft, source).license_id
    if case.render_pdf:
        ensure_file(license_id, store=hub.directory.store, sessions=hub.sessions, keyring=hub.directory.keyring)
    # the widest view short of personal data is always among the scope sets
    wide = {"licenses:read:*", "fields:*", "licenses:file", "licenses:verify", "recognitions:read"}
    work = Path(tempfile.mkdtemp(prefix="answers_", dir=hub.root))
    texts: list[str] = []
    pushed_before = len(hub.receiver.received)
    for i, scopes in enumerate([wide, *scope_sets]):
        name = f"c{hub.made}-{i}"
        with session_scope(hub.engine) as session:
            consumer, token = add_consumer(session, name, sorted(scopes))
            destinations.allow(session, name, hub.receiver.origin)
            # subscribed as an operator would for it: delivery still releases only what its scopes allow
            subscriptions.create(session, name="all licence events", event_types=LICENCE_EVENTS,
                                 url=hub.receiver.url, consumer_id=consumer.id, from_event_id=0)  # fmt: skip
        texts += _answers(hub, case, license_id, token, work)
    for _ in range(5):
        report = delivery.run_once(hub.engine, policy=delivery.DeliveryPolicy(max_attempts=2, concurrency=2))
        if report.attempted == 0 and report.fanned_out == 0 and report.skipped == 0:
            break
    pushed = hub.receiver.received[pushed_before:]
    assert pushed, "the widest consumer receives the licence's event"
    texts += [msg_id + json.dumps(body, ensure_ascii=False) for msg_id, body in pushed]
    with hub.engine.connect() as conn:
        audit_rows = [json.dumps([str(v) for v in r], ensure_ascii=False)
                      for r in conn.execute(text("SELECT * FROM recognition_audit"))]  # fmt: skip
    everything = "\n".join(texts + audit_rows + [caplog.text])
    for secret in case.secrets:
        assert secret not in everything, (secret, case.draft.license_type_code, case.draft.holder_kind)
