"""``hub.safe_yaml``: the one YAML loader of the product, bounded against alias bombs and deep nesting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub import safe_yaml

REPO = Path(__file__).resolve().parents[2]
#: the product's rooms (sandbox, bench and tests are not the product)
PRODUCT = ("hub", "connectors", "mappings", "identity", "validation", "e_license_store", "recognition", "dags")
_RAW_LOAD = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|compose|safe_load_all|load_all|compose_all)\(")


def test_no_other_yaml_loader_in_the_product() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for room in PRODUCT
        for path in sorted((REPO / room).rglob("*.py"))
        if path != REPO / "hub" / "safe_yaml.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _RAW_LOAD.search(line)
    ]
    assert offenders == []


def test_yaml_alias_bomb_is_refused_before_construction() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(safe_yaml.YamlError) as caught:
        safe_yaml.load("\n".join(levels), name="subscriptions.yaml")
    assert (caught.value.file, caught.value.line) == ("subscriptions.yaml", 5)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: &a [*a]", 1, "recursive alias: the node anchored &a contains an alias to itself"),
        ("a: &a {b: [{c: *a}]}", 1, "recursive alias: the node anchored &a contains an alias to itself"),
        ("a: 1\nb: " + "[" * 100_000, 2, "nested deeper than 64 levels"),
        (
            "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30,
            2,
            "nested deeper than 64 levels once aliases are expanded",
        ),
        ("a: [1\n", 2, "not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ],
    ids=["self-alias", "indirect-self-alias", "deep", "deep-through-alias", "syntax"],
)
def test_refused_yaml_says_file_line_and_why(text: str, line: int, message: str) -> None:
    with pytest.raises(safe_yaml.YamlError) as caught:
        safe_yaml.load(text, name="f.yaml")
    assert (caught.value.line, caught.value.message) == (line, message)
    assert str(caught.value) == f"f.yaml:{line}: {message}"


def test_shared_anchors_within_bounds_load_as_safe_load_does() -> None:
    import yaml

    text = "base: &b {retries: 3, backoff: [1, 2, 4]}\nwebhook: *b\nsoap: {<<: *b, retries: 5}\n"
    assert safe_yaml.load(text) == yaml.safe_load(text)
    assert safe_yaml.load("") is None


def test_python_tags_stay_refused() -> None:
    with pytest.raises(safe_yaml.YamlError, match="could not determine a constructor"):
        safe_yaml.load("!!python/object/apply:os.system ['true']")


def test_files_too_large_or_not_utf8_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (safe_yaml.MAX_BYTES + 1))
    with pytest.raises(safe_yaml.YamlError, match="larger than 1,048,576 bytes"):
        safe_yaml.load_file(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: Müller\n".encode("latin-1"))
    with pytest.raises(safe_yaml.YamlError, match=r"latin.yaml:1: not UTF-8"):
        safe_yaml.load_file(latin)


def test_connectors_list_names_a_refused_mapping_file(tmp_path: Path) -> None:
    from connectors.cli import app

    (tmp_path / "self.yaml").write_text("source: &s {protocol: xml, datasets: *s}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["list", "--mappings", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'self.yaml'}:1: recursive alias" in result.output
