"""The supervision code (统一服务监管码): every single typo and every adjacent transposition is caught.

The doctests of :mod:`identifiers.supervision_code` are its specification; these properties try
every position of generated codes: each other character of the alphabet in each place, each swap
of two neighbouring different characters.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

from identifiers import supervision_code as sc

REGIONS = st.sampled_from(["330322", "330302", "110105", "440106", "650102", "820000"])
DAYS = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
SEEDS = st.integers(0, 2**32 - 1)


def _code(region: str, day: dt.date, seed: int) -> str:
    return sc.generate(region, day, rng=random.Random(seed))


@settings(max_examples=200, deadline=None)
@given(REGIONS, DAYS, SEEDS)
def test_generated_codes_are_valid_and_carry_their_parts(region: str, day: dt.date, seed: int) -> None:
    code = _code(region, day, seed)
    assert len(code) == sc.LENGTH == 20
    assert sc.validate(code) == code and sc.is_valid(code)
    assert sc.get_region(code) == region and sc.get_date(code) == day
    printed = sc.format(code)
    assert printed == f"{code[:6]}-{code[6:14]}-{code[14:]}" and sc.validate(printed) == code
    assert sc.validate(printed.lower().replace("-", " ")) == code


@settings(max_examples=150, deadline=None)
@given(REGIONS, DAYS, SEEDS)
def test_every_single_substitution_is_caught(region: str, day: dt.date, seed: int) -> None:
    code = _code(region, day, seed)
    tried = 0
    for i, original in enumerate(code):
        for ch in sc.ALPHABET:
            if ch == original:
                continue
            typo = code[:i] + ch + code[i + 1 :]
            assert not sc.is_valid(typo), (code, i, ch)
            tried += 1
    assert tried == 20 * 30


@settings(max_examples=300, deadline=None)
@given(REGIONS, DAYS, SEEDS)
def test_every_adjacent_transposition_is_caught(region: str, day: dt.date, seed: int) -> None:
    code = _code(region, day, seed)
    for i in range(len(code) - 1):
        if code[i] == code[i + 1]:
            continue
        swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
        assert not sc.is_valid(swapped), (code, i)


def test_transpositions_next_to_the_check_character_are_caught_exhaustively() -> None:
    """Every pair of different characters in the last data place and the check place, by arithmetic:
    the weights there (3^18 mod 31 = 4 and 1) differ, so no swap keeps the sum."""
    body = "33032220261204AB4G4"
    for a in sc.ALPHABET:
        code = body[:-1] + a
        code += sc.calc_check_digit(code)
        if code[-1] != code[-2]:
            assert not sc.is_valid(code[:-2] + code[-1] + code[-2])


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("330322202612042X4G4", InvalidLength, "invalid_length"),
        ("330322202612042X4G477", InvalidLength, "invalid_length"),
        ("33032220261204VX4G47", InvalidFormat, "invalid_format"),
        ("3303222026120A2X4G47", InvalidFormat, "invalid_format"),
        ("330322202612042X4G48", InvalidChecksum, "invalid_checksum"),
    ],
)
def test_typed_errors_with_stable_reasons(text: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=f"^{reason}$"):
        sc.validate(text)
    assert not sc.is_valid(text)


def test_components_are_checked_after_the_check_character() -> None:
    bad_day = "33032220261301" + "2X4G4"
    with pytest.raises(InvalidComponent, match="invalid_date"):
        sc.validate(bad_day + sc.calc_check_digit(bad_day))
    no_province = "99032220261204" + "2X4G4"
    with pytest.raises(InvalidComponent, match="unknown_region"):
        sc.validate(no_province + sc.calc_check_digit(no_province))


def test_look_alike_letters_read_as_digits_and_never_as_a_person_s_code() -> None:
    code = _code("330322", dt.date(2026, 12, 4), 1)
    assert sc.validate(code.replace("0", "O").replace("1", "I").replace("2", "Z")) == code
    # 20 characters: never a resident id (18 or 15) nor a USCC (18), which masking would treat as such
    from hub.masking import looks_like_resident_id

    assert not looks_like_resident_id(code) and not looks_like_resident_id(sc.format(code))
    assert not sc.is_valid(None) and not sc.is_valid(12345)  # type: ignore[arg-type]


def _compact_char_by_char(number: str) -> str:
    """compact() as it reads a code that is not already compact: normalised, character by character."""
    import unicodedata

    text = unicodedata.normalize("NFKC", number)
    kept = (ch for ch in text if ch not in sc._SEPARATORS and unicodedata.category(ch) not in ("Cf", "Cc"))
    return "".join(kept).upper().translate(sc._READ_AS)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz -_．０１ｋ\u200b\t", max_size=24)
)
def test_an_already_compact_code_is_returned_as_it_is_and_anything_else_normalised(text: str) -> None:
    assert sc.compact(text) == _compact_char_by_char(text)
    assert sc.compact(sc.compact(text)) == sc.compact(text)
