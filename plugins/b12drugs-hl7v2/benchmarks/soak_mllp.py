"""Reliability soak of the MLLP listener (issue 15): N senders with mixed good and bad
traffic, idle connections crowding the listener, and a stop with messages in flight.

    python plugins/b12drugs-hl7v2/benchmarks/soak_mllp.py [--clients 8] [--messages 250]
        [--idle 24] [--max-connections 16] [--runs 3] [--max-seconds 60]

Each run starts a real listener on 127.0.0.1 (a thread, the jsonl-file sink writing a
temporary file) and ``--clients`` sender threads, each sending ``--messages`` messages
on its own connection, in a fixed mix per cycle of ten:

* 6 good orders (metformin: AA and one alert each),
* 1 order whose drug field is broken (AE, no alert),
* 1 frame without MSH (AR),
* 1 frame cut short by a new start block, followed by a good order (AR for the cut
  one, then AA and one alert for the good one),
* 1 message of an unsupported type (AR).

Meanwhile ``--idle`` silent connections are opened and held, before the senders and
again while they work (more than the listener admits): they must be closed to admit
senders; the senders are never locked out.  The listener runs in a thread of this
process (as the tests run it), the senders in threads too: the latencies include GIL
hand-offs and are not those of ``bench_hl7v2.py``.  At the end the listener is
stopped while the last messages are in flight.

Counted: frames sent; ACKs received by code; frames without an answer (``missing``:
sent as the listener stopped, not read); alerts recorded in the sink file.  The run
fails unless recorded alerts == AA'd orders: no alert for a message its sender was not
told was screened (its resend would duplicate it), none AA'd and lost.  Bounded:
a fixed message count per sender and ``--max-seconds`` for the whole run.  Only
127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from b12drugs_hl7v2.client import MLLPClient
from b12drugs_hl7v2.listener import BackgroundListener

from b12drugs.config import Config, PolicyConfig


def message(control_id: str, *, msg_type: str = "RDE^O11^RDE_O11",
            rxe: str = "RXE|^QD|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|500||mg"
            ) -> bytes:
    segs = [f"MSH|^~\\&|PHARM|HOSP|B12|HOSP|20240101||{msg_type}|{control_id}|P|2.5",
            "PID|1||PAT1^^^HOSP^MR||Example^Test||19480315|F", "ORC|NW|ORD1", rxe]
    return ("\r".join(segs) + "\r").encode()


START, END = b"\x0b", b"\x1c\r"


@dataclass
class Tally:
    sent: int = 0
    good_sent: int = 0
    acks: Counter[str] = field(default_factory=Counter)
    missing: int = 0  # a frame sent whose ACK never came (connection closed)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender(port: int, n: int, count: int, tally: Tally, deadline: float) -> None:
    """Send ``count`` messages in the fixed mix; record every ACK."""
    try:
        client = MLLPClient("127.0.0.1", port, timeout=15)
    except OSError:
        return
    with client:
        for i in range(count):
            if time.monotonic() > deadline:
                return
            kind = i % 10
            cid = f"S{n}-{i}"
            if kind == 6:
                frames = [message(cid, rxe="RXE|^QD||1")]
            elif kind == 7:
                frames = [b"PID|1||X"]
            elif kind == 8:
                cut = message(cid + "C")
                frames = [cut[: cut.index(b"\r") + 12], message(cid)]
            elif kind == 9:
                frames = [message(cid, msg_type="ADT^A01^ADT_A01")]
            else:
                frames = [message(cid)]
            good = 1 if kind in (0, 1, 2, 3, 4, 5, 8) else 0
            started = time.perf_counter()
            if kind == 8:  # the cut frame and the good one in one write: START..START..END
                client.send_raw(START + frames[0] + START + frames[1] + END)
                expected = 2
            else:
                client.send_raw(START + frames[0] + END)
                expected = 1
            got = []
            try:
                for _ in range(expected):
                    got.append(client.receive().code)
            except (OSError, ValueError):
                with tally.lock:
                    tally.sent += expected
                    tally.good_sent += good
                    tally.missing += expected - len(got)
                    tally.acks.update(got)
                return
            with tally.lock:
                tally.sent += expected
                tally.good_sent += good
                tally.acks.update(got)
                tally.latencies.append(time.perf_counter() - started)


def run_once(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        sink = Path(tmp) / "alerts.jsonl"
        cfg = Config(policy=PolicyConfig(as_of=date(2025, 1, 1)))
        bg = BackgroundListener(config=cfg, sink_path=str(sink),
                                max_connections=args.max_connections,
                                max_connections_per_peer=args.max_connections,
                                idle_timeout=30, drain_timeout=5)
        bg.__enter__()
        tally = Tally()
        deadline = time.monotonic() + args.max_seconds
        idle: list[socket.socket] = []
        for _ in range(args.idle):  # silent connections first: they fill the listener
            idle.append(socket.create_connection(("127.0.0.1", bg.port), timeout=5))
        time.sleep(0.2)
        threads = [threading.Thread(target=sender,
                                    args=(bg.port, n, args.messages, tally, deadline))
                   for n in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        # more silent connections while the senders work
        for _ in range(args.idle):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", bg.port), timeout=5))
            time.sleep(0.01)
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            if sum(tally.acks.values()) >= 0.95 * args.clients * args.messages:
                break  # stop with the last messages in flight
            time.sleep(0.01)
        bg.__exit__(None, None, None)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 5)
        elapsed = time.perf_counter() - started
        for s in idle:
            s.close()
        stats = bg.listener.stats
        recorded = len(sink.read_text().splitlines()) if sink.exists() else 0
        acked = sum(tally.acks.values())
        lat = sorted(tally.latencies) or [0.0]
        return {
            "sent": tally.sent, "acked": acked, "missing": tally.missing,
            "AA": tally.acks["AA"], "AE": tally.acks["AE"], "AR": tally.acks["AR"],
            "recorded": recorded, "evicted": stats.evicted_connections,
            "refused": stats.refused_connections, "drained": stats.drained,
            "drain_ae": stats.drain_timeouts,
            "msg_per_s": acked / elapsed, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
            "ok": float(recorded == tally.acks["AA"]),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--messages", type=int, default=250, help="per client")
    ap.add_argument("--idle", type=int, default=24, help="silent connections, twice")
    ap.add_argument("--max-connections", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # evictions are expected here: not news
    results = [run_once(args) for _ in range(args.runs)]
    keys = list(results[0])
    print("run  " + " ".join(f"{k:>9}" for k in keys))
    for i, r in enumerate(results, 1):
        print(f"{i:<4} " + " ".join(f"{r[k]:>9.1f}" if isinstance(r[k], float) else
                                    f"{r[k]:>9}" for k in keys))
    med = {k: statistics.median(r[k] for r in results) for k in keys}
    print("med  " + " ".join(f"{med[k]:>9.1f}" for k in keys))
    print(json.dumps({"median": med}, indent=None))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
