"""Benchmark: RxNav resolution of 100,000 orders with 2,000 distinct product codes.

Runs the RxNav emulator (``tests/rxnav_emulator.py``) in this process on 127.0.0.1 and
resolves the orders twice per repetition: on a cold cache (a fresh SQLite file) and on
a warm one (a new client on the same file).  Counts HTTP requests per endpoint at the
server, checks that no URL was asked twice on the cold run (at most one request per
distinct concept per endpoint) and that the warm run asks nothing, and reports wall
times (median of ``--repeat`` runs).

Modes: ``resolver`` (default) deduplicates the orders into DrugQuery objects and calls
the RxNav resolver directly; ``engine`` runs :func:`b12drugs.engines.screen` with only
RxNav enabled, so the time includes the engine's own work.

The public RxNav allows 20 requests/s; the emulator is local, so the default limit
here is 2,000/s (as a local RxNav-in-a-Box would allow).  ``--rate 20`` shows the
public-service cost (requests / 20 seconds on a cold cache).

    python benchmarks/bench_rxnav.py [--orders 100000] [--codes 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rxnav_emulator import EmulatorData, RxNavEmulator, endpoint

from b12drugs.config import Config, RxNavConfig
from b12drugs.models import NDC_SYSTEM, RXNORM_SYSTEM, Coding, DrugQuery, Order
from b12drugs.resolve.rxnav import RxNavClient
from b12drugs.resolve.rxnav_resolver import ConceptResolver


def make_orders(data: EmulatorData, n_orders: int, n_codes: int, seed: int = 7) -> list[Order]:
    """``n_orders`` orders over ``n_codes`` distinct product codes: every product RxCUI
    of the emulator, topped up with (fake) product NDCs."""
    products = sorted(r for r, c in data.concepts.items() if c.tty != "IN"
                      and not r.startswith("99"))
    codes = [Coding(system=RXNORM_SYSTEM, code=r) for r in products[:n_codes]]
    for ndc, _rx in data.product_ndcs:
        if len(codes) >= n_codes:
            break
        codes.append(Coding(system=NDC_SYSTEM, code=ndc))
    if len(codes) < n_codes:
        raise SystemExit(f"the emulator has only {len(codes)} distinct product codes")
    rng = random.Random(seed)
    order_codes = codes + [rng.choice(codes) for _ in range(n_orders - len(codes))]
    rng.shuffle(order_codes)
    return [Order(id=f"o{i}", patient_id=f"p{i % 20000}", codings=(c,), status="active")
            for i, c in enumerate(order_codes)]


def run_resolver(config: RxNavConfig, orders: list[Order]) -> tuple[float, int]:
    t0 = time.perf_counter()
    client = RxNavClient(config)
    try:
        queries = list(dict.fromkeys(DrugQuery.from_order(o) for o in orders))
        out = ConceptResolver(client).resolve(queries)
        resolved = sum(1 for r in out.values() if r.resolved)
    finally:
        client.close()
    return time.perf_counter() - t0, resolved


def run_engine(config: RxNavConfig, orders: list[Order]) -> tuple[float, int]:
    from b12drugs.engines import screen

    t0 = time.perf_counter()
    report = screen(orders, config=Config(rxnav=config))
    unresolved = sum(1 for n in report.notices if n.kind in ("unresolved", "source_unavailable"))
    return time.perf_counter() - t0, report.counts.screened - unresolved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--codes", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--mode", choices=("resolver", "engine"), default="resolver")
    args = ap.parse_args(argv)

    data = EmulatorData.load()
    orders = make_orders(data, args.orders, args.codes)
    run = run_resolver if args.mode == "resolver" else run_engine
    cold_times: list[float] = []
    warm_times: list[float] = []
    cold_counts: Counter[str] = Counter()
    max_per_url = 0
    warm_requests = 0
    resolved = 0
    with RxNavEmulator(data) as em:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                config = RxNavConfig(enabled=True, base_url=em.base_url,
                                     cache_path=str(Path(tmp) / "rxnav.sqlite"),
                                     rate_limit=args.rate, max_workers=args.workers)
                em.reset_log()
                elapsed, resolved = run(config, orders)
                cold_times.append(elapsed)
                cold_counts = em.by_endpoint()
                per_url = Counter(f"{r.path}?{r.query}" for r in em.requests)
                max_per_url = max(per_url.values())
                em.reset_log()
                elapsed, _ = run(config, orders)
                warm_times.append(elapsed)
                warm_requests = len(em.requests)

    table: list[tuple[str, Any]] = [
        ("orders", args.orders), ("distinct product codes", args.codes),
        ("resolved (distinct queries / screened orders)", resolved),
        ("mode", args.mode), ("rate limit (req/s)", args.rate), ("workers", args.workers),
    ]
    print("\n".join(f"{k:<48} {v}" for k, v in table))
    print(f"\n{'endpoint':<40} {'cold requests':>14}")
    for ep, n in sorted(cold_counts.items()):
        print(f"{ep:<40} {n:>14}")
    total = sum(cold_counts.values())
    print(f"{'total':<40} {total:>14}")
    print(f"\nmax requests for one URL (cold)          {max_per_url}  (target 1)")
    print(f"requests on the warm run                 {warm_requests}  (target 0)")
    print(f"cold wall time, median of {args.repeat}            "
          f"{statistics.median(cold_times):.2f} s  {[round(t, 2) for t in cold_times]}")
    print(f"warm wall time, median of {args.repeat}            "
          f"{statistics.median(warm_times):.2f} s  {[round(t, 2) for t in warm_times]}")
    print(f"cold cost at the public 20 req/s          >= {total / 20:.0f} s")
    _ = endpoint  # the emulator's endpoint labels are used by by_endpoint()


if __name__ == "__main__":
    main()
