"""``hub consumers``: API consumers (接入方) and their keys — add, list, rotate, revoke — and the
destinations their subscriptions may push to (allow-destination, destinations, remove-destination)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from connectors.egress import DestinationRefused
from hub.db import get_engine, session_scope
from recognition import consumers, destinations
from recognition.scopes import InvalidScope

app = typer.Typer(
    no_args_is_help=True,
    help="API consumers and their keys: add, list, rotate, revoke; where their subscriptions may push.",
)


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@app.command("add")
def add(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="Scope, repeatable (see recognition.scopes)")],
) -> None:
    """Create a consumer; prints its API key once (store it, the hub keeps only a hash)."""
    try:
        with session_scope(get_engine()) as session:
            consumer, token = consumers.add_consumer(session, name, scope)
            cid = consumer.id
    except (consumers.ConsumerError, InvalidScope) as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps({"consumer": name, "id": cid, "api_key": token}, ensure_ascii=False))


@app.command("list")
def list_() -> None:
    """One JSON line per consumer: scopes and key ids (never secrets)."""
    with session_scope(get_engine()) as session:
        for consumer, keys in consumers.list_consumers(session):
            typer.echo(
                json.dumps(
                    {
                        "consumer": consumer.name,
                        "id": consumer.id,
                        "scopes": consumer.scopes,
                        "revoked": consumer.revoked_at is not None,
                        "keys": [{"key_id": k.id, "revoked": k.revoked_at is not None} for k in keys],
                    },
                    ensure_ascii=False,
                )
            )


@app.command("rotate")
def rotate(
    name: str,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Leave the old keys valid (switch-over period)")] = False,
) -> None:
    """Issue a new key (printed once); the old ones are revoked unless --keep-old."""
    try:
        with session_scope(get_engine()) as session:
            token = consumers.rotate_key(session, name, keep_old=keep_old)
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
