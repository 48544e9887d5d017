"""The social-insurance bureau's register of insured persons (参保人员库, 人社局).

``social_insurance.insured_person`` in PostgreSQL (read over ODBC, ``PostgreSQL Unicode``), a
SQLite file for the embedded demo (no schema). Generated from the sandbox city
(:func:`sandbox.generator.generate`) with its own random stream, so the other departments'
data stay the same byte for byte. Its dirt is its own:

* resident ids as the bureau keeps them: old 15-digit numbers of people born before 2000, a
  lower-case ``x``, full-width digits, spaces;
* ``insured_since`` written three ways (``2015-03-01``, ``2015年3月1日``, ``20150301``);
* the bureau's status words (``参保缴费``, ``暂停缴费``, ``终止参保``) and a few it has not
  classified yet (``待核``), which validation quarantines;
* the employer by its USCC, by the old 15-digit registration number on old records (linked
  through commerce's cross-walk), or not at all (flexible employment, 灵活就业);
* ids keyed at the counter: about 2% with a mistyped character (the check character no longer
  fits), and about 1% not entered at all (enrolled by the employer before the id was verified,
  证件待补录) — the bureau's own birth date (出生日期, from the enrolment form) is kept beside it, so
  the hub can still tell who they are.

:func:`insured_persons` returns the rows and the ground truth (which true person and employer
each row belongs to), which only tests read.

Columns: ``insured_no`` (BIGINT PK), ``id_number``, ``full_name``, ``gender`` (``男``/``女``),
``birth_date`` (DATE, 出生日期), ``region`` (CHAR 6), ``insured_since`` (text), ``ins_status``, ``employer_uscc``,
``employer_name``, ``monthly_base`` (DECIMAL, 缴费基数), ``updated_at`` (TIMESTAMP, local time).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

STATUSES = ("参保缴费", "暂停缴费", "终止参保")
UNCLASSIFIED = "待核"
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def insured_table(schema: str | None) -> sa.Table:
    return sa.Table(
        "insured_person",
        sa.MetaData(schema=schema),
        sa.Column("insured_no", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id_number", sa.String(24)),
        sa.Column("full_name", sa.String(50), nullable=False),
        sa.Column("gender", sa.String(2)),
        sa.Column("birth_date", sa.Date),
        sa.Column("region", sa.CHAR(6)),
        sa.Column("insured_since", sa.String(20)),
        sa.Column("ins_status", sa.String(10), nullable=False),
        sa.Column("employer_uscc", sa.String(24)),
        sa.Column("employer_name", sa.String(200)),
        sa.Column("monthly_base", sa.Numeric(10, 2)),
        sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
    )


def _since_text(day: dt.date, style: int) -> str:
    if style == 0:
        return day.isoformat()
    if style == 1:
        return f"{day.year}年{day.month}月{day.day}日"
    return day.strftime("%Y%m%d")


def insured_persons(
    population: Any, seed: int, share: float = 0.6, *, mistyped: float | None = None, missing: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the bureau's rows, their ground truth) for a generated city; ``mistyped``/``missing``:
    other shares of ids keyed wrong or not entered than :data:`MISTYPED`/:data:`MISSING`."""
    rng = np.random.default_rng([seed, 1207])  # its own stream: the city's other data stay as they are
    persons = population.persons
    ents = population.enterprises
    picked = np.flatnonzero(rng.random(len(persons)) < share)
    src = persons.iloc[picked].reset_index(drop=True)
    n = len(src)
    employer_rows = rng.integers(len(ents), size=n) if len(ents) else np.zeros(n, dtype=np.int64)
    employed = (rng.random(n) < 0.85) & (len(ents) > 0)
    ids: list[str] = []
    legacy_used: list[bool] = []
    for rid, legacy in zip(src["resident_id"].tolist(), src["legacy_resident_id"].tolist(), strict=True):
        roll = rng.random()
        if isinstance(legacy, str) and roll < 0.15:
            ids.append(str(legacy))  # the old card's number, as the bureau registered it
            legacy_used.append(True)
            continue
        legacy_used.append(False)
        if roll < 0.22:
            ids.append(rid.lower())
        elif roll < 0.27:
            ids.append(rid.translate(_FULLWIDTH))
        elif roll < 0.31:
            ids.append(f"{rid[:6]} {rid[6:14]} {rid[14:]}")
        else:
            ids.append(rid)
    keyed = _keyed_at_the_counter(
        ids, legacy_used, seed, MISTYPED if mistyped is None else mistyped, MISSING if missing is None else missing
    )
    ids_keyed, damaged, not_entered = keyed
    statuses = rng.choice(len(STATUSES) + 1, size=n, p=(0.8, 0.1, 0.07, 0.03))
    since_days = rng.integers(0, 365 * 20, size=n)
    styles = rng.integers(0, 3, size=n)
    employer_codes: list[str | None] = []
    employer_names: list[str | None] = []
    employer_truth: list[str | None] = []
    by_old_code: list[bool] = []
    for i in range(n):
        if not employed[i]:
            employer_codes.append(None)
            employer_names.append(None)
            employer_truth.append(None)
            by_old_code.append(False)
            continue
        ent = ents.iloc[int(employer_rows[i])]
        old = isinstance(ent.get("reg_no"), str) and rng.random() < 0.2
        employer_codes.append(str(ent["reg_no"]) if old else str(ent["uscc"]))
        employer_names.append(str(ent["ent_name"]))
        employer_truth.append(str(ent["uscc"]))
        by_old_code.append(bool(old))
    base = dt.datetime(2024, 1, 1)
    rows = pd.DataFrame(
        {
            "insured_no": np.arange(1, n + 1, dtype=np.int64) + 500_000,
            "id_number": ids_keyed,
            "full_name": src["name"].to_numpy(),
            "gender": np.where(src["sex"].to_numpy() == "1", "男", "女"),
            "birth_date": [pd.Timestamp(d).date() for d in src["birth_date"].tolist()],
            "region": src["region_code"].to_numpy(),
            "insured_since": [
                _since_text(dt.date(2004, 1, 1) + dt.timedelta(days=int(d)), int(s))
                for d, s in zip(since_days, styles, strict=True)
            ],
            "ins_status": [STATUSES[s] if s < len(STATUSES) else UNCLASSIFIED for s in statuses.tolist()],
            "employer_uscc": employer_codes,
            "employer_name": employer_names,
            "monthly_base": np.round(rng.uniform(3000, 30000, size=n), 2),
            "updated_at": [base + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 300, size=n)],
        }
    )
    truth = pd.DataFrame(
        {
            "source_key": rows["insured_no"].astype(str),
            "resident_id": src["resident_id"].to_numpy(),
            "legacy_id_given": legacy_used,
            "id_mistyped": damaged,
            "id_missing": not_entered,
            "employer_uscc": employer_truth,
            "employer_by_old_code": by_old_code,
            "status_unclassified": rows["ins_status"].to_numpy() == UNCLASSIFIED,
        }
    )
    return rows, truth


#: Shares of ids keyed wrong (one character mistyped) and not entered at all.
MISTYPED, MISSING = 0.02, 0.01
_ID_CHARS = "0123456789"


def _keyed_at_the_counter(
    ids: list[str], legacy_used: list[bool], seed: int, mistyped: float, missing: float
) -> tuple[list[str | None], list[bool], list[bool]]:
    """Ids as the counter keyed them: a digit mistyped (the check character then fails) or none
    entered. A stream of its own, so every other value of the register stays as it was."""
    rng = np.random.default_rng([seed, 1207, 1])
    roll = rng.random(len(ids))
    positions = rng.integers(6, 17, size=len(ids))  # birth date or sequence: the county is printed
    shifts = rng.integers(1, 10, size=len(ids))
    out: list[str | None] = []
    damaged: list[bool] = []
    absent: list[bool] = []
    for i, value in enumerate(ids):
        plain = not legacy_used[i] and len(value) == 18 and value[:17].isdigit()
        if plain and roll[i] < missing:
            out.append(None)
            damaged.append(False)
            absent.append(True)
            continue
        if plain and roll[i] < missing + mistyped:
            pos = int(positions[i])
            digit = _ID_CHARS[(int(value[pos]) + int(shifts[i])) % 10]
            out.append(value[:pos] + digit + value[pos + 1 :])
            damaged.append(True)
            absent.append(False)
            continue
        out.append(value)
        damaged.append(False)
        absent.append(False)
    return out, damaged, absent


class InsuredRegistry:
    """``insured_person`` on PostgreSQL (schema ``social_insurance``) or SQLite."""

    def __init__(self, sqlalchemy_url: str, odbc_connection_string: str) -> None:
        self.sqlalchemy_url = sqlalchemy_url
        self.odbc_connection_string = odbc_connection_string
        self.dialect = sa.engine.make_url(sqlalchemy_url).get_backend_name()
        self.schema = "social_insurance" if self.dialect == "postgresql" else None
        self.table = insured_table(self.schema)
        self.engine = sa.create_engine(sqlalchemy_url, poolclass=sa.pool.NullPool)

    def load(self, frame: pd.DataFrame) -> int:
        """(Re)create the table and insert ``frame``."""
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {self.schema}"))
        self.table.drop(self.engine, checkfirst=True)
        self.table.create(self.engine)
        rows: list[dict[str, Any]] = []
        for record in frame.to_dict("records"):
            row = {str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
            row["updated_at"] = pd.Timestamp(record["updated_at"]).to_pydatetime()
            row["insured_no"] = int(record["insured_no"])
            rows.append(row)
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        return len(rows)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar() or 0)

    def dispose(self) -> None:
        self.engine.dispose()
