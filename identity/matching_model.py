"""The matching model file (匹配模型文件): trained from what the hub knows, versioned, kept.

A model is Splink's settings dictionary (m and u per comparison level) with the decision
thresholds, written as ``<home>/matching/<entity>-<version>.json``; the newest file of an entity
kind is the one resolution uses, and each link it makes records the version.

Labels come only from the master index itself: a department's source record linked to an
identity by a valid code (persons: ``exact`` or ``converted_15_to_18``; enterprises: ``exact``,
or the organisation code inside a valid USCC or old taxpayer id) paired with that identity's
golden record is a true match (pairs sharing a valid code); each entity kind (``person``,
``enterprise``) has its own model files, trained the same way from its own identities and links.
A link whose values *are* the golden record (the identity's only link, stored as ``AS_GOLDEN``)
says nothing the comparison could learn from and is left out. No sandbox ground truth is read
here. With no such labels (a young index) the priors of the kind's settings
(:func:`identity.matching.person_settings`, :func:`identity.matching_enterprise.enterprise_settings`)
stand for m; u is always measured by random sampling over the index.

:func:`ensure_model` is what resolution calls: the newest model file, or — when there is none —
one trained from the index on the spot and written as the first version (logged), so a batch
is never matched by a model nobody can name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.settings import get_settings
from identity.golden_sources import AS_GOLDEN
from identity.matching import Thresholds, _profile, _train
from identity.matching_enterprise_index import (
    ENTERPRISE_COLUMNS,
    enterprise_values,
    frame_of_rows,
    index_columns,
)
from identity.tables import ENTERPRISE, PERSON, IdentityEnterprise, IdentityPerson, IdentitySourceRecord

log = logging.getLogger(__name__)

#: Link methods whose pairs are labels: the record carried a valid code of the identity.
LABEL_METHODS = ("exact", "converted_15_to_18")
#: The same for enterprises: a valid USCC, or a valid old code whose organisation code it embeds.
ENTERPRISE_LABEL_METHODS = ("exact", "org_code_in_uscc", "taxpayer_org_code")
#: Person columns of the master index the model compares.
MASTER_COLUMNS = ("name", "birth_date", "sex", "address", "region_code")


@dataclass(frozen=True)
class MatchingModel:
    """A trained model: Splink's settings, thresholds, and what it was trained on."""

    entity: str
    version: str
    settings: dict[str, Any]
    thresholds: Thresholds
    trained_at: str
    labels: int
    master_records: int

    def as_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "version": self.version,
            "trained_at": self.trained_at,
            "labels": self.labels,
            "master_records": self.master_records,
            "thresholds": {
                "match": self.thresholds.match,
                "review": self.thresholds.review,
                "ambiguity_margin": self.thresholds.ambiguity_margin,
            },
            "settings": self.settings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchingModel:
        return cls(
            entity=str(data["entity"]),
            version=str(data["version"]),
            settings=dict(data["settings"]),
            thresholds=Thresholds(**data.get("thresholds", {})),
            trained_at=str(data.get("trained_at", "")),
            labels=int(data.get("labels", 0)),
            master_records=int(data.get("master_records", 0)),
        )


def model_dir(home: Path | None = None) -> Path:
    """Where model files live: ``<HUB_HOME>/matching``."""
    return (home or get_settings().home) / "matching"


def save(model: MatchingModel, folder: Path | None = None) -> Path:
    """Write ``model`` as ``<entity>-<version>.json`` (never over another version)."""
    folder = folder or model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.version}.json"
    if path.exists():
        raise FileExistsError(f"model version {model.version} exists already")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model.as_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file
    return path


def latest(entity: str = PERSON, folder: Path | None = None) -> MatchingModel | None:
    """The newest model file of ``entity`` (versions sort by their training time), or ``None``."""
    folder = folder or model_dir()
    files = sorted(folder.glob(f"{entity}-*.json")) if folder.is_dir() else []
    if not files:
        return None
    return MatchingModel.from_json(json.loads(files[-1].read_text(encoding="utf-8")))


def _version(entity: str, settings: dict[str, Any], now: dt.datetime) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{entity}-{now.strftime('%Y%m%dT%H%M%S%fZ')}-{digest}"


def index_training_data(
    session: Session, *, max_master: int = 200_000, max_labels: int = 20_000, seed: int = 7, entity: str = PERSON
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(master sample: ``canonical_code`` + the kind's compared columns, labels: a source
    record's values + the ``canonical_code`` its valid code names) read from the master index.

    The master side is a sample of at most ``max_master`` identities (u needs random pairs, not
    all of them); provisional identities are left out of both sides (their code is no label)."""
    if entity == ENTERPRISE:
        return _enterprise_training_data(session, max_master=max_master, max_labels=max_labels, seed=seed)
    person = IdentityPerson
    total = session.scalar(select(func.count()).select_from(person).where(person.merged_into.is_(None))) or 0
    cols = [person.resident_id, *(getattr(person, c) for c in MASTER_COLUMNS)]
    stmt = select(*cols).where(person.merged_into.is_(None), person.provisional.is_(False))
    if total > max_master:
        stmt = stmt.order_by(func.random()).limit(max_master)
    master = pd.DataFrame(session.execute(stmt).all(), columns=["canonical_code", *MASTER_COLUMNS])
    labelled = [
        {"canonical_code": code, **{c: attrs.get(c) for c in MASTER_COLUMNS}}
        for code, attrs in _label_rows(session, PERSON, LABEL_METHODS, max_labels)
    ]
    return master, _sampled(pd.DataFrame(labelled, columns=["canonical_code", *MASTER_COLUMNS]), max_labels, seed)


def _label_rows(session: Session, entity: str, methods: tuple[str, ...], max_labels: int) -> list[tuple[str, Any]]:
    """(canonical code, stored values) of the newest links by a valid code carrying values."""
    link = IdentitySourceRecord
    rows = session.execute(
        select(link.canonical_code, link.stored_attributes)
        .where(link.entity_kind == entity, link.unlinked_at.is_(None), link.method.in_(methods))
        .order_by(link.id.desc())
        .limit(max_labels * 5)
    ).all()
    return [(code, attrs) for code, attrs in rows if isinstance(attrs, dict) and attrs != AS_GOLDEN and attrs]


def _sampled(labels: pd.DataFrame, max_labels: int, seed: int) -> pd.DataFrame:
    if len(labels) > max_labels:
        labels = labels.sample(n=max_labels, random_state=seed)
    return labels.reset_index(drop=True)


def _enterprise_training_data(
    session: Session, *, max_master: int, max_labels: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`index_training_data` of enterprises (the legal representative's name is among the
    golden record's other values; tax's ``taxpayer_name`` is the name)."""
    ent = IdentityEnterprise
    live = ent.merged_into.is_(None)
    total = session.scalar(select(func.count()).select_from(ent).where(live)) or 0
    stmt = select(*index_columns()).where(live, ent.provisional.is_(False))
    if total > max_master:
        stmt = stmt.order_by(func.random()).limit(max_master)
    master = frame_of_rows([tuple(r) for r in session.execute(stmt).all()])
    labelled = [
        {"canonical_code": code, **enterprise_values(attrs)}
        for code, attrs in _label_rows(session, ENTERPRISE, ENTERPRISE_LABEL_METHODS, max_labels)
    ]
    labels = pd.DataFrame(labelled, columns=["canonical_code", *ENTERPRISE_COLUMNS])
    return master, _sampled(labels.dropna(subset=["name"]), max_labels, seed)


def train_settings(
    master: pd.DataFrame, labels: pd.DataFrame, *, entity: str = PERSON, seed: int = 7
) -> dict[str, Any]:
    """Splink's settings trained on ``master`` (u by random sampling) and ``labels`` (m; the
    priors stand without them)."""
    prepare, _, _ = _profile(entity)
    m = prepare(master, "canonical_code", master=True)
    # u by random sampling needs an incoming side: the labelled records (or the index itself)
    side = labels if len(labels) else master.drop(columns=["canonical_code"])
    i = prepare(side.assign(_k=[f"s{n}" for n in range(len(side))]), "_k")
    return _train(m, i, None, labels if len(labels) else None, entity=entity, seed=seed, em=False)


def train_from_index(
    session: Session, *, entity: str = PERSON, thresholds: Thresholds | None = None, seed: int = 7
) -> MatchingModel | None:
    """Train a model from the master index (labels: pairs sharing a valid code); ``None`` when
    the index holds no identity to learn u from."""
    if entity not in (PERSON, ENTERPRISE):
        raise ValueError(f"unknown entity kind {entity!r}: person or enterprise")
    master, labels = index_training_data(session, seed=seed, entity=entity)
    if master.empty:
        return None
    settings = train_settings(master, labels, entity=entity, seed=seed)
    now = dt.datetime.now(dt.UTC)
    model = MatchingModel(
        entity=entity,
        version=_version(entity, settings, now),
        settings=settings,
        thresholds=thresholds or Thresholds(),
        trained_at=now.isoformat(),
        labels=len(labels),
        master_records=len(master),
    )
    log.info(
        "matching model %s trained from the index: %d identities sampled, %d labelled pairs",
        model.version,
        len(master),
        len(labels),
    )
    return model


def ensure_model(session: Session, entity: str = PERSON, folder: Path | None = None) -> MatchingModel | None:
    """The newest model file, or one trained from the index now and saved as the first version.

    ``None`` only when there is no file and the index is empty: there is nothing to match
    against then either."""
    found = latest(entity, folder)
    if found is not None:
        return found
    model = train_from_index(session, entity=entity)
    if model is None:
        return None
    path = save(model, folder)
    log.warning("no matching model file for %s: trained one from the master index on the spot, %s", entity, path)
    return model
