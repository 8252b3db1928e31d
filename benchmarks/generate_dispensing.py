"""Generate a realistic dispensing CSV for benchmarks.

A dispensing history has few distinct drug strings and many rows: the generator
builds a vocabulary of a few thousand spellings (case, strength, dose form, salt,
brand) from the shipped knowledge base, ~5% of rows name a B12-lowering drug, ~0.5%
an unknown product, ~5% are inactive.  Patient columns (birth date, sex, conditions)
are repeated on every row of a patient, as real exports have them.  Deterministic for
a given seed.

    python benchmarks/generate_dispensing.py --rows 1000000 --out benchmarks/out/disp.csv
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
STRENGTHS = ["5 mg", "10mg", "20 MG", "25 mg", "40 mg", "50mg", "100 mg", "250 mg", "500 MG",
             "750 mg", "1000 mg", "0.5 mg", "2.5 mg", "1 mg/mL", "10 mg/5 mL"]
FORMS = ["tablet", "TAB", "tab", "capsule", "CAP", "oral tablet", "ER tablet",
         "DR capsule", "film-coated tablet", "oral solution", "injection", ""]
SALTS = ["", "", "", " hydrochloride", " HCl", " sodium", " sulfate"]


def vocabulary(rng: random.Random, n_other: int, n_b12: int) -> tuple[list[str], list[str]]:
    def names(path: Path, alert_only: bool) -> list[str]:
        out = []
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if alert_only and row["class_id"] in ("b12_therapy", "folate"):
                    continue
                out.append(row["ingredient"])
                out += [b for b in row.get("brands", "").split(";") if b][:1]
        return out

    def spell(name: str) -> str:
        text = f"{name}{rng.choice(SALTS)} {rng.choice(STRENGTHS)} {rng.choice(FORMS)}".strip()
        return rng.choice([text, text.upper(), text.title(), text.lower()])

    other = names(DATA / "other_drugs.csv", False)
    b12 = names(DATA / "drug_map.csv", True)
    return ([spell(rng.choice(other)) for _ in range(n_other)],
            [spell(rng.choice(b12)) for _ in range(n_b12)])


def generate(rows: int, out: Path, seed: int = 12, distinct: int = 3000,
             b12_share: float = 0.05) -> None:
    rng = random.Random(seed)
    other, b12 = vocabulary(rng, int(distinct * 0.85), int(distinct * 0.15))
    unknown = [f"Xq{rng.randrange(10**6):06d} {rng.choice(STRENGTHS)}" for _ in range(30)]
    n_patients = max(rows // 12, 1)
    births = [date(1930, 1, 1) + timedelta(days=rng.randrange(80 * 365))
              for _ in range(min(n_patients, 50000))]
    conditions = ["", "", "", "", "Hypertension", "Type 2 diabetes mellitus",
                  "Peripheral neuropathy", "Anemia", "Gout;Hypertension"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "rx_id", "drug_name", "status", "start_date", "days_supply",
                    "birth_date", "sex", "conditions"])
        for i in range(rows):
            p = rng.randrange(n_patients)
            r = rng.random()
            drug = rng.choice(b12) if r < b12_share else rng.choice(unknown) if r < b12_share + \
                0.005 else rng.choice(other)
            status = "stopped" if rng.random() < 0.05 else "active"
            start = date(2015, 1, 1) + timedelta(days=rng.randrange(4000))
            w.writerow([f"P{p:07d}", f"RX{i:09d}", drug, status, start.isoformat(),
                        rng.choice((30, 30, 90)), births[p % len(births)].isoformat(),
                        "FM"[p % 2], conditions[p % len(conditions)]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--b12-share", type=float, default=0.05, help="share of B12-lowering rows")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/dispensing.csv"))
    args = ap.parse_args()
    generate(args.rows, args.out, args.seed, args.distinct, args.b12_share)
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
