"""End-to-end screening benchmark: whole processes, the engines against a polars floor.

For each size a dispensing export with patient columns (birth date, sex, conditions on
every row) is generated once (``benchmarks/out/``), then these commands run as whole
processes, in turn (A B C A B C ...), ``--runs`` times each:

* ``floor``: a polars read of the file and a join of its rows with a table of its
  distinct drugs, then the rows with findings grouped by patient: the least any tool
  must do to answer the question (``FLOOR`` below);
* ``columnar``: ``b12drugs screen FILE --format json --output OUT`` (the default engine
  for tables);
* ``columnar1``: the same with ``[engine] workers = 1`` (this process alone assesses
  the partitions; ``columnar`` uses a worker process per further core, at most 4);
* ``record``: the same with ``--engine record`` (skipped above ``--record-max`` rows);
* ``before``: the same command from another checkout (``--before SRC``, e.g. a
  ``git worktree`` of an older commit; its ``src`` goes first on ``PYTHONPATH``).

Each figure is the median wall time, the median peak resident memory of the largest
process (``os.wait4``) and of the whole process tree (sampled), and the ratio of each
run to the floor run of its round.

    python benchmarks/bench_screen.py --rows 1000000 10000000 --runs 3 --before ../old
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_dispensing import generate  # noqa: E402
from proctree import run_measured  # noqa: E402

FLOOR = r"""
import sys
import polars as pl
rows = pl.read_csv(sys.argv[1], infer_schema=False)
drugs = rows.select("drug_name").unique().with_columns(
    (pl.col("drug_name").hash(seed=1) % 20 == 0).alias("b12"))
found = rows.join(drugs, on="drug_name", how="left").filter(pl.col("b12"))
print(found.group_by("patient_id").len().height)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--b12-share", type=float, default=0.05)
    ap.add_argument("--before", type=Path, help="another checkout to compare with")
    ap.add_argument("--record-max", type=int, default=1_000_000,
                    help="largest file the record engine runs on (it is slow by design)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    for rows in args.rows:
        path = args.out / f"dispensing-{rows}-{args.b12_share}.csv"
        if not path.exists():
            generate(rows, path, b12_share=args.b12_share)
        with tempfile.TemporaryDirectory() as tmp:
            report = str(Path(tmp) / "report.json")
            screen = [py, "-m", "b12drugs", "screen", str(path), "-f", "json", "-o", report]
            one = Path(tmp) / "one-process.toml"
            one.write_text("[engine]\nworkers = 1\n")
            commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
                "floor": ([py, "-c", FLOOR, str(path)], None),
                "columnar": (screen, None),
                "columnar1": ([*screen, "--config", str(one)], None),
            }
            if rows <= args.record_max:
                commands["record"] = ([*screen, "--engine", "record"], None)
            if args.before is not None:
                env = {**os.environ, "PYTHONPATH": str(args.before.resolve() / "src")}
                commands["before"] = (screen, env)
            results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in commands}
            for _ in range(args.runs):
                for name, (cmd, env) in commands.items():
                    results[name].append(run_measured(cmd, env))
        floor = results["floor"]
        print(f"\n{rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB), {args.runs} runs each")
        print(f"{'command':10s} {'median s':>9s} {'x floor':>8s} {'peak MiB':>9s} "
              f"{'tree MiB':>9s}  runs")
        for name, got in results.items():
            walls = [w for w, _, _ in got]
            ratio = statistics.median(w / f[0] for (w, _, _), f in zip(got, floor, strict=True))
            print(f"{name:10s} {statistics.median(walls):9.2f} {ratio:8.2f} "
                  f"{statistics.median(m for _, m, _ in got):9.0f} "
                  f"{statistics.median(t for _, _, t in got):9.0f}  "
                  + ", ".join(f"{w:.2f}" for w in walls))
        if "before" in results:
            pairs = [b[0] / c[0] for c, b in zip(results["columnar"], results["before"],
                                                  strict=True)]
            print(f"before / columnar: median {statistics.median(pairs):.2f}x")


if __name__ == "__main__":
    main()
