"""Parser throughput of the ncpdp input format (messages/s), median of several runs.

Usage::

    python plugins/b12drugs-ncpdp/benchmarks/bench_ncpdp.py [--messages 10000] [--runs 5]

Two layouts are timed: a container document (``<Messages>``) and the same messages
concatenated one after another, each a full 2017071 NewRx (~1.2 KB, 39 elements) for
its own patient.  Only parsing is timed (the XML is built in memory first); screening
throughput belongs to the core benchmarks.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from b12drugs_ncpdp import NcpdpReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import ncpdp_helpers as h


def build(n: int, layout: str) -> bytes:
    msgs = [h.message_2017071(f"M{i}", patient=h.patient_2017071(f"P{i}")) for i in range(n)]
    xml = h.container(msgs) if layout == "container" else h.concatenated(msgs)
    return xml.encode()


def run(data: bytes, expected: int) -> float:
    start = time.perf_counter()
    records = NcpdpReader().parse(io.BytesIO(data), "bench")
    orders = sum(1 for r in records if type(r).__name__ == "Order")
    elapsed = time.perf_counter() - start
    assert orders == expected, orders
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for layout in ("container", "concatenated"):
        data = build(args.messages, layout)
        times = [run(data, args.messages) for _ in range(args.runs)]
        med = statistics.median(times)
        print(f"ncpdp {layout:12s} {args.messages} messages ({len(data) / 1e6:.1f} MB): "
              f"median {med:.2f} s = {args.messages / med:,.0f} messages/s "
              f"({len(data) / 1e6 / med:.1f} MB/s) over {args.runs} runs")


if __name__ == "__main__":
    main()
