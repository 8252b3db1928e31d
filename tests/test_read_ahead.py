"""Reading ahead in a thread: same items, exceptions in their place, early stops clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from b12drugs.engines.ahead import read_ahead
from b12drugs.errors import InputError


def test_items_come_in_order_and_from_another_thread() -> None:
    threads: set[str] = set()

    def items() -> Iterator[int]:
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(items(), depth=3)) == list(range(100))
    assert threads == {"b12drugs-read-ahead"}


def test_an_error_comes_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise InputError("bad header", "f.csv:1")

    got: list[int] = []
    with pytest.raises(InputError, match="bad header"):
        for i in read_ahead(items()):
            got.append(i)
    assert got == [1, 2]


def test_stopping_early_stops_and_closes_the_reader() -> None:
    state = {"read": 0, "closed": False}

    def items() -> Iterator[int]:
        try:
            for i in range(10_000):
                state["read"] += 1
                yield i
        finally:
            state["closed"] = True

    before = threading.active_count()
    ahead = read_ahead(items(), depth=2)
    assert next(ahead) == 0
    ahead.close()  # the consumer stops (an error, Ctrl-C): the thread is joined
    assert state["closed"] and state["read"] <= 5
    assert threading.active_count() == before
