"""Benchmark the hl7v2 plugin: parse throughput and MLLP listener round trips.

    python plugins/b12drugs-hl7v2/benchmarks/bench_hl7v2.py [--messages 10000] [--runs 5]
                                                             [--listener-messages 300]

Reports medians over ``--runs`` runs:

* ``parse``: messages/s of the ``hl7v2`` parser alone on a file of ``--messages``
  synthetic RDE/RDS/OMP messages (3.5 MB for 10,000), records consumed and dropped;
* ``screen``: messages/s of the same file through the whole engine
  (:func:`b12drugs.engines.screen_inputs`, offline resolver);
* ``listener``: messages/s of round trips (send, screen, deliver to a JSON Lines sink,
  ACK) with one client on one connection to a listener on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from b12drugs_hl7v2.client import MLLPClient
from b12drugs_hl7v2.listener import BackgroundListener
from b12drugs_hl7v2.reader import parse
from b12drugs_hl7v2.samples import synthetic_stream

from b12drugs.config import Config, PolicyConfig
from b12drugs.engines import screen_inputs


def _median_rate(n: int, times: list[float]) -> float:
    return n / statistics.median(times)


def bench_parse(data: bytes, n: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _rec in parse(io.BytesIO(data), "bench.hl7"):
            pass
        times.append(time.perf_counter() - t)
    return _median_rate(n, times)


def bench_screen(path: Path, n: int, runs: int, config: Config) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        report = screen_inputs([path], "hl7v2", config=config)
        times.append(time.perf_counter() - t)
        assert report.counts.read == n, report.counts
    return _median_rate(n, times)


def bench_listener(n: int, runs: int, config: Config, sink: Path) -> float:
    messages = list(synthetic_stream(n))
    times = []
    bg = BackgroundListener(config=config, sink_path=str(sink))
    with bg, MLLPClient(bg.host, bg.port) as client:
        client.send(messages[0])  # warm-up: loads the knowledge base
        for _ in range(runs):
            t = time.perf_counter()
            for raw in messages:
                ack = client.send(raw)
                assert ack.code == "AA", ack
            times.append(time.perf_counter() - t)
    return _median_rate(n, times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--listener-messages", type=int, default=300)
    args = ap.parse_args()
    config = Config(policy=PolicyConfig(as_of=date(2025, 1, 1)))
    data = b"".join(synthetic_stream(args.messages))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.hl7"
        path.write_bytes(data)
        parse_rate = bench_parse(data, args.messages, args.runs)
        screen_rate = bench_screen(path, args.messages, max(1, args.runs // 2), config)
        listener_rate = bench_listener(
            args.listener_messages, max(1, args.runs // 2), config, Path(tmp) / "alerts.jsonl"
        )
    print(f"python {sys.version.split()[0]}; {args.messages} messages, {len(data) / 1e6:.1f} MB")
    print(f"parse     {parse_rate:10.0f} messages/s (median of {args.runs})")
    print(f"screen    {screen_rate:10.0f} messages/s (median of {max(1, args.runs // 2)})")
    print(
        f"listener  {listener_rate:10.1f} messages/s round trip, one client "
        f"({args.listener_messages} messages, median of {max(1, args.runs // 2)})"
    )


if __name__ == "__main__":
    main()
