"""``hub deliver``: run the push worker, or replay / skip deliveries (推送投递)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, NoReturn

import typer

from hub.db import get_engine, session_scope
from recognition import delivery, delivery_ops
from recognition import subscriptions as subs_mod
from recognition.config import RecognitionSettings


def deliver(
    loop: Annotated[bool, typer.Option("--loop", help="Keep running (Ctrl-C stops)")] = False,
    sync_yaml: Annotated[
        bool, typer.Option("--sync-yaml/--no-sync-yaml", help="Apply subscriptions.yaml first")
    ] = True,
    replay: Annotated[int | None, typer.Option(help="Replay this delivery id")] = None,
    skip: Annotated[int | None, typer.Option(help="Skip this (dead-lettered) delivery id")] = None,
    replay_since: Annotated[
        str | None, typer.Option(help="Replay dead letters created from (ISO 8601 time; without an offset: UTC)")
    ] = None,
    replay_until: Annotated[str | None, typer.Option(help="... until (ISO 8601 time, default now)")] = None,
    include_delivered: Annotated[bool, typer.Option(help="Range replay also re-sends delivered ones")] = False,
) -> None:
    """Push events from the outbox to subscribers: one round, or --loop; or replay / skip.

    Exit 0 when done; 1 when --replay or --skip names a delivery that does not exist (nothing
    is changed then); 2 when a time is not ISO 8601.
    """
    since = _parse("--replay-since", replay_since) if replay_since is not None else None
    until = _parse("--replay-until", replay_until) if replay_until else dt.datetime.now(dt.UTC)
    engine = get_engine()
    config = RecognitionSettings()
    if replay is not None or skip is not None or since is not None:
        with session_scope(engine) as session:
            try:
                if replay is not None:
                    delivery_ops.replay(session, replay)
                if skip is not None:
                    delivery_ops.skip(session, skip)
            except delivery_ops.DeliveryNotFound as exc:
                _fail(1, f"no delivery {exc.args[0]}; nothing was changed")
            if replay is not None:
                typer.echo(json.dumps({"replayed": [replay]}))
            if skip is not None:
                typer.echo(json.dumps({"skipped": [skip]}))
            if since is not None:
                n = delivery_ops.replay_range(session, since, until, include_delivered=include_delivered)
                typer.echo(json.dumps({"replayed_range": n}))
        return
    if sync_yaml:
        with session_scope(engine) as session:
            counts = subs_mod.sync_yaml(session, config.subscriptions_file)
        typer.echo(json.dumps({"subscriptions_yaml": counts}))
    policy = delivery.DeliveryPolicy.from_settings(config)
    if loop:
        try:
            total = delivery.run_loop(engine, policy=policy)
        except KeyboardInterrupt:
            return
    else:
        total = delivery.run_once(engine, policy=policy)
    typer.echo(json.dumps(total.__dict__))


def _parse(option: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(2, f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-11-01T09:00:00+08:00)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
