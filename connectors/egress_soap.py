"""zeep's transport for SOAP pushes, on a :func:`~connectors.egress_http.guarded_session`.

The WSDL a subscriber names, every schema or WSDL it imports, and the service address it declares
are fetched or called only where the push's :class:`~connectors.egress.DestinationPolicy` allows;
local files (``file://`` or a bare path in an import) are never read and redirects not followed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from zeep.transports import Transport

from connectors.egress import DestinationPolicy, DestinationRefused, Resolver, system_resolver
from connectors.egress_http import guarded_session


class GuardedZeepTransport(Transport):
    """zeep's transport for a SOAP push: the WSDL, every document it imports and every call go
    through :func:`guarded_session`; local files are never read."""

    def __init__(
        self, policy: DestinationPolicy, *, resolver: Resolver = system_resolver, timeout: float = 10.0
    ) -> None:
        super().__init__(timeout=timeout, operation_timeout=timeout, session=guarded_session(policy, resolver=resolver))
        self.session.adapters.pop("file://", None)  # zeep mounts a file adapter; a WSDL import must not use it
        self._close_session = True

    def load(self, url: str) -> bytes:
        if not url:
            raise ValueError("No url given to load")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused(f"a WSDL or schema at {parts.scheme or 'a local path'} is not fetched")
        response = self.session.get(url, timeout=self.load_timeout, allow_redirects=False)
        with response:
            response.raise_for_status()
            content: bytes = response.content
            return content

    def get(self, address: str, params: Any, headers: Any) -> requests.Response:
        return self.session.get(
            address, params=params, headers=headers, timeout=self.operation_timeout, allow_redirects=False
        )

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        return self.session.post(
            address, data=message, headers=headers, timeout=self.operation_timeout, allow_redirects=False
        )
