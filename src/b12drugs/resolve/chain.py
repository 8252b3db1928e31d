"""The resolution chain: each distinct drug asked once, down the resolvers in order.

Both engines resolve through :func:`resolve_queries`, so a drug resolves the same
whether it came in an HL7 message or in row 9,000,000 of a Parquet file.  A resolver is
asked only for the queries no earlier resolver answered with ``resolved=True``; a
resolver that raises or answers anything but a mapping of queries to
:class:`~b12drugs.models.Resolution` is a plugin problem, and its queries go on down the
chain.  What no resolver resolves becomes an unresolved :class:`Outcome` that keeps the
notices the resolvers attached (e.g. ``source_unavailable``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..classify import classify
from ..models import ClassHit, DrugQuery, Notice, Resolution

if TYPE_CHECKING:
    from ..knowledge import KnowledgeBase
    from ..plugins import Hooks
    from ..records import ResolveFn


@dataclass(frozen=True, eq=False)
class Outcome:
    """What one distinct drug resolved to, with its class hits (cached for a run).

    ``transient``: shaped by an unavailable source, so it holds for this run only and a
    later run asks again.
    """

    hits: tuple[ClassHit, ...]
    resolved: bool
    notices: tuple[Notice, ...]
    description: str
    transient: bool = field(default=False)

    @property
    def plain(self) -> bool:
        """Resolved, no class hit and nothing to say: the order is only counted."""
        return self.resolved and not self.hits and not self.notices


def resolve_queries(
    queries: Sequence[DrugQuery],
    resolvers: Sequence[tuple[str, ResolveFn]],
    hooks: Hooks,
    kb: KnowledgeBase,
) -> dict[DrugQuery, Outcome]:
    """The outcome of every query (distinct queries expected), through ``resolvers``."""
    answers: dict[DrugQuery, Resolution] = {}
    attempts: dict[DrugQuery, list[Notice]] = {}
    todo = list(queries)
    for name, fn in resolvers:
        if not todo:
            break
        got = hooks.call_isolated(name, f"resolver {name}", functools.partial(fn, todo))
        got = _checked_answers(hooks, name, got)
        rest = []
        for q in todo:
            res = got.get(q)
            if res is not None and res.resolved:
                answers[q] = res
            else:
                if res is not None and res.notices:
                    attempts.setdefault(q, []).extend(res.notices)
                rest.append(q)
        todo = rest
    out: dict[DrugQuery, Outcome] = {}
    for q in queries:
        res = answers.get(q)
        if res is not None:
            notices = res.notices
            outcome = Outcome(classify(res, kb), True, notices, q.describe(),
                              _unavailable(notices))
        else:
            notices = tuple(attempts.get(q, ()))
            outcome = Outcome((), False, notices, q.describe(), _unavailable(notices))
        out[q] = outcome
    return out


def _unavailable(notices: tuple[Notice, ...]) -> bool:
    return any(n.kind == "source_unavailable" for n in notices)


def _checked_answers(hooks: Hooks, name: str, got: object,
                     ) -> Mapping[DrugQuery, Resolution]:
    """A resolver's answers if they are a mapping of queries to resolutions; anything
    else is that resolver's problem (its queries go on down the chain), never the input
    reader's."""
    if got is None:
        return {}
    if isinstance(got, Mapping):
        if all(isinstance(v, Resolution) for v in got.values()):
            return got
        bad = next(type(v).__name__ for v in got.values() if not isinstance(v, Resolution))
        why = f"returned a mapping holding {bad}, expected Resolution values"
    else:
        why = f"returned {type(got).__name__}, expected a mapping DrugQuery -> Resolution"
    hooks.problem(name, f"resolver {name}", TypeError(why))
    return {}
