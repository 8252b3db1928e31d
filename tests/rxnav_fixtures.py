"""Helpers shared by the RxNav tests (plain functions; each test module wraps them in
its own fixtures so no shared conftest is needed)."""

from __future__ import annotations

import socket
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from rxnav_emulator import EmulatorData, RxNavEmulator

from b12drugs.config import RxNavConfig
from b12drugs.resolve.rxnav import RxNavClient


@cache
def emulator_data() -> EmulatorData:
    """Loaded once per test session; the emulator only reads it."""
    return EmulatorData.load()


def start_emulator() -> RxNavEmulator:
    return RxNavEmulator(emulator_data()).start()


def fast_config(base_url: str, cache_path: Path | None, **overrides: Any) -> RxNavConfig:
    """A config for tests: short timeouts and backoff, a high rate limit unless set."""
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": base_url,
        "timeout": 0.5,
        "retries": 3,
        "backoff": 0.01,
        "rate_limit": 1000.0,
        "max_workers": 8,
        "cache_path": str(cache_path) if cache_path else None,
        "failure_threshold": 3,
        "reset_after": 60.0,
    }
    values.update(overrides)
    return RxNavConfig(**values)


class ClientFactory:
    """Makes clients against one base URL and closes them all at the end of a test."""

    def __init__(self, base_url: str, tmp_path: Path):
        self.base_url = base_url
        self.tmp_path = tmp_path
        self.clients: list[RxNavClient] = []

    def __call__(self, *, cache: bool = True, cache_name: str = "rxnav.sqlite",
                 base_url: str | None = None, max_retry_after: float = 30.0,
                 **overrides: Any) -> RxNavClient:
        cfg = fast_config(base_url or self.base_url,
                          self.tmp_path / cache_name if cache else None, **overrides)
        client = RxNavClient(cfg, cache=cache, max_retry_after=max_retry_after)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for c in self.clients:
            c.close()


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/REST"


class AttemptCounter:
    """Counts the HTTP attempts a client puts on the wire (wraps its adapter's limiter),
    for servers that cannot count themselves (a closed port)."""

    def __init__(self, client: RxNavClient):
        self.count = 0
        self._lock = threading.Lock()
        for adapter in {client.session.get_adapter("http://x"),
                        client.session.get_adapter("https://x")}:
            inner = adapter.limiter  # type: ignore[attr-defined]
            adapter.limiter = self  # type: ignore[attr-defined]
            self._inner = inner

    def acquire(self) -> float:
        with self._lock:
            self.count += 1
        return float(self._inner.acquire())
