"""Log records scrubbed of personal data (日志脱敏), whoever logs them.

:func:`install` replaces the process's log record factory: every record's message, once
its arguments are filled in, and the text of an attached exception pass through
:func:`hub.masking.scrub_text`, so a resident id or a phone number that reaches a log line —
an exception quoting a bad value, a driver's error echoing a row — is masked by its shape.
Names and addresses cannot be recognised by shape: code logs them only masked (the masking
policy), and this is the net under that rule. Importing :mod:`hub` installs it, so the CLI,
the API, the audit writer and every Airflow task process that runs hub code log through it.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from hub.masking import scrub_text

_MARK = "_hub_scrubbing"


def _scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when the record is emitted
        return record
    clean = scrub_text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # formatters reuse ``exc_text`` when it is set: the traceback is rendered once, scrubbed
        record.exc_text = scrub_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    return record


def install() -> None:
    """Scrub every log record of this process from now on (idempotent; keeps any factory set before)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _scrub_record(previous(*args, **kwargs))

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)
