"""Partitions assessed in worker processes beside this one, on a machine's other cores.

The last step of a large columnar run is Python: every patient with findings goes
through the risk-factor hooks and the rules (:mod:`b12drugs.assess.case`), tens of
microseconds each, one core busy while the others wait.  The held rows are already
split by patient into partitions on disk (:class:`~b12drugs.engines.spill.PartitionStore`),
and a partition needs nothing but its own files and what the feed learnt (the class
hits of each drug, the names of the inputs), so other processes can assess some of them:
the work moves to the idle cores instead of being shaved.

How:

* The workers are started (``spawn``, a fresh interpreter: forking a process whose
  polars and pyarrow thread pools are running is not safe) when the run first writes
  held rows to disk, so their start-up overlaps the rest of the feed.  Each builds its
  own runtime from the run's configuration and the installed plugins.
* This process assesses partitions from the front of the list and hands them to the
  workers from the back, a few at a time, so nobody waits long at the end.
* A worker writes its alerts as one sorted run of compact JSON to the run's temporary
  folder (merged with the others by position, as the spool does) and sends back its
  notices, tallies and plugin problems (:class:`~b12drugs.engines.partition.PartitionResult`).
* Workers ignore Ctrl-C; this process stops them on every way out (tasks not yet
  started are dropped, a running one is waited for: at most one partition each).

Workers are used only when they can give the same report: plugins from entry points
and builtins only (a plugin registered in code in this process is not in a fresh
interpreter, as on Spark's executors), the runtime's own knowledge base, and a run that
spilled to disk (a run that fits in memory is too small to pay for a start-up of about
half a second).  ``[engine] workers`` sets how many processes assess (this one
included); the command's default is one per core, at most 4
(:func:`~b12drugs.engines.cores.default_workers`).
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from ..errors import PluginError
from ..models import Alert, ClassHit, PatientContext
from .partition import PartitionAssessor, PartitionResult
from .spill import read_partition, write_run

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from ..config import Config
    from ..plugins import PluginManager
    from .spill import AlertSpool

_ALERT = TypeAdapter(Alert)
#: Partitions in flight per worker.
DEPTH = 2


@dataclass(frozen=True)
class Task:
    """One partition for a worker: its folder, where its alerts go, and the part of
    the feed's knowledge it needs."""

    folder: Path
    alerts: Path
    hits: dict[int, tuple[ClassHit, ...]]
    inputs: list[tuple[str, str]]
    contexts: dict[str, list[tuple[int, PatientContext]]]


class Workers:
    """A pool of ``n`` worker processes, started on :meth:`start`, stopped on :meth:`close`."""

    def __init__(self, n: int, config: Config, manager: PluginManager, limit: int,
                 as_of: date):
        self.n = n
        self._init = (config, manager.strict, manager.entry_points, manager.active(), limit,
                      as_of)
        self._pool: ProcessPoolExecutor | None = None
        #: partitions the workers assessed (for the tests and the benchmark)
        self.assessed = 0

    def start(self) -> None:
        """Start the workers now (a first, empty task makes each start and build its
        runtime), so that their start-up overlaps what this process still does."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.n, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=self._init)
            for _ in range(self.n):
                self._pool.submit(_ready)

    def close(self) -> None:
        """Stop the workers: tasks not started are dropped, running ones (one partition
        each, at most) are waited for, so that no worker writes into a folder being
        removed.  (``concurrent.futures`` rather than ``multiprocessing.Pool``:
        ``Pool.terminate`` can hang when Ctrl-C arrives while it hands out a task.)"""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def assess(self, folders: list[Path], local: PartitionAssessor, spool: AlertSpool,
               hits: Mapping[int, tuple[ClassHit, ...]], inputs: list[tuple[str, str]],
               contexts: Mapping[str, dict[str, list[tuple[int, PatientContext]]]],
               ) -> Iterator[PartitionResult]:
        """The partitions in ``folders`` assessed, here (from the front) and by the
        workers (from the back); results in the order they are done.  ``contexts``:
        context records by partition folder name."""
        self.start()
        assert self._pool is not None
        todo = deque(folders)
        busy: deque[Future[PartitionResult]] = deque()
        while todo or busy:
            while todo and len(busy) < DEPTH * self.n:
                folder = todo.pop()
                task = Task(folder, folder.parent / f"alerts-{folder.name}.jsonl",
                            {oid: hits[oid] for oid in _oids(folder)}, inputs,
                            dict(contexts.get(folder.name, {})))
                busy.append(self._pool.submit(_work, task))
            while busy and busy[0].done():
                self.assessed += 1
                yield busy.popleft().result()
            if todo:
                findings, patients = read_partition(todo.popleft())
                yield local.assess(findings, patients, spool.add)
                spool.end_run()
            elif busy:
                self.assessed += 1
                yield busy.popleft().result()


def _oids(folder: Path) -> list[int]:
    import polars as pl

    return pl.scan_parquet(sorted(folder.glob("findings-*.parquet"))).select(
        pl.col("_oid").unique()).collect()["_oid"].to_list()


# -- in the worker process ---------------------------------------------------------

_STATE: dict[str, Any] = {}


def _start_worker(config: Config, strict: bool, entry_points: bool, plugins: tuple[str, ...],
                  limit: int, as_of: date) -> None:
    """A worker's runtime: this run's configuration, the installed plugins (the same
    ones as the run's process).  What goes wrong here is kept, and every task of this
    worker fails saying so (an initializer that raised would break the whole pool with
    a message that names nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from ..assess.case import Assessor
    from ..plugins import PluginManager
    from .runtime import Runtime

    try:
        manager = PluginManager(strict=strict, entry_points=entry_points)
        if manager.active() != plugins:
            _STATE["failed"] = (
                "a worker process loaded other plugins than the run's process (worker: "
                f"{', '.join(manager.active())}; run: {', '.join(plugins)}); set "
                "[engine] workers = 1")
            return
        runtime = Runtime(config, manager)
    except Exception as exc:
        _STATE["failed"] = (f"a worker process could not start ({type(exc).__name__}: "
                            f"{str(exc)[:300]}); set [engine] workers = 1")
        return
    _STATE["runtime"] = runtime
    _STATE["assessor"] = Assessor(runtime.hooks, runtime.kb, runtime.rules, config, as_of)
    _STATE["limit"] = limit


def _ready() -> None:
    """The first task of a worker: nothing, once its runtime is built."""


def _work(task: Task) -> PartitionResult:
    if "failed" in _STATE:
        raise PluginError(_STATE["failed"])
    hooks = _STATE["runtime"].hooks
    parts = PartitionAssessor(_STATE["assessor"], task.hits, task.inputs, task.contexts,
                              _STATE["limit"])
    findings, patients = read_partition(task.folder)
    alerts: list[tuple[int, int, bytes]] = []
    mark = hooks.problems.mark()

    def add(seq: int, alert: Alert) -> None:
        alerts.append((seq, len(alerts), _ALERT.dump_json(alert)))

    result = parts.assess(findings, patients, add)
    write_run(task.alerts, alerts)
    result.alerts = task.alerts
    result.problems = hooks.problems.since(mark)
    return result
