"""Reliability soak of the CDS Hooks service (issue 15): N clients with mixed good and
bad traffic, counting requests sent, answers by status, cards received and cards the
audit log records as delivered or not.

    python plugins/b12drugs-cdshooks/benchmarks/soak_cdshooks.py [--clients 8]
        [--requests 200] [--runs 3] [--max-seconds 60]

Each run serves the app with uvicorn (one worker, httptools) in a process of its own on
127.0.0.1 (in a thread of the clients' process, the GIL hand-offs alone cost a
sequential client 40 ms a call instead of 1.6 ms),
unauthenticated (``--insecure-no-auth`` mode: the JWT path is measured by
``bench_cdshooks.py --auth``; here the subject is what happens after it), with the audit
log in a temporary SQLite file.  ``--clients`` client processes, each with its own
keep-alive connection, send ``--requests`` requests in a fixed mix per cycle of ten:

* 6 order-sign calls drafting metformin with full prefetch (200, cards),
* 1 the same with a lone surrogate escape in the drug text (200, cards: issue 15 #4),
* 1 with an integer of 5,000 digits in the draft order (400),
* 1 with ``Content-Type: text/plain`` (415),
* 1 sent on a raw socket that hangs up before reading the answer.

Invariants checked (the run fails if one breaks): no 5xx; every card a client received
is in the audit log as ``delivered``; cards recorded as delivered but never received
come only from the hang-ups.  Bounded by the request count and ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from b12drugs_cdshooks import create_app

from b12drugs.config import Config

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
PATH = "/cds-services/b12drugs-order-sign"


def base_body() -> dict[str, Any]:
    danae = json.loads((DATA / "synthea_metformin_neuropathy.json").read_text("utf-8"))
    meds = danae["medicationRequests"]
    metformin = next(m for m in meds if "Metformin" in m["medicationCodeableConcept"]["text"])
    others = [m for m in meds if m is not metformin]

    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}

    return {
        "hook": "order-sign",
        "hookInstance": "",
        "context": {"userId": "Practitioner/soak", "patientId": "danae",
                    "draftOrders": bundle([dict(metformin, id="draft-1", status="draft")])},
        "prefetch": {"patient": danae["patient"], "medications": bundle(others),
                     "conditions": bundle(danae["conditions"]), "labs": None},
    }


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    status: Counter[int] = field(default_factory=Counter)
    received: set[str] = field(default_factory=set)
    hangup_instances: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_process(url: str, port: int, n: int, count: int, seconds: float
                   ) -> dict[str, Any]:
    """One client, in its own process: its tally as plain data."""
    tally = Tally()
    client(url, port, n, count, tally, time.monotonic() + seconds)
    return {"sent": dict(tally.sent), "status": dict(tally.status),
            "received": sorted(tally.received), "hangups": sorted(tally.hangup_instances),
            "latencies": tally.latencies, "errors": tally.errors}


class HTTPConnection:
    """A minimal keep-alive HTTP/1.1 client: head and body in one write.

    ``requests`` writes the head and the body separately, and the second write waits
    for the server's delayed ACK (about 40 ms on Linux): the soak would time that, not
    the service.  Reads exactly ``Content-Length`` bytes of each answer.
    """

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self._read()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines[1:]
                      if line.lower().startswith("content-length:"))
        while len(self.buf) < length:
            self._read()
        answer, self.buf = self.buf[:length], self.buf[length:]
        return status, answer

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def client(url: str, port: int, n: int, count: int, tally: Tally, deadline: float) -> None:
    body = base_body()
    text = body["context"]["draftOrders"]["entry"][0]["resource"][
        "medicationCodeableConcept"]["text"]
    conn = HTTPConnection(port)
    for i in range(count):
        if time.monotonic() > deadline:
            return
        kind = i % 10
        instance = str(uuid.uuid4())
        body["hookInstance"] = instance
        raw = json.dumps(body)
        ctype = "application/json"
        label = "good"
        if kind == 6:
            label = "surrogate"
            raw = raw.replace(json.dumps(text), json.dumps(text)[:-1] + '\\ud800"')
        elif kind == 7:
            label = "huge-int"
            raw = raw.replace('"status": "draft"', '"status": "draft", "x": ' + "9" * 5000)
        elif kind == 8:
            label = "text/plain"
            ctype = "text/plain"
        elif kind == 9:
            label = "hang-up"
            payload = raw.encode()
            head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head.encode() + payload)
            with tally.lock:
                tally.sent[label] += 1
                tally.hangup_instances.add(instance)
            continue
        started = time.perf_counter()
        try:
            status, answer = conn.post(PATH, raw.encode(), ctype)
        except (OSError, ValueError, StopIteration):
            with tally.lock:
                tally.sent[label] += 1
                tally.errors += 1
            conn.close()
            conn = HTTPConnection(port)
            continue
        elapsed = time.perf_counter() - started
        cards = json.loads(answer).get("cards", []) if status == 200 else []
        with tally.lock:
            tally.sent[label] += 1
            tally.status[status] += 1
            tally.received.update(c["uuid"] for c in cards)
            tally.latencies.append(elapsed)
    conn.close()


def serve(port: int, audit: str) -> None:
    """The server process: the app under uvicorn until SIGTERM (which closes the audit
    log, writing every queued card record)."""
    logging.basicConfig(level=logging.ERROR)
    app = create_app(Config(plugin={"cdshooks": {"audit_db": audit}}), insecure_no_auth=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", lifespan="on",
                http="httptools")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in sock.recv(100):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def run_once(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit.sqlite3"
        port = _free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(audit)])
        _wait_until_up(port)
        url = f"http://127.0.0.1:{port}"
        tally = Tally()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.clients) as pool:
            pool.apply(time.sleep, (0,))  # the workers are up before the clock starts
            started = time.perf_counter()
            parts = pool.starmap(client_process, [
                (url, port, n, args.requests, args.max_seconds) for n in range(args.clients)])
            elapsed = time.perf_counter() - started
        for part in parts:
            tally.sent.update(part["sent"])
            tally.status.update({int(k): v for k, v in part["status"].items()})
            tally.received.update(part["received"])
            tally.hangup_instances.update(part["hangups"])
            tally.latencies.extend(part["latencies"])
            tally.errors += part["errors"]
        time.sleep(0.5)  # hang-ups still being answered
        proc.send_signal(signal.SIGTERM)  # the audit log is closed: every record written
        proc.wait(30)
        db = sqlite3.connect(str(audit))
        rows = db.execute("SELECT card_uuid, hook_instance, delivery FROM cards").fetchall()
        db.close()
        delivered = {u for u, _, d in rows if d == "delivered"}
        failed = {u for u, _, d in rows if d == "send-failed"}
        from_hangups = {u for u, h, _ in rows if h in tally.hangup_instances}
        extra = delivered - tally.received
        lat = sorted(tally.latencies) or [0.0]
        answered = sum(tally.status.values())
        ok = (not any(s >= 500 for s in tally.status) and tally.errors == 0
              and tally.received <= delivered and extra <= from_hangups)
        return {
            "sent": sum(tally.sent.values()), "answered": answered,
            "s200": tally.status[200], "s400": tally.status[400], "s415": tally.status[415],
            "s5xx": sum(v for k, v in tally.status.items() if k >= 500),
            "hangups": tally.sent["hang-up"], "cards_rx": len(tally.received),
            "rec_deliv": len(delivered), "rec_failed": len(failed),
            "rx_unrec": len(tally.received - delivered),
            "req_per_s": answered / elapsed, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "ok": float(ok),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="per client")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "AUDIT_DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    logging.basicConfig(level=logging.ERROR)
    results = [run_once(args) for _ in range(args.runs)]
    keys = list(results[0])
    print("run  " + " ".join(f"{k:>10}" for k in keys))
    for i, r in enumerate(results, 1):
        print(f"{i:<4} " + " ".join(f"{r[k]:>10.1f}" if isinstance(r[k], float) else
                                    f"{r[k]:>10}" for k in keys))
    med = {k: statistics.median(r[k] for r in results) for k in keys}
    print("med  " + " ".join(f"{med[k]:>10.1f}" for k in keys))
    print(json.dumps({"median": med}))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
