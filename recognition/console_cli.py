"""``hub console users``: the named operator accounts of ``/console`` — add, list, password, disable.

A password is read from standard input when it is not a terminal (one line: ``… | hub console
users add NAME --role operator``), else asked for twice without echo; never from the command
line, where it would stay in the shell's history and the process list. Each change is written
with its audit entry (``operator:<os user>``, action ``console_account``) in one transaction.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

from hub.db import session_scope
from recognition import audit
from recognition import console_accounts as accounts

app = typer.Typer(no_args_is_help=True, help="The operator console: its named accounts.")
users = typer.Typer(no_args_is_help=True, help="Console accounts: add, list, password, disable.")
app.add_typer(users, name="users")

ROLE_HELP = "operator (feeds, quarantine, dead letters and their replay, outbox), steward (feeds, quarantine, " \
    "the identity review queue and its decisions), supervisor (everything, read only)"  # fmt: skip


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            _fail("no password on standard input")
        return line
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        _fail("the two passwords differ; nothing was changed")
    return first


def _audit(session: object, what: str, name: str, detail: dict[str, object]) -> None:
    record = audit.AuditRecord(
        consumer=f"operator:{getpass.getuser()}", action="console_account", resource=f"hub console users {what}",
        subject=name, outcome="ok", detail=detail,
    )  # fmt: skip
    audit.append(session, [record])  # type: ignore[arg-type]


@users.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The account's name (lower case, e.g. wang.li)")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
) -> None:
    """Add an account; its password from standard input, or asked for twice."""
    password = _password()
    try:
        with session_scope() as session:
            user = accounts.add_user(session, name, role, password)
            _audit(session, "add", name, {"role": role})
            out = {"name": user.name, "role": user.role}
    except accounts.AccountError as exc:
        _fail(f"{exc}; nothing was changed")
    typer.echo(json.dumps(out))


@users.command("password")
def password(name: Annotated[str, typer.Argument(help="The account")]) -> None:
    """Set a new password (from standard input, or asked for twice); the account's sessions end."""
    new = _password()
    try:
        with session_scope() as session:
            accounts.set_password(session, name, new)
            _audit(session, "password", name, {})
    except accounts.AccountError as exc:
        _fail(f"{exc}; nothing was changed")
    typer.echo(json.dumps({"name": name, "password": "changed"}))


@users.command("disable")
def disable(name: Annotated[str, typer.Argument(help="The account")]) -> None:
    """Disable an account: it signs in no more, and its sessions end at once."""
    try:
        with session_scope() as session:
            accounts.disable_user(session, name)
            _audit(session, "disable", name, {})
    except accounts.AccountError as exc:
        _fail(f"{exc}; nothing was changed")
    typer.echo(json.dumps({"name": name, "disabled": True}))


@users.command("list")
def list_() -> None:
    """Every account: one JSON object per line (never a password hash)."""
    with session_scope() as session:
        for user in accounts.list_users(session):
            typer.echo(json.dumps({"name": user.name, "role": user.role, "created_at": user.created_at.isoformat(),
                                   "disabled": user.disabled_at is not None}))  # fmt: skip
