"""Builtin plugin: the offline knowledge-base resolver (order 100, first in the chain).

Needs no network and no files besides the shipped knowledge base: RxNorm ingredient
codes the knowledge base lists, and pharmacy free text (salts, strengths, dose forms,
brands, combinations, abbreviations, small misspellings), see
:mod:`b12drugs.resolve.offline`.  What it cannot resolve is passed on to the local
RxNorm index and RxNav.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import Config
from ..hookspecs import hookimpl
from ..knowledge import KnowledgeBase, load_knowledge
from ..records import ResolveFn, Resolver


def make_resolver(config: Config, kb: KnowledgeBase | None = None) -> ResolveFn:
    """The resolve function for one run.

    :param config: the run's configuration (the knowledge-base resolver has no options).
    :param kb: the knowledge base merged with plugin contributions; the engine passes
        it.  Without it the shipped knowledge base is loaded (no plugin knowledge).
    """
    from .offline import OfflineResolver

    return OfflineResolver(kb if kb is not None else load_knowledge()).resolve


@hookimpl(trylast=True)
def b12drugs_resolvers() -> Iterable[Resolver]:
    return [
        Resolver(
            name="knowledge-base",
            order=100,
            factory=make_resolver,
            description="RxNorm ingredient codes, names, synonyms, brands, combinations and "
            "small misspellings from the shipped knowledge base (offline)",
        )
    ]
