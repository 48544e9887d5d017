"""The client's address (客户端地址): the TCP peer, or what a trusted reverse proxy reports.

``X-Forwarded-For`` is believed only when the TCP peer is one of ``HUB_TRUSTED_PROXIES``. The
list is then read from the right, skipping trusted proxies, and the first address that is not
one is the client (nginx's ``real_ip_recursive``): entries further left were written by the
client itself and prove nothing. A malformed entry stops the walk at the last trustworthy hop.

>>> proxies = parse_networks(["10.0.0.0/8"])
>>> resolve("10.0.0.5", "203.0.113.7, 10.0.0.9", proxies)
IPv4Address('203.0.113.7')
>>> resolve("198.51.100.1", "203.0.113.7", proxies)  # an untrusted peer's header is ignored
IPv4Address('198.51.100.1')
>>> resolve("10.0.0.5", "192.0.2.66, 203.0.113.7", proxies)  # the client's own entry is not believed
IPv4Address('203.0.113.7')
>>> resolve("10.0.0.5", "bogus", proxies)  # the proxy passed garbage on: the proxy is the client
IPv4Address('10.0.0.5')
>>> resolve("::ffff:192.0.2.1", None, ())  # IPv4 on a dual-stack socket
IPv4Address('192.0.2.1')
>>> resolve("testclient", None, ()) is None  # not an IP address (a test client, a Unix socket)
True
>>> bucket(resolve("2001:db8:1:2:3:4:5:6", None, ()))
'2001:db8:1:2::/64'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[Network, ...]

#: Where the resolved address is kept in the ASGI scope (worked out once per request).
SCOPE_KEY = "hub.client_address"


def parse_networks(values: Iterable[str]) -> Networks:
    """CIDRs (a bare address is a /32 or /128); host bits set is refused as a likely typo.

    >>> parse_networks(["10.1.2.0/24", " 10.9.9.9 ", ""])
    (IPv4Network('10.1.2.0/24'), IPv4Network('10.9.9.9/32'))
    >>> parse_networks(["10.1.2.5/24"])
    Traceback (most recent call last):
    ...
    ValueError: 10.1.2.5/24 has host bits set (did you mean 10.1.2.0/24?)
    """
    out: list[Network] = []
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an IP address or CIDR") from exc
            raise ValueError(f"{text} has host bits set (did you mean {loose}?)") from exc
    return tuple(out)


@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An address as a peer or a proxy writes it (``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def contains(networks: Networks, addr: IPAddress | None) -> bool:
    return addr is not None and any(addr in net for net in networks)


def resolve(peer: str | None, forwarded_for: str | None, trusted_proxies: Networks) -> IPAddress | None:
    """The client's address from the TCP peer and ``X-Forwarded-For`` (see the module's doc)."""
    addr = parse_address(peer) if peer else None
    if not forwarded_for or not contains(trusted_proxies, addr):
        return addr
    for entry in reversed(forwarded_for.split(",")):
        hop = parse_address(entry)
        if hop is None:
            return addr
        addr = hop
        if not contains(trusted_proxies, hop):
            return hop
    return addr


def from_scope(scope: Any, trusted_proxies: Networks) -> IPAddress | None:
    """The client's address of an ASGI request, worked out once and kept in the scope."""
    if SCOPE_KEY in scope:
        found: IPAddress | None = scope[SCOPE_KEY]
        return found
    client = scope.get("client")
    peer = str(client[0]) if client else None
    forwarded = None
    if trusted_proxies:
        values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
        forwarded = ",".join(values) or None
    found = resolve(peer, forwarded, trusted_proxies)
    scope[SCOPE_KEY] = found
    return found


def bucket(addr: IPAddress | None) -> str:
    """The per-address counter's name: the address, an IPv6 client's /64 (one host gets a whole /64)."""
    if addr is None:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
    return str(addr)
