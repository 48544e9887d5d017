"""Normalisers' edge cases: the dirt departments really send."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mappings import normalizers as nz


def ymd(s: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in s]


def test_fullwidth_digits_letters_space_and_dashes() -> None:
    s = pd.Series(["３３０３２２－１９８０", "ＡＢＣ　ｘ", "—", None])
    assert list(nz.fullwidth_to_halfwidth(s).fillna("<NA>")) == ["330322-1980", "ABC x", "-", "<NA>"]


def test_trim_collapses_every_kind_of_space_and_empties_become_missing() -> None:
    s = pd.Series(["\t张三\n", "a \u3000 b", "   ", ""])
    out = nz.trim(s)
    assert out.iloc[0] == "张三" and out.iloc[1] == "a b"
    assert out.iloc[2:].isna().all()


def test_code_cleanup_keeps_letters_and_upper_cases_check_character() -> None:
    s = pd.Series(["3303 2219 8001 01123x", "MA28ABCD-1", "ｍａ２８．ａｂｃｄ/1", 330322198001011234])
    assert nz.code(s).tolist() == ["33032219800101123X", "MA28ABCD1", "MA28ABCD1", "330322198001011234"]


def test_numbers_read_as_floats_keep_their_digits() -> None:
    # An ODBC driver may hand an integer column over as float when it has NULLs.
    s = pd.Series([330322.0, np.nan])
    assert nz.digits(s).iloc[0] == "330322"
    assert nz.sex(pd.Series([1.0, 2.0, np.nan])).fillna("-").tolist() == ["1", "2", "-"]


def test_simplify_converts_only_traditional_and_caches() -> None:
    s = pd.Series(["張三豐", "张三丰", "臺灣路", None, "ABC"])
    out = nz.simplify(s)
    assert out.fillna("<NA>").tolist() == ["张三丰", "张三丰", "台湾路", "<NA>", "ABC"]
    assert nz._T2S_CACHE["張三豐"] == "张三丰"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2016-05-04", "2016-05-04"),
        ("2016/5/4", "2016-05-04"),
        ("20160504", "2016-05-04"),
        ("2016年5月4日", "2016-05-04"),
        ("２０１６年０５月０４日", "2016-05-04"),
        ("2016.05.04", "2016-05-04"),
        ("2016-05-04 23:59:59", "2016-05-04"),
        ("2016-05-04T10:00:00+08:00", "2016-05-04"),
        # 20:00 UTC on the 3rd is 04:00 on the 4th in Asia/Shanghai: the local day counts.
        ("2016-05-03T20:00:00Z", "2016-05-04"),
        ("42494", "2016-05-04"),  # Excel day serial
        ("2016-02-30", None),  # impossible date
        ("2016-13-01", None),
        ("19800101123456", "1980-01-01"),
        ("12345", None),  # a 5-digit number outside the plausible Excel range
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_date_formats(raw: str | None, expected: str | None) -> None:
    assert ymd(nz.date(pd.Series([raw], dtype=object))) == [expected]


def test_date_handles_native_values_and_excel_can_be_turned_off() -> None:
    native = pd.Series([dt.date(2016, 5, 4), None], dtype=object)
    assert ymd(nz.date(native)) == ["2016-05-04", None]
    aware = pd.Series(pd.to_datetime(["2016-05-03T20:00:00Z"], utc=True))
    assert ymd(nz.date(aware)) == ["2016-05-04"]
    assert ymd(nz.date(pd.Series(["42494"]), excel_serial=False)) == [None]
    assert nz.date(pd.Series([], dtype=object)).empty


def test_timestamp_keeps_offsets_and_reads_naive_as_local_time() -> None:
    s = pd.Series(["2016-05-04T10:00:00+08:00", "2016-05-04 10:00:00", "2016-05-04T02:00:00Z", "junk", None])
    assert nz.timestamp(s).fillna("-").tolist() == [
        "2016-05-04T10:00:00+08:00",
        "2016-05-04T10:00:00+08:00",
        "2016-05-04T10:00:00+08:00",
        "-",
        "-",
    ]


def test_sex_codes() -> None:
    s = pd.Series(["1", "2", "男", "女", "m", "F", "0", "9", "3", "", None])
    assert nz.sex(s).fillna("-").tolist() == ["1", "2", "1", "2", "1", "2", "0", "9", "-", "-", "-"]


def test_status_tables() -> None:
    commerce = pd.Series(["存续", "在业", "吊销", "注销", "迁出", "未知状态"])
    assert nz.status(commerce, table="commerce_enterprise").fillna("-").tolist() == [
        "active",
        "active",
        "revoked",
        "cancelled",
        "moved_out",
        "-",
    ]
    tax = pd.Series(["01", "02", "03", "1", "０３"])
    assert nz.status(tax, table="tax_taxpayer").tolist() == ["normal", "abnormal", "cancelled", "normal", "cancelled"]
    with pytest.raises(KeyError):
        nz.status(tax, table="nope")


def test_value_map_default_and_keep_unknown() -> None:
    s = pd.Series(["a", "b", None])
    assert nz.value_map(s, {"a": "x"}, default="z").fillna("-").tolist() == ["x", "z", "-"]
    assert nz.value_map(s, {"a": "x"}, keep_unknown=True).fillna("-").tolist() == ["x", "b", "-"]


def test_number_and_placeholders() -> None:
    assert nz.number(pd.Series(["1,200.50", "８９.５", "abc", None])).fillna(-1).tolist() == [1200.5, 89.5, -1, -1]
    assert nz.empty_to_null(pd.Series(["无", "-", "NULL", "x"])).fillna("-").tolist() == ["-", "-", "-", "x"]


def test_normalizer_problems() -> None:
    assert nz.normalizer_problems("trim", {}) == []
    assert "unknown normaliser" in nz.normalizer_problems("strip", {})[0]
    assert "takes no parameter" in nz.normalizer_problems("trim", {"x": 1})[0]
    assert "needs parameter 'values'" in nz.normalizer_problems("map", {})[0]


def test_normalisers_keep_length_and_index() -> None:
    s = pd.Series(["張三", None, "２０１６年５月４日"], index=[10, 20, 30])
    for name, params in [("trim", {}), ("simplify", {}), ("date", {}), ("code", {}), ("sex", {}), ("number", {})]:
        out = nz.apply_normalizer(s, name, params)
        assert list(out.index) == [10, 20, 30], name


def test_simplify_fast_path_gives_opencc_answers() -> None:
    """The translate fast path and OpenCC agree on random mixes of traditional characters,
    phrase characters and plain simplified ones."""
    from pathlib import Path

    import opencc

    dictionary = Path(opencc.__file__).parent / "dictionary"
    keys = [line.split("\t")[0] for line in (dictionary / "TSCharacters.txt").read_text("utf-8").splitlines()]
    phrases = [line.split("\t")[0] for line in (dictionary / "TSPhrases.txt").read_text("utf-8").splitlines()][:500]
    rng = np.random.default_rng(1)
    plain = list("张王李赵刘陈杨黄周吴温州市洞头区北岙街道中心路号有限公司")
    values = []
    for _ in range(2000):
        parts = list(rng.choice(plain, size=3)) + list(rng.choice(keys, size=2))
        if rng.random() < 0.3:
            parts.append(str(rng.choice(phrases)))
        rng.shuffle(parts)
        values.append("".join(parts))
    cc = opencc.OpenCC("t2s")
    assert nz.simplify(pd.Series(values)).tolist() == [cc.convert(v) for v in values]


def test_resident_id_normaliser_gives_the_18_digit_own_form() -> None:
    """A valid 15-digit legacy id becomes its 18-digit form; invalid ones are kept for validation."""
    import pandas as pd

    from mappings.normalizers import apply_normalizer

    out = apply_normalizer(
        pd.Series(["110105491231002", "11010519491231002x", None, "110105491231"], dtype=object), "resident_id"
    )
    assert out.iloc[0] == "11010519491231002X"
    assert out.iloc[1] == "11010519491231002X"
    assert pd.isna(out.iloc[2])
    assert out.iloc[3] == "110105491231"
