"""Offline resolver speed: distinct drug strings resolved per second, cold cache.

Generates N distinct pharmacy-style strings (deterministic seed) from the shipped
knowledge base: names, brands and synonyms with salts, strengths, dose forms and
release words in mixed case, combinations, ~10% misspellings and ~5% unknown names;
then resolves them with a fresh :class:`OfflineResolver` (nothing cached), one query
per string, as the engine does for each new distinct drug.

    python benchmarks/bench_resolve_offline.py [--n 3000] [--runs 5]

Prints the time to build the resolver, the median resolutions/second over runs, the
rate for hostile input (2,000-character strings of unknown long words), and the
approximate-match path alone: one-edit misspellings of knowledge-base names looked up
with ``FuzzyMatcher.match`` (first-use index build and lookups/second), the part that
rapidfuzz replaced (see ``BENCHMARKS.md``, issue 12, for before/after figures).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from b12drugs.knowledge import load_knowledge
from b12drugs.models import DrugQuery
from b12drugs.resolve.offline import OfflineResolver

SALTS = ["", "", "", " HCl", " hydrochloride", " sodium", " sulfate", " magnesium", " calcium"]
STRENGTHS = ["", "500MG", "0.5 mg/mL", "10 mg/5 mL", "20 mg", "2.5mg", "100 MG", "1 g", "40mg"]
FORMS = ["", "TAB", "tablet", "Oral Tablet", "cap", "DR cap", "ER 24 hr tablet", "inj",
         "Injectable Solution", "EC", "film-coated tablets, blister pack 30 ct", "susp"]


def _variant(rng: random.Random, name: str) -> str:
    s = name
    if rng.random() < 0.1 and len(s) >= 8:  # misspelling: drop, double or swap one letter
        i = rng.randrange(1, len(s) - 1)
        op = rng.randrange(3)
        if op == 0:
            s = s[:i] + s[i + 1 :]
        elif op == 1:
            s = s[:i] + s[i] + s[i:]
        else:
            s = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    s += rng.choice(SALTS)
    parts = [s, rng.choice(STRENGTHS), rng.choice(FORMS)]
    text = " ".join(p for p in parts if p)
    case = rng.randrange(3)
    return text.upper() if case == 0 else text.title() if case == 1 else text


def workload(n: int, seed: int = 12) -> list[str]:
    kb = load_knowledge()
    rng = random.Random(seed)
    names: list[str] = []
    for e in kb.entries:
        names.append(e.ingredient)
        names.extend(e.brands)
        names.extend(e.synonyms)
    out: dict[str, None] = {}
    while len(out) < n:
        r = rng.random()
        if r < 0.05:
            text = f"zz{rng.randrange(10**6)}mab {rng.choice(STRENGTHS)}"
        elif r < 0.15:
            a, b = rng.sample(names, 2)
            text = f"{_variant(rng, a)} / {_variant(rng, b)}"
        else:
            text = _variant(rng, rng.choice(names))
        out[text] = None
    return list(out)


def hostile(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        wl = rng.choice([7, 14, 20, 39])
        words = ["".join(rng.choice("aeiouprstnlmc") for _ in range(wl)) for _ in range(150)]
        sep = rng.choice([" ", " / ", ", "])
        out.append((f"{i} " + sep.join(words))[:2000])
    return out


def misspellings(n: int, seed: int = 5) -> list[str]:
    """``n`` one-edit misspellings of names and synonyms of 7+ letters (fold-cased)."""
    kb = load_knowledge()
    rng = random.Random(seed)
    names = sorted({x.lower() for e in kb.entries for x in (e.ingredient, *e.synonyms)
                    if len(x) >= 7 and x.replace(" ", "").isalpha()})
    out = []
    for _ in range(n):
        s = rng.choice(names)
        i = rng.randrange(1, len(s) - 1)
        op = rng.randrange(3)
        if op == 0:
            s = s[:i] + s[i + 1 :]
        elif op == 1:
            s = s[:i] + rng.choice("aeioulnrst") + s[i:]
        else:
            s = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        out.append(s)
    return out


def bench_fuzzy(kb: object, words: list[str], runs: int) -> tuple[float, float, int]:
    """(median first-use build ms, median lookups/s, accepted) for the approximate path."""
    builds, rates, accepted = [], [], 0
    for _ in range(runs):
        r = OfflineResolver(kb)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        r.fuzzy.match(words[0])  # builds the matcher's indexes
        t1 = time.perf_counter()
        got = [r.fuzzy.match(w) for w in words]
        t2 = time.perf_counter()
        builds.append((t1 - t0) * 1000)
        rates.append(len(words) / (t2 - t1))
        accepted = sum(1 for g in got if g.hit is not None)
    return statistics.median(builds), statistics.median(rates), accepted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    texts = workload(args.n)
    queries = [DrugQuery(texts=(t,)) for t in texts]
    kb = load_knowledge()
    builds, rates, resolved = [], [], 0
    for _ in range(args.runs):
        t0 = time.perf_counter()
        r = OfflineResolver(kb)
        t1 = time.perf_counter()
        got = r.resolve(queries)
        t2 = time.perf_counter()
        builds.append(t1 - t0)
        rates.append(len(queries) / (t2 - t1))
        resolved = len(got)
    print(f"strings: {len(queries)} distinct; resolved here: {resolved} "
          f"({resolved / len(queries):.1%}); knowledge base {kb.version}, "
          f"{len(kb.entries)} entries")
    print(f"resolver build: median {statistics.median(builds) * 1000:.1f} ms")
    print(f"cold resolution: median {statistics.median(rates):,.0f} strings/s "
          f"(runs: {', '.join(f'{x:,.0f}' for x in rates)})")
    bad = [DrugQuery(texts=(t,)) for t in hostile(300)]
    r = OfflineResolver(kb)
    r.resolve(queries[:10])  # indexes built
    t0 = time.perf_counter()
    r.resolve(bad)
    dt = time.perf_counter() - t0
    print(f"hostile input: {len(bad)} strings of 2,000 characters, {len(bad) / dt:,.0f} strings/s")
    words = misspellings(2000)
    build, rate, accepted = bench_fuzzy(kb, words, args.runs)
    print(f"approximate path: {len(words)} one-edit misspellings, first-use build "
          f"median {build:.1f} ms, median {rate:,.0f} lookups/s, {accepted} accepted")


if __name__ == "__main__":
    main()
