"""``hub licenses``: list, get, verify (exit codes), reindex — with personal data masked."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from e_license_store.cli import app
from e_license_store.service import LicenseService
from e_license_store.store.local import LocalStore
from mappings.canonical.models import HolderKind
from tests.e_license_store.conftest import USCC, business_draft, source

runner = CliRunner()


def test_list_get_verify_reindex(service: LicenseService, local_store: LocalStore, tmp_path: Path) -> None:
    issued = service.issue(business_draft(), source())
    res = runner.invoke(app, ["list", "--holder", USCC, "--json"])
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["license_id"] for line in res.stdout.splitlines()] == [issued.license_id]

    out = tmp_path / "licence.json"
    res = runner.invoke(app, ["get", issued.license_id, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "营业执照" in res.stdout and out.read_bytes() == local_store.get(issued.object_key)

    res = runner.invoke(app, ["verify", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["ok"] is True

    data = out.read_bytes()
    pos = data.index(b"330322000012345")
    (tmp_path / "tampered.json").write_bytes(data[:pos] + b"4" + data[pos + 1 :])
    res = runner.invoke(app, ["verify", str(tmp_path / "tampered.json")])
    assert res.exit_code == 2
    verdict = json.loads(res.stdout.splitlines()[0])
    assert verdict["signature_ok"] is False and verdict["hash_ok"] is False

    service.revoke(issued.license_id, "吊销营业执照")
    res = runner.invoke(app, ["verify", str(out)])
    assert res.exit_code == 2 and json.loads(res.stdout.splitlines()[0])["revoked"] is True
    assert "revoked" in res.stdout

    res = runner.invoke(app, ["reindex"])
    assert res.exit_code == 0 and "2 licence versions" in res.stdout


def test_a_persons_id_and_name_are_masked(service: LicenseService) -> None:
    draft = business_draft(
        license_type_code="2101",
        holder_kind=HolderKind.person,
        holder_code="11010519491231002X",
        holder_name="张三丰",
        surface={"unit_no": "330322001001GB00001F00010001"},
    )
    issued = service.issue(draft, source())
    res = runner.invoke(app, ["list", "--holder", "11010519491231002X", "--json"])
    assert res.exit_code == 0 and "张三丰" not in res.stdout
    shown = json.loads(res.stdout)
    assert (shown["holder_code"], shown["holder_name"]) == ("110105********002X", "张**")
    res = runner.invoke(app, ["get", issued.license_id])
    assert res.exit_code == 0 and "19491231" not in res.stdout and "三丰" not in res.stdout


def test_unknown_licence_exits_non_zero(service: LicenseService) -> None:
    res = runner.invoke(app, ["get", "1101-330322-000000000000X"])
    assert res.exit_code == 1


def test_hub_command_verifies_and_rotates_end_to_end(
    service: LicenseService, local_store: LocalStore, tmp_path: Path, key_dir: Path, hub_db_url: str
) -> None:
    """As a separate process: exit 0 for a genuine licence, 2 for one changed byte;
    then rotation (in process) and the old licence still verifying."""
    import os
    import subprocess
    import sys

    issued = service.issue(business_draft(), source())
    good = tmp_path / "good.json"
    good.write_bytes(local_store.get(issued.object_key))
    bad = tmp_path / "bad.json"
    data = good.read_bytes()
    pos = data.index("海景".encode())
    bad.write_bytes(data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :])
    env = {
        **os.environ,
        "HUB_DB_URL": hub_db_url,
        "HUB_STORE_URL": f"file://{local_store.root}",
        "HUB_SIGNING_KEY_DIR": str(key_dir),
    }
    # the licences group as its own process (``hub`` itself would import every other part too)
    hub = [sys.executable, "-c", "from e_license_store.cli import app; app()"]
    ok = subprocess.run([*hub, "verify", str(good)], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[0])["ok"] is True
    tampered = subprocess.run([*hub, "verify", str(bad)], env=env, capture_output=True, text=True, timeout=120)
    assert tampered.returncode == 2
    rotated = runner.invoke(app, ["rotate-key"])
    assert rotated.exit_code == 0 and "active key sm2-" in rotated.stdout
    assert (key_dir / "active").read_text().strip() != issued.key_id
    again = runner.invoke(app, ["verify", str(good)])
    assert again.exit_code == 0  # the old licence still verifies after rotation


def test_verify_a_missing_file_or_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["verify", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1
    assert missing.output == f"error: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"
    directory = runner.invoke(app, ["verify", str(tmp_path)])
    assert directory.exit_code == 1
    assert directory.output == f"error: cannot read {tmp_path}: Is a directory\n"


def test_verify_deeply_nested_json_is_not_valid_without_a_traceback(service: LicenseService, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    res = runner.invoke(app, ["verify", str(deep)])
    assert res.exit_code == 2, res.output
    verdict = json.loads(res.stdout.splitlines()[0])
    assert verdict["ok"] is False and verdict["well_formed"] is False
    assert verdict["problems"] == ["malformed: not a licence: JSON nested 100000 levels deep (at most 32)"]


def test_verify_refuses_a_file_larger_than_any_licence_without_reading_it_whole(tmp_path: Path) -> None:
    from e_license_store.verify import MAX_FILE_BYTES

    big = tmp_path / "big.pdf"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: one byte too many
    res = runner.invoke(app, ["verify", str(big)])
    assert res.exit_code == 2
    assert res.output == f"error: {big} is larger than {MAX_FILE_BYTES:,} bytes: not a licence file\n"
