"""Standards test vectors: (rule, clause, code, our answer, python-stdnum's answer).

Our answer is ``"valid"`` or the stable reason code; stdnum's is ``"valid"`` or the name of
the exception it raises. docs/identifiers.md shows the same rows as a table.
"""

from __future__ import annotations

RESIDENT_ID = [
    ("18-digit number with MOD 11-2 check", "GB 11643-1999 §4, §5.5", "11010519491231002X", "valid", "valid"),
    ("wrong check character", "GB 11643-1999 §5.5", "110105194912310021", "invalid_checksum", "InvalidChecksum"),
    (
        "impossible date (30 Feb)",
        "GB 11643-1999 §5.3 (GB/T 7408)",
        "110105199902300023",
        "invalid_birth_date",
        "InvalidComponent",
    ),
    ("birth date in the future", "GB 11643-1999 §5.3", "110105209001010017", "future_birth_date", "valid"),
    (
        "birth year before 1850 (hub plausibility rule)",
        "— (not in the standard)",
        "110105180001010010",
        "invalid_birth_date",
        "valid",
    ),
    (
        "region code never assigned",
        "GB 11643-1999 §5.2 (GB/T 2260)",
        "999999194912310025",
        "unknown_region",
        "InvalidComponent",
    ),
    (
        "region code created after the birth year (浦东新区 1992, born 1980)",
        "GB 11643-1999 §5.2",
        "310115198001010016",
        "valid",
        "InvalidComponent",
    ),
    (
        "retired region code, born while in use (卢湾区 until 2011)",
        "GB 11643-1999 §5.2",
        "310103197001010016",
        "valid",
        "valid",
    ),
    (
        "retired region code, born after retirement",
        "GB 11643-1999 §5.2",
        "310103201501010011",
        "region_retired_before_birth",
        "InvalidComponent",
    ),
    (
        "lower-case x as check character (normalised to X)",
        "GB 11643-1999 §5.5 ('X')",
        "11010519491231002x",
        "valid",
        "valid",
    ),
    ("15-digit legacy number", "GB 11643-1999 §6 (conversion)", "110105491231002", "valid", "InvalidLength"),
]

USCC = [
    ("enterprise (工商 9, 企业 1)", "GB 32100-2015 §4, Annex A", "91110000600037341L", "valid", "valid"),
    ("sole trader (工商 9, 个体工商户 2)", "GB 32100-2015 Annex A", "92330322MA2C00001X", "valid", "valid"),
    (
        "national-level organ (机构编制 1, region 100000)",
        "GB 32100-2015 Annex A",
        "11100000000013127D",
        "valid",
        "valid",
    ),
    (
        "authority A (中央军委改革和编制办公室)",
        "GB 32100-2015 Annex A (amended)",
        "A1110000MA2C00001Y",
        "valid",
        "InvalidFormat",
    ),
    ("authority N (农业)", "GB 32100-2015 Annex A (amended)", "N2330322MA2C00001G", "valid", "InvalidFormat"),
    ("authority Y (其他)", "GB 32100-2015 Annex A", "Y1330322MA2C00001B", "valid", "InvalidFormat"),
    (
        "authority 0 does not exist",
        "GB 32100-2015 §4.1",
        "01110000600037341X",
        "unknown_registration_authority",
        "valid",
    ),
    (
        "entity type 5 not allowed for 工商 (1, 2, 3 only)",
        "GB 32100-2015 §4.2, Annex A",
        "951100006000373418",
        "unknown_entity_type",
        "valid",
    ),
    (
        "region province 99 does not exist",
        "GB 32100-2015 §4.3 (GB/T 2260)",
        "91990000600037341B",
        "unknown_region",
        "valid",
    ),
    (
        "embedded organisation code with a wrong GB 11714 check",
        "GB 32100-2015 §4.4, GB 11714-1997 §5",
        "91110000600037342P",
        "invalid_embedded_org_code",
        "valid",
    ),
    ("wrong MOD 31 check character", "GB 32100-2015 §4.5", "91110000600037341M", "invalid_checksum", "InvalidChecksum"),
    (
        "letter I (excluded from the alphabet)",
        "GB 32100-2015 §4",
        "9111000060003734IL",
        "invalid_format",
        "InvalidFormat",
    ),
]

ORG_CODE = [
    ("check 10 written X", "GB 11714-1997 §5", "D2143569X", "valid", "n/a (no module)"),
    ("check 11 written 0", "GB 11714-1997 §5", "000000000", "valid", "n/a (no module)"),
    ("wrong check", "GB 11714-1997 §5", "600037342", "invalid_checksum", "n/a (no module)"),
    ("printed form with dash", "GB 11714-1997 §6", "60003734-1", "valid", "n/a (no module)"),
]

REG_NO = [
    (
        "15-digit registration number, MOD 11,10",
        "GS 15-2006, ISO 7064 MOD 11,10",
        "330300000012343",
        "valid",
        "n/a (no module)",
    ),
    ("wrong check digit", "ISO 7064 MOD 11,10", "330300000012344", "invalid_checksum", "n/a (no module)"),
]

TAXPAYER_ID = [
    (
        "15-digit: region + organisation code",
        "税务登记证号 (国税发〔1996〕)",
        "330322600037341",
        "valid",
        "n/a (no module)",
    ),
    (
        "15-digit with wrong organisation-code check",
        "GB 11714-1997 §5",
        "330322600037342",
        "invalid_checksum",
        "n/a (no module)",
    ),
    ("18-digit: the USCC", "三证合一 (2015)", "91110000600037341L", "valid", "n/a (no module)"),
    (
        "20-digit: resident id + 2-digit sequence",
        "个体工商户税务登记",
        "11010519491231002X01",
        "valid",
        "n/a (no module)",
    ),
]
