"""The event key behind opaque references: from the environment, else one file per installation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub.pseudonyms import EventKeyError, event_key, key_path, opaque_ref
from hub.settings import reset_settings


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_EVENT_KEY", raising=False)
    reset_settings()
    return tmp_path


def test_a_key_file_is_created_once_readable_by_its_owner_only(home: Path) -> None:
    first = event_key()
    path = key_path()
    assert path.parent == home / "secrets" and len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert event_key() == first and opaque_ref("330322198001011236") == opaque_ref("330322198001011236")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_the_environment_wins_and_a_bad_key_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_EVENT_KEY", "ab" * 32)
    assert event_key() == bytes.fromhex("ab" * 32) and not key_path().exists()
    other = opaque_ref("330322198001011236")
    monkeypatch.setenv("HUB_EVENT_KEY", "cd" * 32)
    assert opaque_ref("330322198001011236") != other  # a different installation, different references
    monkeypatch.setenv("HUB_EVENT_KEY", "short")
    with pytest.raises(EventKeyError):
        event_key()
