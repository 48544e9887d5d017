"""Changes to running sandboxes for incremental tests (增量变更), ground truth kept in step.

Every mutation writes to the department's store the way the department's own system
would (new ``updated_at`` in local time) and updates the generated population and
``ground_truth.parquet`` so accuracy tests stay exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sandbox import generator as g
from sandbox.dirt import DirtProfile, DirtTally
from sandbox.generator import TAX_STATUS
from sandbox.public_security.registry import now_local
from sandbox.tax.store import LOCAL_TZ

if TYPE_CHECKING:
    from sandbox.prepared import Prepared

_CLEAN = DirtProfile(
    legacy_resident_id=0,
    old_enterprise_code=0,
    fullwidth_digits=0,
    lowercase_x=0,
    separators=0,
    wrong_check_digit=0,
    traditional_name=0,
    name_typo=0,
    duplicate=0,
    missing_field=0,
)


class Mutations:
    """Mutations on one set of sandboxes; new records are clean (no dirt)."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        self._counter = 0

    @property
    def pop(self) -> g.Population:
        return self.p.population

    def _rng(self) -> np.random.Generator:
        self._counter += 1
        return np.random.default_rng([self.p.seed, 7919, self._counter])

    def _add_truth(self, rows: list[dict[str, Any]]) -> None:
        extra = pd.DataFrame(rows, columns=g.GROUND_TRUTH_COLUMNS).astype({"entity_key": np.int64})
        self.pop.ground_truth = pd.concat([self.pop.ground_truth, extra], ignore_index=True)
        self._save()

    def _save(self) -> None:
        self.pop.ground_truth.to_parquet(self.p.ground_truth_path, index=False)
        data = self.p.data_dir / "data"
        self.pop.persons.to_parquet(data / "persons.parquet", index=False)
        self.pop.enterprises.to_parquet(data / "enterprises.parquet", index=False)

    # -- public security --------------------------------------------------------
    def _new_person(self) -> dict[str, Any]:
        known = set(self.pop.persons["resident_id"])
        for _ in range(20):
            person = g._persons(self._rng(), 1).iloc[0].to_dict()
            if person["resident_id"] not in known:
                break
        person["person_key"] = int(self.pop.persons["person_key"].max()) + 1
        self.pop.persons = pd.concat([self.pop.persons, pd.DataFrame([person])], ignore_index=True)
        return person

    def _registry_row(self, person: dict[str, Any], updated_at: dt.datetime) -> dict[str, Any]:
        row = {
            c: person.get(c)
            for c in (
                "resident_id",
                "name",
                "sex",
                "birth_date",
                "ethnicity",
                "address",
                "region_code",
                "status",
                "phone",
            )
        }
        row["person_no"] = self.p.person_registry.max_person_no() + 1
        row["updated_at"] = updated_at
        return row

    def _person_truth(self, person: dict[str, Any], person_no: int) -> dict[str, Any]:
        return {
            "department": "public_security",
            "dataset": "person_registry",
            "source_key": str(person_no),
            "role": "subject",
            "entity_kind": "person",
            "canonical_id": person["resident_id"],
            "entity_key": int(person["person_key"]),
            "dirt": "",
        }

    def add_person(self) -> dict[str, Any]:
        """A new resident registered now; returns the registry row (with ``person_key``)."""
        person = self._new_person()
        row = self._registry_row(person, now_local())
        self.p.person_registry.insert(row)
        self._add_truth([self._person_truth(person, row["person_no"])])
        return {**row, "person_key": person["person_key"]}

    @contextmanager
    def late_commit(self, age: dt.timedelta = dt.timedelta(minutes=10)) -> Iterator[dict[str, Any]]:
        """Insert a resident whose ``updated_at`` is ``age`` in the past, in a transaction held
        open for the block: a reader polling by watermark meanwhile must not skip it later."""
        person = self._new_person()
        row = self._registry_row(person, now_local() - age)
        with self.p.person_registry.held_insert(row):
            yield {**row, "person_key": person["person_key"]}
        self._add_truth([self._person_truth(person, row["person_no"])])

    def delete_person(self, person_no: int) -> bool:
        """Remove a registry record (a deregistration); its ground-truth row goes too."""
        gone = self.p.person_registry.delete(person_no)
        gt = self.pop.ground_truth
        keep = ~((gt["dataset"] == "person_registry") & (gt["source_key"] == str(person_no)))
        self.pop.ground_truth = gt[keep].reset_index(drop=True)
        self._save()
        return gone

    # -- commerce and tax ---------------------------------------------------------
    def change_enterprise_status(self, ent_key: int, status: str) -> dict[str, int]:
        """An enterprise changes status (e.g. ``注销``) in commerce and, in step, in tax."""
        now = now_local()
        gt = self.pop.ground_truth
        subject = gt[(gt["entity_key"] == ent_key) & (gt["role"] == "subject") & (gt["entity_kind"] == "enterprise")]
        ent_ids = subject[subject["dataset"] == "enterprise_registry"]["source_key"].astype(int).tolist()
        codes = subject[subject["dataset"] == "taxpayers"]["source_key"].tolist()
        changed = {"commerce": 0, "tax": 0}
        for ent_id in ent_ids:
            changed["commerce"] += self.p.commerce.update_status(ent_id, status, now)
        for code in codes:
            changed["tax"] += self.p.tax_store.update_status(code, TAX_STATUS[status], now.replace(tzinfo=LOCAL_TZ))
        ents = self.pop.enterprises
        ents.loc[ents["ent_key"] == ent_key, "status"] = status
        self._save()
        return changed

    def add_enterprise(self, legal_rep_key: int | None = None) -> dict[str, Any]:
        """A new enterprise (USCC era) registered in commerce and tax now."""
        rng = self._rng()
        persons = self.pop.persons
        if legal_rep_key is not None:
            persons = persons[persons["person_key"] == legal_rep_key]
        known = set(self.pop.enterprises["uscc"])
        for _ in range(20):
            ent = g._enterprises(rng, 1, persons.reset_index(drop=True)).iloc[0].to_dict()
            if ent["uscc"] not in known:
                break
        # A new registration gets a USCC only: no registration number, no taxpayer id.
        ent.update(reg_no=None, taxpayer_id=None, ent_key=int(self.pop.enterprises["ent_key"].max()) + 1)
        now = now_local()
        ent["established_date"] = pd.Timestamp(now.date())
        ent["license_issue_date"] = pd.Timestamp(now.date())
        self.pop.enterprises = pd.concat([self.pop.enterprises, pd.DataFrame([ent])], ignore_index=True)
        ent_id = self._max_ent_id() + 1
        record = {
            "ent_id": ent_id,
            "uscc": ent["uscc"],
            "reg_no": None,
            "org_code": ent["org_code"],
            "ent_name": ent["ent_name"],
            "legal_rep_id": ent["legal_rep_id"],
            "legal_rep_name": ent["legal_rep_name"],
            "ent_type": ent["ent_type"],
            "reg_capital": ent["reg_capital"],
            "established_date": now.date(),
            "business_scope": ent["business_scope"],
            "address": ent["address"],
            "region_code": ent["region_code"],
            "status": "存续",
            "reg_authority": f"{ent['city_name']}{ent['region_name']}市场监督管理局",
            "license_issue_date": now.date(),
            "updated_at": now,
        }
        self.p.commerce.add(record)
        self.p.tax_store.upsert(
            {
                "taxpayer_code": ent["uscc"],
                "taxpayer_name": ent["ent_name"],
                "legal_rep_id": ent["legal_rep_id"],
                "legal_rep_name": ent["legal_rep_name"],
                "reg_address": ent["address"],
                "tax_authority_code": f"1{ent['region_code']}0000",
                "tax_authority_name": f"国家税务总局{ent['city_name']}{ent['region_name']}税务局",
                "registration_date": now.date(),
                "taxpayer_status": "01",
                "credit_rating": "M",
                "updated_at": now,
            }
        )
        base = {"entity_key": ent["ent_key"], "dirt": ""}
        self._add_truth(
            [
                {
                    **base,
                    "department": "commerce",
                    "dataset": "enterprise_registry",
                    "source_key": str(ent_id),
                    "role": "subject",
                    "entity_kind": "enterprise",
                    "canonical_id": ent["uscc"],
                },
                {
                    "department": "commerce",
                    "dataset": "enterprise_registry",
                    "source_key": str(ent_id),
                    "role": "legal_rep",
                    "entity_kind": "person",
                    "canonical_id": ent["legal_rep_id"],
                    "entity_key": int(ent["legal_rep_key"]),
                    "dirt": "",
                },
                {
                    **base,
                    "department": "tax",
                    "dataset": "taxpayers",
                    "source_key": ent["uscc"],
                    "role": "subject",
                    "entity_kind": "enterprise",
                    "canonical_id": ent["uscc"],
                },
                {
                    "department": "tax",
                    "dataset": "taxpayers",
                    "source_key": ent["uscc"],
                    "role": "legal_rep",
                    "entity_kind": "person",
                    "canonical_id": ent["legal_rep_id"],
                    "entity_key": int(ent["legal_rep_key"]),
                    "dirt": "",
                },
            ]
        )
        return {"ent_key": ent["ent_key"], "ent_id": ent_id, "uscc": ent["uscc"], "ent_name": ent["ent_name"]}

    def _max_ent_id(self) -> int:
        rows = self.p.commerce.fetch("ent_id = (SELECT MAX(ent_id) FROM enterprise_registry)")
        return int(rows[0]["ent_id"]) if rows else 0

    # -- land -----------------------------------------------------------------------
    def new_land_package(self, properties: int = 10, approvals: int = 2) -> Path:
        """A new package of clean property rights and approvals dropped in the outbox."""
        rng = self._rng()
        tally = DirtTally()
        start = len(self.pop.property_rights) + 1 + self._counter * 1000
        props, t_prop = g._property_rights(
            rng, self.pop.persons, self.pop.enterprises, properties, _CLEAN, tally, start
        )
        apps, t_app = g._approval_results(rng, self.pop.persons, self.pop.enterprises, approvals, _CLEAN, tally, start)
        created = dt.datetime.now(LOCAL_TZ).replace(microsecond=0)
        outbox = self.p.land
        batch = outbox.batch_size
        outbox.batch_size = properties + approvals
        try:
            (path,) = outbox.publish(props, apps, created)
        finally:
            outbox.batch_size = batch
        self.pop.property_rights = pd.concat([self.pop.property_rights, props], ignore_index=True)
        self.pop.approval_results = pd.concat([self.pop.approval_results, apps], ignore_index=True)
        truth = pd.concat([t_prop, t_app], ignore_index=True)[g.GROUND_TRUTH_COLUMNS]
        self._add_truth(truth.astype({"source_key": str, "canonical_id": str}).to_dict("records"))
        return path
