"""``hub consumers``: API consumers (接入方) and their keys — add, list, rotate, revoke, limits — and
the destinations their subscriptions may push to (allow-destination, destinations, remove-destination)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from connectors.egress import DestinationRefused
from hub.db import get_engine, session_scope
from hub.settings import get_settings
from recognition import consumers, destinations
from recognition.scopes import InvalidScope
from recognition.tables import ApiKey, Consumer

app = typer.Typer(
    no_args_is_help=True,
    help="API consumers and their keys: add, list, rotate, revoke, limits; where their subscriptions may push.",
)

ExpiresOpt = Annotated[
    str | None,
    typer.Option("--expires", help="The key stops working after this day (YYYY-MM-DD, the hub's timezone) or time"),
]
SourceOpt = Annotated[
    list[str] | None,
    typer.Option("--source", help="Address or CIDR the key may be used from, repeatable (default: anywhere)"),
]
RateOpt = Annotated[
    float | None,
    typer.Option("--rate-limit", help="Requests per second for this consumer's keys together; 0: unthrottled"),
]
BurstOpt = Annotated[int | None, typer.Option("--burst", help="Requests at once (default: two seconds' worth)")]


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _expiry(text: str | None) -> dt.datetime | None:
    return consumers.parse_expiry(text, get_settings().source_timezone) if text else None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _key_json(key: ApiKey) -> dict[str, Any]:
    expires = _iso(key.expires_at)
    return {
        "key_id": key.id,
        "revoked": key.revoked_at is not None,
        "expires_at": expires,
        "expired": expires is not None and dt.datetime.fromisoformat(expires) <= dt.datetime.now(dt.UTC),
        "sources": list(key.sources or []),
    }


def _rate_json(consumer: Consumer) -> dict[str, Any]:
    """The consumer's own limit, or ``null`` for the defaults (HUB_RATE_LIMIT_KEY_RATE / _BURST)."""
    return {"rate_limit": consumer.rate_limit, "burst": consumer.rate_burst}


@app.command("add")
def add(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="Scope, repeatable (see recognition.scopes)")],
    expires: ExpiresOpt = None,
    source: SourceOpt = None,
    rate_limit: RateOpt = None,
    burst: BurstOpt = None,
    department: Annotated[
        str | None,
        typer.Option("--department", help="The department its keys act for, and for no other (cases/catalogue.yaml)"),
    ] = None,
) -> None:
    """Create a consumer; prints its API key once (store it, the hub keeps only a hash)."""
    try:
        with session_scope(get_engine()) as session:
            consumer, token = consumers.add_consumer(
                session, name, scope, expires_at=_expiry(expires), sources=source or (), rate_limit=rate_limit,
                rate_burst=burst, department=department,
            )  # fmt: skip
            cid = consumer.id
    except (consumers.ConsumerError, InvalidScope) as exc:
        _fail(str(exc))
        return
    out = {"consumer": name, "id": cid, "api_key": token} | ({"department": department} if department else {})
    typer.echo(json.dumps(out, ensure_ascii=False))


@app.command("list")
def list_() -> None:
    """One JSON line per consumer: scopes, rate limit, keys with their expiry and sources (never secrets)."""
    with session_scope(get_engine()) as session:
        for consumer, keys in consumers.list_consumers(session):
            typer.echo(
                json.dumps(
                    {
                        "consumer": consumer.name,
                        "id": consumer.id,
                        "scopes": consumer.scopes,
                        "department": consumer.department,
                        "revoked": consumer.revoked_at is not None,
                        **_rate_json(consumer),
                        "keys": [_key_json(k) for k in keys],
                    },
                    ensure_ascii=False,
                )
            )


@app.command("rotate")
def rotate(
    name: str,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Leave the old keys valid (switch-over period)")] = False,
    expires: ExpiresOpt = None,
    source: SourceOpt = None,
) -> None:
    """Issue a new key (printed once); the old ones are revoked unless --keep-old.

    The new key keeps the newest key's --source binding unless new ones are given; it gets an
    expiry only from --expires.
    """
    try:
        with session_scope(get_engine()) as session:
            token = consumers.rotate_key(session, name, keep_old=keep_old, expires_at=_expiry(expires), sources=source)
    except consumers.ConsumerError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({"consumer": name, "api_key": token}, ensure_ascii=False))


@app.command("revoke")
def revoke(
    name: str,
    key: Annotated[str | None, typer.Option("--key", help="Revoke only this key id")] = None,
) -> None:
    """Revoke a consumer (all keys) or one key."""
    try:
        with session_scope(get_engine()) as session:
            count = consumers.revoke(session, name, key_id=key)
    except consumers.ConsumerError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({"consumer": name, "revoked_keys": count}))


@app.command("scopes")
def scopes(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="The complete new scope list")],
) -> None:
    """Replace a consumer's scopes."""
    try:
        with session_scope(get_engine()) as session:
            consumer = consumers.set_scopes(session, name, scope)
            granted = list(consumer.scopes)
    except (consumers.ConsumerError, InvalidScope) as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({"consumer": name, "scopes": granted}))


@app.command("allow-destination")
def allow_destination(
    name: str,
    destination: Annotated[
        str, typer.Argument(help="https://host[:port][/path], http://… (plain HTTP) or host[:port] (https)")
    ],
    private: Annotated[
        bool, typer.Option("--private", help="The host may resolve to private-use addresses (10/8, 192.168/16, …)")
    ] = False,
) -> None:
    """Allow a consumer's subscriptions to push to a destination (URL prefix or host[:port])."""
    try:
        with session_scope(get_engine()) as session:
            entry = destinations.allow(session, name, destination, private=private)
    except (consumers.ConsumerError, DestinationRefused) as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({"consumer": name, "allowed": str(entry), "reach": entry.reach.value}))


@app.command("destinations")
def list_destinations(
    name: Annotated[str | None, typer.Argument(help="One consumer (default: every consumer)")] = None,
) -> None:
    """One JSON line per allowed destination."""
    try:
        with session_scope(get_engine()) as session:
            rows = destinations.listing(session, name)
    except consumers.ConsumerError as exc:
        _fail(str(exc))
        return
    for consumer, entry in rows:
        typer.echo(json.dumps({"consumer": consumer, "destination": str(entry), "reach": entry.reach.value}))


@app.command("remove-destination")
def remove_destination(name: str, destination: str) -> None:
    """Withdraw an allowed destination; subscriptions to it are no longer pushed to."""
    try:
        with session_scope(get_engine()) as session:
            removed = destinations.remove(session, name, destination)
    except (consumers.ConsumerError, DestinationRefused) as exc:
        _fail(str(exc))
        return
    if not removed:
        _fail(f"consumer {name!r} has no allowed destination {destination!r}")
        return
    typer.echo(json.dumps({"consumer": name, "removed": destination}))


@app.command("limits")
def limits(
    name: str,
    rate_limit: RateOpt = None,
    burst: BurstOpt = None,
    default_rate: Annotated[
        bool, typer.Option("--default-rate", help="Back to the default rate limit (HUB_RATE_LIMIT_KEY_RATE)")
    ] = False,
    key: Annotated[str | None, typer.Option("--key", help="Change only this key (default: every active key)")] = None,
    expires: ExpiresOpt = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="The keys no longer expire")] = False,
    source: SourceOpt = None,
    any_source: Annotated[bool, typer.Option("--any-source", help="The keys may be used from anywhere")] = False,
) -> None:
    """Show or change a consumer's rate limit and its keys' expiry and source binding.

    Without options, prints them. Changes reach running API processes within
    HUB_API_KEY_CACHE_SECONDS.
    """
    if (expires and no_expiry) or (source and any_source) or (default_rate and (rate_limit is not None or burst)):
        _fail("contradictory options")
        return
    changes: dict[str, Any] = {}
    if expires or no_expiry:
        changes["expires_at"] = _expiry(expires) if expires else None
    if source or any_source:
        changes["sources"] = source or []
    try:
        with session_scope(get_engine()) as session:
            consumer = consumers.get_consumer(session, name)
            if default_rate:
                consumers.set_rate_limit(session, name, None, None)
            elif rate_limit is not None or burst is not None:
                rate = rate_limit if rate_limit is not None else consumer.rate_limit
                if rate is None:
                    raise consumers.ConsumerError("--burst needs a --rate-limit of the consumer's own")
                consumers.set_rate_limit(session, name, rate, burst)
            if changes or key:
                consumers.set_key_limits(session, name, key_id=key, **changes)
            keys = consumers.active_keys(session, consumer.id)
            out = {"consumer": name, **_rate_json(consumer), "keys": [_key_json(k) for k in keys]}
    except consumers.ConsumerError as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(out, ensure_ascii=False))
