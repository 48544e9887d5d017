"""The service-item catalogue (政务服务事项目录, 事项库): what can be applied for, who acts, what it needs.

One YAML file (``catalogue.yaml``) checked like the mappings: JSON Schema first
(``catalogue.schema.json``), then what a schema cannot know — every problem with its file and
line (``hub cases catalogue check``):

- departments are named once, with their organ's unified social credit code; ``window`` is
  the front desk's own name and no department's;
- an item's lead department (牵头部门) has a stage; each department has one stage (环节) per
  item; ``after`` names stages of the same item and never runs in a circle; stages with the
  same predecessors run in parallel (并联审批);
- time limits in working days: promised (承诺时限) within statutory (法定时限), for the item and each
  stage, and the promised days along the longest chain of stages within the item's promise;
- materials name licence types of the e-licence catalogue and a holder (the applicant or a
  declared party) who can hold that type; a stage yields only licence types its department issues.

Item codes follow the structure of the national item coding (基本编码: item type, 5-digit main
item, 3-digit sub-item); :attr:`Item.implementation_code` adds the level of authority, the
division and the lead organ (实施编码). See docs/decisions/0018-cases-item-codes-and-supervision-code.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from stdnum.cn import uscc as stdnum_uscc

from cases import notice_templates
from e_license_store.catalogue import LicenseType
from e_license_store.catalogue import load_catalogue as load_licence_types
from hub.regions import division
from hub.safe_yaml import YamlError
from mappings.yamlmarks import MarkedDocument, Path_, Problem, load_marked, path_text

HERE = Path(__file__).parent
CATALOGUE_PATH = HERE / "catalogue.yaml"
SCHEMA_PATH = HERE / "catalogue.schema.json"

#: The front desk (一窗受理): receives applications and records the window's steps; no department.
WINDOW = "window"
#: The holder of a material that is the applicant's own.
APPLICANT = "applicant"
#: Item types of the basic code (事项类型).
ITEM_TYPES = {"XK": "行政许可", "QR": "行政确认", "QT": "其他行政权力", "GG": "公共服务"}
#: Level of authority (事权层级) → its digit in the implementation code.
LEVELS = {"national": "1", "provincial": "2", "municipal": "3", "county": "4"}


class CatalogueError(ValueError):
    """The catalogue file has problems (each with its file and line)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class UnknownItem(KeyError):
    """An item code the catalogue does not list."""


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    #: the organ's unified social credit code (机关统一社会信用代码)
    authority_code: str


@dataclass(frozen=True)
class Party:
    """Someone besides the applicant whose licences a material may be (e.g. the seller, 转让方)."""

    role: str
    name: str
    kinds: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class Stage:
    """One department's part of an item (环节), with its own time limits."""

    department: str
    name: str
    after: tuple[str, ...]
    statutory_days: int
    promised_days: int
    yields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Material:
    """A material an item requires (申请材料)."""

    code: str
    name: str
    #: ``licence`` (a licence type recognises it), ``paper`` or ``upload``
    form: str
    license_type: str | None = None
    holder: str = APPLICANT
    required: bool = True
    #: 容缺: may be promised for later
    minor: bool = False
    #: 告知承诺: a written commitment may stand for it
    commitment: bool = False


@dataclass(frozen=True)
class Item:
    """A service item (政务服务事项)."""

    code: str
    name: str
    level: str
    lead: str
    applicant_kinds: tuple[str, ...]
    unknown_applicant: str
    statutory_days: int
    promised_days: int
    parties: tuple[Party, ...]
    stages: tuple[Stage, ...]
    materials: tuple[Material, ...]
    region_code: str
    lead_authority_code: str

    @property
    def item_type(self) -> str:
        return self.code[:2]

    @property
    def implementation_code(self) -> str:
        """实施编码: basic code, level of authority, division (GB/T 2260), the lead organ's organisation code.

        The organisation code is positions 9–17 of the organ's USCC (GB 32100).
        """
        return f"{self.code}{LEVELS[self.level]}{self.region_code}{self.lead_authority_code[8:17]}"

    @property
    def yields(self) -> tuple[str, ...]:
        return tuple(t for s in self.stages for t in s.yields)

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(s.department for s in self.stages)

    def stage(self, department: str) -> Stage | None:
        return next((s for s in self.stages if s.department == department), None)

    def material(self, code: str) -> Material | None:
        return next((m for m in self.materials if m.code == code), None)

    def party(self, role: str) -> Party | None:
        return next((p for p in self.parties if p.role == role), None)


@dataclass(frozen=True)
class Catalogue:
    region_code: str
    departments: Mapping[str, Department]
    items: Mapping[str, Item]
    #: the applicant's SMS notices (``notices:``), when the catalogue declares them
    notices: notice_templates.Templates | None = field(default=None)

    def item(self, code: str) -> Item:
        try:
            return self.items[code]
        except KeyError:
            raise UnknownItem(code) from None


@lru_cache(maxsize=1)
def catalogue_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def check_document(
    doc: MarkedDocument, file: str, licence_types: Mapping[str, LicenseType] | None = None
) -> list[Problem]:
    """Schema and semantic problems of a loaded catalogue document, sorted by line."""
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(Problem(file, doc.line_of(path), message, path_text(path)))

    for path, line in doc.duplicate_keys:
        problems.append(Problem(file, line, f"duplicate key {path[-1]!r}", path_text(path)))
    validator = jsonschema.Draft202012Validator(catalogue_schema())
    for err in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        add(tuple(err.absolute_path), f"schema: {err.message}")
    if problems:
        # references between parts of a document of the wrong shape would only repeat its errors
        return sorted(set(problems))
    _semantic(doc.data, add, load_licence_types() if licence_types is None else licence_types)
    return sorted(set(problems))


def _semantic(data: Mapping[str, Any], add: Any, licence_types: Mapping[str, LicenseType]) -> None:
    if division(str(data["region_code"])) is None:
        add(("region_code",), f"region_code {data['region_code']!r} is no division code (GB/T 2260)")
    departments: Mapping[str, Any] = data["departments"]
    for code, dept in departments.items():
        if code == WINDOW:
            add(("departments", code), f"{WINDOW!r} is the front desk's name, not a department's")
        if not stdnum_uscc.is_valid(dept["authority_code"]):
            add(("departments", code, "authority_code"), "authority_code is not a valid unified social credit code")
    seen_items: dict[str, int] = {}
    for i, item in enumerate(data["items"]):
        where: Path_ = ("items", i)
        if item["code"] in seen_items:
            add((*where, "code"), f"item code {item['code']} also at items[{seen_items[item['code']]}]")
        seen_items.setdefault(item["code"], i)
        _check_item(item, where, departments, licence_types, add)
    notice_templates.check(data.get("notices"), add)


def _check_item(
    item: Mapping[str, Any], where: Path_, departments: Mapping[str, Any], types: Mapping[str, LicenseType], add: Any
) -> None:
    stages: list[Mapping[str, Any]] = list(item["stages"])
    by_dept: dict[str, Mapping[str, Any]] = {}
    for j, stage in enumerate(stages):
        dept = stage["department"]
        if dept not in departments:
            add((*where, "stages", j, "department"), f"unknown department {dept!r} (declare it under departments)")
        if dept in by_dept:
            add((*where, "stages", j, "department"), f"department {dept!r} has two stages in this item")
        by_dept.setdefault(dept, stage)
        if stage["promised_days"] > stage["statutory_days"]:
            add((*where, "stages", j, "promised_days"), "promised_days exceeds the stage's statutory_days")
        if stage["statutory_days"] > item["statutory_days"]:
            add((*where, "stages", j, "statutory_days"), "a stage's statutory_days exceed the item's")
        for k, before in enumerate(stage.get("after") or ()):
            if before == dept:
                add((*where, "stages", j, "after", k), "a stage cannot wait for itself")
            elif before not in {s["department"] for s in stages}:
                add((*where, "stages", j, "after", k), f"after {before!r}: no stage of this item")
        for k, type_code in enumerate(stage.get("yields") or ()):
            ltype = types.get(type_code)
            if ltype is None:
                add((*where, "stages", j, "yields", k), f"licence type {type_code!r} is not in the e-licence catalogue")
            elif ltype.issuer_department != dept:
                add((*where, "stages", j, "yields", k),
                    f"licence type {type_code} is issued by {ltype.issuer_department}, not {dept}")  # fmt: skip
    if item["lead"] not in by_dept:
        add((*where, "lead"), f"lead department {item['lead']!r} has no stage in this item")
    if item["promised_days"] > item["statutory_days"]:
        add((*where, "promised_days"), "promised_days exceeds statutory_days")
    longest = _longest_chain(stages)
    if longest is None:
        add((*where, "stages"), "the stages' `after` lists run in a circle")
    elif longest > item["promised_days"]:
        add(
            (*where, "promised_days"),
            f"the stages' promised days add up to {longest} along their order, "
            f"more than the item's {item['promised_days']}",
        )
    roles = [p["role"] for p in item.get("parties") or ()]
    for k, role in enumerate(roles):
        if role == APPLICANT or roles.index(role) != k:
            add((*where, "parties", k, "role"), f"party role {role!r} is the applicant's or repeated")
    kinds_of = {APPLICANT: set(item["applicant_kinds"])} | {
        p["role"]: set(p["kinds"]) for p in item.get("parties") or ()
    }
    codes: set[str] = set()
    for k, material in enumerate(item["materials"]):
        mwhere = (*where, "materials", k)
        if material["code"] in codes:
            add((*mwhere, "code"), f"material code {material['code']} repeated")
        codes.add(material["code"])
        holder = material.get("holder", APPLICANT)
        if holder not in kinds_of:
            add((*mwhere, "holder"), f"holder {holder!r} is neither the applicant nor a party of this item")
        if material["form"] != "licence":
            if "holder" in material:
                add((*mwhere, "holder"), "only a licence material has a holder")
            continue
        ltype = types.get(material["license_type"])
        if ltype is None:
            add(
                (*mwhere, "license_type"),
                f"licence type {material['license_type']!r} is not in the e-licence catalogue",
            )
        elif holder in kinds_of and ltype.holder_kind != "any" and ltype.holder_kind not in kinds_of[holder]:
            add(
                (*mwhere, "license_type"),
                f"licence type {ltype.type_code} is held by a {ltype.holder_kind}; the {holder} cannot be one",
            )


def _longest_chain(stages: list[Mapping[str, Any]]) -> int | None:
    """The most promised days along any chain of ``after`` (None when the order runs in a circle)."""
    after = {s["department"]: [a for a in s.get("after") or () if a != s["department"]] for s in stages}
    days = {s["department"]: s["promised_days"] for s in stages}
    memo: dict[str, int] = {}

    def finish(dept: str, path: frozenset[str]) -> int | None:
        if dept in path:
            return None
        if dept not in memo:
            total = 0
            for before in after.get(dept, ()):
                if before not in days:
                    continue
                got = finish(before, path | {dept})
                if got is None:
                    return None
                total = max(total, got)
            memo[dept] = total + days[dept]
        return memo[dept]

    best = 0
    for dept in days:
        got = finish(dept, frozenset())
        if got is None:
            return None
        best = max(best, got)
    return best


def check_file(path: str | Path, licence_types: Mapping[str, LicenseType] | None = None) -> list[Problem]:
    """Every problem of a catalogue file (a file YAML cannot read is one problem at its line)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(name, 1, f"cannot read: {exc}")]
    try:
        doc = load_marked(text, name)
    except YamlError as exc:
        return [Problem(name, exc.line, exc.message)]
    return check_document(doc, name, licence_types)


def parse(data: Mapping[str, Any]) -> Catalogue:
    """The catalogue of a document :func:`check_document` found no problem in."""
    departments = {code: Department(code, d["name"], d["authority_code"]) for code, d in data["departments"].items()}
    default_level = data.get("level", "county")
    items: dict[str, Item] = {}
    for raw in data["items"]:
        items[raw["code"]] = Item(
            code=raw["code"], name=raw["name"], level=raw.get("level", default_level), lead=raw["lead"],
            applicant_kinds=tuple(raw["applicant_kinds"]), unknown_applicant=raw.get("unknown_applicant", "refuse"),
            statutory_days=raw["statutory_days"], promised_days=raw["promised_days"],
            parties=tuple(Party(p["role"], p["name"], tuple(p["kinds"]), p.get("required", True))
                          for p in raw.get("parties") or ()),
            stages=tuple(Stage(s["department"], s["name"], tuple(s.get("after") or ()), s["statutory_days"],
                               s["promised_days"], tuple(s.get("yields") or ())) for s in raw["stages"]),
            materials=tuple(Material(m["code"], m["name"], m["form"], m.get("license_type"),
                                     m.get("holder", APPLICANT), m.get("required", True), m.get("minor", False),
                                     m.get("commitment", False)) for m in raw["materials"]),
            region_code=str(data["region_code"]), lead_authority_code=departments[raw["lead"]].authority_code,
        )  # fmt: skip
    notices = notice_templates.parse(data["notices"]) if data.get("notices") else None
    return Catalogue(str(data["region_code"]), departments, items, notices)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue at ``path`` (default: the packaged one); :class:`CatalogueError` lists its problems."""
    if path is None:
        return _default()
    return _load(Path(path))


def _load(path: Path) -> Catalogue:
    problems = check_file(path)
    if problems:
        raise CatalogueError(problems)
    return parse(load_marked(path.read_text(encoding="utf-8"), str(path)).data)


@lru_cache(maxsize=1)
def _default() -> Catalogue:
    return _load(CATALOGUE_PATH)
