"""The SOAP connector (WebService接入, zeep): WSDL-driven paged listing and push.

A dataset is a paged listing operation (the tax sandbox's ``ListChangedTaxpayers(since,
page_token, page_size)``) read incrementally by its watermark field; pages accumulate into
batches and the page token is checkpointed, so a read resumes mid-listing. SOAP faults map
to typed errors (``Client.Authentication`` → :class:`ConnectorAuthError`), HTTP 503 and
connection failures are transient and retried, every call has a timeout, and WS-Security
UsernameToken comes from the Airflow Connection's login and password. Push calls a SOAP
operation per record (the tax sandbox's ``ReceiveLicenseNotice``), idempotent by the
record's idempotency key.

A department reached by a Connection is read and written the same way as a push destination
named only by its WSDL's URL (a subscription: :class:`SoapEndpoint`); the latter is fetched and
called only where its :class:`~connectors.egress.DestinationPolicy` allows
(:class:`~connectors.egress_soap.GuardedZeepTransport`). Both get their zeep client from
:func:`zeep_client`: one configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa
import requests

from connectors.base import Batch, CheckResult, State, WriteResult, arrow_type_to_json, with_meta
from connectors.config import ConnectionInfo, dataset_block, get_connection, retry_policy, source_schema
from connectors.egress import DESTINATION_REFUSED, DestinationPolicy, DestinationRefused, Resolver, system_resolver
from connectors.errors import (
    BadRecord,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorDestinationRefused,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from connectors.incremental import WatermarkCursor
from connectors.retry import call_with_retries
from hub.masking import mask_record

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: ties at the high-water mark are remembered even without a look-back window: a listing
#: has no key tie-breaker parameter, so ``since`` must include the mark itself
MIN_LOOKBACK = dt.timedelta(microseconds=1)


def classify_soap_error(exc: Exception, *, where: str) -> ConnectorError:
    """Map zeep/requests failures to typed connector errors."""
    import zeep.exceptions as zx  # noqa: PLC0415 - zeep, ~0.3 s; recognition.push imports this module

    if isinstance(exc, DestinationRefused):
        return ConnectorDestinationRefused(f"{DESTINATION_REFUSED}: {exc}"[:300], where=where)
    if isinstance(exc, zx.Fault):
        code = str(exc.code or "")
        msg = f"SOAP fault {code}: {exc.message}"
        if "Authentication" in code or "Authorization" in code or "Security" in code:
            return ConnectorAuthError(msg, where=where)
        if code.split(":")[-1].startswith(("Server.Unavailable", "Server.Busy")):
            return ConnectorUnavailable(msg, where=where)
        return ConnectorError(msg, where=where, action="read the fault; fix the request or ask the department")
    if isinstance(exc, zx.TransportError):
        if exc.status_code in (401, 403):
            return ConnectorAuthError(f"HTTP {exc.status_code} from the SOAP endpoint", where=where)
        if exc.status_code in (429, 502, 503, 504):
            return ConnectorUnavailable(f"HTTP {exc.status_code} from the SOAP endpoint (busy)", where=where)
        return ConnectorError(
            f"HTTP {exc.status_code} from the SOAP endpoint",
            where=where,
            action="check the WSDL path and the endpoint address in the Connection",
        )
    if isinstance(exc, requests.HTTPError) and exc.response is not None:  # fetching the WSDL itself
        status = exc.response.status_code
        if status in (401, 403):
            return ConnectorAuthError(f"HTTP {status} fetching the WSDL", where=where)
        if status in (429, 502, 503, 504):
            return ConnectorUnavailable(f"HTTP {status} fetching the WSDL (busy)", where=where)
        return ConnectorError(
            f"HTTP {status} fetching the WSDL",
            where=where,
            action="check wsdl_path and the endpoint address in the Connection",
        )
    if isinstance(exc, requests.Timeout):
        return ConnectorTimeout(f"no answer within the timeout: {exc}", where=where)
    if isinstance(exc, requests.ConnectionError):
        return ConnectorUnavailable(f"cannot connect: {str(exc)[:200]}", where=where)
    if isinstance(exc, zx.XMLSyntaxError | zx.XMLParseError):
        return ConnectorUnavailable(f"truncated or malformed SOAP response: {exc}", where=where)
    return ConnectorError(f"SOAP call failed: {exc!r}"[:300], where=where)


def _strict_transport_class() -> Any:
    from zeep.exceptions import TransportError  # noqa: PLC0415 - zeep, ~0.3 s; recognition.push imports this module
    from zeep.transports import Transport  # noqa: PLC0415 - zeep, as above

    class StrictTransport(Transport):  # type: ignore[misc]
        """Fail fast on HTTP errors that are not SOAP faults (503 busy, 401, 404 ...).

        SOAP 1.1 faults come back as HTTP 500 with an envelope; anything else non-2xx has no
        envelope for zeep to parse, so it must surface as a transport error with its status.
        """

        def post_xml(self, address: str, envelope: Any, headers: Any) -> Any:
            response = super().post_xml(address, envelope, headers)
            if response.status_code >= 300 and response.status_code != 500:
                raise TransportError(status_code=response.status_code, content=response.content[:500])
            return response

    return StrictTransport


def _StrictTransport(**kwargs: Any) -> Any:
    return _strict_transport_class()(**kwargs)


def zeep_client(wsdl_url: str, transport: Any, login: str | None, password: str | None) -> Any:
    """The zeep client for a WSDL, as every SOAP read and push builds it: lenient about the
    department's XSD (``strict=False``), no DTDs or entities, WS-Security UsernameToken when a
    login is given."""
    from zeep import Client, Settings  # noqa: PLC0415 - zeep, ~0.3 s; recognition.push imports this module
    from zeep.wsse.username import UsernameToken  # noqa: PLC0415 - zeep, as above

    wsse = UsernameToken(login, password or "") if login else None
    settings = Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)
    return Client(wsdl_url, transport=transport, wsse=wsse, settings=settings)


@dataclass(frozen=True)
class SoapEndpoint:
    """A SOAP service named by its WSDL's URL instead of a Connection (a push destination): the WSDL,
    what it imports and the service address it names are reached only where ``policy`` allows."""

    wsdl_url: str
    login: str | None = None
    password: str | None = None
    policy: DestinationPolicy = field(default_factory=DestinationPolicy)
    resolver: Resolver = system_resolver

    def __repr__(self) -> str:  # the password stays out of logs
        return f"SoapEndpoint(wsdl_url={self.wsdl_url!r}, login={self.login!r})"


def _unwrap_items(value: Any) -> list[dict[str, Any]]:
    """zeep renders ``Array(Taxpayer)`` as ``{'Taxpayer': [...]}``; accept both shapes."""
    if value is None:
        return []
    if isinstance(value, list):
        return [dict(v) for v in value]
    if isinstance(value, Mapping) and len(value) == 1:
        inner = next(iter(value.values()))
        return [dict(v) for v in (inner or [])] if isinstance(inner, list) else [dict(inner)]
    raise ConnectorConfigError(f"cannot find records in response field of type {type(value).__name__}")


class SoapConnector:
    """Reads paged listings and pushes records through a department's SOAP WebService."""

    protocol = "soap"

    directions = frozenset({"read", "write"})

    def __init__(self, name: str, block: Mapping[str, Any], *, endpoint: SoapEndpoint | None = None) -> None:
        self.personal_columns: dict[str, str] = {}
        self.name = name
        self.block = dict(block)
        #: set for a push destination named by its WSDL's URL; otherwise the Connection ``conn_id`` names it
        self.endpoint = endpoint
        self.conn_id: str = self.block["conn_id"] if endpoint is None else ""
        self.timeout = float(self.block.get("timeout_seconds", 30))
        self.page_size = int(self.block.get("page_size", 500))
        self.batch_rows = int(self.block.get("batch_size", 5_000))
        self.tz = ZoneInfo(self.block.get("timezone", "Asia/Shanghai"))
        self.retry = retry_policy(self.block)
        self._client: Any = None

    def spec(self) -> dict[str, Any]:
        return dict(source_schema()["$defs"]["soap"])

    def _where(self, dataset: str | None = None, info: ConnectionInfo | None = None) -> str:
        host = f" host={info.host}:{info.port}" if info else ""
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint.wsdl_url)
            port = f":{parts.port}" if parts.port else ""
            return f"destination={self.name} host={parts.hostname}{port}" + (f" dataset={dataset}" if dataset else "")
        return f"source={self.name} conn_id={self.conn_id}{host}" + (f" dataset={dataset}" if dataset else "")

    def wsdl_url(self, info: ConnectionInfo) -> str:
        if not info.host:
            raise ConnectorConfigError("the Connection has no host", where=self._where(info=info))
        scheme = info.extra.get("scheme", "http")
        path = info.extra.get("wsdl_path") or self.block.get("wsdl_path", "/?wsdl")
        port = f":{info.port}" if info.port else ""
        return f"{scheme}://{info.host}{port}{path}"

    def client(self) -> Any:
        """A zeep client from the WSDL (:func:`zeep_client`); WS-Security UsernameToken when there is a login."""
        if self._client is not None:
            return self._client
        info: ConnectionInfo | None = None
        if self.endpoint is not None:
            from connectors.egress_soap import GuardedZeepTransport  # noqa: PLC0415 - zeep, ~0.3 s; push only

            endpoint = self.endpoint
            transport: Any = GuardedZeepTransport(endpoint.policy, resolver=endpoint.resolver, timeout=self.timeout)
            wsdl_url, login, password = endpoint.wsdl_url, endpoint.login, endpoint.password
        else:
            info = get_connection(self.conn_id)
            session = requests.Session()
            session.verify = info.extra.get("verify", True)
            transport = _StrictTransport(session=session, timeout=self.timeout, operation_timeout=self.timeout)
            wsdl_url, login, password = self.wsdl_url(info), info.login, info.password

        def load() -> Any:
            try:
                return zeep_client(wsdl_url, transport, login, password)
            except ConnectorError:
                raise
            except Exception as exc:
                raise classify_soap_error(exc, where=self._where(info=info)) from exc

        self._client = call_with_retries(load, self.retry, what=f"load WSDL {self._where()}")
        return self._client

    def _call(self, op_name: str, dataset: str | None, **kwargs: Any) -> Any:
        client = self.client()
        try:
            operation = getattr(client.service, op_name)
        except AttributeError as exc:
            raise ConnectorConfigError(f"the WSDL has no operation {op_name!r}", where=self._where(dataset)) from exc

        def once() -> Any:
            try:
                return operation(**kwargs)
            except Exception as exc:
                raise classify_soap_error(exc, where=self._where(dataset)) from exc

        return call_with_retries(once, self.retry, what=f"{op_name} {self._where(dataset)}")

    def _list_page(self, dataset: str, ds: Mapping[str, Any], since: dt.datetime, token: str | None) -> Any:
        args = {
            ds.get("since_param", "since"): since,
            ds.get("page_token_param", "page_token"): token,
            ds.get("page_size_param", "page_size"): self.page_size,
        }
        return self._call(ds["operation"], dataset, **args)

    def check(self) -> CheckResult:
        try:
            for dataset in self.block.get("datasets") or {}:
                ds = dataset_block(self.block, dataset, where=self._where(dataset))
                self._list_page(dataset, ds, dt.datetime.now(dt.UTC), None)
        except ConnectorError as exc:
            return CheckResult(False, str(exc), type(exc).__name__)
        return CheckResult(True, f"WSDL loaded and {len(self.block['datasets'])} listing(s) answered")

    def discover(self) -> dict[str, dict[str, Any]]:
        """The record type of each listing, from the WSDL's XSD (not from sample data)."""
        client = self.client()
        out: dict[str, dict[str, Any]] = {}
        for dataset in self.block.get("datasets") or {}:
            ds = dataset_block(self.block, dataset, where=self._where(dataset))
            op = client.service._binding._operations[ds["operation"]]  # zeep's parsed WSDL binding
            items_el = op.output.body.type.elements[0][1].type.elements
            props: dict[str, Any] = {}
            record_type = None
            for name, el in items_el:
                if name == ds["items"]:
                    record_type = el.type.elements[0][1].type if el.type.elements else el.type
            if record_type is None:
                raise ConnectorConfigError(f"operation has no field {ds['items']!r}", where=self._where(dataset))
            for name, el in record_type.elements:
                props[name] = _xsd_to_json(el.type)
            out[dataset] = {
                "type": "object",
                "properties": props,
                "x-source-key": ds["key"],
                "x-watermark": ds["watermark"],
            }
        return out

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        from zeep.helpers import serialize_object  # noqa: PLC0415 - zeep, ~0.3 s; recognition.push imports this module

        ds = dataset_block(self.block, dataset, where=self._where(dataset))
        state = dict(state or {})
        lookback = max(dt.timedelta(seconds=float(ds.get("lookback_seconds", 0))), MIN_LOOKBACK)
        cursor = WatermarkCursor.from_state(state.get("cursor"), lookback=lookback)
        page = state.get("page") or {}
        if page.get("token"):
            since, token = dt.datetime.fromisoformat(page["since"]), page["token"]
        else:
            since, token = cursor.lower_bound() or EPOCH, None
        key_f, wm_f = ds["key"], ds["watermark"]
        items_f, next_f = ds["items"], ds.get("next_page_token", "next_page_token")
        good: list[dict[str, Any]] = []
        bad: list[BadRecord] = []
        emitted = 0
        while True:
            resp = serialize_object(self._list_page(dataset, ds, since, token), dict)
            for rec in _unwrap_items(resp.get(items_f)):
                problem = self._problem(rec, key_f, wm_f)
                if problem:
                    raw = _jsonable(mask_record(rec, self.personal_columns))
                    bad.append(
                        BadRecord(
                            problem[0],
                            problem[1],
                            source_key=_str(rec.get(key_f)),
                            source_version=_str(rec.get(wm_f)),
                            raw=raw,
                            source_ref=f"{ds['operation']} since={since.isoformat()}",
                        )
                    )
                else:
                    good.append(rec)
            token = resp.get(next_f) or None
            full = len(good) + len(bad) >= self.batch_rows
            done = token is None or (limit is not None and emitted + len(good) >= limit)
            if full or done:
                batch = self._batch(good, key_f, wm_f, cursor)
                new_page = {"since": since.isoformat(), "token": token} if token and not done else None
                yield Batch(batch, bad, {**state, "cursor": cursor.to_state(), "page": new_page})
                emitted += batch.num_rows
                good, bad = [], []
            if done:
                return

    def _problem(self, rec: Mapping[str, Any], key_f: str, wm_f: str) -> tuple[str, str] | None:
        key = rec.get(key_f)
        if key is None or not str(key).strip():
            return ("missing_source_key", f"record has no {key_f}; it cannot be tracked or deduplicated")
        if not isinstance(rec.get(wm_f), dt.datetime):
            return ("invalid_watermark", f"{wm_f} is missing or not a dateTime: {rec.get(wm_f)!r}")
        return None

    def _batch(self, records: list[dict[str, Any]], key_f: str, wm_f: str, cursor: WatermarkCursor) -> pa.Table:
        if not records:
            return with_meta(pa.table({}), pa.array([], pa.string()), pa.array([], pa.string()))
        stamps = [self._aware(r[wm_f]) for r in records]
        for r, stamp in zip(records, stamps, strict=True):
            r[wm_f] = stamp
        table = pa.Table.from_pylist(records)
        ts = pa.array([s.astimezone(dt.UTC) for s in stamps], pa.timestamp("us", tz="UTC"))
        keys = pa.array([str(r[key_f]) for r in records], pa.string())
        versions = pa.array([s.astimezone(self.tz).isoformat() for s in stamps], pa.string())
        mask = cursor.keep_mask(keys, versions, ts)
        cursor.advance(keys, versions, ts, last_key=str(records[-1][key_f]))
        return with_meta(table.filter(mask), keys.filter(mask), versions.filter(mask))

    def _aware(self, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo else value.replace(tzinfo=self.tz)

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Call the push operation once per record, in order; ``details`` holds each written record's answer.

        A SOAP fault refusing a record rejects it (a BadRecord); refused credentials, a refused
        destination or a service that cannot be reached stop the write (the error is raised), and
        the next write loads the WSDL again.
        """
        ds = dataset_block(self.block, dataset, where=self._where(dataset))
        push = ds.get("push")
        if not push:
            raise ConnectorConfigError(f"dataset {dataset!r} has no push: operation", where=self._where(dataset))
        arg = push.get("argument")
        idem = push.get("idempotency_field", "idempotency_key")
        result = WriteResult(0)
        if not records:
            return result
        for rec in records:
            try:
                answer = self._call(push["operation"], dataset, **({arg: dict(rec)} if arg else dict(rec)))
            except (ConnectorAuthError, ConnectorUnavailable, ConnectorDestinationRefused):
                self._client = None  # e.g. a WSDL fetched from a service that was down: fetch it again
                raise
            except ConnectorConfigError:
                raise
            except ConnectorError as exc:
                result.rejected.append(
                    BadRecord(
                        "push_rejected",
                        exc.what,
                        source_key=_str(rec.get(idem)),
                        raw=_jsonable(mask_record(rec, self.personal_columns)),
                    )
                )
                continue
            from zeep.helpers import serialize_object  # noqa: PLC0415 - zeep, as in read

            result.written += 1
            result.details.append(dict(serialize_object(answer, dict) or {}))
        return result


def _xsd_to_json(xsd_type: Any) -> dict[str, Any]:
    name = getattr(getattr(xsd_type, "qname", None), "localname", "") or ""
    mapping: dict[str, dict[str, Any]] = {
        "dateTime": {"type": ["string", "null"], "format": "date-time"},
        "date": {"type": ["string", "null"], "format": "date"},
        "integer": {"type": ["integer", "null"]},
        "int": {"type": ["integer", "null"]},
        "long": {"type": ["integer", "null"]},
        "decimal": {"type": ["number", "null"]},
        "double": {"type": ["number", "null"]},
        "boolean": {"type": ["boolean", "null"]},
    }
    return mapping.get(name, arrow_type_to_json(pa.string()))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if v is None or isinstance(v, str | int | float | bool) else str(v) for k, v in record.items()}
