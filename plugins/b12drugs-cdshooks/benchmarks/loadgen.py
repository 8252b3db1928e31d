"""A small closed-loop HTTP/1.1 load generator (asyncio streams, keep-alive).

Run as its own process so that client work does not share the server's interpreter:

    python loadgen.py --url http://127.0.0.1:8081/cds-services/b12drugs-order-sign \
        --body request.json --concurrency 10 --duration 5 [--tokens tokens.txt]

Each of ``--concurrency`` clients keeps one connection and sends the next request as
soon as the previous answer is read.  Prints one JSON line: requests, errors,
throughput (req/s) and latency percentiles (ms).  Raw sockets keep the client cheap
(an httpx client costs about as much CPU per request as the server on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def _client(host: str, port: int, path: str, body: bytes, tokens: list[str],
                  token_index: list[int], stop_at: float, warm_until: float,
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            auth = ""
            if tokens:
                i = token_index[0]
                token_index[0] += 1
                if i >= len(tokens):  # never reuse a token: the replay check would refuse it
                    raise SystemExit("loadgen: ran out of tokens; sign more")
                auth = f"Authorization: Bearer {tokens[i]}\r\n"
            writer.write((head + auth + "\r\n").encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            elapsed = time.perf_counter() - now
            if now >= warm_until:
                latencies.append(elapsed * 1000)
                if b" 200 " not in status_line:
                    errors.append(1)
    finally:
        writer.close()


async def run(url: str, body: bytes, concurrency: int, duration: float, warmup: float,
              tokens: list[str]) -> dict[str, object]:
    parts = urlsplit(url)
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    warm_until = start + warmup
    stop_at = warm_until + duration
    token_index = [0]
    await asyncio.gather(*(
        _client(parts.hostname or "127.0.0.1", parts.port or 80, parts.path, body, tokens,
                token_index, stop_at, warm_until, latencies, errors)
        for _ in range(concurrency)
    ))
    values = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(values),
        "errors": len(errors),
        "throughput": round(len(values) / duration, 1),
        "p50": round(_percentile(values, 0.50), 2),
        "p95": round(_percentile(values, 0.95), 2),
        "p99": round(_percentile(values, 0.99), 2),
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="file with the JSON request body")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--tokens", help="file with one bearer token per line (each used once; "
                    "signed beforehand, so that signing takes no CPU during the run)")
    args = ap.parse_args()
    with open(args.body, "rb") as fh:
        body = fh.read()
    tokens: list[str] = []
    if args.tokens:
        with open(args.tokens, encoding="ascii") as fh:
            tokens = [t.strip() for t in fh if t.strip()]
    result = asyncio.run(run(args.url, body, args.concurrency, args.duration, args.warmup,
                             tokens))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
