"""Benchmark: RxNorm RRF import speed (rows/s) and peak Python memory.

Generates a synthetic release (fake RxCUIs >= 9000000000, fake labeler-99999 NDCs) with
the proportions of a full RxNorm release: RXNCONSO rows from many sources (about one in
four ``SAB=RXNORM``, a few ``SAB=ATC``), RXNREL rows (half of them relationships the
index keeps), RXNSAT rows (a third of them RXNORM NDCs); then times
``import_release`` several times and reports the median.

    python benchmarks/bench_rrf_import.py                  # 1,000,000 RXNCONSO rows
    python benchmarks/bench_rrf_import.py --conso 200000 --runs 3

Output goes to ``benchmarks/out/`` (git-ignored) unless ``--workdir`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from b12drugs.resolve.local_index import LocalIndex, import_release

SABS = ("MMSL", "VANDF", "MTHSPL", "GS", "DRUGBANK", "NDDF")
TTYS = ("IN", "SCDC", "SCD", "SBD", "SY", "TMSY")


def generate(folder: Path, conso: int, rel: int, sat: int) -> None:
    rrf = folder / "rrf"
    rrf.mkdir(parents=True, exist_ok=True)
    base = 9_000_000_000
    n_concepts = max(conso // 4, 1)
    with (rrf / "RXNCONSO.RRF").open("w", encoding="utf-8") as fh:
        for i in range(conso):
            rxcui = base + i // 4  # about four atoms per concept, one from RXNORM
            if i % 4 == 0:
                sab, tty = "RXNORM", TTYS[(i // 4) % len(TTYS)]
            elif i % 50 == 1:
                sab, tty = "ATC", "IN"
            else:
                sab, tty = SABS[i % len(SABS)], "IN"
            code = f"L01XX{i % 100:02d}" if sab == "ATC" else str(rxcui)
            fh.write(f"{rxcui}|ENG||||||{i}|{i}|{rxcui}||{sab}|{tty}|{code}|"
                     f"benchmark drug {i % 9973} {i % 97} MG Oral Tablet||N|4096|\n")
    with (rrf / "RXNREL.RRF").open("w", encoding="utf-8") as fh:
        # concept k has TTY TTYS[k % 6]: k % 6 == 0 is an IN, SCD (2) consists_of its
        # SCDC (1), other products point at their IN; every row comes with its inverse
        # and with dose-form rows, which the import skips as a real release's.
        for i in range(rel):
            k = (i // 4) % n_concepts
            kind, level = i % 4, k % 6
            src = base + k
            if kind == 0 and level == 2:
                rela, dst = "consists_of", src - 1
            elif kind == 0:
                rela, dst = "has_ingredient", src - level
            elif kind == 1:
                rela, src, dst = "ingredient_of", base + k - level, src
            elif kind == 2:
                rela, dst = "has_dose_form", base + (k * 7) % n_concepts
            else:
                rela, src, dst = "dose_form_of", base + (k * 7) % n_concepts, src
            # RXNREL: RELA is what RXCUI2 is to RXCUI1
            fh.write(f"{dst}||CUI|RO|{src}||CUI|{rela}|{i}||RXNORM|RXNORM|||N||\n")
    with (rrf / "RXNSAT.RRF").open("w", encoding="utf-8") as fh:
        for i in range(sat):
            rxcui = base + (i % n_concepts)
            if i % 3 == 0:
                atn, sab, atv = "NDC", "RXNORM", f"99999{i % 10_000_000:06d}"
            else:
                atn, sab, atv = "RXN_STRENGTH", "RXNORM", f"{i % 500} MG"
            fh.write(f"{rxcui}|||{i}|AUI|{rxcui}|{i}||{atn}|{sab}|{atv}|N|4096|\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conso", type=int, default=1_000_000)
    ap.add_argument("--rel", type=int, default=None, help="default: conso")
    ap.add_argument("--sat", type=int, default=None, help="default: conso // 2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    rel = args.rel if args.rel is not None else args.conso
    sat = args.sat if args.sat is not None else args.conso // 2

    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rrf-bench-", dir=out))
    release = work / "RxNorm_bench_01012025"
    t0 = time.perf_counter()
    generate(release, args.conso, rel, sat)
    size = sum(p.stat().st_size for p in (release / "rrf").iterdir())
    print(f"generated {args.conso:,} RXNCONSO + {rel:,} RXNREL + {sat:,} RXNSAT rows "
          f"({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

    index = work / "rxnorm.sqlite"
    rates, secs = [], []
    for run in range(args.runs):
        report = import_release(release, index)
        rates.append(report.rows_per_second)
        secs.append(report.seconds)
        print(f"run {run + 1}: {report.lines:,} lines in {report.seconds:.2f} s "
              f"= {report.rows_per_second:,.0f} rows/s")
    tracemalloc.start()
    import_release(release, index)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    with LocalIndex(index) as ix:
        t1 = time.perf_counter()
        n = 2000
        for i in range(n):
            found = ix.ingredients(str(9_000_000_000 + 6 * i + 2))  # an SCD
            assert found and found[0].tty == "IN", found
        lookup_us = (time.perf_counter() - t1) / n * 1e6
    print(f"median: {statistics.median(rates):,.0f} rows/s "
          f"({statistics.median(secs):.2f} s per import of {report.lines:,} lines, "
          f"{size / 1e6:.0f} MB); peak Python heap {peak / 1e6:.1f} MB; "
          f"index {index.stat().st_size / 1e6:.0f} MB; ingredients() {lookup_us:.0f} us/lookup")


if __name__ == "__main__":
    main()
