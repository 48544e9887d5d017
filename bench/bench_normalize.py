"""Benchmark: ``normalize`` of 1,000,000 mixed identifiers, vectorised, beside python-stdnum.

Prints the hub's vectorised rate (target ≥ 500,000 identifiers/s) and, on the same data,
python-stdnum's ``is_valid`` called in a loop (``cn.ric`` for 18-digit numbers, ``cn.uscc``
otherwise) — the peer — plus the hub's own scalar path. The peer runs on a sample (default
100,000) because it is ~30× slower; its rate is per identifier, so the figures compare.

    python -m bench.bench_normalize            # 1,000,000 identifiers
    python -m bench.bench_normalize --smoke    # 5,000, for tests
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

from identifiers import org_code, reg_no, resident_id, uscc
from identifiers._common import region_codes

_FULL = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def _base_codes(rng: random.Random, n: int) -> list[str]:
    regions = sorted(c for c in region_codes() if not c.endswith("00"))
    out: list[str] = []
    for _ in range(n):
        pick = rng.random()
        region = rng.choice(regions)
        if pick < 0.55:
            born = f"{rng.randint(1950, 2007)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            body = f"{region}{born}{rng.randint(0, 999):03d}"
            out.append(body + resident_id.calc_check_digit(body))
        elif pick < 0.65:
            out.append(
                f"{region}{rng.randint(30, 98):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
                f"{rng.randint(0, 999):03d}"
            )
        elif pick < 0.85:
            org = "".join(rng.choice(uscc.ALPHABET) for _ in range(8))
            body = f"9{rng.choice('123')}{region}{org}{org_code.calc_check_digit(org)}"
            out.append(body + uscc.calc_check_digit(body))
        elif pick < 0.92:
            org = f"{rng.randint(10_000_000, 99_999_999)}"
            out.append(org + org_code.calc_check_digit(org))
        else:
            body = f"{region}{rng.randint(0, 10**8 - 1):08d}"
            out.append(body + reg_no.calc_check_digit(body))
    return out


def _dirty(rng: random.Random, code: str) -> str:
    roll = rng.random()
    if roll < 0.01:  # wrong check character
        return code[:-1] + ("0" if code[-1] != "0" else "1")
    if roll < 0.04:
        return code.lower()
    if roll < 0.06:
        return "".join(_FULL.get(c, c) for c in code)
    if roll < 0.09:
        return f"{code[:6]} {code[6:]}" if len(code) > 9 else f"{code[:8]}-{code[8:]}"
    return code


def make_data(n: int, seed: int = 4) -> list[str]:
    """``n`` mixed identifiers: resident ids (18 and 15 digits), USCCs, organisation codes,
    registration numbers; about 10% dirty (case, full width, separators) and 1% wrong checks."""
    rng = random.Random(seed)
    base = _base_codes(rng, min(n, 50_000))
    return [_dirty(rng, base[rng.randrange(len(base))]) for _ in range(n)]


def _stdnum_loop(codes: list[str]) -> int:
    from stdnum.cn import ric
    from stdnum.cn import uscc as stdnum_uscc

    valid = 0
    for code in codes:
        compact = code.replace(" ", "").replace("-", "")
        ok = ric.is_valid(code) if compact[:17].isdigit() else stdnum_uscc.is_valid(code)
        valid += ok
    return valid


def run(n: int, sample: int) -> dict[str, Any]:
    """The figures: ``n`` identifiers through the vectorised path (wall and CPU rates, kinds, valid), a
    ``sample`` of them through python-stdnum's loop and the hub's scalar ``normalize`` (rates, valid)."""
    from identifiers.normalize import normalize
    from identifiers.vectorized import normalize_many

    codes = make_data(n)
    normalize_many(codes[:1000])  # warm the lookup tables

    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    frame = normalize_many(codes)
    vec_s, vec_cpu = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    peer_valid = _stdnum_loop(codes[:sample])
    peer_rate, peer_cpu_rate = sample / (time.perf_counter() - t0), sample / (time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    for code in codes[:sample]:
        normalize(code)
    scalar_rate, scalar_cpu_rate = sample / (time.perf_counter() - t0), sample / (time.process_time() - c0)
    scalar_valid = sum(bool(normalize(code)["valid"]) for code in codes[:sample])  # outside the clock

    return {
        "n": n,
        "sample": sample,
        "load": load,
        "rows": len(frame),
        "kinds": {str(k): int(v) for k, v in frame["kind"].value_counts().to_dict().items()},
        "valid": int(frame["valid"].sum()),
        "sample_valid": int(frame["valid"].iloc[:sample].sum()),
        "vec_s": vec_s,
        "vec_rate": n / vec_s,
        "vec_cpu_rate": n / vec_cpu,
        "peer_rate": peer_rate,
        "peer_cpu_rate": peer_cpu_rate,
        "peer_valid": peer_valid,
        "scalar_rate": scalar_rate,
        "scalar_cpu_rate": scalar_cpu_rate,
        "scalar_valid": scalar_valid,
        "met": n / vec_cpu >= 500_000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--peer-sample", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny run (5,000 identifiers)")
    args = parser.parse_args(argv)
    n = 5_000 if args.smoke else args.n
    sample = min(n, 1_000 if args.smoke else args.peer_sample)

    f = run(n, sample)
    vec_rate, vec_cpu_rate = f["vec_rate"], f["vec_cpu_rate"]
    kinds = f["kinds"]
    print(f"normalize: {n:,} mixed identifiers ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})")
    print(
        f"  (load average {f['load']:.1f} on {os.cpu_count()} cores: wall-clock rates suffer when the machine is "
        "shared; CPU-time rates are the code's own cost)"
    )
    print(f"  {'':32} {'wall ids/s':>12} {'CPU ids/s':>12}")
    print(
        f"  hub vectorised normalize_many  {vec_rate:12,.0f} {vec_cpu_rate:12,.0f}   ({f['vec_s']:.2f} s wall, valid "
        f"{f['valid']:,})"
    )
    print(f"  python-stdnum is_valid loop    {f['peer_rate']:12,.0f} {f['peer_cpu_rate']:12,.0f}   (sample {sample:,})")
    scalar_rate, scalar_cpu_rate = f["scalar_rate"], f["scalar_cpu_rate"]
    print(f"  hub scalar normalize loop      {scalar_rate:12,.0f} {scalar_cpu_rate:12,.0f}   (sample {sample:,})")
    met = f["met"]
    print(
        f"  speed-up vs stdnum (CPU)       {vec_cpu_rate / f['peer_cpu_rate']:12.1f}x   target ≥ 500,000/s: "
        f"{'met' if met else 'NOT met'} (wall {'met' if vec_rate >= 500_000 else 'not met'})"
    )
    return 0 if met or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
