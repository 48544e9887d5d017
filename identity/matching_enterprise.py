"""The enterprise profile of probabilistic matching (企业概率匹配): for enterprise references
whose code is unusable even after the cross-walk (a mistyped USCC, no code at all).

Compared: the enterprise name (simplified, Jaro-Winkler levels), the legal representative's
name, the address, the region, and the damaged code's characters. Same engine, thresholds
and review queue as persons (:mod:`identity.matching`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mappings import normalizers as nz

ENTERPRISE_FEATURES = ["name", "legal_rep_name", "address", "region_code", "code"]


def prepare_enterprises(df: pd.DataFrame, id_column: str, *, code_is_uscc: bool = False) -> pd.DataFrame:
    """Comparison columns of enterprise records (vectorised, same normalisation both sides).

    Input columns: ``name`` (enterprise name), ``legal_rep_name``, ``address``,
    ``region_code`` and ``code`` (the code as written; the master's own USCC with
    ``code_is_uscc``).
    """
    out = pd.DataFrame({"unique_id": nz._as_str(df[id_column]).reset_index(drop=True).array})

    def col(name: str) -> pd.Series:
        if name == "code" and code_is_uscc:
            return df[id_column].reset_index(drop=True)
        if name in df.columns:
            return df[name].reset_index(drop=True)
        return pd.Series(pd.NA, index=range(len(df)), dtype="str")

    out["name"] = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(col("name")))).array
    out["legal_rep_name"] = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(col("legal_rep_name")))).array
    out["address"] = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(col("address")))).array
    out["region_code"] = nz.digits(col("region_code")).array
    out["code"] = nz.code(col("code")).array
    return out


def enterprise_settings(probability_two_random_records_match: float = 1e-6) -> Any:
    """The Splink model for enterprise references."""
    import splink.comparison_level_library as cll  # noqa: PLC0415 - splink+duckdb, ~1 s
    import splink.comparison_library as cl  # noqa: PLC0415 - splink+duckdb, ~1 s
    from splink import SettingsCreator, block_on  # noqa: PLC0415 - splink+duckdb, ~1 s

    def level(creator: Any, m: float, u: float | None = None) -> Any:
        if u is None:
            return creator.configure(m_probability=m)
        return creator.configure(m_probability=m, u_probability=u, fix_u_probability=True)

    def text(column: str, high: float, low: float, ms: tuple[float, float, float, float]) -> Any:
        return cl.CustomComparison(
            comparison_levels=[
                cll.NullLevel(column),
                level(cll.ExactMatchLevel(column), ms[0]),
                level(cll.JaroWinklerLevel(column, high), ms[1]),
                level(cll.JaroWinklerLevel(column, low), ms[2]),
                level(cll.ElseLevel(), ms[3]),
            ],
            output_column_name=column,
        )

    region = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("region_code"),
            level(cll.ExactMatchLevel("region_code"), 0.95),
            level(cll.CustomLevel("substr(region_code_l, 1, 4) = substr(region_code_r, 1, 4)"), 0.04),
            level(cll.ElseLevel(), 0.01),
        ],
        output_column_name="region_code",
    )
    code = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("code"),
            level(cll.ExactMatchLevel("code"), 0.5, 1e-8),
            level(cll.DamerauLevenshteinLevel("code", 1), 0.4, 1e-7),
            level(cll.DamerauLevenshteinLevel("code", 3), 0.08, 1e-5),
            level(cll.ElseLevel(), 0.02, 1.0 - 1e-5),
        ],
        output_column_name="code",
        comparison_description="damaged code: one or up to three characters off",
    )
    return SettingsCreator(
        link_type="link_only",
        comparisons=[
            text("name", 0.95, 0.85, (0.9, 0.06, 0.03, 0.01)),
            text("legal_rep_name", 0.9, 0.7, (0.9, 0.05, 0.03, 0.02)),
            text("address", 0.92, 0.8, (0.85, 0.08, 0.04, 0.03)),
            region,
            code,
        ],
        blocking_rules_to_generate_predictions=[
            block_on("name"),
            block_on("legal_rep_name", "region_code"),
            block_on("substr(code, 1, 8)"),
            block_on("substr(code, 9, 9)"),
        ],
        probability_two_random_records_match=probability_two_random_records_match,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


EM_RULES = (("name",), ("legal_rep_name", "region_code"))
