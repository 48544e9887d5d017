"""The mapping engine on sandbox-shaped batches of every department."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mappings.canonical.models import ENTITIES
from mappings.engine import MappingError, load_all, load_mapping
from tests.mappings import samples

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

BATCHES = {
    "commerce_enterprises": samples.commerce_batch,
    "tax_taxpayers": samples.tax_batch,
    "public_security_persons": samples.person_batch,
    "land_property_rights": samples.property_batch_flat,
    "land_approval_results": samples.approval_batch,
    "social_insurance_insured_persons": samples.insured_batch,
}


@pytest.fixture(scope="module")
def mappings() -> dict:
    return load_all(MAPPINGS)


def test_every_department_dataset_has_a_mapping(mappings: dict) -> None:
    assert set(mappings) == set(BATCHES)
    assert {m.department for m in mappings.values()} == {
        "tax",
        "public_security",
        "commerce",
        "land",
        "social_insurance",
    }


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_every_mapping_applies_cleanly_and_counts_reconcile(mappings: dict, name: str) -> None:
    mapping = mappings[name]
    batch = BATCHES[name]()
    result = mapping.apply(batch)
    n = batch.num_rows if isinstance(batch, pa.Table) else len(batch)
    assert result.rows_in == n
    assert result.reconciles
    assert result.mapped + result.rejected == n
    assert result.mapped > 0
    assert {"_source_key", "_source_version"} <= set(result.records.columns)
    fields = set(ENTITIES[mapping.entity].model_fields) - {"source"}
    given = {c for c in result.records.columns if c.startswith("_given_")}  # codes as given, before conversion
    assert {c.removeprefix("_given_") for c in given} <= fields
    own = {a.name for a in mapping.spec.attributes}  # the department's own attributes, beside the canonical ones
    assert (
        set(result.records.columns) - {"_source_key", "_source_version", "_department", "_dataset"} - given - own
        <= fields
    )
    # Every mapped record validates against the canonical model (after the engine's coercions).
    # Identifier fields are only shape-cleaned here; the identity step canonicalises them
    # (15 → 18 digits, legacy codes → USCC), so the model's code patterns are not checked yet.
    model = ENTITIES[mapping.entity]
    identifier_fields = {
        i.field
        for i in mapping.spec.identifiers
        if i.field in model.model_fields and not model.model_fields[i.field].is_required()
    }
    for row in result.records.to_dict("records"):
        values = {
            k: _plain(v)
            for k, v in row.items()
            if not k.startswith("_") and k not in identifier_fields and k not in own
        }
        source = {
            "department": row["_department"],
            "dataset": row["_dataset"],
            "source_key": row["_source_key"],
            "source_version": row["_source_version"],
        }
        model.model_validate({**values, "source": source})


def _plain(v: object) -> object:
    if isinstance(v, list):
        return [{k: _plain(x) for k, x in item.items()} for item in v]
    if isinstance(v, pd.Timestamp):
        return v.date()
    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return None
    return v


def test_commerce_values_are_normalised(mappings: dict) -> None:
    r = mappings["commerce_enterprises"].apply(samples.commerce_batch()).records.set_index("_source_key")
    assert r.loc["1001", "name"] == "洞头海产有限公司"  # traditional → simplified
    assert r.loc["1003", "uscc"] == "91330322MA28ABCE2Y"  # spaces removed, upper-cased
    assert pd.isna(r.loc["1004", "uscc"])  # empty string is missing, not ""
    assert r.loc["1001", "org_code"] == "MA28ABCD1"  # XXXXXXXX-X written form
    assert list(r["status"]) == ["active", "revoked", "active", "cancelled"]
    assert r.loc["1004", "region_code"] == "330322"  # full-width digits
    assert r.loc["1001", "registered_capital"] == pytest.approx(100.5)
    assert r.loc["1001", "_source_version"] == "2016-05-04T10:00:00+08:00"
    assert r.loc["1002", "legal_rep_resident_id"] == "33032219750505002X"


def test_tax_dates_statuses_and_missing_key_rejected(mappings: dict) -> None:
    result = mappings["tax_taxpayers"].apply(samples.tax_batch())
    r = result.records
    assert list(r["taxpayer_status"]) == ["normal", "abnormal", "cancelled"]
    assert r["registration_date"].dt.strftime("%Y-%m-%d").tolist() == ["2016-05-10", "1998-01-05", "1998-01-05"]
    assert r.iloc[2]["taxpayer_code"] == "330322147258369"  # full-width old taxpayer id
    assert result.rejects["reason_code"].tolist() == ["missing_required"]
    assert "taxpayer_code" in result.rejects["reason"].iloc[0]


def _check_owners(result: object) -> None:
    r = result.records.set_index("unit_no")  # type: ignore[attr-defined]
    owners = r.loc["330322001001GB00001F00010001", "owners"]
    assert [o["name"] for o in owners] == ["张三", "李四"]
    assert [o["holder_kind"] for o in owners] == ["person", "person"]
    assert owners[1]["holder_code"] == "33032219750505002X"
    assert owners[0]["share"] == "共同共有"
    assert r.loc["330322001001GB00002F00010001", "owners"][0]["holder_kind"] == "enterprise"
    assert r.loc["330322001001GB00003F00010001", "owners"] == []
    assert result.rejects["reason_code"].tolist() == ["missing_source_key"]  # type: ignore[attr-defined]


def test_land_owners_from_joined_columns_become_lists(mappings: dict) -> None:
    _check_owners(mappings["land_property_rights"].apply(samples.property_batch_flat()))


def test_land_owners_from_list_of_structs_become_lists(tmp_path: Path) -> None:
    text = (MAPPINGS / "land_property_rights.yaml").read_text(encoding="utf-8")
    text = text.replace('    split: ";"', "    from: Owner")
    for key in ("Name", "IdType", "IdCode", "Share"):
        text = text.replace(f"from: Owner{key},", f"from: {key},")
    path = tmp_path / "land_nested.yaml"
    path.write_text(text, encoding="utf-8")
    _check_owners(load_mapping(path).apply(samples.property_batch()))


def test_joined_columns_of_unequal_length_line_up_by_position(mappings: dict) -> None:
    table = samples.property_batch_flat().slice(0, 1)
    table = table.set_column(table.column_names.index("OwnerShare"), "OwnerShare", pa.array(["1/2"]))
    owners = mappings["land_property_rights"].apply(table).records["owners"].iloc[0]
    assert [o["share"] for o in owners] == ["1/2", None]
    assert [o["name"] for o in owners] == ["张三", "李四"]


def test_land_approval_reads_flattened_children(mappings: dict) -> None:
    r = mappings["land_approval_results"].apply(samples.approval_batch()).records
    assert r["applicant_code"].tolist() == ["91330322MA28ABCD1X", "147258369"]
    assert r["issuer_code"].tolist() == ["330322", "330322"]
    assert r["issuer_name"].iloc[0] == "温州市洞头区自然资源局"
    assert r["project_name"].iloc[0] == "洞头海产加工园"


def test_arrow_and_pandas_batches_map_alike(mappings: dict) -> None:
    m = mappings["public_security_persons"]
    df = samples.person_batch()
    a = m.apply(df).records
    b = m.apply(pa.Table.from_pandas(df, preserve_index=False)).records
    pd.testing.assert_frame_equal(a, b)


def test_connector_meta_columns_win_and_tombstones_are_counted(mappings: dict) -> None:
    df = samples.person_batch()
    df["_source_key"] = [f"k{i}" for i in range(len(df))]
    df["_source_version"] = "v1"
    df["_deleted"] = [False, False, False, True, False]
    result = mappings["public_security_persons"].apply(df)
    assert result.deleted == 1
    assert result.tombstones["_source_key"].tolist() == ["k3"]
    assert result.records["_source_key"].tolist() == ["k0", "k1", "k2"]
    assert result.rejected == 1  # the empty name
    assert result.reconciles


def test_duplicate_key_and_version_in_one_batch_is_rejected(mappings: dict) -> None:
    df = pd.concat([samples.person_batch().iloc[:2]] * 2, ignore_index=True)
    result = mappings["public_security_persons"].apply(df)
    assert result.mapped == 2
    assert result.rejects["reason_code"].tolist() == ["duplicate_record", "duplicate_record"]


def test_empty_batch(mappings: dict) -> None:
    df = samples.commerce_batch().iloc[:0]
    result = mappings["commerce_enterprises"].apply(df)
    assert result.counts() == {"in": 0, "mapped": 0, "rejected": 0, "deleted": 0}


def test_load_mapping_raises_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (MAPPINGS / "tax_taxpayers.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("entity: tax_registration", "entity: taxpayer"), encoding="utf-8")
    with pytest.raises(MappingError) as exc:
        load_mapping(bad)
    expected_line = text.splitlines().index("entity: tax_registration") + 1
    assert exc.value.problems[0].line == expected_line
    assert "unknown entity 'taxpayer'" in str(exc.value)


def test_mapping_engine_loader_refuses_a_yaml_alias_bomb(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    text = (MAPPINGS / "tax_taxpayers.yaml").read_text(encoding="utf-8")
    levels = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text(text + "\n".join(levels) + "\n", encoding="utf-8")
    with pytest.raises(MappingError) as exc:
        load_mapping(bomb)
    [problem] = exc.value.problems
    assert problem.line == len(text.splitlines()) + 5
    assert "aliases expand this document beyond 100,000 nodes" in problem.message


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_columns_normalised_on_threads_map_as_in_one(
    mappings: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large batch's columns are normalised concurrently: the records, rejects and their
    order are those of the one-thread path."""
    from mappings import engine

    mapping = mappings[name]
    batch = BATCHES[name]()
    monkeypatch.setattr(engine, "PARALLEL_ROWS", 10**9)
    alone = mapping.apply(batch)
    monkeypatch.setattr(engine, "PARALLEL_ROWS", 1)
    threads: set[str] = set()
    real = engine._evaluate

    def spy(*args: object) -> pd.Series:
        import threading

        threads.add(threading.current_thread().name)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_evaluate", spy)
    together = mapping.apply(batch)
    assert any(t.startswith("map-column") for t in threads)
    pd.testing.assert_frame_equal(together.records, alone.records)
    pd.testing.assert_frame_equal(together.rejects, alone.rejects)
    assert list(together.records.columns) == list(alone.records.columns)


def test_a_failing_column_fails_the_batch_on_threads(mappings: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from mappings import engine

    monkeypatch.setattr(engine, "PARALLEL_ROWS", 1)

    def broken(*_args: object) -> pd.Series:
        raise ValueError("normaliser failed")

    monkeypatch.setattr(engine, "_evaluate", broken)
    with pytest.raises(ValueError, match="normaliser failed"):
        mappings["public_security_persons"].apply(samples.person_batch())


def test_own_attributes_are_typed_and_the_given_code_kept(mappings: dict) -> None:
    result = mappings["social_insurance_insured_persons"].apply(samples.insured_batch())
    records = result.records
    assert [d.date().isoformat() for d in records["insured_since"]] == ["2015-03-01"] * 3  # three ways, one date
    assert records["insurance_status"].tolist() == ["paying", "待核", "terminated"]  # unknown words go on to validation
    assert records["employer_uscc"].tolist()[:2] == ["91330322MA28ABCD1X", "330322000012345"]
    # the 15-digit number became its 18 digits; the number as given is kept for the cross-walk
    assert len(records["resident_id"][1]) == 18 and records["_given_resident_id"][1] == "330322800101001"
    assert pd.isna(records["_given_resident_id"][0])
