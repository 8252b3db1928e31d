"""Spark ``local[N]`` against the single-machine engine, both as whole processes.

For each size, a dispensing export with patient columns is generated once
(``generate_dispensing.py``) and converted to Parquet once; then each command runs
``--runs`` times (``--spark-runs`` for Spark) as a child process, timed from spawn to
exit, with two memory figures: the peak resident memory from the child's resource usage
(``os.wait4``: the largest single process among the child and the descendants it waited
for), and, since Spark's driver Python, JVM and Python workers run side by side, the peak
of the whole process tree's resident memory (sampled from /proc every 0.25 s):

* ``b12drugs screen FILE -f jsonl -o OUT`` (the columnar engine, one process);
* ``b12drugs screen FILE -f jsonl -o OUT --engine spark --spark-master local[N]``.

Prints the median of the runs per command and writes them as JSON (``--json``).

    python benchmarks/bench_spark.py --rows 2000000 10000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from proctree import run_measured  # noqa: E402


def _data(rows: int) -> tuple[Path, Path]:
    """The CSV of ``rows`` rows and its Parquet copy, made when missing."""
    csv_path = OUT / f"d{rows}.csv"
    if not csv_path.exists():
        subprocess.run([sys.executable, str(HERE / "generate_dispensing.py"), "--rows",
                        str(rows), "--out", str(csv_path)], check=True)
    parquet_path = OUT / f"d{rows}.parquet"
    if not parquet_path.exists():
        import polars as pl

        pl.scan_csv(csv_path, infer_schema=False).sink_parquet(parquet_path)
    return csv_path, parquet_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 10_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--inputs", nargs="+", default=["parquet"], choices=["csv", "parquet"])
    ap.add_argument("--engines", nargs="+", default=["columnar", "spark"],
                    choices=["columnar", "spark"])
    ap.add_argument("--json", type=Path, default=OUT / "bench_spark.json")
    ap.add_argument("--spark-runs", type=int, default=None,
                    help="runs of Spark (default: --runs)")
    opts = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    exe = [sys.executable, "-m", "b12drugs", "screen"]
    for rows in opts.rows:
        csv_path, parquet_path = _data(rows)
        for kind in opts.inputs:
            path = csv_path if kind == "csv" else parquet_path
            for engine in opts.engines:
                report = OUT / f"report-{engine}-{rows}.jsonl"
                args = [*exe, str(path), "-f", "jsonl", "-o", str(report)]
                if engine == "spark":
                    args += ["--engine", "spark", "--spark-master", opts.master]
                runs = []
                n_runs = opts.spark_runs if engine == "spark" and opts.spark_runs else opts.runs
                for _ in range(n_runs):
                    # a fresh measuring process per run, so that RUSAGE_CHILDREN is this
                    # run's alone
                    got = subprocess.run(
                        [sys.executable, __file__, "--_one", json.dumps(args)],
                        capture_output=True, text=True, check=True)
                    runs.append(json.loads(got.stdout))
                    print(f"  {rows:>10,} {kind:<7} {engine:<8} {runs[-1]['wall']:7.1f} s "
                          f"{runs[-1]['rss']:7.0f} MiB {runs[-1]['tree']:7.0f} MiB",
                          flush=True)
                row = {"rows": rows, "input": kind, "engine": engine, "runs": runs,
                       **{k: statistics.median(r[k] for r in runs)
                          for k in ("wall", "rss", "tree")}}
                results.append(row)
                print(f"{rows:>10,} {kind:<7} {engine:<8} median {row['wall']:7.1f} s "
                      f"largest process {row['rss']:7.0f} MiB, process tree "
                      f"{row['tree']:7.0f} MiB", flush=True)
    opts.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_one":
        wall, rss, tree = run_measured(json.loads(sys.argv[2]), every=0.25)
        print(json.dumps({"wall": round(wall, 2), "rss": round(rss, 1), "tree": round(tree, 1)}))
    else:
        main()
