"""Generator throughput: the vectorised population generator vs a per-record Python generator.

Full run: 1,000,000 residents (+250,000 enterprises, 400,000 real-estate units), target
under 180 s. The peer is the usual way such data is made — one record at a time in Python
with python-stdnum computing check digits (what a Faker-style provider does) — measured in
the same run on a sample and reported as records per second.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

import numpy as np
from stdnum.cn import ric, uscc

from sandbox.generator import Sizes, _persons, generate
from sandbox.regions import all_regions
from sandbox.vocab import GIVEN_CHARS, SURNAMES

TARGET_SECONDS = 180.0


def per_record_peer(n: int, seed: int = 1) -> float:
    """Records per second for a per-record generator: resident id, name, USCC each row."""
    rnd = random.Random(seed)
    regions = [r.code for r in all_regions() if r.start <= 1990]
    started = time.perf_counter()
    rows = []
    for i in range(n):
        birth = f"19{rnd.randint(40, 99):02d}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}"
        body = f"{rnd.choice(regions)}{birth}{rnd.randint(0, 999):03d}"
        rid = body + ric.calc_check_digit(body + "0")
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN_CHARS) + rnd.choice(GIVEN_CHARS)
        code = f"91330300{10000000 + i:08d}"
        org = code[8:16]
        weights = (3, 7, 9, 10, 5, 8, 4, 2)
        check = 11 - sum(int(c) * w for c, w in zip(org, weights, strict=True)) % 11
        body17 = code[:16] + {10: "X", 11: "0"}.get(check, str(check))
        rows.append((rid, name, body17 + uscc.calc_check_digit(body17)))
    return n / (time.perf_counter() - started)


def run(persons: int, peer_n: int) -> dict[str, Any]:
    """The figures: the whole city generated for ``persons`` (its tables' rows, records, seconds, realised
    dirt), the residents table alone (rows, seconds) and the per-record peer's rate over ``peer_n``."""
    sizes = Sizes(persons, persons // 4, persons * 2 // 5)
    started = time.perf_counter()
    pop = generate(2016, sizes)
    elapsed = time.perf_counter() - started
    counts = pop.counts()
    records = sum(v for k, v in counts.items() if k not in {"ground_truth"})
    started = time.perf_counter()
    residents = _persons(np.random.default_rng(1), persons)
    persons_only = time.perf_counter() - started
    return {
        "persons": persons,
        "counts": counts,
        "records": records,
        "seconds": elapsed,
        "residents": len(residents),
        "residents_seconds": persons_only,
        "peer_n": peer_n,
        "peer_rate": per_record_peer(peer_n),
        "dirt": pop.dirt_report["realised"],
        "met": elapsed < TARGET_SECONDS,
    }


def main(argv: list[str]) -> int:
    smoke = "--smoke" in argv
    persons = 5_000 if smoke else 1_000_000
    peer_n = 1_000 if smoke else 50_000
    f = run(persons, peer_n)
    persons_only, peer_rate, elapsed = f["residents_seconds"], f["peer_rate"], f["seconds"]
    print(f"{'':44}{'persons':>10}{'seconds':>9}{'persons/s':>12}")
    print(
        f"{'vectorised: residents table (id, name, ...)':44}{persons:>10,}{persons_only:>9.1f}"
        f"{persons / persons_only:>12,.0f}"
    )
    print(
        f"{'peer: per-record Python + stdnum (id, name)':44}{peer_n:>10,}{peer_n / peer_rate:>9.1f}{peer_rate:>12,.0f}"
    )
    print(f"speed-up on the residents table: x{persons / persons_only / peer_rate:.1f}")
    print(
        f"whole city (4 departments, dirt, ground truth): {f['records']:,} records in {elapsed:.1f} s "
        f"({persons / elapsed:,.0f} persons/s)"
    )
    print(f"realised dirt: {f['dirt']}")
    if smoke:
        return 0
    ok = f["met"]
    print(f"target: 1,000,000 persons under {TARGET_SECONDS:.0f} s -> {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
