"""Reading one batch ahead, in a thread, while the engine screens the batch before.

A table's batches cost two kinds of work: parsing and checking them (pyarrow's CSV
reader, polars' column checks), and screening them (joins with the run's drugs, notices,
held rows).  Both run mostly in native code that releases the GIL, so on a machine with
two cores they can overlap: :func:`read_ahead` pulls the reader's batches in a
background thread, at most ``depth`` ahead of the consumer.  Measured on the 1M-row
benchmark this takes about a fifth off the time spent feeding the columnar engine
(BENCHMARKS.md).

The reader's exceptions reach the consumer unchanged, in their place: an ``InputError``
after the batches read before it, as without the thread.  When the consumer stops early
(an error, Ctrl-C, or it has seen enough), the thread is told to stop and joined before
:func:`read_ahead` returns, so it never reads from a stream its owner has closed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced in a background thread at most ``depth`` ahead."""
    ready: queue.Queue[tuple[bool, object]] = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:  # a generator stopped early runs its finally blocks
                close()

    thread = threading.Thread(target=produce, name="b12drugs-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                assert isinstance(item, BaseException)
                raise item
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
