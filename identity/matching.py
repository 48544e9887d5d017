"""Probabilistic matching (概率匹配) of person records that carry no usable resident id.

A Fellegi–Sunter model run by Splink on DuckDB links incoming person records to the master
index: comparisons on the name (after traditional → simplified, with same-pinyin,
Damerau-Levenshtein and Jaro-Winkler levels), birth date, sex, address, region and — when the record carries a
damaged id — the id's characters. Blocking rules keep the candidate pairs few enough to
scale to a million-person master index; u is estimated by random sampling and m by
expectation maximisation, unless a trained model (``model=``) is passed in.

Each incoming record's best candidate decides: ``match`` at or above ``thresholds.match``,
``review`` (the grey zone → :mod:`identity.matching_review`) between ``review`` and
``match``, ``no_match`` below. Two strong candidates with different codes are never a
guess: they go to review too.

One job, one module: the person model (its comparisons, training and scoring) and the decision
it drives; the pipeline's use of it is :mod:`identity.matching_step`, its file :mod:`identity.matching_model`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from identity.matching_enterprise import EM_RULES, enterprise_settings, prepare_enterprises
from mappings import normalizers as nz

log = logging.getLogger(__name__)

MATCH = "match"
REVIEW = "review"
NO_MATCH = "no_match"
RESULT_COLUMNS = ["incoming_key", "canonical_code", "match_probability", "decision"]

#: Person attributes the model compares (canonical field names).
PERSON_FEATURES = ["name", "birth_date", "sex", "address", "region_code", "resident_id", "id_tail", "rep_code"]


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the match probability (匹配阈值)."""

    match: float = 0.99
    review: float = 0.80
    #: A runner-up (different code) this close to the best sends the record to review.
    ambiguity_margin: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.match <= 1.0:
            raise ValueError(f"need 0 <= review <= match <= 1, got review={self.review} match={self.match}")


def prepare_persons(df: pd.DataFrame, id_column: str, *, code_is_resident_id: bool = False) -> pd.DataFrame:
    """The comparison columns of person records, normalised the same way on both sides.

    Vectorised: names lose spaces and traditional characters, addresses are trimmed and
    simplified, dates become ``YYYY-MM-DD`` text, sex codes GB/T 2261.1, ids cleaned. With
    ``code_is_resident_id`` (the master index) the record's canonical code is its resident id.
    """
    out = pd.DataFrame({"unique_id": nz._as_str(df[id_column]).reset_index(drop=True).array})

    def col(name: str) -> pd.Series:
        if name == "resident_id" and code_is_resident_id:
            return df[id_column].reset_index(drop=True)
        if name in df.columns:
            return df[name].reset_index(drop=True)
        return pd.Series(pd.NA, index=range(len(df)), dtype="str")

    out["name"] = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(col("name")))).array
    out["name_pinyin"] = name_pinyin(out["name"]).array
    out["birth_date"] = _iso_dates(nz.date(col("birth_date"))).array
    out["sex"] = nz.sex(col("sex")).array
    out["address"] = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(col("address")))).array
    out["region_code"] = nz.digits(col("region_code")).array
    out["resident_id"] = nz.code(col("resident_id")).array
    # the code of the person the enterprise this record represents names as its legal
    # representative (identity.matching_relations): evidence of its own, on the incoming side
    out["rep_code"] = nz.code(col("rep_code")).array
    return _id_evidence(out)


#: Toneless pinyin of each Han character seen so far (its most common reading), across batches.
_PINYIN: dict[int, str] = {}
_PINYIN_LOCK = threading.Lock()


def name_pinyin(names: pd.Series) -> pd.Series:
    """Toneless pinyin of (folded) names, a space between syllables: 张玮 → ``zhang wei``.

    What a clerk typing with a pinyin input method gets right when picking the wrong character
    (张伟 → 张玮). Each character's reading is looked up once (pypinyin, the character alone —
    its commonest reading, the same on both sides of a pair) and kept; each distinct name is
    then one ``str.translate``. Characters that are not Han stay as they are.

    >>> name_pinyin(pd.Series(["张伟", "张玮", "李娜", "阿依·古丽"])).tolist()
    ['zhang wei', 'zhang wei', 'li na', 'a yi · gu li']
    """
    s = nz._as_str(names)
    distinct = pd.unique(s.dropna())
    if not len(distinct):
        return s
    chars = {ord(c) for c in "".join(distinct)}
    with _PINYIN_LOCK:
        missing = chars.difference(_PINYIN)
        if missing:
            from pypinyin import Style, lazy_pinyin  # noqa: PLC0415 - its dictionaries load in ~0.3 s

            for c in missing:
                reading = lazy_pinyin(chr(c), style=Style.NORMAL, errors="default")
                _PINYIN[c] = f" {reading[0]} " if reading and reading[0] != chr(c) else chr(c)
        table = {c: _PINYIN[c] for c in chars}
    readings = {v: " ".join(v.translate(table).split()) for v in distinct}
    return nz._as_str(s.map(readings))


def prepare_name_frequencies(counts: pd.DataFrame) -> pd.DataFrame:
    """``name``, ``tf_name`` from ``name``, ``count`` and the index's ``total`` (one value):
    names normalised as :func:`prepare_persons` does, their counts added up."""
    names = nz.simplify(nz.remove_spaces(nz.fullwidth_to_halfwidth(counts["name"].reset_index(drop=True))))
    frame = pd.DataFrame({"name": names.astype(object).to_numpy(), "count": counts["count"].to_numpy()})
    summed = frame.dropna(subset=["name"]).groupby("name", as_index=False)["count"].sum()
    summed["count"] = summed["count"].clip(lower=1)  # a name the index lacks: as rare as can be
    total = max(float(counts["total"].iloc[0]) if len(counts) else 1.0, 1.0)
    return pd.DataFrame({"name": summed["name"].astype(str), "tf_name": summed["count"].astype(float) / total})


def _id_evidence(out: pd.DataFrame) -> pd.DataFrame:
    """Split a (damaged) resident id's evidence so that none of it is counted twice.

    The id embeds the county (characters 1-6) and the birth date (7-14): they fill the record's
    ``region_code``/``birth_date`` where the record has none, and are compared there only. The id
    itself is compared by the part nothing else carries — the sequence number and check
    character (``id_tail``: the last four of 18 characters, the last three of 15) — so agreeing
    county and birth date are counted once, not once in their fields and again in the id.
    """
    ids = out["resident_id"].astype(object)
    text = ids.where(ids.notna(), "").astype(str)
    length = text.str.len()
    long_id, short_id = length == 18, length == 15
    embedded_date = pd.Series(pd.NA, index=out.index, dtype=object)
    embedded_date[long_id] = text[long_id].str[6:14]
    embedded_date[short_id] = "19" + text[short_id].str[6:12]
    parsed = pd.to_datetime(embedded_date, format="%Y%m%d", errors="coerce")
    iso = parsed.dt.strftime("%Y-%m-%d")
    birth = out["birth_date"].astype(object)
    out["birth_date"] = birth.where(birth.notna(), iso.where(parsed.notna(), None)).array
    county = text.str[:6].where((long_id | short_id) & text.str[:6].str.isdigit(), None)
    region = out["region_code"].astype(object)
    out["region_code"] = region.where(region.notna(), county).array
    tail = pd.Series(None, index=out.index, dtype=object)
    tail[long_id] = text[long_id].str[14:18]
    tail[short_id] = text[short_id].str[12:15]
    out["id_tail"] = tail.array
    return out


def _iso_dates(values: pd.Series) -> pd.Series:
    """``datetime64`` → ``YYYY-MM-DD`` text (missing stays missing).

    The ten bytes of each date are computed with numpy and handed to Arrow as one buffer:
    formatting a million dates one by one (Arrow's ``strftime``) costs ten times as much.
    """
    days = values.to_numpy(dtype="datetime64[D]")
    valid = ~np.isnat(days)
    days = np.where(valid, days, np.datetime64("2000-01-01", "D"))
    months = days.astype("datetime64[M]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    if len(days) and not ((year >= 0) & (year <= 9999)).all():  # not four digits: format one by one
        text = np.where(valid, np.datetime_as_string(days, unit="D"), "")
        return nz._back(pa.array(text, pa.string(), mask=~valid), values.index)
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    n = len(days)
    chars = np.full((n, 10), ord("-"), dtype=np.uint8)  # YYYY-MM-DD: dashes at 4 and 7
    places = [(year, 1000), (year, 100), (year, 10), (year, 1), (month, 10), (month, 1), (day, 10), (day, 1)]
    for col, (number, place) in zip((0, 1, 2, 3, 5, 6, 8, 9), places, strict=True):
        chars[:, col] = ord("0") + number // place % 10
    arr = pa.StringArray.from_buffers(
        n,
        pa.py_buffer(np.arange(n + 1, dtype=np.int32) * 10),
        pa.py_buffer(chars),
        pa.py_buffer(np.packbits(valid, bitorder="little")),
        n - int(valid.sum()),
    )
    return nz._back(arr, values.index)


def edit_distance_within(column: str, distance: int, *, shared_prefix: int = 0) -> str:
    """SQL for ``damerau_levenshtein(column_l, column_r) <= distance``: the same truth value,
    but cheap for most pairs.

    DuckDB's Damerau-Levenshtein costs several times its Levenshtein and grows with the
    square of the length, and every candidate pair that is not an exact match reaches it.
    Two exact shortcuts:

    * Levenshtein brackets it — a transposition is one Damerau edit and at most two
      Levenshtein edits, so ``lev / 2 <= dl <= lev`` — and decides most pairs alone; only
      pairs in between pay for Damerau-Levenshtein. ``CASE``, not ``OR``/``AND``: DuckDB
      evaluates a ``CASE`` branch only for the rows that reach it.
    * A common prefix changes neither distance, so where the first ``shared_prefix``
      characters agree (a resident id's county and birth date, in nearly every candidate
      pair) only the rest is compared.
    """

    def within(left: str, right: str) -> str:
        lev = f"levenshtein({left}, {right})"
        return (
            f"CASE WHEN {lev} <= {distance} THEN true WHEN {lev} > {2 * distance} THEN false "
            f"ELSE damerau_levenshtein({left}, {right}) <= {distance} END"
        )

    left, right = f'"{column}_l"', f'"{column}_r"'
    if not shared_prefix:
        return within(left, right)
    n = shared_prefix
    return (
        f"CASE WHEN left({left}, {n}) = left({right}, {n}) "
        f"THEN {within(f'substr({left}, {n + 1})', f'substr({right}, {n + 1})')} "
        f"ELSE {within(left, right)} END"
    )


def _damerau_levenshtein_level(column: str, distance: int, *, shared_prefix: int = 0) -> Any:
    """Splink's ``DamerauLevenshteinLevel`` with the cheaper, equivalent condition."""
    import splink.comparison_level_library as cll  # noqa: PLC0415 - splink+duckdb, ~1 s

    return cll.CustomLevel(
        edit_distance_within(column, distance, shared_prefix=shared_prefix),
        label_for_charts=f"Damerau-Levenshtein distance of {column} <= {distance}",
    )


#: The name level of characters that sound the same, and its prior m — also its floor (:func:`floor_m`).
SAME_PINYIN = "same pinyin (toneless)"
SAME_PINYIN_M = 0.02

#: Characters of a resident id that candidate pairs usually share: county and birth date.
_ID_PREFIX = 14


def person_settings(probability_two_random_records_match: float = 1e-6) -> Any:
    """The Splink model: comparisons and blocking rules for person records."""
    import splink.blocking_rule_library as brl  # noqa: PLC0415 - splink+duckdb, ~1 s
    import splink.comparison_level_library as cll  # noqa: PLC0415 - splink+duckdb, ~1 s
    import splink.comparison_library as cl  # noqa: PLC0415 - splink+duckdb, ~1 s
    from splink import SettingsCreator, block_on  # noqa: PLC0415 - splink+duckdb, ~1 s

    def level(creator: Any, m: float, u: float | None = None) -> Any:
        # A prior for every level: training refines the levels the data shows and the prior
        # stands for levels a batch never exhibits (e.g. no birth-date typos this time).
        if u is None:
            return creator.configure(m_probability=m)
        # A fixed u: random sampling in a small batch would count true pairs as chance.
        return creator.configure(m_probability=m, u_probability=u, fix_u_probability=True)

    name = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("name"),
            # term frequencies: 王伟 agreeing says less than a name one person in the index bears
            level(cll.ExactMatchLevel("name", term_frequency_adjustments=True), 0.93),
            # a character of the same sound: the slip of a pinyin input method (张伟 → 张玮)
            cll.CustomLevel('"name_pinyin_l" = "name_pinyin_r"', label_for_charts=SAME_PINYIN).configure(
                m_probability=SAME_PINYIN_M, u_probability=1e-4
            ),
            level(_damerau_levenshtein_level("name", 1), 0.03),
            level(cll.JaroWinklerLevel("name", 0.7), 0.015),
            level(cll.ElseLevel(), 0.005),
        ],
        output_column_name="name",
        comparison_description="name: exact, same pinyin, one character off, Jaro-Winkler >= 0.7",
    )
    birth = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("birth_date"),
            level(cll.ExactMatchLevel("birth_date"), 0.97),
            level(_damerau_levenshtein_level("birth_date", 1), 0.025),
            level(cll.ElseLevel(), 0.005),
        ],
        output_column_name="birth_date",
        comparison_description="birth date: exact, one digit off or swapped",
    )
    sex = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("sex"),
            level(cll.ExactMatchLevel("sex"), 0.99),
            level(cll.ElseLevel(), 0.01),
        ],
        output_column_name="sex",
    )
    address = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("address"),
            level(cll.ExactMatchLevel("address"), 0.85),
            level(cll.JaroWinklerLevel("address", 0.92), 0.08),
            level(cll.JaroWinklerLevel("address", 0.8), 0.04),
            level(cll.ElseLevel(), 0.03),
        ],
        output_column_name="address",
        comparison_description="address: exact, Jaro-Winkler >= 0.92, >= 0.8",
    )
    region = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("region_code"),
            level(cll.ExactMatchLevel("region_code"), 0.95),
            level(
                cll.CustomLevel(
                    "substr(region_code_l, 1, 4) = substr(region_code_r, 1, 4)", label_for_charts="same city"
                ),
                0.03,
            ),
            level(cll.ElseLevel(), 0.02),
        ],
        output_column_name="region_code",
        comparison_description="region: same county, same city",
    )
    # Only the id's sequence number and check character: its county and birth date are
    # compared in their own fields (filled from the id where a record has none).
    id_tail = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("id_tail"),
            # Fixed u: about 1 in 10,000 random pairs share four given characters; one of the
            # four off (a typo, a wrong check character) about 1 in 250.
            level(cll.ExactMatchLevel("id_tail"), 0.6, 1e-4),
            level(_damerau_levenshtein_level("id_tail", 1), 0.35, 4e-3),
            level(cll.ElseLevel(), 0.05, 1.0 - 4.1e-3),
        ],
        output_column_name="id_tail",
        comparison_description="damaged resident id: sequence number and check character, exact or one off",
    )
    # The enterprise the record represents names this very person as its legal representative
    # (identity.matching_relations). Fixed: labelled pairs never carry it. u: a random person is
    # the one named about once in a million pairs; m: most records name the current
    # representative; another person named (the representative changed) is weak evidence against.
    rep_same = "(rep_code_l = unique_id_r OR rep_code_r = unique_id_l)"
    legal_rep = cl.CustomComparison(
        comparison_levels=[
            cll.CustomLevel(
                "rep_code_l IS NULL AND rep_code_r IS NULL", label_for_charts="no legal-rep evidence"
            ).configure(is_null_level=True),
            cll.CustomLevel(rep_same, label_for_charts="the represented enterprise names this person").configure(
                m_probability=0.9, u_probability=1e-6, fix_m_probability=True, fix_u_probability=True
            ),
            cll.ElseLevel().configure(
                m_probability=0.1, u_probability=1.0 - 1e-6, fix_m_probability=True, fix_u_probability=True
            ),
        ],
        output_column_name="rep_code",
        comparison_description="legal representative of an enterprise that names this person",
    )
    return SettingsCreator(
        link_type="link_only",
        comparisons=[name, birth, sex, address, region, id_tail, legal_rep],
        # Each rule needs two attributes to agree, so a single wrong attribute (a typo in the
        # name or the birth date, a move to another county) still leaves a rule that finds
        # the pair. The birth date alone would pair every record with ~100 people of a
        # million born that day (10x the pairs for the same true pairs).
        blocking_rules_to_generate_predictions=[
            block_on("birth_date", "region_code"),
            block_on("name", "region_code"),
            block_on("name", "birth_date"),
            # A damaged id's county and birth date (its first 14 characters) for records
            # that carry no birth date or county of their own.
            block_on(f"substr(resident_id, 1, {_ID_PREFIX})"),
            # The person a represented enterprise names as its legal representative.
            brl.CustomRule("l.unique_id = r.rep_code"),
            brl.CustomRule("l.rep_code = r.unique_id"),
        ],
        probability_two_random_records_match=probability_two_random_records_match,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _profile(entity: str) -> tuple[Any, Any, tuple[tuple[str, ...], ...]]:
    """(prepare, settings, EM blocking columns) of an entity kind."""
    if entity == "person":

        def prepare(df: pd.DataFrame, id_column: str, *, master: bool = False) -> pd.DataFrame:
            return prepare_persons(df, id_column, code_is_resident_id=master)

        return prepare, person_settings, (("birth_date",), ("name", "region_code"))
    if entity == "enterprise":

        def prepare_e(df: pd.DataFrame, id_column: str, *, master: bool = False) -> pd.DataFrame:
            return prepare_enterprises(df, id_column, code_is_uscc=master)

        return prepare_e, enterprise_settings, EM_RULES
    raise ValueError(f"unknown entity kind {entity!r}: person or enterprise")


def _linker(master: pd.DataFrame | Any, incoming: pd.DataFrame, settings: Any, db_api: Any = None) -> Any:
    """A link-only Splink linker; ``master`` may be a table already registered in ``db_api``."""
    from splink import DuckDBAPI, Linker  # noqa: PLC0415 - splink+duckdb, ~1 s

    if db_api is None:
        db_api = DuckDBAPI()
    left = master if not isinstance(master, pd.DataFrame) else db_api.register(master, dataset_display_name="master")
    right = db_api.register(incoming, dataset_display_name="incoming", table_name=f"incoming_{id(incoming):x}")
    return Linker([left, right], settings, log_level=logging.WARNING)


#: No level's m may fall below this: a level a training sample never showed (a name typo,
#: say) must stay possible, or one unlucky batch would forbid it for good.
M_FLOOR = 1e-3


def train_model(
    master: pd.DataFrame,
    incoming: pd.DataFrame,
    *,
    labelled: pd.DataFrame | None = None,
    master_code: str = "canonical_code",
    incoming_key: str = "incoming_key",
    labelled_code: str = "canonical_code",
    seed: int = 7,
    max_u_pairs: float = 2e5,
    max_labelled: int = 20_000,
    entity: str = "person",
) -> dict[str, Any]:
    """Estimate the model: u by random sampling; m from labelled pairs or by EM.

    ``labelled``: records whose code is known (they resolved exactly) — each pairs with the
    master record of its code, a true match, so m is measured rather than inferred. Their ids
    are withheld, so the id comparison keeps its prior (labelled ids agree by construction).
    Without labels, m comes from two EM passes over the incoming records. Returns Splink's
    settings dictionary, to reuse with :func:`match_batch` (``model=``) on later batches.
    """
    prepare, _, _ = _profile(entity)
    m = prepare(master, master_code, master=True)
    i = prepare(incoming, incoming_key)
    return _train(
        m,
        i,
        None,
        labelled,
        entity=entity,
        labelled_code=labelled_code,
        seed=seed,
        max_u_pairs=max_u_pairs,
        max_labelled=max_labelled,
    )


def _train(
    m: pd.DataFrame,
    i: pd.DataFrame,
    registered: tuple[Any, Any] | None,
    labelled: pd.DataFrame | None,
    *,
    entity: str,
    labelled_code: str = "canonical_code",
    seed: int = 7,
    max_u_pairs: float = 2e5,
    max_labelled: int = 20_000,
    em: bool = True,
) -> dict[str, Any]:
    """Train on prepared records; ``registered`` = (db_api, master table) to reuse a registration.

    Without labels, m comes from EM over the incoming records, or — ``em=False`` — the priors
    stand (the incoming side is then only there for u's random sampling)."""
    from splink import block_on  # noqa: PLC0415 - splink+duckdb, ~1 s

    prepare, settings, em_rules = _profile(entity)
    labels: pd.DataFrame | None = None
    if labelled is not None and len(labelled):
        codes = set(m["unique_id"].dropna())
        sample = labelled[nz._as_str(labelled[labelled_code]).isin(codes)]
        sample = sample.sample(n=min(max_labelled, len(sample)), random_state=seed)
        lab = prepare(
            sample.assign(_lab_key="label:" + pd.Series(range(len(sample)), index=sample.index).astype(str)), "_lab_key"
        )
        for withheld in ("resident_id", "id_tail") if entity == "person" else ("code",):
            lab[withheld] = None
        labels = pd.DataFrame(
            {
                "source_dataset_l": "master",
                "unique_id_l": nz._as_str(sample[labelled_code]).to_numpy(),
                "source_dataset_r": "incoming",
                "unique_id_r": lab["unique_id"].to_numpy(),
            }
        )
        i = pd.concat([i, lab], ignore_index=True)
    # In a link between a master index and new records, each new record has at most one
    # true partner among len(master): the prior that a random pair matches.
    prior = 1.0 / max(len(m), 1)
    db_api, master_table = registered if registered is not None else (None, m)
    linker = _linker(master_table, i, settings(prior), db_api)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_u_pairs, seed=seed, num_chunks=1)
    if labels is not None and len(labels):
        linker.training.estimate_m_from_pairwise_labels(linker._db_api.register(labels))
    elif em:
        from splink.internals.exceptions import EMTrainingException  # noqa: PLC0415 - splink+duckdb, ~1 s

        for rule in (block_on(*cols) for cols in em_rules):
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    rule, fix_probability_two_random_records_match=True
                )
            except EMTrainingException as exc:
                # Too few pairs under this rule (a small batch): the priors stand for its columns.
                log.info("EM pass skipped, the priors stand: %s", str(exc).splitlines()[0])
    model: dict[str, Any] = linker.misc.save_model_to_json()
    model["probability_two_random_records_match"] = prior
    return floor_m(model)


def floor_m(model: dict[str, Any], floor: float = M_FLOOR) -> dict[str, Any]:
    """Lift every non-null level's m to at least ``floor`` and renormalise each comparison.

    The same-pinyin level is lifted to at least its prior (before renormalising): data whose typos
    are not an input method's (the frozen evaluation replaces characters at random) would otherwise
    teach that a same-sound name is weaker evidence than any one-character slip; data that shows
    more of them raises it.
    """
    for comparison in model.get("comparisons", []):
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        lows = [SAME_PINYIN_M if lv.get("label_for_charts") == SAME_PINYIN else floor for lv in levels]
        ms = [max(float(lv.get("m_probability") or 0.0), low) for lv, low in zip(levels, lows, strict=True)]
        total = sum(ms)
        for lv, value in zip(levels, ms, strict=True):
            lv["m_probability"] = value / total
    return model


def match_batch(
    master_df: pd.DataFrame,
    incoming_df: pd.DataFrame,
    thresholds: Thresholds | None = None,
    *,
    model: dict[str, Any] | None = None,
    labelled: pd.DataFrame | None = None,
    master_code: str = "canonical_code",
    incoming_key: str = "incoming_key",
    with_pairs: bool = False,
    entity: str = "person",
    name_frequencies: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Decide, for every incoming record, which master person it is (or that a human must look).

    ``master_df``: ``canonical_code`` (18-digit resident id) + person attributes;
    ``incoming_df``: ``incoming_key`` + person attributes (``name``, ``birth_date``, ``sex``,
    ``address``, ``region_code``, optionally a damaged ``resident_id``). Returns one row per
    incoming record: ``incoming_key, canonical_code, match_probability, decision`` (plus
    ``runner_up_code``/``runner_up_probability`` when ``with_pairs``). Without ``model`` one
    is trained on the spot (:func:`train_model`, from ``labelled`` records when given).
    ``name_frequencies`` (``name``, ``tf_name``: each name's share of the whole index) stands for
    the names' term frequencies when ``master_df`` is only a part of the index (the candidates);
    without it they are counted over ``master_df`` and ``incoming_df``.
    """
    thresholds = thresholds or Thresholds()
    keys = nz._as_str(incoming_df[incoming_key]).reset_index(drop=True)
    if len(incoming_df) == 0 or len(master_df) == 0:
        return _empty_result(keys)
    from splink import DuckDBAPI  # noqa: PLC0415 - splink+duckdb, ~1 s

    prepare, _, _ = _profile(entity)
    m = prepare(master_df, master_code, master=True)
    i = prepare(incoming_df, incoming_key)
    # The master index is prepared and registered once, for training and prediction alike.
    db_api = DuckDBAPI()
    master_table = db_api.register(m, dataset_display_name="master")
    if model is None:
        model = _train(m, i, (db_api, master_table), labelled, entity=entity)
    linker = _linker(master_table, i, model, db_api)
    if name_frequencies is not None and len(name_frequencies) and "name" in i.columns:
        tf = prepare_name_frequencies(name_frequencies)
        linker.table_management.register_term_frequency_lookup(db_api.register(tf), "name")
    floor = max(min(thresholds.review, 0.5) * 0.5, 1e-6)
    pairs = linker.inference.predict(threshold_match_probability=floor, warning_mode="never").as_pandas_dataframe()
    return decide(keys, pairs, thresholds, with_pairs=with_pairs)


def _empty_result(keys: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "incoming_key": keys.to_numpy(),
            "canonical_code": pd.Series(pd.NA, index=keys.index, dtype="str").to_numpy(),
            "match_probability": np.zeros(len(keys)),
            "decision": NO_MATCH,
        }
    )


def decide(keys: pd.Series, pairs: pd.DataFrame, thresholds: Thresholds, *, with_pairs: bool = False) -> pd.DataFrame:
    """Pure decision rule over scored pairs (one row per incoming key, vectorised)."""
    result = _empty_result(keys)
    if pairs.empty:
        return result
    # Splink puts the master side (first registered) on the left in a link-only job.
    left_is_master = pairs["source_dataset_l"].astype(str).eq("master")
    code = pairs["unique_id_l"].where(left_is_master, pairs["unique_id_r"]).astype(str)
    key = pairs["unique_id_r"].where(left_is_master, pairs["unique_id_l"]).astype(str)
    scored = pd.DataFrame({"key": key, "code": code, "p": pairs["match_probability"].astype(float)})
    # Several master rows can carry the same code (duplicates in the index): best per code.
    scored = scored.groupby(["key", "code"], as_index=False)["p"].max()
    scored = scored.sort_values(["key", "p"], ascending=[True, False], kind="mergesort")
    rank = scored.groupby("key").cumcount()
    best = scored[rank == 0].set_index("key")
    second = scored[rank == 1].set_index("key")
    res = result.set_index("incoming_key")
    common = res.index.intersection(best.index)
    res.loc[common, "canonical_code"] = best.loc[common, "code"]
    res.loc[common, "match_probability"] = best.loc[common, "p"]
    runner = second["p"].reindex(res.index)
    p = res["match_probability"].astype(float)
    ambiguous = runner.notna() & (runner >= thresholds.review) & (p - runner < thresholds.ambiguity_margin)
    decision = np.where(p >= thresholds.match, MATCH, np.where(p >= thresholds.review, REVIEW, NO_MATCH))
    decision = np.where(ambiguous.to_numpy() & (decision != NO_MATCH), REVIEW, decision)
    res["decision"] = decision
    res.loc[res["decision"] == NO_MATCH, "canonical_code"] = pd.NA
    if with_pairs:
        res["runner_up_code"] = second["code"].reindex(res.index)
        res["runner_up_probability"] = runner
    return res.reset_index()
