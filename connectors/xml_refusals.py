"""Why an XML exchange package is refused (拒收原因): libxml2's own verdict, with its reason.

The reading pass (:mod:`connectors.xml_packages`) parses with :data:`HARDENED` settings and
the XSD plugged into lxml's push parser. Two facts of lxml 6.1 / libxml2 2.14 shape this module:

- With an XSD plugged in, the parser's errors never reach lxml's error log. lxml then
  forgives the fatal error it cannot see (its rule for undeclared entities when entities are
  not resolved), and the next chunk fed starts a *new document*. An invalid UTF-8 byte, a
  huge text node or an entity bomb surfaced as "no element found (line 0)" — or as nothing,
  with the rest of the package read from the next 32 KB boundary on. The reading pass
  therefore accepts a package only when the root element it saw start is the one it saw end,
  and :func:`diagnose` parses a failed package once more without the XSD (errors are then
  reported) to name libxml2's error, message, line and column. Only refused packages pay.
- A DOCTYPE must be refused by the parser, not by scanning bytes (comments, processing
  instructions, a byte-order mark or UTF-16 defeat a scan). :class:`PrologGuard` parses the
  prolog with a parser target whose ``doctype`` callback refuses, in whatever encoding
  libxml2 decodes (UTF-8, UTF-16 with or without BOM, UTF-32, GB18030, GBK…), and stops at
  the root's start tag. The reader feeds it every chunk before the reading pass sees it, so
  an error in the prolog (where the reading pass could restart unnoticed) is refused too.

Entities never reach a record: without a DTD every entity reference but the five
predefined ones is undeclared — a fatal error, and the package is refused (never emitted
with the reference's text silently empty); with a DTD the package is refused as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final, Protocol

from lxml import etree

#: Parser settings for packages and the XSD: no DTD loaded, no entity substituted, no network,
#: libxml2's limits kept (``huge_tree`` off: text nodes of at most :data:`MAX_TEXT_NODE` bytes,
#: at most :data:`MAX_PARSER_DEPTH` levels).
HARDENED: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}
#: libxml2's XML_MAX_TEXT_LENGTH: the longest text node it builds without ``huge_tree``.
MAX_TEXT_NODE: Final = 10_000_000
#: libxml2's nesting limit without ``huge_tree``.
MAX_PARSER_DEPTH: Final = 256
#: How much of the parser's message a reason keeps.
_MESSAGE_CHARS: Final = 300
_ENCODING_ERRORS: Final = frozenset(
    {"ERR_INVALID_ENCODING", "ERR_UNKNOWN_ENCODING", "ERR_UNSUPPORTED_ENCODING", "ERR_ENCODING_NAME"}
)
#: lxml appends ", line L, column C" and " (<file>, line L)" to libxml2's message
_POSITION_SUFFIX: Final = re.compile(r"(, line \d+, column \d+)?( \([^()]*, line \d+\))?$")


class PackageRejected(Exception):
    """A whole package refused, with a stable reason code.

    Codes: ``xml_dtd_forbidden``, ``xml_entity_forbidden``, ``xml_limit_exceeded``,
    ``xml_encoding_invalid``, ``xml_truncated``, ``xml_not_well_formed``,
    ``xml_schema_invalid``, ``xml_too_deep``, ``package_too_large``, ``checksum_mismatch``.
    """

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


class _Reader(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class _RootReached(Exception):
    """The prolog is over: the root element starts."""


class _PrologTarget:
    """Parser target for the prolog: a DOCTYPE refuses the package, the root's start ends it."""

    def doctype(self, name: str | None, public_id: str | None, system_url: str | None) -> None:
        external = f", external {system_url!r}" if system_url else ""
        raise PackageRejected(
            "xml_dtd_forbidden",
            f"the package declares a DTD (<!DOCTYPE {name}>{external}); DTDs, entity declarations and "
            "entity references are refused — the department must send the package without a DOCTYPE",
        )

    def start(self, tag: str, attrib: Any, nsmap: Any = None) -> None:
        raise _RootReached

    def close(self) -> None:
        return None


class PrologGuard:
    """libxml2 parsing a package's prolog, up to the root's start tag, with :class:`_PrologTarget`.

    :meth:`feed` raises :class:`PackageRejected` for a DOCTYPE or an error in the prolog.
    Bytes after the root's start tag are not parsed again (``done``).
    """

    def __init__(self) -> None:
        self.done = False
        self._parser = etree.XMLParser(target=_PrologTarget(), **HARDENED)

    def feed(self, data: bytes) -> None:
        if self.done or not data:  # a package ending in its prolog: the reading pass finds it
            return
        try:
            self._parser.feed(data)
        except _RootReached:
            self.done = True
        except etree.XMLSyntaxError as exc:
            self.done = True
            raise _refusal(_first_error(self._parser.feed_error_log) or _entry_of(exc), at_end=False) from exc


def diagnose(source: _Reader, tags: Collection[str], root_tag: str) -> PackageRejected | None:
    """Parse ``source`` again without the XSD; the refusal libxml2's first error makes, if any.

    ``None``: well-formed and ends with ``root_tag`` — the reading pass failed on the XSD.
    Memory stays flat: ``tags`` (the root's children) are cleared as they end.
    """
    parser = etree.XMLPullParser(
        events=("end",), tag=sorted({*tags, root_tag}), remove_comments=True, remove_pis=True, **HARDENED
    )
    closed = False
    try:
        while chunk := source.read(1 << 20):
            parser.feed(chunk)
            # a forgiven undeclared entity raises nothing: its entry in the log is the only trace
            if problem := _first_error(parser.feed_error_log):
                return _refusal(problem, at_end=False)
            for _, elem in parser.read_events():
                parent = elem.getparent()
                if parent is None:
                    closed = elem.tag == root_tag
                elif parent.getparent() is None:
                    elem.clear(keep_tail=True)
                    while elem.getprevious() is not None:
                        del parent[0]
    except etree.XMLSyntaxError as exc:
        return _refusal(_first_error(parser.feed_error_log) or _entry_of(exc), at_end=False)
    try:
        parser.close()
    except etree.XMLSyntaxError as exc:
        return _refusal(_first_error(parser.feed_error_log) or _entry_of(exc), at_end=True)
    if problem := _first_error(parser.feed_error_log):
        return _refusal(problem, at_end=True)
    if not closed:
        return PackageRejected(
            "xml_truncated",
            f"the package ends before </{_local(root_tag)}> (truncated in transit?); the department must resend it",
        )
    return None


def schema_refusal(exc: Exception) -> PackageRejected:
    """The refusal for a package that is well-formed but does not match the XSD."""
    return PackageRejected("xml_schema_invalid", f"does not match the XSD: {_message(exc)[:_MESSAGE_CHARS]}")


class _Entry:
    """What a reason shows of a libxml2 error (from the parser's log, or from the exception)."""

    def __init__(self, type_name: str, message: str, line: int, column: int) -> None:
        self.type_name, self.message, self.line, self.column = type_name, message.strip(), line, column


def _first_error(log: Any) -> _Entry | None:
    for entry in log:
        # a warning does not refuse a package, except an undeclared entity's (its text would be lost)
        if entry.level_name in ("ERROR", "FATAL") or "ENTITY" in entry.type_name:
            return _Entry(entry.type_name, entry.message, entry.line, entry.column)
    return None


def _entry_of(exc: Any) -> _Entry:
    line, column = exc.position or (exc.lineno or 0, 0)
    return _Entry(etree.ErrorTypes._getName(exc.code, ""), _message(exc), line, column)


def _message(exc: Any) -> str:
    return _POSITION_SUFFIX.sub("", str(getattr(exc, "msg", None) or exc)).strip()


def _refusal(entry: _Entry, *, at_end: bool) -> PackageRejected:
    said = f"libxml2: {entry.message[:_MESSAGE_CHARS]} (line {entry.line}, column {entry.column})"
    kind, text = entry.type_name, entry.message
    if "ENTITY" in kind or "entity" in text.lower():
        return PackageRejected("xml_entity_forbidden", f"the package uses an entity; entities are refused — {said}")
    if kind == "ERR_RESOURCE_LIMIT" or "XML_PARSE_HUGE" in text:
        return PackageRejected("xml_limit_exceeded", f"{_limit(text)} — {said}")
    if kind in _ENCODING_ERRORS:
        return PackageRejected(
            "xml_encoding_invalid", f"bytes that are not valid in the package's declared encoding — {said}"
        )
    if at_end:
        return PackageRejected(
            "xml_truncated", f"the package ends early (truncated in transit?); the department must resend it — {said}"
        )
    return PackageRejected("xml_not_well_formed", f"not well-formed XML — {said}")


def _limit(message: str) -> str:
    if "Text node too long" in message:
        return f"a text node is longer than {MAX_TEXT_NODE:,} bytes, the parser's limit (huge trees are refused)"
    if "depth" in message:
        return f"elements nested deeper than {MAX_PARSER_DEPTH} levels, the parser's limit"
    return "the package exceeds a limit of the parser (huge trees are refused)"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
