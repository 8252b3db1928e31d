"""The offline resolver: codes and pharmacy free text to knowledge-base ingredients.

First step of the resolution chain (order 100); needs no network.  Per query:

1. an RxCUI the knowledge base lists -> method ``rxcui``, confidence 1.0;
2. otherwise each text of the query (free text, then coding displays), through
   :mod:`.text`: the whole cleaned text, then each component of a combination product,
   looked up as an ingredient name (``exact_name`` 1.0), synonym (``synonym`` 0.98) or
   brand (``brand`` 0.97), first with its salt, then without, then word windows inside
   the component ("apo metformin", "glyburide metformin");
3. only when nothing matched exactly: small misspellings (``approximate``), with the
   guards described in :class:`FuzzyMatcher`.

A query whose codes and texts match nothing is left out of the answer so that the next
resolver (local RxNorm index, RxNav) can try it.  A combination whose components only
partly match is answered with what matched plus an ``unresolved`` notice naming the
component that was not recognised: never a silent pass.  A query that resolves only to
known drugs without a B12 class is answered ``resolved=True`` ("checked, nothing found").

The known non-B12 drugs of ``other_drugs.csv`` are part of the vocabulary precisely so
that look-alike names (metoprolol/metformin, pentobarbital/phenobarbital,
celecoxib's Celebrex/fosphenytoin's Cerebyx) resolve to the right drug, or are refused as
ambiguous, instead of a B12 class; pentobarbital and cinnarizine are listed there by name
only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from ..knowledge import KnowledgeBase
from ..models import ATC_SYSTEM, Coding, DrugQuery, IngredientMatch, MatchMethod, Notice, Resolution
from .atc import ATC_CODE, AtcIndex, atc_codes, normalize_atc
from .inn import InnIndex
from .text import ParsedText, Piece, fold, name_key, parse

SOURCE = "knowledge-base"

#: Confidence of each exact method.
CONFIDENCE: dict[str, float] = {
    "rxcui": 1.0,
    "exact_name": 1.0,
    "synonym": 0.98,
    "brand": 0.97,
}
#: An international spelling of a name or synonym ("ciclofosfamida", "doxorubicinum").
CONFIDENCE_INN = 0.96
#: Longest piece (in words) searched for international spellings.
MAX_INTL_WORDS = 12
_RANK = {"exact_name": 0, "synonym": 1, "brand": 2}
_METHODS: dict[int, MatchMethod] = {0: "exact_name", 1: "synonym", 2: "brand"}

#: Approximate matches: shortest text considered, similarity floor, confidence cap.
MIN_FUZZY_LEN = 7
#: From this length on, two edits are allowed.
LONG_WORD = 14
#: At most this many approximate lookups per text (bounds the cost of hostile input).
MAX_FUZZY_PER_TEXT = 8
#: Longest text tried as one approximate name (longer ones are tried word by word).
MAX_FUZZY_LEN = 40
MIN_SIMILARITY = 0.85
MAX_FUZZY_CONFIDENCE = 0.95
#: Longest word window looked up inside one component.
MAX_WINDOW = 5
#: Keys shorter than this ("vp", "inh", "ee") match a whole piece only, never one word
#: among others ("albuterol inh" is not isoniazid).
MIN_WINDOW_KEY = 4



@dataclass(frozen=True)
class Hit:
    """What a vocabulary key stands for: ingredient names and how the key names them."""

    method: MatchMethod
    names: tuple[str, ...]


class Vocabulary:
    """Every name, synonym and brand of the knowledge base, normalised with
    :func:`~.text.name_key`, mapped to the ingredients it names.

    A key that is the ingredient name of one drug and a brand of another stands for the
    ingredient only (the better method wins).  Keys keep their salt words: queries are
    looked up with and without theirs, but salt-free forms of *names* are not added,
    because they collide ("ferrous" would name ferrous sulfate, "mycophenolate" the
    mofetil ester rather than mycophenolate sodium).
    """

    def __init__(self, kb: KnowledgeBase):
        best: dict[str, tuple[int, list[str]]] = {}

        def add(key: str, method: str, ingredient: str) -> None:
            if len(key) < 2:
                return
            rank = _RANK[method]
            cur = best.get(key)
            if cur is None or rank < cur[0]:
                best[key] = (rank, [ingredient])
            elif rank == cur[0] and ingredient not in cur[1]:
                cur[1].append(ingredient)

        for e in kb.entries:
            add(name_key(e.ingredient), "exact_name", e.ingredient)
            for s in e.synonyms:
                add(name_key(s), "synonym", e.ingredient)
            for b in e.brands:
                add(name_key(b), "brand", e.ingredient)
        self.keys: dict[str, Hit] = {
            k: Hit(_METHODS[r], tuple(names)) for k, (r, names) in best.items()
        }

    def get(self, key: str) -> Hit | None:
        return self.keys.get(key)


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, swap two
    neighbours), or ``limit + 1`` when it exceeds ``limit`` (rapidfuzz, in C)."""
    return int(OSA.distance(a, b, score_cutoff=limit))


def max_edits(length: int) -> int:
    """Edits allowed for a misspelling of ``length`` characters (0: no fuzzy match)."""
    if length < MIN_FUZZY_LEN:
        return 0
    return 1 if length < LONG_WORD else 2


@dataclass(frozen=True)
class FuzzyResult:
    """An accepted approximate match, or a refusal with its reason (for ``lookup``)."""

    key: str | None
    hit: Hit | None
    distance: int
    similarity: float
    reason: str


class FuzzyMatcher:
    """Small misspellings, refusing false friends.

    A text is read as a known name only if all of these hold:

    * it has at least :data:`MIN_FUZZY_LEN` characters; up to 1 edit below 14
      characters, 2 from 14 (``max_edits``), and similarity ``1 - d/len`` at least
      :data:`MIN_SIMILARITY`;
    * the first character agrees (the first two for 2 edits): look-alike pairs differ
      at the start more often than typos do (phenobarbital/pentobarbital);
    * the best key is *clearly* better: no key naming other ingredients is as close;
    * when the best key names a drug with a B12 class or role, no known drug without
      one (``other_drugs.csv``) lies within the allowed edits either, nor within one
      edit more than the best key: "celebyx" is 1 edit from Cerebyx (fosphenytoin) but
      only 2 from Celebrex (celecoxib), so it is refused as ambiguous rather than read
      as a B12-lowering drug (a wrong alert is worse than a visible "not recognised").

    Candidates are every key of a length within the allowed edits, scored by rapidfuzz's
    optimal-string-alignment distance (C speed, with the edit limit as cut-off) through
    :func:`rapidfuzz.process.extract`; keys are bucketed by length on first use.
    """

    def __init__(self, vocab: Vocabulary, classified: frozenset[str]):
        self._vocab = vocab
        self._classified = classified
        self._by_length: dict[int, tuple[str, ...]] | None = None
        self._plain: dict[tuple[str, int], tuple[str, ...]] | None = None

    def _unclassified_near(self, q: str, names: set[str], limit: int) -> str | None:
        """A key of a drug without a B12 class within ``limit`` edits of ``q``, if any.

        Only keys with the same first letter and a length within ``limit`` are scanned
        (bucketed on first use): the matcher already trusts the first letter."""
        if self._plain is None:
            buckets: dict[tuple[str, int], list[str]] = {}
            for k, h in self._vocab.keys.items():
                if k and not set(h.names) & self._classified:
                    buckets.setdefault((k[0], len(k)), []).append(k)
            self._plain = {b: tuple(ks) for b, ks in buckets.items()}
        for n in range(len(q) - limit, len(q) + limit + 1):
            keys = self._plain.get((q[:1], n), ())
            if not keys:
                continue
            for k, _d, _i in process.extract(q, keys, scorer=OSA.distance, score_cutoff=limit,
                                             limit=None):
                if set(self._vocab.keys[k].names) != names:
                    return str(k)
        return None

    def _candidates(self, q: str, limit: int) -> list[tuple[int, str]]:
        """``(distance, key)`` of every key within ``limit`` edits of ``q``."""
        if self._by_length is None:
            by_length: dict[int, list[str]] = {}
            for key in self._vocab.keys:
                if len(key) >= MIN_FUZZY_LEN - 2:
                    by_length.setdefault(len(key), []).append(key)
            self._by_length = {n: tuple(ks) for n, ks in by_length.items()}
        found: list[tuple[int, str]] = []
        for n in range(len(q) - limit, len(q) + limit + 1):
            keys = self._by_length.get(n, ())
            if keys:
                found += [(int(d), str(k)) for k, d, _i in process.extract(
                    q, keys, scorer=OSA.distance, score_cutoff=limit, limit=None)]
        return found

    def match(self, q: str) -> FuzzyResult:
        if len(q) > MAX_FUZZY_LEN:
            return FuzzyResult(None, None, 0, 0.0, f"too long for an approximate match ({len(q)})")
        limit = max_edits(len(q))
        if limit == 0:
            return FuzzyResult(None, None, 0, 0.0, f"too short for an approximate match ({q!r})")
        scored = self._candidates(q, limit)
        if not scored:
            return FuzzyResult(None, None, 0, 0.0, f"no known name within {limit} edit(s)")
        scored.sort()
        d1, k1 = scored[0]
        hit = self._vocab.keys[k1]
        names = set(hit.names)
        sim = 1.0 - d1 / max(len(q), len(k1))
        for d, k in scored[1:]:
            other = set(self._vocab.keys[k].names)
            if other != names and d <= d1:
                return FuzzyResult(
                    None, None, d1, sim, f"ambiguous: {k1!r} and {k!r} are equally close"
                )
        if (d1 == 1 and q[0] != k1[0]) or (d1 == 2 and q[:2] != k1[:2]):
            return FuzzyResult(None, None, d1, sim, f"{k1!r} differs at the start: not accepted")
        if sim < MIN_SIMILARITY:
            return FuzzyResult(None, None, d1, sim, f"{k1!r} too different ({sim:.2f})")
        if names & self._classified:
            for _d, k in scored[1:]:
                other = set(self._vocab.keys[k].names)
                if other != names and not other & self._classified:
                    return FuzzyResult(
                        None,
                        None,
                        d1,
                        sim,
                        f"{k1!r} is close, but so is {k!r}, a drug without a B12 class",
                    )
            near = self._unclassified_near(q, names, d1 + 1)
            if near is not None:
                return FuzzyResult(
                    None,
                    None,
                    d1,
                    sim,
                    f"{k1!r} is close, but so is {near!r}, a drug without a B12 class",
                )
        return FuzzyResult(k1, hit, d1, sim, f"read as {k1!r} ({d1} edit(s), similarity {sim:.2f})")


@dataclass
class _PieceResult:
    matches: list[tuple[str, Hit, float, str]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TextOutcome:
    """What one text resolved to: matches, the components nobody recognised, notices."""

    matches: tuple[IngredientMatch, ...]
    unknown: tuple[str, ...]
    notices: tuple[Notice, ...]


Trace = list[dict[str, Any]]


class OfflineResolver:
    """Resolves :class:`~b12drugs.models.DrugQuery` objects against a knowledge base.

    Call the instance (or :meth:`resolve`) with a batch of queries; it is the
    ``ResolveFn`` of the ``knowledge-base`` resolver.  Results per distinct folded text
    are cached (``cache_size`` entries) because texts repeat across queries.
    """

    name = SOURCE

    def __init__(self, kb: KnowledgeBase, *, cache_size: int = 65536):
        self.kb = kb
        self.vocab = Vocabulary(kb)
        classified = frozenset(e.ingredient for e in kb.entries if e.class_id is not None)
        self.fuzzy = FuzzyMatcher(self.vocab, classified)
        self.atc = AtcIndex(kb)
        self._text = lru_cache(maxsize=cache_size)(self._resolve_folded)

    @functools.cached_property
    def inn(self) -> InnIndex:
        """The international-spelling index, built on first use: most runs never need
        it (building it is about a third of this resolver's start-up)."""
        kb = self.kb
        class_of: dict[str, frozenset[str]] = {}
        for e in kb.entries:
            cur = class_of.get(e.ingredient, frozenset())
            class_of[e.ingredient] = cur | ({e.class_id} if e.class_id else set())
        # The guard also sees every name, synonym and brand as written, numbers and all
        # dropped by the key: "5-aminosalicylic acid" (mesalamine) then shares its key
        # with "aminosalicylic acid" (PAS), so neither spelling is read through it.
        guards: dict[str, set[str]] = {k: set(h.names) for k, h in self.vocab.keys.items()}
        for e in kb.entries:
            for raw in (e.ingredient, *e.synonyms, *e.brands):
                guards.setdefault(raw, set()).add(e.ingredient)
        inn = InnIndex(
            {k: h.names for k, h in self.vocab.keys.items() if h.method != "brand"},
            guards,
            class_of,
        )
        return inn

    # -- public --------------------------------------------------------------------
    def __call__(self, queries: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
        return self.resolve(queries)

    def resolve(self, queries: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
        """Answers for the queries this knowledge base can resolve; others left out."""
        out: dict[DrugQuery, Resolution] = {}
        for q in queries:
            if q in out:
                continue
            res = self.resolve_one(q)
            if res is not None:
                out[q] = res
        return out

    def resolve_one(self, query: DrugQuery, trace: Trace | None = None) -> Resolution | None:
        """One query; ``None`` when nothing matched (pass it on to the next resolver)."""
        by_code = self._by_rxcui(query.rxcuis, trace)
        if by_code:
            return self._resolution(by_code, ())
        if trace is not None:
            for ndc in query.ndcs:
                _step(trace, "ndc", ndc, "the knowledge base has no NDCs (later resolvers)")
        codes = atc_codes(query.other_codings)
        if codes:
            return self._by_atc(query, codes, trace)
        chosen = self._by_texts(query, trace)
        if chosen is None:
            if trace is not None:
                _step(trace, "result", query.describe(), "not resolved here: passed on")
            return None
        return self._resolution(chosen.matches, chosen.notices)

    def _by_texts(self, query: DrugQuery, trace: Trace | None) -> TextOutcome | None:
        """The best text outcome: the first fully recognised text, else the first partial."""
        chosen: TextOutcome | None = None
        for text in query.texts:
            outcome = (
                self._resolve_folded(fold(text), trace)
                if trace is not None
                else self._text(fold(text))
            )
            if outcome.matches and not outcome.unknown:
                return outcome
            if outcome.matches and chosen is None:
                chosen = outcome
        return chosen

    def _by_atc(self, query: DrugQuery, codes: Sequence[str], trace: Trace | None) -> Resolution:
        """ATC codes first (see :mod:`.atc`); the texts when the codes name no ingredient
        of interest, so that a text naming a B12-lowering drug is never hidden by a code."""
        outcomes = self.atc.resolve_all(codes, SOURCE)
        matches: dict[str, IngredientMatch] = {}
        for o in outcomes:
            if trace is not None:
                _step(trace, "atc", o.code, o.message)
            for m in o.matches:
                matches.setdefault(m.name, m)
        notices = [
            Notice(kind="unresolved", message=o.message[:2000], source=SOURCE)
            for o in outcomes
            if not o.resolved
        ]
        found = tuple(matches.values())
        if any(self._classes(m.name) or self._atc_classes(m) for m in found):
            return self._resolution(found, notices)
        text = self._by_texts(query, trace)
        if text is not None:
            return self._resolution(text.matches, (*text.notices, *notices))
        if found:
            return self._resolution(found, notices)
        if trace is not None:
            _step(trace, "result", query.describe(), "not resolved here: passed on")
        return Resolution(resolved=False, resolver=SOURCE, notices=tuple(notices),
                          data_version=self.kb.version[:256])

    def explain(self, query: DrugQuery) -> Trace:
        """The steps tried for ``query`` and what each found (for ``b12drugs lookup``)."""
        trace: Trace = []
        res = self.resolve_one(query, trace)
        if res is not None and res.resolved:
            names = ", ".join(
                f"{m.name} ({', '.join(self._classes(m.name) or self._atc_classes(m)) or 'none'})"
                for m in res.ingredients
            )
            _step(trace, "result", query.describe(), f"resolved: {names}")
        return trace

    def cache_info(self) -> Any:
        return self._text.cache_info()

    # -- steps ---------------------------------------------------------------------
    def _atc_classes(self, match: IngredientMatch) -> list[str]:
        if self.kb.is_known(match.name):
            return []
        return [c.class_id for c in self.kb.classes_for_atc(match.atc)]

    def _classes(self, name: str) -> list[str]:
        return [e.class_id for e in self.kb.by_ingredient.get(name, []) if e.class_id]

    def _by_rxcui(self, rxcuis: Sequence[str], trace: Trace | None) -> tuple[IngredientMatch, ...]:
        found: dict[str, IngredientMatch] = {}
        for code in rxcuis:
            entries = self.kb.by_rxcui.get(code.strip(), [])
            if trace is not None:
                _step(
                    trace,
                    "rxcui",
                    code,
                    ", ".join(sorted({e.ingredient for e in entries}))
                    or "not in the knowledge base (its text is tried next)",
                )
            for e in entries:
                if e.ingredient not in found:
                    found[e.ingredient] = IngredientMatch(
                        name=e.ingredient,
                        rxcui=code.strip(),
                        method="rxcui",
                        confidence=1.0,
                        atc=self._atc(e.ingredient),
                        source=SOURCE,
                        matched_text=code.strip(),
                    )
        return tuple(found.values())

    def _resolution(
        self, matches: Sequence[IngredientMatch], notices: Sequence[Notice]
    ) -> Resolution:
        return Resolution(
            resolved=True,
            ingredients=tuple(matches),
            resolver=SOURCE,
            notices=tuple(notices),
            data_version=self.kb.version[:256],
        )

    def _lookup(self, key: str, trace: Trace | None, what: str) -> Hit | None:
        hit = self.vocab.get(key) if key else None
        if trace is not None and key:
            _step(
                trace,
                hit.method if hit else "exact_name/synonym/brand",
                key,
                f"{what}: {', '.join(hit.names)}" if hit else f"{what}: no match",
            )
        return hit

    def _windows(self, tokens: Sequence[str], trace: Trace | None) -> _PieceResult:
        """Greedy longest-first word windows: every known name inside the words."""
        res = _PieceResult()
        n = len(tokens)
        used = [False] * n
        for size in range(min(n, MAX_WINDOW), 0, -1):
            for start in range(0, n - size + 1):
                if any(used[start : start + size]):
                    continue
                key = " ".join(tokens[start : start + size])
                hit = self.vocab.get(key)
                if hit is not None and (len(key) >= MIN_WINDOW_KEY or size == n):
                    res.matches.append((key, hit, CONFIDENCE[hit.method], ""))
                    for i in range(start, start + size):
                        used[i] = True
        res.unused = [t for t, u in zip(tokens, used, strict=True) if not u]
        if trace is not None and n > 1:
            _step(
                trace,
                "words",
                " ".join(tokens),
                ", ".join(f"{k} -> {'/'.join(h.names)}" for k, h, _, _ in res.matches)
                or "no known name among the words",
            )
        return res

    def _international(self, tokens: Sequence[str], trace: Trace | None) -> _PieceResult:
        """International INN spellings (:mod:`.inn`): word windows, longest first, whose
        spelling-neutral key lands on exactly one knowledge-base name or synonym."""
        res = _PieceResult()
        n = len(tokens)
        used = [False] * n
        if n > MAX_INTL_WORDS:  # not a drug name (hostile or garbled input): not tried
            res.unused = list(tokens)
            return res
        for size in range(min(n, 3), 0, -1):
            for start in range(0, n - size + 1):
                if any(used[start : start + size]):
                    continue
                text = " ".join(tokens[start : start + size])
                name = self.inn.get(text)
                if name is None:
                    continue
                res.matches.append((text, Hit("synonym", (name,)), CONFIDENCE_INN, ""))
                for i in range(start, start + size):
                    used[i] = True
        res.unused = [t for t, u in zip(tokens, used, strict=True) if not u]
        if trace is not None and tokens:
            _step(
                trace,
                "international",
                " ".join(tokens),
                ", ".join(f"{k} -> {'/'.join(h.names)}" for k, h, _, _ in res.matches)
                or "no international spelling of a known name",
            )
        return res

    def _fuzzy(self, text: str, trace: Trace | None, budget: list[int]) -> _PieceResult:
        res = _PieceResult()
        targets = [text] if " " not in text else [text, *text.split()]
        for t in targets:
            if not MIN_FUZZY_LEN <= len(t) <= MAX_FUZZY_LEN or not t.replace(" ", "").isalpha():
                continue
            if budget[0] <= 0:
                if trace is not None:
                    _step(trace, "approximate", t, "not tried: too many unknown words")
                break
            budget[0] -= 1
            fr = self.fuzzy.match(t)
            if trace is not None:
                _step(trace, "approximate", t, fr.reason)
            if fr.hit is not None and fr.key is not None:
                conf = round(min(fr.similarity, MAX_FUZZY_CONFIDENCE), 3)
                res.matches.append((t, fr.hit, conf, fr.key))
                res.notices.append(
                    f"{t!r} read as {fr.key!r} ({', '.join(fr.hit.names)}): approximate match, "
                    f"{fr.distance} edit(s), similarity {fr.similarity:.2f}"
                )
                if t == text:
                    break
        return res

    def _piece(
        self, piece: Piece, trace: Trace | None, budget: list[int], *, fuzzy: bool = True
    ) -> _PieceResult:
        for key, what in ((piece.text, "with salt"), (piece.base, "without salt")):
            if what == "without salt" and key == piece.text:
                continue
            hit = self._lookup(key, trace, what)
            if hit is not None:
                return _PieceResult([(key, hit, CONFIDENCE[hit.method], "")])
        tokens = piece.tokens
        res = self._windows(tokens, trace) if len(tokens) > 1 else _PieceResult()
        if not res.matches and piece.base != piece.text:
            res = self._windows(piece.text.split(), trace)
        if res.matches:
            return res
        intl = self._international(tokens, trace)
        if intl.matches or not fuzzy:
            return intl
        fz = self._fuzzy(piece.base, trace, budget)
        if fz.matches:
            return fz
        res.unused = list(tokens)
        return res

    def _resolve_folded(self, folded: str, trace: Trace | None = None) -> TextOutcome:
        parsed: ParsedText = parse(folded, folded=True)
        if trace is not None:
            _step(
                trace,
                "normalize",
                folded,
                " | ".join(c.text for c in parsed.components) or "nothing left to look up",
            )
        found: list[tuple[str, Hit, float, str]] = []
        unknown: list[str] = []
        messages: list[str] = []
        unused: list[str] = []
        budget = [MAX_FUZZY_PER_TEXT]
        whole_hit = None
        if parsed.hints:
            # "amino(diphenylhydantoin) valeric acid": a known name with brackets in it
            whole = name_key(folded)
            whole_hit = self._lookup(whole, trace, "whole text with brackets")
            if whole_hit is None and (intl := self.inn.get(whole)) is not None:
                whole_hit = Hit("synonym", (intl,))
            if whole_hit is not None:
                matches = self._matches([(whole, whole_hit, CONFIDENCE[whole_hit.method], "")], ())
                return TextOutcome(matches, (), ())
        if len(parsed.components) > 1:
            # "Lo/Ovral": a name with a separator in it (keys drop punctuation)
            whole = " ".join(c.text.replace(",", "") for c in parsed.components)
            whole_hit = self._lookup(whole, trace, "whole text")
        if whole_hit is not None:
            found.append((whole, whole_hit, CONFIDENCE[whole_hit.method], ""))
        else:
            for comp in parsed.components:
                pieces = comp.pieces
                if len(pieces) > 1:
                    # "estrogens, conjugated": a comma inside one name
                    pieces = (Piece(comp.text.replace(",", ""), comp.base.replace(",", "")),)
                    first = self._piece(pieces[0], trace, budget, fuzzy=False)
                    results = [first] if first.matches else None
                else:
                    results = None
                if results is None:
                    results = [self._piece(p, trace, budget) for p in comp.pieces]
                if not any(r.matches for r in results):
                    unknown.append(comp.text)
                for r in results:
                    found.extend(r.matches)
                    messages.extend(r.notices)
                    if r.matches:
                        unused.extend(r.unused)
        if parsed.hints and (unknown or not found):
            from_components = bool(found)
            for h in parsed.hints:
                hint_hit = self._lookup(h, trace, "bracketed hint")
                if hint_hit is not None:
                    found.append((h, hint_hit, CONFIDENCE[hint_hit.method], ""))
            if found and not from_components:
                # Only the bracketed brand matched: the rest is its generic spelling.
                unknown = []
        matches = self._matches(found, unused, parsed.expansions)
        notices = [
            Notice(kind="approximate", message=m[:2000], source=SOURCE) for m in messages
        ]
        if matches:
            for u in unknown:
                notices.append(
                    Notice(
                        kind="unresolved",
                        message=(
                            f"component {u[:200]!r} of {folded[:300]!r} was not recognised and "
                            f"was NOT checked for B12 risk; recognised: "
                            f"{', '.join(m.name for m in matches)}"
                        )[:2000],
                        source=SOURCE,
                    )
                )
        return TextOutcome(matches, tuple(unknown), tuple(notices))

    def _atc(self, name: str) -> tuple[str, ...]:
        atc: list[str] = []
        for e in self.kb.by_ingredient.get(name, []):
            atc.extend(a for a in e.atc if a not in atc)
        return tuple(atc)

    def _rxcui(self, name: str) -> str | None:
        return next((e.rxcui for e in self.kb.by_ingredient.get(name, []) if e.rxcui), None)

    def _matches(
        self,
        found: Sequence[tuple[str, Hit, float, str]],
        unused: Sequence[str],
        expansions: Sequence[str] = (),
    ) -> tuple[IngredientMatch, ...]:
        out: dict[str, IngredientMatch] = {}
        extra = f"words not used: {' '.join(unused)[:300]}" if unused else None
        for text, hit, conf, read_as in found:
            method: MatchMethod = "approximate" if read_as else hit.method
            detail = f"read as {read_as!r}" if read_as else None
            if method == "exact_name" and text in expansions:
                # Found through a prescription abbreviation ("MTX"): a synonym, not a name.
                method, conf, detail = "synonym", CONFIDENCE["synonym"], "abbreviation expanded"
            for name in hit.names:
                prev = out.get(name)
                if prev is not None and prev.confidence >= conf:
                    continue
                note = f"{detail}; {extra}" if detail and extra else (detail or extra)
                out[name] = IngredientMatch(
                    name=name,
                    rxcui=self._rxcui(name),
                    method=method,
                    confidence=conf,
                    score=conf if read_as else None,
                    atc=self._atc(name),
                    source=SOURCE,
                    matched_text=text[:2000],
                    detail=note,
                )
        return tuple(out.values())


def _step(trace: Trace, method: str, value: str, result: str) -> None:
    trace.append({"step": len(trace) + 1, "method": method, "input": value, "result": result})


def query_for(text: str) -> DrugQuery:
    """What a person typed as a query: a WHO ATC code (``A10BA02``, ``A02BC``) as an ATC
    coding, otherwise an NDC, an RxCUI or drug text (:meth:`DrugQuery.from_user_input`)."""
    value = text.strip()
    code = normalize_atc(value)
    if len(code) >= 3 and ATC_CODE.match(code) and len(value) <= 12:
        return DrugQuery(other_codings=(Coding(system=ATC_SYSTEM, code=code),))
    return DrugQuery.from_user_input(text)


def lookup_steps(kb: KnowledgeBase, text_or_code: str) -> list[dict[str, Any]]:
    """Each step the offline resolver tries for one text or code, with its result.

    Every item has ``step`` (1-based), ``method``, ``input`` and ``result``.
    """
    return OfflineResolver(kb).explain(query_for(text_or_code))


__all__ = [
    "FuzzyMatcher",
    "Hit",
    "OfflineResolver",
    "TextOutcome",
    "Vocabulary",
    "lookup_steps",
    "osa_distance",
    "query_for",
]
