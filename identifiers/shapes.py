"""The canonical shapes of the hub's identifiers (代码格式), as regular expressions, in one place.

A shape says only that a value *looks* canonical (compact, upper case, the right characters in
the right places); :mod:`identifiers.resident_id`, :mod:`identifiers.uscc` and
:mod:`identifiers.org_code` say whether it is valid.

>>> bool(RESIDENT_ID.match("11010519491231002X")), bool(RESIDENT_ID.match("11010519491231002x"))
(True, False)
>>> bool(HOLDER.match("91110000600037341L")), bool(HOLDER.match("600037341"))
(True, False)
"""

from __future__ import annotations

import re

#: 18-digit resident id (GB 11643): 17 digits and a check digit or ``X``.
RESIDENT_ID_PATTERN = r"^[0-9]{17}[0-9X]$"
#: Unified social credit code (GB 32100): authority, type, 6-digit region, 10 characters.
USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
#: Organisation code (GB 11714) without its dash: 8 characters and a check digit or ``X``.
ORG_CODE_PATTERN = r"^[0-9A-Z]{8}[0-9X]$"

RESIDENT_ID = re.compile(RESIDENT_ID_PATTERN)
USCC = re.compile(USCC_PATTERN)
ORG_CODE = re.compile(ORG_CODE_PATTERN)
#: A code licences are filed under: an 18-digit resident id or a USCC.
HOLDER = re.compile(f"^(?:{RESIDENT_ID_PATTERN[1:-1]}|{USCC_PATTERN[1:-1]})$")
