"""The frozen evaluation's enterprise references through the product's resolve step.

As :mod:`bench.matching_resolve` does for persons: the evaluation city (``bench/matching_evaluation.json``,
frozen) is loaded into a fresh SQLite hub database the way the hub learns — the index holds every
enterprise by its USCC with its old registration number (commerce: the cross-walk learns it), and
the references that carry a valid USCC are linked by it (the labels the hub itself knows: records
sharing a valid code with their identity). The enterprise model is trained from that index
(``identity.matching_maintenance.train_with_thresholds``, what ``hub identity matching train`` runs),
never from the ground truth; then every reference to an enterprise (commerce, tax, land owners,
approval applicants) goes through ``link_batch`` as one batch. Each reference's true enterprise is in
the index, so per reference: precision (of those linked, linked to their true enterprise), recall (of
all, linked to their true enterprise) and the share sent to review — for all references and for
those without a usable USCC (none, a damaged one, a wrong length; they resolve by an old code through
the cross-walk or by the model), beside the exact-code-only baseline. Target (issue 18): enterprises
P >= 0.995 and R >= 0.995.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.matching_city import enterprise_references, evaluation_city

PRECISION_TARGET = 0.995
RECALL_TARGET = 0.995
INDEX_COLUMNS = ["uscc", "reg_no", "name", "legal_rep_name", "legal_rep_resident_id", "address", "region_code"]
REFERENCE_COLUMNS = ["uscc", "taxpayer_code", "org_code", "reg_no", "name", "legal_rep_name", "address", "region_code"]


def _usable_uscc(values: pd.Series) -> pd.Series:
    """The canonical USCC where the value is a valid one (None elsewhere)."""
    from identifiers.vectorized import normalize_many

    norm = normalize_many(values.astype(object).where(values.notna(), None).tolist(), as_kind="uscc")
    ok = norm["valid"].astype(bool).to_numpy() & (norm["kind"] == "uscc").to_numpy()
    return pd.Series(np.where(ok, norm["canonical"], None), index=values.index, dtype=object)


def _scores(linked: np.ndarray, right: np.ndarray, review: np.ndarray, subset: np.ndarray) -> tuple[float, ...]:
    n = max(int(subset.sum()), 1)
    precision = right[subset].sum() / int(linked[subset].sum()) if linked[subset].any() else 1.0
    return float(precision), float(right[subset].sum() / n), float(review[subset].sum() / n)


def enterprises_through_resolve(persons: int, seed: int) -> dict[str, Any]:
    """The evaluation city's enterprise references through ``link_batch``: the accuracy table."""
    from hub.db import make_engine, migrate, session_factory
    from hub.settings import reset_settings
    from identity.matching_maintenance import train_with_thresholds
    from identity.matching_model import save
    from identity.resolve import link_batch

    pop = evaluation_city(persons, seed)
    refs = enterprise_references(pop)
    ents = pop.enterprises
    true_code = refs["entity_key"].map(ents.set_index("ent_key")["uscc"]).to_numpy()
    batch = refs.rename(columns={"tax_code": "taxpayer_code"}).reindex(columns=REFERENCE_COLUMNS)
    batch.insert(0, "_source_key", [f"{r}#{i}" for i, r in enumerate(refs["ref_id"].tolist())])
    given = _usable_uscc(batch["uscc"])
    given = given.where(given.notna(), _usable_uscc(batch["taxpayer_code"]))
    no_code = ~given.isin(set(ents["uscc"])).to_numpy()
    before = os.environ.get("HUB_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["HUB_HOME"] = home  # the model file goes to this run's own home
        reset_settings()
        url = f"sqlite:///{home}/hub.db"
        migrate(url)
        engine = make_engine(url)
        with session_factory(engine)() as s:
            index = ents.rename(columns={"ent_name": "name", "legal_rep_id": "legal_rep_resident_id"})
            index = index.assign(_source_key=ents["ent_key"].astype(str))[["_source_key", *INDEX_COLUMNS]]
            link_batch(s, index, "enterprise", "commerce", "enterprises")
            seen = batch[~no_code].assign(uscc=given[~no_code], taxpayer_code=None)
            link_batch(s, seen, "enterprise", "references", "by_code")
            s.commit()
            started = time.perf_counter()
            trained = train_with_thresholds(s, entity="enterprise")  # what `hub identity matching train` runs
            assert trained is not None
            model, chosen = trained
            save(model)
            train_seconds = time.perf_counter() - started
            started = time.perf_counter()
            result = link_batch(s, batch, "enterprise", "bench", "references")
            seconds = time.perf_counter() - started
            s.commit()
        engine.dispose()
    if before is None:
        os.environ.pop("HUB_HOME", None)
    else:
        os.environ["HUB_HOME"] = before
    reset_settings()
    out = result.records
    method = out["identity_method"].astype(object).to_numpy()
    status = out["identity_status"].astype(object).to_numpy()
    code = out["canonical_code"].astype(object).to_numpy()
    provisional = method == "provisional"
    has_code = np.array([c is not None and c == c for c in code.tolist()], dtype=bool)
    linked = np.isin(status, ["resolved", "new"]) & ~provisional & (method != "review") & has_code
    right = linked & (code == true_code)
    review = method == "review"
    matched = method == "probabilistic"
    everyone = np.ones(len(refs), dtype=bool)
    base_linked = ~no_code
    base_right = base_linked & (given.to_numpy() == true_code)
    nothing = np.zeros(len(refs), dtype=bool)
    n = int(no_code.sum())
    print(
        f"through resolve: {len(refs):,} references to enterprises of {len(ents):,} enterprises (seed {seed}), "
        f"{n:,} ({n / max(len(refs), 1):.2%}) without a usable USCC; model {model.version}"
    )
    print(
        f"  enterprise model trained from the index in {train_seconds:.1f}s ({model.labels:,} labelled pairs sharing "
        f"a valid code, {chosen['held_out_labels']:,} more held out); resolve step {seconds:.1f}s"
    )
    t = model.thresholds
    how = "chosen on the held-out labels" if chosen["chosen_from_labels"] else "defaults (too few labels)"
    print(f"  thresholds: match {t.match}, review {t.review:.2f} ({how})")
    print(
        f"  without a usable USCC: linked by an old code {int((linked & ~matched)[no_code].sum()):,}, "
        f"by match {int(matched[no_code].sum()):,}, sent to review {int(review[no_code].sum()):,}, "
        f"provisional {int(provisional[no_code].sum()):,}, "
        f"left unresolved {int(((status == 'unresolved') & ~review)[no_code].sum()):,}"
    )
    print(f"  {'subset':<22} {'method':<28} {'precision':>9} {'recall':>8} {'review':>7}")
    figures: dict[str, Any] = {}
    for subset, mask in (("all references", everyone), ("no usable USCC", no_code)):
        p, r, share = _scores(linked, right, review, mask)
        bp, br, _ = _scores(base_linked, base_right, nothing, mask)
        print(f"  {subset:<22} {'hub resolve':<28} {p:>9.4f} {r:>8.4f} {share:>7.2%}")
        print(f"  {subset:<22} {'exact-code-only baseline':<28} {bp:>9.4f} {br:>8.4f} {0.0:>7.2%}")
        figures[subset] = {"precision": p, "recall": r, "review_share": share}
    every = figures["all references"]
    ok = every["precision"] >= PRECISION_TARGET and every["recall"] >= RECALL_TARGET
    print(f"  target: all references P >= {PRECISION_TARGET}, R >= {RECALL_TARGET} -> {'met' if ok else 'MISSED'}")
    return {
        "references": len(refs),
        "resolved_records": len(out),
        "no_code": n,
        "linked": int(linked[no_code].sum()),
        "right": int(right[no_code].sum()),
        "review": int(review[no_code].sum()),
        "matched": int(matched.sum()),
        "all": every,
        "no_usable_uscc": figures["no usable USCC"],
        "train_seconds": train_seconds,
        "seconds": seconds,
        "met": ok,
    }
