"""Log lines are scrubbed of resident ids and phones, whoever logs them (hub.logmask)."""

from __future__ import annotations

import logging

import pytest

import hub  # noqa: F401 - importing the hub installs the scrubbing record factory
from hub import logmask

RESIDENT_ID = "330322198001011231"


def test_log_lines_mask_resident_ids_and_phones(caplog: pytest.LogCaptureFixture) -> None:
    logmask.install()  # idempotent: a second install keeps one layer
    log = logging.getLogger("some.third.party")
    with caplog.at_level(logging.INFO):
        log.info("row %s rejected, phone %s", RESIDENT_ID, "13812345678")
        try:
            raise ValueError(f"bad id {RESIDENT_ID}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert RESIDENT_ID not in text and "13812345678" not in text
    assert "330322********1231" in text and "138****5678" in text
    assert "ValueError: bad id 330322********1231" in text


def test_unrelated_log_lines_are_untouched(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("pulled %d rows from %s", 12, "tax/taxpayers")
    assert "pulled 12 rows from tax/taxpayers" in caplog.text
