"""``hub identity review list|show|accept|reject|split``: the stewards' review queue from the command line.

These commands join the ``hub identity`` group (``identity/cli.py``) from here: a decision moves
licences, which is the business of a room above identity (:mod:`recognition.identity_review`, the
functions the API and the console call too). The steward is the operating-system user
(``steward:<user>``): two stewards are two accounts, which is what the four-eyes rule on merges checks.
Every command is audited (action ``identity_review``), refusals included; a decision's audit entry
commits with the decision. Output: one JSON object per line; a refusal prints
``{"error": code, "message": ...}`` on standard error and exits 1.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from identity.cli import app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["app"]

review = typer.Typer(no_args_is_help=True, help="The review queue (人工复核): list, show, accept, reject, split.")
app.add_typer(review, name="review")

Reason = Annotated[str, typer.Option("--reason", help="Why (required; kept with the decision and in the audit log)")]


def _actor() -> str:
    return f"steward:{getpass.getuser()}"


def _audit(session: Session, command: str, subject: str, *, outcome: str = "ok", detail: dict[str, Any]) -> None:
    from recognition import audit  # noqa: PLC0415 - the audit chain loads only for review commands

    record = audit.AuditRecord(
        consumer=_actor(), action="identity_review", resource=f"hub identity review {command}", subject=subject,
        outcome=outcome, detail=detail,
    )  # fmt: skip
    audit.append(session, [record])


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _refused(command: str, subject: str, code: str, message: str) -> NoReturn:
    from hub.db import session_scope  # noqa: PLC0415 - the state database loads only for review commands

    with session_scope() as session:
        _audit(session, command, subject, outcome="refused", detail={"code": code})
    typer.echo(json.dumps({"error": code, "message": message}, ensure_ascii=False), err=True)
    raise typer.Exit(1)


@review.command("list")
def list_command(
    status: Annotated[str, typer.Option("--status", help="open, linked, rejected or all")] = "open",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
) -> None:
    """Items oldest first, with how long each has waited (age_seconds); person codes masked."""
    from hub.db import session_scope  # noqa: PLC0415 - the state database loads only for review commands
    from recognition import identity_review as decisions  # noqa: PLC0415 - ~2.7 s, only the review commands

    if status not in ("open", "linked", "rejected", "all"):
        raise typer.BadParameter("one of open, linked, rejected, all", param_hint="--status")
    with session_scope() as session:
        rows = decisions.list_items(session, status=None if status == "all" else status, limit=limit, offset=offset)
        _audit(session, "list", status, detail={"reviews": [r["id"] for r in rows]})
    for row in rows:
        _print(row)


@review.command("show")
def show_command(
    review_id: Annotated[int, typer.Argument(help="The review item")],
    unmasked: Annotated[bool, typer.Option("--unmasked", help="Show the candidates' personal data unmasked")] = False,
) -> None:
    """Both sides: the incoming record (masked as the queue keeps it) and the candidate identities."""
    from hub.db import session_scope  # noqa: PLC0415 - the state database loads only for review commands
    from recognition import identity_review as decisions  # noqa: PLC0415 - ~2.7 s, only the review commands

    try:
        with session_scope() as session:
            shown = decisions.show(session, review_id, personal=unmasked)
            _audit(session, "show", str(review_id), detail={"personal": unmasked})
    except decisions.DecisionError as exc:
        _refused("show", str(review_id), exc.code, exc.message)
    _print(shown)


def _decide(command: str, review_id: int, **kwargs: Any) -> None:
    from e_license_store.service import default_service  # noqa: PLC0415 - signing keys and the store: decisions only
    from hub.db import session_scope  # noqa: PLC0415 - the state database loads only for review commands
    from recognition import identity_review as decisions  # noqa: PLC0415 - ~2.7 s, only the review commands

    act = {"accept": decisions.accept, "reject": decisions.reject, "split": decisions.split}[command]
    try:
        with session_scope() as session:
            decision = act(session, review_id, actor=_actor(), **kwargs)
            _audit(session, command, str(review_id), detail=decision.audit_detail())
    except decisions.DecisionError as exc:
        _refused(command, str(review_id), exc.code, exc.message)
    service = default_service(create_keys=True)
    with session_scope() as session:
        moved = {d.id: d for d in decisions.move_licences(session, service)}
    _print(moved.get(decision.id, decision).shown())


@review.command("accept")
def accept_command(
    review_id: Annotated[int, typer.Argument(help="The review item")],
    reason: Reason,
    candidate: Annotated[
        str | None, typer.Option("--candidate", help="The candidate identity's code (default: the best)")
    ] = None,
) -> None:
    """Link the record to a candidate (its licences move there, as new signed versions). When the record
    already belongs to another identity this merges two persons: a second steward's accept executes it."""
    _decide("accept", review_id, reason=reason, candidate=candidate)


@review.command("reject")
def reject_command(review_id: Annotated[int, typer.Argument(help="The review item")], reason: Reason) -> None:
    """Different persons: the record keeps its own identity."""
    _decide("reject", review_id, reason=reason)


@review.command("split")
def split_command(review_id: Annotated[int, typer.Argument(help="The review item")], reason: Reason) -> None:
    """Undo the item's link (or merge) by a later decision; its licences move back."""
    _decide("split", review_id, reason=reason)
