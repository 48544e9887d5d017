"""The applicant's notices as the SMS gateway knows them (短信模板): a registered signature (签名) and
one registered template per notice, declared in the catalogue's ``notices:`` section.

Chinese SMS gateways send only texts registered in advance: the sender names a template by its
code, gives its parameters, and the gateway fills them into the registered text under the
registered signature. The catalogue keeps the same texts, so what the applicant reads is
reviewable beside the items (and the sandbox gateway registers exactly these).

>>> t = parse({"signature": "洞头政务服务", "templates": {
...     "accepted": {"template_code": "SMS_1", "text": "${name}您好，${item}已受理，办件编码${code}。"}}})
>>> t.template("accepted").parameters
('name', 'item', 'code')
>>> t.template("accepted").render({"name": "李**", "item": "开具纳税证明", "code": "330322-20261201-7K3PQ0"})
'【洞头政务服务】李**您好，开具纳税证明已受理，办件编码330322-20261201-7K3PQ0。'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The notices the hub sends (the catalogue declares a template for each):
#: 受理, 受理 of an on-the-spot item (即办件: promised in 0 working days, so no "within N days"),
#: 补正告知, 办结待领取, 办结邮寄, 已寄出 (with the carrier and tracking number), 不予许可.
KINDS = (
    "accepted", "accepted_on_the_spot", "correction_requested", "concluded_pickup", "concluded_post", "posted",
    "rejected",
)  # fmt: skip
#: The parameters a template may use: the recipient's name, the item's name, the printed supervision
#: code, the promised working days, the missing materials, the carrier and its tracking number.
PARAMETERS = frozenset({"name", "item", "code", "days", "materials", "carrier", "tracking"})
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Template:
    kind: str
    #: the gateway's registered template code (模板 CODE)
    template_code: str
    text: str
    signature: str

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.text)))

    def render(self, params: Mapping[str, Any]) -> str:
        """The text as the applicant reads it: the signature, then the text with ``params`` filled in."""
        return f"【{self.signature}】" + _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), "")), self.text)


@dataclass(frozen=True)
class Templates:
    signature: str
    by_kind: Mapping[str, Template]

    def template(self, kind: str) -> Template:
        return self.by_kind[kind]

    def by_code(self) -> dict[str, Template]:
        return {t.template_code: t for t in self.by_kind.values()}


def parse(data: Mapping[str, Any]) -> Templates:
    signature = str(data["signature"])
    return Templates(
        signature,
        {k: Template(k, str(t["template_code"]), str(t["text"]), signature) for k, t in data["templates"].items()},
    )


def check(data: Mapping[str, Any] | None, add: Callable[[tuple[str | int, ...], str], None]) -> None:
    """What the schema cannot say of a ``notices:`` section: every notice has its template, each
    uses known parameters only, and no two share a template code."""
    if data is None:
        return
    templates: Mapping[str, Any] = data["templates"]
    for kind in KINDS:
        if kind not in templates:
            add(("notices", "templates"), f"no template for the {kind!r} notice")
    codes: dict[str, str] = {}
    for kind, t in templates.items():
        where = ("notices", "templates", kind)
        if kind not in KINDS:
            add(where, f"{kind!r} is no notice the hub sends (known: {', '.join(KINDS)})")
        unknown = sorted(set(_PLACEHOLDER.findall(t["text"])) - PARAMETERS)
        if unknown:
            add((*where, "text"), f"unknown parameters {unknown} (known: {', '.join(sorted(PARAMETERS))})")
        code = t["template_code"]
        if code in codes:
            add((*where, "template_code"), f"template code {code} also used by {codes[code]}")
        codes.setdefault(code, kind)
