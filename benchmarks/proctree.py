"""Resident memory of a whole process tree, for benchmarks whose commands start other
processes (Spark's JVM and Python workers, the columnar engine's worker processes)."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants now (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * resource.getpagesize()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += [p for p, parent in parents.items() if parent == pid]
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None,
                 every: float = 0.1) -> tuple[float, float, float]:
    """Run ``cmd`` to its end: wall seconds, peak RSS of the largest process (MiB, from
    ``os.wait4``: the child and the descendants it waited for) and peak RSS of the whole
    process tree at one time (MiB, sampled every ``every`` seconds).

    :raises SystemExit: the command failed (exit code other than 0 and 1), with the end
        of its stderr.
    """
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child never blocks
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        tree = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            tree = max(tree, tree_rss(child.pid))
            time.sleep(every)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:4])} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, tree / (1 << 20)
