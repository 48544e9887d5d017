"""``hub mappings``: check department mapping files (映射文件校验)."""

from __future__ import annotations

from pathlib import Path

import typer

from mappings.engine import iter_problems, mapping_files

app = typer.Typer(no_args_is_help=True, help="Department mappings: check.")

DEFAULT_DIR = Path(__file__).parent


@app.callback()
def _group() -> None:
    """Department mappings (部门数据映射)."""


@app.command()
def check(
    files: list[Path] = typer.Argument(None, help="Mapping files (default: every mappings/*.yaml)."),
) -> None:
    """Check mapping files against the schema and the canonical model; print file:line: problem."""
    paths = list(files) if files else mapping_files(DEFAULT_DIR)
    problems = iter_problems(paths)
    for p in problems:
        typer.echo(str(p))
    bad = {p.file for p in problems}
    typer.echo(f"{len(paths)} file(s) checked, {len(bad)} with problems, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(code=1)
