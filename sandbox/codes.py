"""Check characters of the national identifiers, vectorised with numpy for whole columns.

The generator makes up to a million identifiers at once, so every check here works on
arrays: resident id (公民身份号码, GB 11643, ISO 7064 MOD 11-2), organisation code
(组织机构代码, GB 11714), unified social credit code (统一社会信用代码, GB 32100, MOD 31)
and the old registration number (注册号, ISO 7064 MOD 11,10). The single-value forms agree
with python-stdnum (tests compare them).

>>> str(resident_id_check(np.array([11010519491231002]))[0])
'X'
>>> str(org_code_check(np.array(["D2143569"]))[0])
'X'
>>> full = "91110000" + "600037341"
>>> str(uscc_check(np.array([full]))[0])
'L'
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RESIDENT_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_RESIDENT_CHECK = np.array(list("10X98765432"))
_USCC_CHARS = np.array(list(USCC_ALPHABET))
_ORG_VALUE = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}

IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]


def digits(numbers: IntArray, width: int) -> IntArray:
    """The decimal digits of each number as a (n, width) matrix, most significant first."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers[None, :]) % 10


def _char_values(codes: StrArray, table: dict[str, int], width: int) -> IntArray:
    """Map fixed-width code strings to a (n, width) matrix of character values."""
    raw = np.frombuffer(np.ascontiguousarray(codes.astype(f"U{width}")).tobytes(), dtype=np.uint32)
    raw = raw.reshape(len(codes), width)
    lut = np.zeros(128, dtype=np.int64)
    for char, value in table.items():
        lut[ord(char)] = value
    return lut[raw]


def resident_id_check(first17: IntArray) -> StrArray:
    """MOD 11-2 check character of 17-digit resident-id bodies (``X`` stands for 10)."""
    total = digits(first17, 17) @ RESIDENT_WEIGHTS
    return _RESIDENT_CHECK[total % 11]


def org_code_check(first8: StrArray) -> StrArray:
    """GB 11714 check character of 8-character organisation-code bodies."""
    total = _char_values(first8, _ORG_VALUE, 8) @ ORG_WEIGHTS
    value = 11 - total % 11
    out = value.astype(str).astype("U2")
    out[value == 10] = "X"
    out[value == 11] = "0"
    return out.astype("U1")


def uscc_check(first17: StrArray) -> StrArray:
    """GB 32100 MOD 31 check character of 17-character USCC bodies."""
    total = _char_values(first17, _USCC_VALUE, 17) @ USCC_WEIGHTS
    return _USCC_CHARS[(31 - total % 31) % 31]


def reg_no_check(first14: IntArray) -> StrArray:
    """ISO 7064 MOD 11,10 check digit of 14-digit registration-number bodies."""
    d = digits(first14, 14)
    p = np.full(len(first14), 10, dtype=np.int64)
    for i in range(14):
        s = (p + d[:, i]) % 10
        s[s == 0] = 10
        p = (2 * s) % 11
    return ((11 - p) % 10).astype(str)


def int_strings(numbers: IntArray, width: int) -> StrArray:
    """Zero-padded decimal strings of fixed width."""
    return np.char.zfill(numbers.astype(str), width)
