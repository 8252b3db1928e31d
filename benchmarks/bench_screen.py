"""End-to-end screening benchmark: rows/second and peak memory of a CSV dispensing run.

Each measurement runs in a fresh child process pinned to one CPU core, which runs the
command ``b12drugs screen FILE --format json --output OUT`` in-process (the same code
path, with the command's garbage-collection policy) and reports its own wall time and
peak resident memory.  The clock starts after the imports (the engine's too) and the
plugin manager (the command's start-up, about 0.2 s) and stops when the JSON report is
written.  Prints the median of ``--runs`` runs per file.

    python benchmarks/bench_screen.py --rows 250000 1000000 --runs 3
    python benchmarks/bench_screen.py --rows 1000000 --b12-share 0.005   # memory vs alerts
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_dispensing import generate  # noqa: E402

CHILD = r"""
import json, os, resource, sys, tempfile, time
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
import b12drugs.engines
from b12drugs.cli import cli
from b12drugs.plugins import get_plugin_manager
get_plugin_manager()
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "report.json")
    t0 = time.perf_counter()
    cli.main(["screen", sys.argv[1], "--format", "json", "--output", out, "--fail-on", "never"],
             standalone_mode=False)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the check
    with open(out, encoding="utf-8") as fh:
        report = json.load(fh)
print(json.dumps({"seconds": elapsed, "peak_mib": peak, "read": report["counts"]["read"],
                  "alerts": len(report["alerts"]), "notices": len(report["notices"])}))
"""


def measure(path: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--b12-share", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    print(f"{'rows':>10} {'b12 share':>9} {'median s':>9} {'rows/s':>10} {'peak MiB':>9} "
          f"{'alerts':>7}  runs (s)")
    for rows in args.rows:
        path = args.out / f"dispensing-{rows}-{args.b12_share}.csv"
        if not path.exists():
            generate(rows, path, b12_share=args.b12_share)
        runs = [measure(path) for _ in range(args.runs)]
        secs = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mib"] for r in runs)
        each = ", ".join(format(r["seconds"], ".2f") for r in runs)
        print(f"{rows:>10} {args.b12_share:>9} {secs:>9.2f} {rows / secs:>10,.0f} {peak:>9.0f} "
              f"{int(runs[0]['alerts']):>7}  {each}")


if __name__ == "__main__":
    main()
