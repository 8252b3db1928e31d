"""Recall and false alerts of the offline resolver on names from a public ATC listing.

The test list is built at run time from a CSV of the WHO ATC index (columns
``atc_code,atc_name``, e.g. ``WHO ATC-DDD 2026-04-25.csv`` of fabkury/atcd, a scrape of
the WHOCC website); the listing itself is not part of this project.

* **B12 names**: every level-5 name whose code lies in a B12-lowering class (the class's
  ``atc_prefixes`` minus ``atc_exclude``) or that names a knowledge-base ingredient of an
  alert class; it should raise that class.
* **Other names**: every other level-5 name that names no alert-class ingredient; it
  must raise no alert (a false alert otherwise).
* **International forms** of both, written by the spelling patterns of other languages
  (Latin ``-um``, Spanish/Portuguese/Italian ``-a``/``-o`` with ``f``/``t``/``i`` for
  ``ph``/``th``/``y``, German/Nordic ``k``/``z`` and no final ``e``, accents): recall on
  the B12 forms, false alerts on the others.  These forms are derived by rule, so their
  recall says how far the rules reach, not how real prescriptions are written.

    python benchmarks/bench_intl_recall.py --atc-listing "WHO ATC-DDD 2026-04-25.csv"

Prints counts, recall and the false alerts (each one listed), and the misses.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

from b12drugs.classify import classify
from b12drugs.engines import screen
from b12drugs.knowledge import load_knowledge
from b12drugs.models import DrugQuery, Order
from b12drugs.resolve.offline import OfflineResolver


def _forms(name: str) -> list[str]:
    """International spellings of an English INN (one word or two)."""
    if not re.fullmatch(r"[a-z]+(?: [a-z]+)?", name):
        return []
    out = []
    base = name[:-1] if name.endswith("e") else name
    out.append(base + "um")  # Latin
    es = base.replace("ph", "f").replace("th", "t").replace("y", "i")
    out.append(es + ("a" if name.endswith(("ide", "ine")) else "o" if name.endswith("ate")
                     else ""))  # es/pt/it
    de = base.replace("ph", "f").replace("c", "k") if name.startswith("c") else base
    out.append(de)  # German/Nordic
    out.append(name.replace("i", "í", 1))  # an accent
    return [f for f in dict.fromkeys(out) if f != name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atc-listing", required=True, type=Path)
    ap.add_argument("--show", type=int, default=40, help="misses to list")
    args = ap.parse_args()
    kb = load_knowledge()
    resolver = OfflineResolver(kb)
    alert_ids = {c.class_id for c in kb.alert_classes()}
    # names and synonyms of alert-class ingredients, as the listing may write them
    b12_names: dict[str, str] = {}
    for e in kb.entries:
        if e.class_id in alert_ids:
            for n in (e.ingredient, *e.synonyms):
                if len(n) >= 4:
                    b12_names[n.lower()] = e.ingredient
    word = re.compile(r"\b(" + "|".join(sorted(map(re.escape, b12_names), key=len,
                                                    reverse=True)) + r")\b")
    listing: dict[str, str] = {}
    with args.atc_listing.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code, name = row["atc_code"].strip(), row["atc_name"].strip().lower()
            if len(code) == 7 and name and code not in listing:
                listing[code] = name
    positives: dict[str, set[str]] = {}
    negatives: set[str] = set()
    for code, name in listing.items():
        by_code = {c.class_id for c in kb.classes_for_atc([code]) if c.class_id in alert_ids}
        named = {e.class_id for n in word.findall(name)
                 for e in kb.by_ingredient.get(b12_names[n], []) if e.class_id in alert_ids}
        expected = by_code | named
        if not by_code and any(e.class_id is None for e in kb.by_ingredient.get(name, [])):
            expected = set()  # listed in other_drugs.csv: a known drug without a class
        if expected:
            positives.setdefault(name, set()).update(expected)
        else:
            negatives.add(name)
    negatives -= set(positives)

    def classified(text: str) -> set[str]:
        """Alert classes the resolver and classifier find (before the rules)."""
        res = resolver.resolve_one(DrugQuery(texts=(text,)))
        if res is None:
            return set()
        return {h.class_id for h in classify(res, kb) if h.class_id in alert_ids}

    def alerts(texts: list[str]) -> dict[str, set[str]]:
        """Alerts as a user sees them: each text one order of its own patient, screened
        with the default rules (dose, route), so ascorbate with no dose is a notice."""
        report = screen([Order(id=str(i), patient_id=f"p{i}", text=t)
                         for i, t in enumerate(texts)])
        out: dict[str, set[str]] = {}
        for a in report.alerts:
            for oid in a.orders:
                out.setdefault(texts[int(oid)], set()).add(a.class_id)
        return out

    t0 = time.perf_counter()
    hits = {n: classified(n) for n in positives}
    neg = sorted(negatives)
    false = alerts(neg)
    intl_pos = {f: exp for n, exp in positives.items() for f in _forms(n)}
    intl_neg = sorted({f for n in negatives for f in _forms(n)} - set(intl_pos))
    intl_hits = {f: classified(f) for f in intl_pos}
    intl_false = alerts(intl_neg)
    classified_neg = sum(1 for n in neg if classified(n))
    dt = time.perf_counter() - t0
    found = [n for n, exp in positives.items() if hits[n] & exp]
    intl_found = [f for f, exp in intl_pos.items() if intl_hits[f] & exp]
    print(f"listing: {args.atc_listing.name}, {len(listing)} level-5 codes; "
          f"knowledge base {kb.version}")
    print(f"B12 names: {len(positives)}, recall {len(found) / len(positives):.3f} "
          f"({len(found)}/{len(positives)})")
    print(f"other names: {len(negatives)}, false alerts {len(false)} "
          f"({classified_neg} placed in a class before the rules)")
    print(f"international forms of B12 names: {len(intl_pos)}, recall "
          f"{len(intl_found) / max(len(intl_pos), 1):.3f} ({len(intl_found)}/{len(intl_pos)})")
    print(f"international forms of other names: {len(intl_neg)}, false alerts {len(intl_false)}")
    print(f"time: {dt:.1f} s for {len(positives) + len(negatives) + len(intl_pos) + len(intl_neg)}"
          " names")
    for n, got in list(false.items()) + list(intl_false.items()):
        print(f"  FALSE ALERT {n!r}: {sorted(got)}")
    missed = [n for n in positives if n not in found][: args.show]
    print("missed B12 names:", "; ".join(missed) or "none")
    missed = [f for f in intl_pos if f not in intl_found][: args.show]
    print("missed international forms:", "; ".join(missed) or "none")


if __name__ == "__main__":
    main()
