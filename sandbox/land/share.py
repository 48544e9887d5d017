"""The land bureau's exchange share dropping mid-read (交换共享目录断开), for fault tests.

A file-drop exchange is a directory on a share (SMB/NFS) the department exports to the hub.
When the share drops while the hub reads it, names listed a moment earlier no longer open.
:func:`share_drops_after` makes that happen at a fixed point, without timing: the first
``readable`` waiting packages (in name order, the order a reader takes them) stay readable;
every later package keeps its name in the outbox (a dangling link into the unmounted share,
as a stale listing has) and its sidecar, but its content cannot be opened. Leaving the block
brings the share back with every package as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def waiting_packages(outbox: Path) -> list[Path]:
    """Packages complete in the outbox (sidecar written) and not yet acknowledged, in name order."""
    return sorted(
        p
        for p in outbox.glob("*.xml")
        if p.with_name(p.name + ".sha256").exists() and not p.with_name(p.name + ".ack").exists()
    )


@contextmanager
def share_drops_after(outbox: Path, readable: int = 1) -> Iterator[list[Path]]:
    """Inside: waiting packages after the first ``readable`` cannot be opened. Yields those."""
    outbox = Path(outbox)
    held = outbox.parent / f".{outbox.name}-share-held"
    unmounted = outbox.parent / f".{outbox.name}-share-unmounted"  # never created: links dangle
    dropped = waiting_packages(outbox)[readable:]
    held.mkdir(exist_ok=True)
    try:
        for package in dropped:
            shutil.move(str(package), held / package.name)
            package.symlink_to(unmounted / package.name)
        yield dropped
    finally:
        for package in dropped:
            if package.is_symlink():
                package.unlink()
            if (held / package.name).exists():
                shutil.move(str(held / package.name), package)
        shutil.rmtree(held, ignore_errors=True)
