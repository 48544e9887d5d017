"""HTTP clients that connect only where a :class:`~connectors.egress.DestinationPolicy` allows.

Both check every request's URL against the policy, then, at the socket, resolve the host once,
keep the permitted addresses and connect to one of *those* — the name stays the request's
``Host`` header and the TLS server name (SNI and certificate check), so virtual hosting and
HTTPS verification work as usual while DNS rebinding cannot redirect the connection:

- :class:`GuardedTransport`, an ``httpx`` transport (webhooks) on an ``httpcore`` pool whose
  network backend does the check;
- :func:`guarded_session`, a ``requests`` session (zeep's WSDL, its imports and its calls, see
  :mod:`connectors.egress_soap`) whose ``urllib3`` connections do the same. It reads no proxy
  from the environment and mounts nothing for ``file://``; a redirect is checked like any request.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from connectors.egress import DestinationPolicy, DestinationRefused, Resolver, system_resolver

# -- httpx ----------------------------------------------------------------------------------------------
_HTTPCORE_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


def destination_where(name: str, url: str, dataset: str | None = None) -> str:
    """Where an HTTP destination connector's errors say they happened: its name and the host it
    sends to (never the URL's path or query, which may carry a token).

    >>> destination_where("sms", "https://sms.example.gov.cn/send?t=1", "notices")
    'destination=sms host=sms.example.gov.cn dataset=notices'
    """
    host = httpx.URL(url).host if url else ""
    return f"destination={name} host={host}" + (f" dataset={dataset}" if dataset else "")


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as httpx's (most specific first), so callers catch ``httpx.HTTPError``."""
    try:
        yield
    except DestinationRefused:
        raise
    except Exception as exc:
        for source, target in _HTTPCORE_ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects to a checked address of the host it is asked for (resolved once, here)."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        self._policy, self._resolver = policy, resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self._policy.addresses(host, port, self._resolver):
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next permitted address, like create_connection
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise DestinationRefused("unix sockets are not a push destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that sends only to destinations ``policy`` allows (pooled, keep-alive)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = system_resolver,
        limits: httpx.Limits = httpx.Limits(),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.policy = policy
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(str(request.url))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]  # a sync byte stream, as httpx's own transport passes
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core)
            try:
                content = response.read()
            finally:
                response.close()
        return httpx.Response(
            status_code=response.status, headers=response.headers, content=content, extensions=response.extensions
        )

    def close(self) -> None:
        self._pool.close()


# -- requests / urllib3 (zeep) --------------------------------------------------------------------------
class _GuardedConnectionMixin:
    """``_new_conn`` of urllib3's connections: resolve once, check, connect to a checked address."""

    policy: DestinationPolicy
    resolver: Resolver
    # urllib3's connection attributes this mixin reads
    host: str
    port: int
    timeout: float | None
    source_address: tuple[str, int] | None
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        addresses = self.policy.addresses(self.host, self.port, self.resolver)
        last: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout, self.source_address)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
            except OSError as exc:
                last = exc
                continue
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            return sock
        raise NewConnectionError(self, f"failed to establish a new connection: {last}")  # type: ignore[arg-type]


def _pool_classes(policy: DestinationPolicy, resolver: Resolver) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose connections carry ``policy`` (a pool class per scheme)."""
    attrs = {"policy": policy, "resolver": staticmethod(resolver)}
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attrs)
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), attrs)
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: DestinationPolicy, resolver: Resolver, **kwargs: Any) -> None:
        self._policy, self._resolver = policy, resolver
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._policy, self._resolver)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self._policy.check_url(str(request.url))
        return super().send(request, *args, **kwargs)


def guarded_session(policy: DestinationPolicy, *, resolver: Resolver = system_resolver) -> requests.Session:
    """A requests session that reaches only what ``policy`` allows; no redirects, proxies or files."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the check must see the real destination
    session.adapters.clear()
    adapter = _GuardedAdapter(policy, resolver)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
