"""Protocol name → connector class, and making a connector from a ``source:`` block (注册表).

>>> sorted(PROTOCOLS)
['soap', 'sql', 'xml']
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from connectors.base import Connector
from connectors.config import validate_source_block
from connectors.errors import ConnectorConfigError

#: protocol → "module:Class"; imported lazily so one protocol's missing driver never breaks another
PROTOCOLS: dict[str, str] = {
    "sql": "connectors.sql:SqlConnector",
    "soap": "connectors.soap:SoapConnector",
    "xml": "connectors.xml_packages:XmlPackageConnector",
}


def connector_class(protocol: str) -> type[Any]:
    """The class for ``protocol``: a built-in one, or ``connectors.<protocol>.CONNECTOR`` (scaffolded)."""
    target = PROTOCOLS.get(protocol)
    if target is None:
        try:
            return importlib.import_module(f"connectors.{protocol}").CONNECTOR  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            pass
        raise ConnectorConfigError(
            f"unknown protocol {protocol!r}",
            action=f"use one of {', '.join(sorted(PROTOCOLS))} or scaffold one: hub connector new NAME --protocol ...",
        )
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def make_connector(
    source_block: Mapping[str, Any],
    *,
    name: str,
    personal_columns: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Connector:
    """A connector for a mapping file's ``source:`` block (validated against source.schema.json).

    ``personal_columns`` (source field → personal-data kind, from the mapping) tells the
    connector how to mask the raw rows it reports (refused rows, previews).
    """
    validate_source_block(source_block, where=f"source={name}")
    cls = connector_class(str(source_block["protocol"]))
    connector = cls(name, source_block, **kwargs)
    connector.personal_columns = dict(personal_columns or {})
    return connector  # type: ignore[no-any-return]
