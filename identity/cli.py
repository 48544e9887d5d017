"""``hub identity``: normalise identifiers and look up the master index (主索引查询)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Annotated, NoReturn

import typer

app = typer.Typer(no_args_is_help=True, help="Identifiers and the master index: normalize, lookup, matching train.")


@app.command("normalize")
def normalize_cmd(
    codes: Annotated[list[str] | None, typer.Argument(help="Codes to normalise; read from stdin when none.")] = None,
    as_kind: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Treat every code as this kind: resident_id, resident_id_15, uscc, org_code, reg_no, taxpayer_id.",
        ),
    ] = None,
) -> None:
    """Print one JSON object per code: input, kind, canonical, valid, reason (+ candidates).

    Characters that print as nothing (zero-width, bidi controls, byte-order mark, NUL…) are
    removed like spaces and dashes. Exit 2 when a code (argument or stdin line) is not UTF-8.
    """
    from identifiers.normalize import KINDS  # noqa: PLC0415 - ~90 ms; `hub --help` loads this
    from identifiers.vectorized import normalize_many, records  # noqa: PLC0415 - pandas; `hub --help` loads this

    if as_kind is not None and as_kind not in KINDS:
        raise typer.BadParameter(f"expected one of {', '.join(KINDS)}", param_hint="--as")
    values = _utf8_arguments(codes) if codes else _utf8_lines(sys.stdin.buffer)
    out = sys.stdout
    # Vectorised in chunks: the same answers as the scalar path, fast on large stdin streams.
    for start in range(0, len(values), 100_000):
        for row in records(normalize_many(values[start : start + 100_000], as_kind)):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _utf8_arguments(codes: list[str]) -> list[str]:
    """The arguments, or exit 2 naming the first that is not UTF-8 (Python decodes it with surrogates)."""
    for i, code in enumerate(codes, 1):
        try:
            code.encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = ord(code[exc.start]) & 0xFF  # the surrogate escapes the undecodable byte
            _usage_error(f"argument {i} is not valid UTF-8 (byte 0x{byte:02x} at position {exc.start + 1})")
    return codes


def _utf8_lines(stream: Iterable[bytes]) -> list[str]:
    """Non-blank lines of ``stream`` decoded as UTF-8, or exit 2 naming the first line that is not."""
    values: list[str] = []
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            _usage_error(f"stdin line {number} is not valid UTF-8 (byte 0x{byte:02x} at position {exc.start + 1})")
        if line.strip():
            values.append(line)
    return values


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command("lookup")
def lookup_cmd(
    code: Annotated[str, typer.Argument(help="Any code: resident id, USCC, organisation code, reg. no., taxpayer id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    unmasked: Annotated[bool, typer.Option("--unmasked", help="Show personal data unmasked.")] = False,
) -> None:
    """Print the golden record behind CODE, its legacy codes and linked source records."""
    from identity.lookup import run_lookup  # noqa: PLC0415 - ~1.3 s, only this command

    raise typer.Exit(run_lookup(code, as_json=as_json, unmasked=unmasked))


matching_app = typer.Typer(no_args_is_help=True, help="The matching model (匹配模型): train.")
app.add_typer(matching_app, name="matching")


@matching_app.command("train")
def matching_train_cmd(
    entity: Annotated[
        str | None,
        typer.Option("--entity", help="person or enterprise; both when not given (each kind the index holds)."),
    ] = None,
) -> None:
    """Train the matching models (person, enterprise) from the master index and write each as a new model file version.

    Labels are the hub's own: department records linked by a valid code, paired with their
    identity (two thirds train the model, a third is held out), and stewards' review decisions;
    the match threshold is the lowest that holds precision >= 0.995 on the held-out labels. Links
    an older version placed that the new one would place elsewhere are proposed for review
    (reason ``relink``), never changed. Prints one JSON object per model trained (entity, version,
    path, labels, master records, thresholds, relinks); a kind the index holds no identity of is
    skipped; exit 1 when nothing was trained.
    """
    from hub.db import get_engine, session_scope  # noqa: PLC0415 - SQLAlchemy, this command only
    from identity.matching_maintenance import retrain  # noqa: PLC0415 - splink, training only

    kinds = [entity] if entity else ["person", "enterprise"]
    if any(k not in ("person", "enterprise") for k in kinds):
        typer.echo(f"error: --entity is person or enterprise, not {entity}", err=True)
        raise typer.Exit(2)
    trained = 0
    for kind in kinds:
        with session_scope(get_engine()) as session:
            shown = retrain(session, entity=kind)
        if shown is not None:
            typer.echo(json.dumps(shown, ensure_ascii=False))
            trained += 1
    if not trained:
        typer.echo(f"error: the master index holds no {' and no '.join(kinds)} to train on", err=True)
        raise typer.Exit(1)
