"""Resolution through RxNorm: codes and text -> ingredients (+ ATC), on any ConceptSource.

The same ladder serves the RxNav REST client and the local RxNorm index; only the
:class:`~b12drugs.resolve.source.ConceptSource` differs:

1. an RxCUI: its ingredients (IN/MIN/PIN); if it has none, its history: a remapped
   concept resolves through its successors, an obsolete / not-current one through the
   ingredients its history names;
2. an NDC (normalised to 11 digits): the active concept, else the NDC status history;
3. text: exact then normalised name; then, where the source offers it
   (``approximate_term``), an approximate match accepted only when it is confident
   (rank 1, one concept at that rank, a clear score margin) and reported as such.

Ingredients are mapped to IN concepts (a MIN/PIN goes to its IN) and each carries its
ATC classes, so the classifier can place a drug the knowledge base lacks (any L01
cytotoxic, say).  When the source cannot be reached, the query comes back unresolved
with a ``source_unavailable`` notice naming what was not checked: screening goes on
with the offline knowledge, nothing is passed silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import SourceUnavailable
from ..models import DrugQuery, IngredientMatch, MatchMethod, Notice, Resolution, normalize_ndc
from .source import Concept, ConceptSource

log = logging.getLogger(__name__)

INGREDIENT_TTYS = ("IN", "MIN", "PIN")

#: Confidence of a match by how it was found.
CONFIDENCE = {
    "code": 1.0,  # active RxCUI or active NDC
    "remapped": 0.98,  # RxNorm itself names the successor
    "history": 0.95,  # obsolete code, ingredients from its history
    "name": 0.95,  # exact or normalised name match
    "approximate": 0.85,
}


class _Candidate(Protocol):
    rxcui: str
    name: str
    rank: int
    score: float | None


@dataclass
class _Found:
    concepts: list[Concept]
    how: str  # key of CONFIDENCE
    matched: str
    detail: str
    score: float | None = None


@dataclass
class _Outcome:
    found: _Found | None = None
    notes: list[str] = field(default_factory=list)


class ConceptResolver:
    """Resolves :class:`~b12drugs.models.DrugQuery` batches against one ConceptSource.

    :param source: the RxNorm source (``RxNavClient``, a local index ...).
    :param resolver_name: the ``Resolution.resolver`` (defaults to ``source.name``).
    :param label: how notices name the source ("RxNav", "the local RxNorm index").
    :param approximate: use ``source.approximate_term`` for text when it exists.
    :param min_margin: an approximate top candidate must beat the next concept's
        score by this fraction (scores only compare within one answer).
    :param map_fn: how to run the distinct queries (``source.map`` when the source
        has worker threads, else in this thread).
    """

    def __init__(
        self,
        source: ConceptSource,
        *,
        resolver_name: str | None = None,
        label: str | None = None,
        approximate: bool = True,
        min_margin: float = 0.1,
        map_fn: Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]] | None = None,
    ):
        self.source = source
        self.resolver_name = resolver_name or source.name
        self.label = label or ("RxNav" if source.name == "rxnav" else source.name)
        self.method: MatchMethod = "rxnav" if source.name == "rxnav" else "local_index"
        self.approximate = approximate and callable(getattr(source, "approximate_term", None))
        self.min_margin = min_margin
        self._map = map_fn or getattr(source, "map", None) or map
        self._version: str | None = None
        self._version_known = False
        self._version_lock = threading.Lock()
        self._in_cache: dict[str, list[Concept]] = {}

    # -- public ------------------------------------------------------------------------

    def __call__(self, queries: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
        return self.resolve(queries)

    def resolve(self, queries: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
        """Answers for the distinct queries that carry something to look up.

        Queries with no RxCUI, NDC or text are left out (passed on).
        """
        distinct = list(dict.fromkeys(q for q in queries if q.rxcuis or q.ndcs or q.texts))
        if not distinct:
            return {}
        results = self._map(self.resolve_one, distinct)
        return dict(zip(distinct, results, strict=True))

    def resolve_one(self, query: DrugQuery) -> Resolution:
        try:
            outcome = self._lookup(query)
            if outcome.found is None:
                return Resolution(
                    resolved=False,
                    resolver=self.resolver_name,
                    notices=tuple(Notice(kind="info", message=n) for n in outcome.notes),
                    data_version=self._data_version(),
                )
            return self._resolution(query, outcome)
        except SourceUnavailable as exc:
            return self._unavailable(query, exc)
        except Exception as exc:  # a bug must not end the run nor pass silently
            log.exception("resolver %s failed on a query", self.resolver_name)
            return self._unavailable(query, exc)

    # -- the ladder --------------------------------------------------------------------

    def _lookup(self, query: DrugQuery) -> _Outcome:
        out = _Outcome()
        for rxcui in query.rxcuis:
            found = self._by_rxcui(rxcui.strip(), out.notes)
            if found:
                out.found = found
                return out
        for raw in query.ndcs:
            try:
                ndc = normalize_ndc(raw)
            except ValueError as exc:
                out.notes.append(str(exc))
                continue
            found = self._by_ndc(ndc, out.notes)
            if found:
                out.found = found
                return out
        for text in query.texts:
            found = self._by_text(text, out.notes)
            if found:
                out.found = found
                return out
        return out

    def _by_rxcui(self, rxcui: str, notes: list[str]) -> _Found | None:
        if not rxcui.isdigit():
            notes.append(f"RxCUI {rxcui!r} is not a number")
            return None
        concepts = self.source.ingredients(rxcui)
        if concepts:
            return _Found(concepts, "code", f"RxCUI {rxcui}", f"RxCUI {rxcui}")
        hist = self.source.history(rxcui)
        status = (hist.status if hist else "").lower()
        if hist is None or status in ("", "unknown"):
            notes.append(f"RxCUI {rxcui} is unknown to {self.label}")
            return None
        if status == "remapped" and hist.remapped_to:
            concepts = []
            for succ in hist.remapped_to:
                concepts += self.source.ingredients(succ.rxcui) if succ.rxcui else []
            if concepts:
                to = ", ".join(c.rxcui for c in hist.remapped_to)
                return _Found(concepts, "remapped", f"RxCUI {rxcui}",
                              f"RxCUI {rxcui} remapped to {to}")
        if hist.ingredients:
            return _Found(list(hist.ingredients), "history", f"RxCUI {rxcui}",
                          f"RxCUI {rxcui} is {hist.status}; ingredients from its history")
        if status == "active":
            notes.append(f"RxCUI {rxcui} is active but {self.label} lists no ingredient for it")
        else:
            notes.append(f"RxCUI {rxcui} is {hist.status} and names no successor or ingredient")
        return None

    def _by_ndc(self, ndc: str, notes: list[str]) -> _Found | None:
        for rxcui in self.source.rxcuis_by_ndc(ndc):
            found = self._by_rxcui(rxcui, notes)
            if found:
                return _Found(found.concepts, found.how, f"NDC {ndc}",
                              f"NDC {ndc} -> {found.detail}")
        info = self.source.ndc_status(ndc)
        if info is None:
            notes.append(f"NDC {ndc} is unknown to {self.label}")
            return None
        candidates = list(dict.fromkeys(c for c in (info.rxcui, *info.history_rxcuis) if c))
        for rxcui in candidates:
            found = self._by_rxcui(rxcui, notes)
            if found:
                how = found.how if found.how != "code" else "history"
                return _Found(found.concepts, how, f"NDC {ndc}",
                              f"NDC {ndc} ({info.status.lower()}) -> {found.detail}")
        notes.append(f"NDC {ndc} is {info.status.lower()} with no concept in its history")
        return None

    def _by_text(self, text: str, notes: list[str]) -> _Found | None:
        text = text.strip()
        if not text:
            return None
        for rxcui in self.source.rxcuis_by_name(text):
            found = self._by_rxcui(rxcui, notes)
            if found:
                return _Found(found.concepts, "name" if found.how == "code" else found.how,
                              text, f"name {text!r} -> {found.detail}")
        if not self.approximate:
            return None
        cand = self._confident(self.source.approximate_term(text))  # type: ignore[attr-defined]
        if cand is None:
            notes.append(f"no confident approximate match in {self.label} for {text!r}")
            return None
        found = self._by_rxcui(cand.rxcui, notes)
        if not found:
            return None
        return _Found(found.concepts, "approximate", text,
                      f"approximate match {text!r} -> {cand.name or 'RxCUI ' + cand.rxcui} "
                      f"(RxCUI {cand.rxcui}, rank {cand.rank})", score=cand.score)

    def _confident(self, candidates: Sequence[_Candidate]) -> _Candidate | None:
        """The top candidate if it is rank 1, alone at that rank, and clearly ahead."""
        if not candidates:
            return None
        ranked = sorted(candidates, key=lambda c: (c.rank, -(c.score or 0.0)))
        top = ranked[0]
        if top.rank != 1:
            return None
        others = [c for c in ranked[1:] if c.rxcui != top.rxcui]
        if not others:
            return top
        nxt = others[0]
        if nxt.rank == top.rank:
            return None
        if top.score is None or nxt.score is None:
            return None
        if top.score <= 0 or (top.score - nxt.score) < self.min_margin * abs(top.score):
            return None
        return top

    # -- ingredients -> matches --------------------------------------------------------

    def _as_ingredients(self, concepts: list[Concept]) -> list[Concept]:
        """Prefer IN concepts; a MIN or PIN is replaced by its IN(s) when the source
        knows them, else kept as is."""
        ins = [c for c in concepts if c.tty == "IN" or c.tty == ""]
        if ins:
            return _unique(ins)
        out: list[Concept] = []
        for c in concepts:
            mapped = self._in_of(c.rxcui)
            out += mapped or [c]
        return _unique(out)

    def _in_of(self, rxcui: str) -> list[Concept]:
        cached = self._in_cache.get(rxcui)
        if cached is None:
            cached = [c for c in self.source.ingredients(rxcui) if c.tty == "IN"]
            self._in_cache[rxcui] = cached
        return cached

    def _resolution(self, query: DrugQuery, outcome: _Outcome) -> Resolution:
        found = outcome.found
        assert found is not None
        version = self._data_version()
        source = f"{self.source.name} {version}" if version else self.source.name
        method: MatchMethod = "approximate" if found.how == "approximate" else self.method
        notices: list[Notice] = []
        matches = []
        for concept in self._as_ingredients(found.concepts):
            atc: tuple[str, ...] = ()
            try:
                atc = tuple(sorted({a.class_id for a in self.source.atc_classes(concept.rxcui)}))
            except SourceUnavailable as exc:
                notices.append(Notice(
                    kind="source_unavailable",
                    message=f"{self.label} could not be reached: ATC classes of "
                            f"{concept.name or concept.rxcui} were not checked ({exc})",
                    source=self.resolver_name,
                ))
            matches.append(IngredientMatch(
                name=(concept.name or f"RxCUI {concept.rxcui}")[:256],
                rxcui=concept.rxcui or None,
                method=method,
                confidence=CONFIDENCE[found.how],
                score=found.score,
                atc=atc,
                source=source[:256],
                matched_text=found.matched[:2000],
                detail=found.detail[:2000],
            ))
        if found.how == "approximate":
            notices.append(Notice(
                kind="approximate",
                message=f"{query.describe()}: {found.detail}"[:2000],
                source=self.resolver_name,
            ))
        return Resolution(
            resolved=True,
            ingredients=tuple(matches),
            resolver=self.resolver_name,
            notices=tuple(notices),
            data_version=version,
        )

    def _data_version(self) -> str | None:
        with self._version_lock:
            if not self._version_known:
                try:
                    self._version = self.source.data_version()
                except SourceUnavailable:
                    return None  # try again next time; the lookups will say what failed
                self._version_known = True
            return self._version

    def _unavailable(self, query: DrugQuery, exc: BaseException) -> Resolution:
        message = (
            f"{self.label} could not be reached: {query.describe()} was not checked "
            f"against RxNorm ({exc})"
        )
        return Resolution(
            resolved=False,
            resolver=self.resolver_name,
            notices=(Notice(kind="source_unavailable", message=message[:2000],
                            source=self.resolver_name),),
        )


def _unique(concepts: Iterable[Concept]) -> list[Concept]:
    seen: set[str] = set()
    out = []
    for c in concepts:
        key = c.rxcui or c.name.lower()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


class ClosingResolveFn:
    """A resolve function that also releases its source at the end of a run.

    The engine calls ``resolve(queries)``; if it looks for ``close()`` it finds one.
    """

    def __init__(self, resolver: ConceptResolver, close: Callable[[], None] | None = None):
        self.resolver = resolver
        self._close = close

    def __call__(self, queries: Sequence[DrugQuery]) -> Mapping[DrugQuery, Resolution]:
        return self.resolver.resolve(queries)

    def close(self) -> None:
        if self._close is not None:
            self._close()
