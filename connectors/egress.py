"""Where the hub may connect to when it pushes (出站目的地管控): allowed destinations and addresses.

A push goes out only to a destination an operator allowed (:class:`AllowedDestination`: scheme,
host, port and path prefix), and only to an address that destination may reach
(:class:`Reach`): by default a *public* one. Loopback, link-local (169.254.169.254, the cloud
metadata service, included), multicast, unspecified (0.0.0.0, ``::``), reserved and documentation
ranges are refused, also inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses; private-use ranges
(10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) only where the destination says ``private``.
An address the operator wrote down as the destination's host is allowed whatever its range.

The check runs twice: on the URL (:meth:`DestinationPolicy.check_url`: scheme, host, port, path,
no credentials) and on the address actually connected to (:meth:`DestinationPolicy.permits_address`),
after resolving the name *once* — the transports in :mod:`connectors.egress_http` connect to the
address that was checked, so a name re-pointed between check and connect (DNS rebinding) gains
nothing. The resolver is a parameter (:data:`Resolver`).

>>> policy = DestinationPolicy((AllowedDestination.parse("https://hooks.tax.example/hub"),))
>>> policy.check_url("https://hooks.tax.example/hub/notices").host
'hooks.tax.example'
>>> policy.check_url("https://hooks.tax.example/hubx")
Traceback (most recent call last):
...
connectors.egress.DestinationRefused: https://hooks.tax.example:443/hubx is not an allowed destination
>>> [policy.permits_address("hooks.tax.example", 443, a) for a in ("203.0.113.7", "8.8.8.8", "10.0.0.7")]
[False, True, False]
>>> policy.permits_address("hooks.tax.example", 443, "::ffff:169.254.169.254")
False
"""

from __future__ import annotations

import ipaddress
import posixpath
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; the system's resolver unless a caller injects another.
Resolver = Callable[[str, int], Sequence[str]]

DEFAULT_PORTS = {"https": 443, "http": 80}
PRIVATE_USE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


#: How a refused destination starts a push's error (operators see the rest; consumers only this).
DESTINATION_REFUSED = "destination refused"


class DestinationRefused(Exception):
    """The URL or the address is not one this push may go to (the reason is for operators)."""


class Reach(StrEnum):
    """Which addresses a destination may resolve to."""

    public = "public"  # globally routable addresses only (the default)
    private = "private"  # also the private-use ranges (政务外网 hosts)
    any = "any"  # any address: destinations operators declared themselves (subscriptions.yaml)


def classify(address: str) -> str:
    """``public``, ``private`` (private-use ranges) or ``special`` (never without an explicit entry).

    >>> [classify(a) for a in ("8.8.8.8", "10.1.2.3", "127.0.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1")]
    ['public', 'private', 'special', 'special', 'special', 'special']
    >>> [classify(a) for a in ("::1", "fe80::1", "fd00::5", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::")]
    ['special', 'special', 'private', 'private', 'special', 'special']
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    target = _embedded_ipv4(ip) or ip
    if (
        target.is_multicast or target.is_unspecified or target.is_loopback or target.is_link_local
        or target.is_reserved
    ):  # fmt: skip
        return "special"
    if any(target.version == n.version and target in n for n in PRIVATE_USE):
        return "private"
    return "public" if target.is_global else "special"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is where it leads."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host(raw: str) -> str:
    """A host as compared: lower case, no trailing dot, IDNA for names, canonical for addresses."""
    host = raw.strip().rstrip(".").lower()
    ip = _literal(host)
    if ip is not None:
        return str(ip)
    if not host or any(c in host for c in "/\\@%:[] "):
        raise DestinationRefused(f"invalid host {raw!r}")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DestinationRefused(f"invalid host {raw!r}") from exc


@dataclass(frozen=True)
class URLParts:
    scheme: str
    host: str
    port: int
    path: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_url(url: str) -> URLParts:
    """Scheme, host, port and path of a push URL; refuses credentials, other schemes and dot segments.

    >>> str(parse_url("HTTPS://Hooks.Example./a?wsdl"))
    'https://hooks.example:443/a'
    >>> parse_url("https://user:pw@hooks.example/a")
    Traceback (most recent call last):
    ...
    connectors.egress.DestinationRefused: credentials in a URL are not accepted (name secrets by reference)
    """
    text = url.strip()
    if "\\" in text or any(ord(c) < 0x21 for c in text):
        raise DestinationRefused("invalid characters in URL")
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise DestinationRefused("credentials in a URL are not accepted (name secrets by reference)")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise DestinationRefused(f"scheme {parts.scheme!r} is not allowed (https, or http where allowed)")
    if not parts.hostname:
        raise DestinationRefused("URL without a host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise DestinationRefused("invalid port") from exc
    path = parts.path or "/"
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        raise DestinationRefused("dot segments in the URL path are not accepted")
    return URLParts(scheme, _host(parts.hostname), port, path)


def has_credentials(url: str) -> bool:
    """
    >>> has_credentials("https://a:b@example.org/x"), has_credentials("https://example.org/x?u=a@b")
    (True, False)
    """
    return "@" in urlsplit(url.strip()).netloc


def redact_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced (for showing stored URLs back).

    >>> redact_credentials("https://tax:secret@hooks.example:8443/in")
    'https://***@hooks.example:8443/in'
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


@dataclass(frozen=True, order=True)
class AllowedDestination:
    """One destination an operator allowed: scheme, host, port and the paths under ``path_prefix``."""

    scheme: str
    host: str
    port: int
    path_prefix: str = "/"
    reach: Reach = Reach.public

    @classmethod
    def parse(cls, text: str, *, reach: Reach = Reach.public) -> AllowedDestination:
        """``https://host[:port][/path]``, ``http://…`` (plain HTTP allowed there) or ``host[:port]`` (https).

        >>> str(AllowedDestination.parse("hooks.tax.example"))
        'https://hooks.tax.example:443/'
        >>> str(AllowedDestination.parse("http://127.0.0.1:8801"))
        'http://127.0.0.1:8801/'
        >>> str(AllowedDestination.parse("[::1]:8443/in/"))
        'https://[::1]:8443/in/'
        """
        raw = text.strip()
        if "://" not in raw:
            raw = "https://" + raw
        parts = parse_url(raw)
        if urlsplit(raw).query or urlsplit(raw).fragment:
            raise DestinationRefused("an allowed destination has no query or fragment")
        prefix = posixpath.normpath(parts.path) if parts.path != "/" else "/"
        if parts.path.endswith("/") and prefix != "/":
            prefix += "/"
        return cls(parts.scheme, parts.host, parts.port, prefix, Reach(reach))

    def __str__(self) -> str:
        return str(URLParts(self.scheme, self.host, self.port, self.path_prefix))

    @property
    def address(self) -> IPAddress | None:
        """The host when it is an address (then that address is allowed, whatever its range)."""
        return _literal(self.host)

    def covers(self, url: URLParts) -> bool:
        if (url.scheme, url.host, url.port) != (self.scheme, self.host, self.port):
            return False
        if self.path_prefix == "/":
            return True
        base = self.path_prefix.rstrip("/")
        return url.path == base or url.path.startswith(base + "/")


@dataclass(frozen=True)
class DestinationPolicy:
    """The destinations one push target may use; ``allowed=None``: any URL, public addresses only."""

    allowed: tuple[AllowedDestination, ...] | None = None

    @classmethod
    def declared(cls, url: str) -> DestinationPolicy:
        """An operator-declared target (subscriptions.yaml): its own origin, any address."""
        parts = parse_url(url)
        return cls((AllowedDestination(parts.scheme, parts.host, parts.port, "/", Reach.any),))

    def check_url(self, url: str) -> URLParts:
        """The URL's parts if this policy lets a push go there; :class:`DestinationRefused` if not."""
        parts = parse_url(url)
        if self.allowed is not None and not any(a.covers(parts) for a in self.allowed):
            raise DestinationRefused(f"{parts} is not an allowed destination")
        literal = _literal(parts.host)
        if literal is not None and not self.permits_address(parts.host, parts.port, str(literal)):
            raise DestinationRefused(f"{parts.host} is a {classify(parts.host)} address, not allowed")
        return parts

    def permits_address(self, host: str, port: int, address: str) -> bool:
        """May a connection for ``host:port`` go to ``address`` (one of the name's resolved addresses)?"""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        same_port = [a for a in self.allowed or () if a.port == port]
        if any(a.address == ip for a in same_port):
            return True  # the operator named this very address for this consumer
        reaches = {a.reach for a in same_port if a.host == _host(host)}
        kind = classify(str(ip))
        if Reach.any in reaches:
            return True
        if kind == "private":
            return Reach.private in reaches
        return kind == "public"

    def addresses(self, host: str, port: int, resolver: Resolver) -> list[str]:
        """Resolve ``host`` once and keep the addresses this policy permits (in the resolver's order)."""
        literal = _literal(host.strip("[]"))
        try:
            found = [str(literal)] if literal is not None else list(dict.fromkeys(resolver(host, port)))
        except OSError as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from exc
        allowed = [a for a in found if self.permits_address(host, port, a)]
        if not allowed:
            shown = ", ".join(f"{a} ({classify(a)})" for a in found) or "nothing"
            raise DestinationRefused(f"{host}:{port} resolves to {shown}: not an allowed address")
        return allowed


def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer for ``host`` (``getaddrinfo``), addresses in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
