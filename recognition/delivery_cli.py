"""``hub deliver``: run the push worker, or replay / skip deliveries (推送投递)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from hub.db import get_engine, session_scope
from recognition import delivery
from recognition import subscriptions as subs_mod
from recognition.config import RecognitionSettings


def deliver(
    loop: Annotated[bool, typer.Option("--loop", help="Keep running (Ctrl-C stops)")] = False,
    sync_yaml: Annotated[
        bool, typer.Option("--sync-yaml/--no-sync-yaml", help="Apply subscriptions.yaml first")
    ] = True,
    replay: Annotated[int | None, typer.Option(help="Replay this delivery id")] = None,
    skip: Annotated[int | None, typer.Option(help="Skip this (dead-lettered) delivery id")] = None,
    replay_since: Annotated[str | None, typer.Option(help="Replay dead letters created from (ISO time)")] = None,
    replay_until: Annotated[str | None, typer.Option(help="... until (ISO time, default now)")] = None,
    include_delivered: Annotated[bool, typer.Option(help="Range replay also re-sends delivered ones")] = False,
) -> None:
    """Push events from the outbox to subscribers: one round, or --loop; or replay / skip."""
    engine = get_engine()
    config = RecognitionSettings()
    if replay is not None or skip is not None or replay_since is not None:
        with session_scope(engine) as session:
            if replay is not None:
                delivery.replay(session, replay)
                typer.echo(json.dumps({"replayed": [replay]}))
            if skip is not None:
                delivery.skip(session, skip)
                typer.echo(json.dumps({"skipped": [skip]}))
            if replay_since is not None:
                since = _parse(replay_since)
                until = _parse(replay_until) if replay_until else dt.datetime.now(dt.UTC)
                n = delivery.replay_range(session, since, until, include_delivered=include_delivered)
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


def _parse(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
