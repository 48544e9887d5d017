"""The privacy scan of what a run leaves on disk: logs and the hub's files hold no personal value whole.

After an end-to-end run, every file under the Airflow logs and the hub's home is read — gzip
archives decompressed, JSON and text as UTF-8 — and searched for the sandbox's resident ids,
phones, addresses and names. Left out, by design: the hub's own stores of record, which hold
personal data because that is their job — the database files, the licence store (signed
originals), the staged copies of department data (purged after the retention period) and the
keys.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

#: directories under the hub's home that are stores of record, not outputs
STORES_OF_RECORD = frozenset({"store", "staging", "keys", "secrets", "bench"})
_SKIP_SUFFIXES = (".db", ".db-wal", ".db-shm", ".sqlite", ".parquet", ".shm", ".pem", ".key")


def personal_values(persons: pd.DataFrame) -> set[str]:
    """Resident ids, phones, addresses and names (three characters or more, so a common two-character
    name inside an enterprise's name cannot be mistaken for a leak) of the sandbox's residents."""
    out: set[str] = set()
    for column, shortest in (("resident_id", 15), ("phone", 7), ("address", 8), ("name", 3)):
        if column in persons:
            out |= {str(v) for v in persons[column].dropna() if len(str(v)) >= shortest}
    return out


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            rel = path.relative_to(root).parts
            if path.is_file() and not (rel and rel[0] in STORES_OF_RECORD) and not path.name.endswith(_SKIP_SUFFIXES):
                yield path


def _text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def leaks(roots: Iterable[Path], values: set[str]) -> list[tuple[str, str]]:
    """(file, value) for every personal value found whole in a scanned file."""
    found = []
    scanned = 0
    for path in _files(roots):
        scanned += 1
        text = _text(path)
        found += [(str(path), v) for v in values if v in text]
    assert scanned, f"nothing to scan under {list(roots)}"
    return found
