"""How many processes a run may use, without importing what the processes need.

The ``b12drugs`` command asks this for every run (``[engine] workers`` unset), also for
runs of messages that never load polars: so it lives apart from
:mod:`b12drugs.engines.workers`.
"""

from __future__ import annotations

import os

#: Most processes used by default (more rarely pays: the reading is one process).
MAX_DEFAULT = 4


def default_workers() -> int:
    """One process per core this process may run on (its CPU affinity, so a container
    limited to some cores gets that many), at most :data:`MAX_DEFAULT`."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_DEFAULT))
