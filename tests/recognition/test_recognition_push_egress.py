"""Outbound pushes reach only allowed destinations: address ranges, DNS rebinding (the resolver is
injected, the receivers are real local servers), zeep's WSDL and the documents it imports."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from connectors.egress import AllowedDestination, DestinationPolicy, DestinationRefused, Reach, classify
from connectors.egress_http import GuardedTransport
from connectors.egress_soap import GuardedZeepTransport
from hub.db import session_scope
from recognition import delivery as dlv
from recognition import delivery_ops
from recognition.tables import Delivery
from tests.recognition.rec_helpers import Receiver, World, allow_destination, auth, issue_business


class FakeDNS:
    """A resolver with fixed answers that counts its questions (the seam the transports take)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"unknown host {host}")
        return self.answers[host]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", "public"), ("2606:4700::6810:84e5", "public"),
        ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"), ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"), ("::ffff:192.168.1.1", "private"),
        ("127.0.0.1", "special"), ("127.8.8.8", "special"), ("::1", "special"), ("0.0.0.0", "special"),
        ("::", "special"), ("169.254.169.254", "special"), ("fe80::1", "special"), ("224.0.0.251", "special"),
        ("ff02::1", "special"), ("240.0.0.1", "special"), ("255.255.255.255", "special"), ("192.0.2.1", "special"),
        ("::ffff:127.0.0.1", "special"), ("::ffff:169.254.169.254", "special"), ("64:ff9b::a9fe:a9fe", "special"),
        ("2002:7f00:1::1", "special"),
    ],
)  # fmt: skip
def test_address_ranges(address: str, kind: str) -> None:
    assert classify(address) == kind


def test_reach_of_an_allowed_destination() -> None:
    public = DestinationPolicy((AllowedDestination.parse("https://hooks.example/"),))
    private = DestinationPolicy((AllowedDestination.parse("https://hooks.example/", reach=Reach.private),))
    for policy, allowed in ((public, {"93.184.216.34"}), (private, {"93.184.216.34", "10.0.0.5"})):
        for address in ("93.184.216.34", "10.0.0.5", "127.0.0.1", "169.254.169.254", "::ffff:10.0.0.5"):
            expected = address in allowed or (address == "::ffff:10.0.0.5" and "10.0.0.5" in allowed)
            assert policy.permits_address("hooks.example", 443, address) is expected, (policy, address)
    # no allowed destination at all (a generic sender): public addresses only
    assert DestinationPolicy().permits_address("x.example", 443, "8.8.8.8")
    assert not DestinationPolicy().permits_address("x.example", 443, "10.0.0.5")


def test_dns_rebinding_is_refused_at_connect(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    """A name the operator allowed is re-pointed at a loopback or metadata address: the worker
    resolves it once, refuses to connect, and the consumer learns only that it was not allowed."""
    name = "hooks.tax.test"
    allow_destination(world.engine, "tax_bureau", f"http://{name}:{receiver.port}/")
    res = client.post("/v1/subscriptions", headers=auth(tokens["tax_bureau"]), json={
        "name": "n", "event_types": ["license.issued"], "license_types": ["1101"],
        "url": f"http://{name}:{receiver.port}/hook"})  # fmt: skip
    assert res.status_code == 201, res.text  # a name is checked where it matters: at every connection
    receiver.secret = res.json()["secret"]
    dns = FakeDNS({name: ["127.0.0.1"]})
    pushers = dlv.Pushers.from_settings(resolver=dns)
    issue_business(world.service, "ent-rebind")
    try:
        report = dlv.run_once(world.engine, pushers=pushers, policy=dlv.DeliveryPolicy(concurrency=1))
        assert report.failed == 1 and receiver.received == [] and receiver.hosts == []
        assert dns.asked == [name]
        with world.sessions() as s:
            [d] = list(s.scalars(select(Delivery)))
        assert (d.last_error or "").startswith("destination refused: hooks.tax.test:")
        assert "127.0.0.1 (special)" in (d.last_error or "")
        [shown] = client.get("/v1/deliveries", headers=auth(tokens["tax_bureau"])).json()["items"]
        assert shown["last_error"] == "destination not allowed"

        dns.answers[name] = ["169.254.169.254", "10.0.0.9"]  # rebinding to the metadata service or a private host
        with session_scope(world.engine) as s:
            delivery_ops.replay(s, d.id)
        assert dlv.run_once(world.engine, pushers=pushers).failed == 1 and receiver.hosts == []

        # the operator allows this very address: the worker connects to the address it checked and
        # keeps the name as the Host header (and, for https, the TLS server name)
        allow_destination(world.engine, "tax_bureau", f"http://127.0.0.1:{receiver.port}/")
        dns.answers[name] = ["169.254.169.254", "127.0.0.1"]
        with session_scope(world.engine) as s:
            delivery_ops.replay(s, d.id)
        assert dlv.run_once(world.engine, pushers=pushers).delivered == 1
        assert receiver.hosts == [f"{name}:{receiver.port}"] and len(receiver.received) == 1
    finally:
        pushers.close()


def test_guarded_transport_never_connects_to_a_refused_address(receiver: Receiver) -> None:
    dns = FakeDNS({"metadata.test": ["169.254.169.254"], "local.test": ["127.0.0.1"]})
    policy = DestinationPolicy((
        AllowedDestination.parse(f"http://metadata.test:{receiver.port}/"),
        AllowedDestination.parse(f"http://local.test:{receiver.port}/", reach=Reach.private),
    ))  # fmt: skip
    with httpx.Client(transport=GuardedTransport(policy, resolver=dns)) as client:
        for host in ("metadata.test", "local.test"):  # loopback is not private-use: --private does not open it
            with pytest.raises(DestinationRefused):
                client.post(f"http://{host}:{receiver.port}/hook", content=b"{}")
        with pytest.raises(DestinationRefused, match="not an allowed destination"):
            client.post(f"http://127.0.0.1:{receiver.port}/hook", content=b"{}")
    assert receiver.hosts == []


class _Documents:
    """A local HTTP server serving a WSDL whose schema imports another document."""

    def __init__(self, import_location: str) -> None:
        self.requests: list[str] = []
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                docs.requests.append(self.path)
                body = WSDL.replace("IMPORT", import_location).encode()
                self.send_response(200)
                self.send_header("content-type", "text/xml")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


WSDL = """<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
             targetNamespace="urn:t">
  <types><xsd:schema targetNamespace="urn:t">
    <xsd:import namespace="urn:other" schemaLocation="IMPORT"/>
  </xsd:schema></types>
</definitions>"""


@pytest.fixture()
def documents(request: pytest.FixtureRequest) -> Iterator[_Documents]:
    docs = _Documents(str(request.param))
    yield docs
    docs.close()


@pytest.mark.parametrize(
    "documents",
    ["file:///etc/passwd", "http://metadata.test/latest/meta-data", "http://169.254.169.254/x"],
    indirect=True,
)
def test_soap_wsdl_and_its_imports_go_through_the_guard(documents: _Documents) -> None:
    from zeep import Client, Settings

    dns = FakeDNS({"metadata.test": ["169.254.169.254"]})
    policy = DestinationPolicy((
        AllowedDestination.parse(f"http://127.0.0.1:{documents.port}/"),
        AllowedDestination.parse("http://metadata.test/"),  # allowed by name, but it resolves to metadata
    ))  # fmt: skip
    transport = GuardedZeepTransport(policy, resolver=dns, timeout=5)
    with pytest.raises(DestinationRefused):
        Client(f"http://127.0.0.1:{documents.port}/tax?wsdl", transport=transport, settings=Settings(strict=False))
    assert documents.requests == ["/tax?wsdl"]  # the WSDL came from the allowed host; the import never
    with pytest.raises(DestinationRefused):
        transport.load("http://127.0.0.1:1/other-port?wsdl")  # not an allowed destination
    with pytest.raises(DestinationRefused):
        transport.load("file:///etc/hostname")
