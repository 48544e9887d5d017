"""Characters that print as nothing (不可见字符), in one place for every room that cleans input.

Codes pasted from web pages, Word files, spreadsheets or chat carry them: a zero-width space
or joiner between digits, a byte-order mark at the start of a file, a right-to-left mark, a
NUL from a C string. They make an exact lookup miss and a mask keep the wrong characters,
while the value looks right on screen. The set is Unicode's Default_Ignorable_Code_Point
(zero-width U+200B–U+200D, U+FEFF, U+2060–U+206F incl. the bidi isolates U+2066–U+2069,
the bidi embeddings and overrides U+202A–U+202E, the marks U+200E/U+200F and U+061C, the
soft hyphen, variation selectors, tag characters U+E0000–U+E0FFF, Hangul fillers…) plus
the control characters C0 (U+0000–U+001F, tab and line breaks included), DEL and C1. Visible
spaces (U+0020, U+00A0, U+3000) are not here: whether they matter is the caller's business.

Meant for identifiers and one-line values (codes, names, keys); it imports nothing.

>>> strip_invisible("3303\\u200b2219900101\\u2060001\\ufeff1")
'330322199001010011'
>>> strip_invisible("\\u202e1X2002\\u202c") == "1X2002"
True
>>> strip_invisible("张\\x00三\\u00ad"), has_invisible("张三"), has_invisible("张\\u200d三")
('张三', False, True)
"""

from __future__ import annotations

import re
from typing import Final

#: Inclusive ranges of invisible code points (see the module docstring).
_RANGES: Final = (
    (0x0000, 0x001F),  # C0 controls
    (0x007F, 0x009F),  # DEL, C1 controls
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner; left-to-right, right-to-left marks
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (byte-order mark)
    (0xFFA0, 0xFFA0),  # half-width Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned, default ignorable
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format characters
    (0xE0000, 0xE0FFF),  # tag characters, variation selectors supplement
)

#: ``str.translate`` table deleting every invisible character (merged into other clean-up tables).
INVISIBLE_TABLE: Final[dict[int, None]] = {cp: None for low, high in _RANGES for cp in range(low, high + 1)}


def strip_invisible(text: str) -> str:
    """``text`` without the characters that print as nothing."""
    return text.translate(INVISIBLE_TABLE)


def has_invisible(text: str) -> bool:
    """Whether ``text`` holds a character that prints as nothing."""
    return any(ord(ch) in INVISIBLE_TABLE for ch in text)


def invisible_class(keep: str = "") -> str:
    """A regular-expression character class of the invisible characters, by ranges (a class of
    single characters this large makes every search slow), without those in ``keep``.

    >>> import re
    >>> bool(re.search(invisible_class(keep="\\n"), "a\\u200bb")), bool(re.search(invisible_class(keep="\\n"), "a\\nb"))
    (True, False)
    """
    kept = {ord(ch) for ch in keep}
    parts: list[str] = []
    for low, high in _RANGES:
        start = None
        for cp in range(low, high + 2):
            inside = cp <= high and cp not in kept
            if inside and start is None:
                start = cp
            elif not inside and start is not None:
                end = cp - 1
                parts.append(re.escape(chr(start)) + ("" if end == start else "-" + re.escape(chr(end))))
                start = None
    return "[" + "".join(parts) + "]"
