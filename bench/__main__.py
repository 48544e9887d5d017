"""Run every benchmark at full size (``make bench``), or the ones named: ``python -m bench xml sql_pull``.

Names come first; the arguments after them go to each named benchmark (``python -m bench
matching --only speed``).

Each benchmark is a module ``bench/bench_<name>.py`` with ``main(argv: list[str]) -> int``, which
prints the figures a function of the module returns (``run``); ``--smoke`` makes a small run. The
test suite's smokes call that function with the smoke sizes and assert on the figures it returns.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    # benchmark names first; everything else (``--only speed``, ``--rows=N``) goes to each benchmark
    known = set(available())
    lead = 0
    while lead < len(argv) and argv[lead] in known:
        lead += 1
    names = argv[:lead] or available()
    flags = argv[lead:]
    failures = 0
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        rc = module.main(flags)
        print(f"=== {name}: {'ok' if rc == 0 else 'TARGET MISSED'} in {time.perf_counter() - started:.1f}s ===")
        failures += rc != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
