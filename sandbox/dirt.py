"""Real-world dirt (脏数据) applied to source records at stated rates, with a tally.

Every function takes the clean values, draws which rows get which kind of dirt from the
generator's random stream, and records in a :class:`DirtTally` how often it happened and
out of how many chances, so the generator can report realised rates beside the profile.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from opencc import OpenCC

from sandbox.codes import USCC_ALPHABET
from sandbox.vocab import GIVEN_CHARS, SURNAMES


@dataclass(frozen=True)
class DirtProfile:
    """Rates of each kind of dirt (脏数据比例). Denominators are stated per field.

    - ``legacy_resident_id``: resident-id references written in the old 15-digit form
      (of all resident-id references; only people born before 2000 can have one).
    - ``old_enterprise_code``: enterprise references using pre-2015 codes instead of the USCC
      (commerce: USCC missing; tax: 15-digit taxpayer id; land: organisation code), of all
      enterprise references; only enterprises established before 2015-10 have old codes.
    - ``fullwidth_digits``, ``separators`` (spaces and dashes), ``wrong_check_digit``: of
      identifier values; at most one of these (or legacy) per value.
    - ``lowercase_x``: of identifier values ending in ``X``.
    - ``traditional_name``, ``name_typo``: of person-name values (one or the other).
    - ``duplicate``: extra records for the same entity, of a dataset's distinct entities.
    - ``missing_field``: records with one optional field empty, of all records.
    """

    legacy_resident_id: float = 0.05
    old_enterprise_code: float = 0.10
    fullwidth_digits: float = 0.02
    lowercase_x: float = 0.30
    separators: float = 0.03
    wrong_check_digit: float = 0.01
    traditional_name: float = 0.03
    name_typo: float = 0.02
    duplicate: float = 0.02
    missing_field: float = 0.03

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class DirtTally:
    """Counts of applied dirt and of chances, per dataset and kind."""

    applied: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    chances: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, dataset: str, kind: str, applied: int, chances: int) -> None:
        self.applied[(dataset, kind)] += int(applied)
        self.chances[(dataset, kind)] += int(chances)

    def report(self, profile: DirtProfile) -> dict[str, Any]:
        """Profile rates, realised rates overall and per dataset, with the raw counts."""
        kinds = sorted({k for _, k in self.chances})
        overall: dict[str, float] = {}
        counts: dict[str, dict[str, int]] = {}
        for kind in kinds:
            applied = sum(v for (_, k), v in self.applied.items() if k == kind)
            chances = sum(v for (_, k), v in self.chances.items() if k == kind)
            overall[kind] = round(applied / chances, 5) if chances else 0.0
            counts[kind] = {"applied": applied, "chances": chances}
        by_dataset: dict[str, dict[str, float]] = defaultdict(dict)
        for (dataset, kind), chances in sorted(self.chances.items()):
            by_dataset[dataset][kind] = round(self.applied[(dataset, kind)] / chances, 5) if chances else 0.0
        return {"profile": profile.as_dict(), "realised": overall, "counts": counts, "by_dataset": dict(by_dataset)}


_FULLWIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789"})


def to_fullwidth(value: str) -> str:
    """Digits as full-width characters (全角数字), as typed with a Chinese input method."""
    return value.translate(_FULLWIDTH)


def with_separators(value: str, rng: np.random.Generator) -> str:
    """Insert spaces or dashes at the field boundaries people use when copying a code."""
    sep = " " if rng.random() < 0.5 else "-"
    if len(value) == 18 and value[:2].isdigit() and value[6:14].isdigit():
        return sep.join((value[:6], value[6:14], value[14:]))
    if len(value) == 9:
        return f"{value[:8]}-{value[8]}"
    if len(value) == 18:
        return sep.join((value[:2], value[2:8], value[8:17], value[17]))
    return sep.join((value[:6], value[6:]))


def wrong_check(value: str, rng: np.random.Generator, alphabet: str) -> str:
    """Replace the check character with another valid character (a keying error)."""
    choices = [c for c in alphabet if c != value[-1]]
    return value[:-1] + choices[int(rng.integers(len(choices)))]


@lru_cache(maxsize=1)
def _s2t() -> Any:
    return OpenCC("s2t")


@lru_cache(maxsize=1)
def _name_s2t() -> dict[int, str]:
    """Simplified -> traditional for every character the name pools use (converted once)."""
    table: dict[int, str] = {}
    for ch in set(SURNAMES + GIVEN_CHARS):
        converted = str(_s2t().convert(ch))
        if converted != ch:
            table[ord(ch)] = converted
    return table


def traditional(value: str) -> str:
    """The name written in traditional characters (繁体), as on some older records.

    Names are converted character by character through a table built once with OpenCC;
    characters outside the generator's pools go through OpenCC itself.
    """
    table = _name_s2t()
    out = value.translate(table)
    if any(ord(c) not in table and c not in GIVEN_CHARS for c in value[1:]):
        return str(_s2t().convert(value))
    return out


def typo(value: str, rng: np.random.Generator) -> str:
    """One given-name character replaced by another (a mis-keyed homophone)."""
    if len(value) < 2:
        return value
    pos = 1 + int(rng.integers(len(value) - 1))
    repl = GIVEN_CHARS[int(rng.integers(len(GIVEN_CHARS)))]
    if repl == value[pos]:
        repl = GIVEN_CHARS[(GIVEN_CHARS.index(repl) + 1) % len(GIVEN_CHARS)]
    return value[:pos] + repl + value[pos + 1 :]


def dirty_identifiers(
    values: list[str],
    rng: np.random.Generator,
    profile: DirtProfile,
    tally: DirtTally,
    dataset: str,
    *,
    alphabet: str,
    legacy: list[str | None] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Dirty a column of identifiers; returns the new values and the dirt tags per row.

    ``legacy`` gives each row's old-form code (``None`` where the entity has none); the legacy
    rate is scaled by the eligible share so the realised rate over all rows meets the profile.
    """
    n = len(values)
    out = list(values)
    tags: list[list[str]] = [[] for _ in range(n)]
    u = rng.random(n)
    eligible = (
        np.array([isinstance(x, str) and bool(x) for x in legacy], dtype=bool)
        if legacy is not None
        else np.zeros(n, dtype=bool)
    )
    share = eligible.mean() if n else 0.0
    p_legacy = min(1.0, profile.legacy_resident_id / share) if legacy is not None and share > 0 else 0.0
    t_legacy = np.where(eligible, p_legacy, 0.0)
    t_full = t_legacy + profile.fullwidth_digits
    t_sep = t_full + profile.separators
    t_wrong = t_sep + profile.wrong_check_digit
    for i in np.flatnonzero(u < t_wrong):
        value = out[i]
        if u[i] < t_legacy[i] and legacy is not None:
            out[i], kind = str(legacy[i]), "legacy_resident_id"
        elif u[i] < t_full[i]:
            out[i], kind = to_fullwidth(value), "fullwidth_digits"
        elif u[i] < t_sep[i]:
            out[i], kind = with_separators(value, rng), "separators"
        else:
            out[i], kind = wrong_check(value, rng, alphabet), "wrong_check_digit"
        tags[i].append(kind)
    applied = {k: sum(k in t for t in tags) for k in ("fullwidth_digits", "separators", "wrong_check_digit")}
    for kind, count in applied.items():
        tally.add(dataset, kind, count, n)
    if legacy is not None:
        tally.add(dataset, "legacy_resident_id", sum("legacy_resident_id" in t for t in tags), n)
    ends_x = [i for i, v in enumerate(out) if v.endswith("X")]
    draws = rng.random(len(ends_x)).tolist()
    lower = [i for i, r in zip(ends_x, draws, strict=True) if r < profile.lowercase_x]
    for j in lower:
        out[j] = out[j][:-1] + "x"
        tags[j].append("lowercase_x")
    tally.add(dataset, "lowercase_x", len(lower), len(ends_x))
    return out, tags


RESIDENT_ALPHABET = "0123456789X"
ENTERPRISE_ALPHABET = USCC_ALPHABET


def dirty_names(
    values: list[str], rng: np.random.Generator, profile: DirtProfile, tally: DirtTally, dataset: str
) -> tuple[list[str], list[list[str]]]:
    """Traditional characters or a typo in person names, at the profile's rates."""
    n = len(values)
    out = list(values)
    tags: list[list[str]] = [[] for _ in range(n)]
    u = rng.random(n)
    # Names without a simplified character cannot be written traditionally: scale the rate by
    # the share that can, estimated on a sample, so the realised rate meets the profile.
    sample = values[:: max(1, n // 2000)]
    share = sum(traditional(v) != v for v in sample) / len(sample) if sample else 1.0
    p_trad = min(1.0, profile.traditional_name / share) if share else 0.0
    for i in np.flatnonzero(u < p_trad + profile.name_typo):
        if u[i] < p_trad:
            converted = traditional(out[i])
            if converted != out[i]:
                out[i] = converted
                tags[i].append("traditional_name")
        else:
            out[i] = typo(out[i], rng)
            tags[i].append("name_typo")
    tally.add(dataset, "traditional_name", sum("traditional_name" in t for t in tags), n)
    tally.add(dataset, "name_typo", sum("name_typo" in t for t in tags), n)
    return out, tags
