"""``hub mappings check|preview``: a department's mapping files before they run (映射文件校验).

The group sits above the mappings, validation and the licence catalogue, as ``check`` asks all
three what they need of a mapping (:mod:`hub.pipeline.mapping_check`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from hub.pipeline.mapping_check import check_mappings
from mappings.engine import MAPPINGS_DIR, mapping_files

app = typer.Typer(no_args_is_help=True, help="Department mappings: check, preview.")


@app.callback()
def _group() -> None:
    """Department mappings (部门数据映射)."""


@app.command()
def check(
    files: list[Path] = typer.Argument(None, help="Mapping files (default: every mappings/*.yaml)."),
) -> None:
    """Check mapping files: schema, canonical model, identity kind, the expectation suite's required
    columns and allowed values, licence types in e_license_store/catalogue.yaml. Prints
    file:line: problem; exit 1 when there is any."""
    paths = list(files) if files else mapping_files(MAPPINGS_DIR)
    problems = check_mappings(paths)
    for p in problems:
        typer.echo(str(p))
    bad = {p.file for p in problems}
    typer.echo(f"{len(paths)} file(s) checked, {len(bad)} with problems, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(code=1)
