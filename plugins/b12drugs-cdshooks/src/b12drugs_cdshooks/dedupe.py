"""Do not show the same card twice between order-select and order-sign of one encounter.

Like the PDDI-CDS implementation guide, a card already shown for the same patient,
encounter, prescriber, drug class and set of orders is not repeated within a time
window.  Only calls that name an encounter are de-duplicated: without one there is no
reliable "same ordering session", and showing a card twice is safer than hiding it.

The cache is in memory and never holds identifiers in clear: keys are keyed BLAKE2b
digests with a random per-process secret, so a memory dump does not reveal which
patients were seen (and a digest cannot be reversed by hashing candidate ids).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable


class DedupeCache:
    """A bounded TTL set of digests (oldest evicted first)."""

    def __init__(self, ttl_seconds: float, max_entries: int):
        self._ttl = ttl_seconds
        self._max = max_entries
        self._secret = os.urandom(32)
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, *, patient: str, encounter: str, user: str, kind: str,
            orders: Iterable[str]) -> bytes:
        h = hashlib.blake2b(key=self._secret, digest_size=20)
        for part in (patient, encounter, user, kind, *sorted(set(orders))):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.digest()

    def seen_before(self, key: bytes, now: float | None = None) -> bool:
        """True when ``key`` was recorded within the TTL; otherwise records it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expires = self._seen.get(key)
            if expires is not None and expires > now:
                return True
            self._seen[key] = now + self._ttl
            self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return False

    def forget(self, keys: Iterable[bytes]) -> None:
        """Drop ``keys``: their cards were never delivered, so they must show next time."""
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
