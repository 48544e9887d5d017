"""``hub identity normalize`` through the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from identifiers.normalize import normalize
from identity.cli import app

runner = CliRunner()


def test_normalize_args_one_json_per_line() -> None:
    result = runner.invoke(app, ["normalize", "11010519491231002x", "D2143569-X", "110105491231002"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["kind"] for r in rows] == ["resident_id", "org_code", "ambiguous"]
    assert set(rows[0]) == {"input", "kind", "canonical", "valid", "reason"}
    assert rows[0]["canonical"] == "11010519491231002X" and rows[0]["valid"] is True
    assert rows[1]["canonical"] == "D2143569X"
    assert {c["kind"] for c in rows[2]["candidates"]} == {"resident_id_15", "reg_no"}


def test_normalize_as_kind_and_stdin() -> None:
    result = runner.invoke(app, ["normalize", "--as", "resident_id_15"], input="110105491231002\n\n")
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row == {
        "input": "110105491231002",
        "kind": "resident_id_15",
        "canonical": "11010519491231002X",
        "valid": True,
        "reason": None,
    }


def test_normalize_rejects_unknown_kind() -> None:
    result = runner.invoke(app, ["normalize", "--as", "passport", "123"])
    assert result.exit_code != 0


INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "byte-order mark": "\ufeff",
    "word joiner": "\u2060",
    "left-to-right mark": "\u200e",
    "right-to-left mark": "\u200f",
    "right-to-left override": "\u202e",
    "pop directional formatting": "\u202c",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "NUL": "\x00",
    "unit separator": "\x1f",
    "tag character": "\U000e0031",
}


@pytest.mark.parametrize("char", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_characters_in_a_code_are_stripped(char: str) -> None:
    code = f"{char}110105{char}19491231002x{char}"
    result = runner.invoke(app, ["normalize", code])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert (row["input"], row["kind"], row["canonical"], row["valid"]) == (
        code,
        "resident_id",
        "11010519491231002X",
        True,
    )
    assert normalize(code) == row  # the scalar path agrees with the command's vectorised one


def test_byte_order_mark_and_bidi_isolates_on_stdin_are_stripped() -> None:
    text = "\ufeff91110000600037341\u2066L\u2069\r\nD2143569\u200b-X\n"
    result = runner.invoke(app, ["normalize"], input=text.encode())
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["kind"], r["canonical"], r["valid"]) for r in rows] == [
        ("uscc", "91110000600037341L", True),
        ("org_code", "D2143569X", True),
    ]


def test_non_utf8_argument_is_a_usage_error() -> None:
    # what the command gets on Linux for the bytes 1101 0xff 05...: the byte escaped as a surrogate
    result = runner.invoke(app, ["normalize", "11010519491231002X", "1101\udcff05"])
    assert result.exit_code == 2
    assert result.output == "error: argument 2 is not valid UTF-8 (byte 0xff at position 5)\n"


def test_non_utf8_stdin_is_a_usage_error() -> None:
    result = runner.invoke(app, ["normalize"], input=b"11010519491231002X\n1101\xfe\xff05\n")
    assert result.exit_code == 2
    assert result.output == "error: stdin line 2 is not valid UTF-8 (byte 0xfe at position 5)\n"


def test_non_utf8_argv_through_the_hub_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rigs.cli", "identity", "normalize", b"\xff\xfe11010519491231002X"],
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.decode() == "error: argument 1 is not valid UTF-8 (byte 0xff at position 1)\n"
    assert out.stdout == b""
