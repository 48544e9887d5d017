"""Typed connector errors (接入错误) with messages an operator can act on.

Every error says *what* failed, *where* (source, dataset, host — never a secret) and
*what to do*. Only :class:`ConnectorUnavailable` and :class:`ConnectorTimeout` are
transient: :func:`connectors.retry.call_with_retries` retries those and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConnectorError(Exception):
    """A connector could not do its job. Base of every connector error."""

    transient: bool = False
    default_action: str = "see the connector's documentation"

    def __init__(
        self, what: str, *, where: str = "", action: str | None = None, status_code: int | None = None
    ) -> None:
        self.what = what
        self.where = where
        self.action = action or self.default_action
        #: what the department's system answered (an HTTP status), when it answered at all
        self.status_code = status_code
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        return f"{self.what}{where} — what to do: {self.action}"


class ConnectorConfigError(ConnectorError):
    """The ``source:`` block or the Airflow Connection is wrong or incomplete."""

    default_action = "fix the mapping file's source: block or the Airflow Connection"


class ConnectorAuthError(ConnectorError):
    """The department refused our credentials (bad password, expired token, no grant)."""

    default_action = "check login/password of the Airflow Connection and the grant on the department side"


class ConnectorDestinationRefused(ConnectorError):
    """A push's destination (its URL, or an address its name resolves to) is not one it may go to."""

    default_action = "allow the destination for the consumer (hub consumers allow-destination) or correct the URL"


class ConnectorUnavailable(ConnectorError):
    """The department's system cannot be reached or answered 'try later' (transient)."""

    transient = True
    default_action = "check that the host is up and reachable from the hub; the run retries by itself"


class ConnectorTimeout(ConnectorUnavailable):
    """The department's system did not answer within the configured timeout (transient)."""

    default_action = "the system is slow or the network drops packets; raise timeout_seconds if it persists"


@dataclass
class BadRecord(Exception):
    """One source record (or a whole package) the connector refuses, with its reason.

    ``raw`` is the offending data *masked* (it is stored in the quarantine table and shown
    to operators). Bad records never vanish: they travel in :class:`connectors.base.Batch`
    and :mod:`connectors.sync` writes them to quarantine.
    """

    reason_code: str
    reason: str
    source_key: str | None = None
    source_version: str | None = None
    raw: dict[str, Any] | None = field(default=None)
    source_ref: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.reason_code}: {self.reason} (source key {self.source_key})")

    def __hash__(self) -> int:
        return hash((self.reason_code, self.source_key, self.source_version))
