"""``b12drugs lookup``: show how one drug text or code walks the resolution chain.

Used by pharmacists and integrators to answer "why did (or didn't) this alert?".
"""

from __future__ import annotations

import functools
from typing import Any

from .classify import classify
from .config import Config
from .engines import Runtime
from .plugins import PluginManager
from .resolve.offline import query_for


def lookup(text: str, config: Config, manager: PluginManager) -> dict[str, Any]:
    """Every resolver's answer in chain order, the first resolved one's ingredients
    and the classes they belong to."""
    screener = Runtime(config, manager)
    resolvers = screener.resolvers()
    query = query_for(text)
    steps: list[dict[str, Any]] = []
    chosen = None
    for name, fn in resolvers:
        got = screener.hooks.call_isolated(name, f"resolver {name}",
                                           functools.partial(fn, [query]))
        res = (got or {}).get(query)
        if res is None:
            steps.append({"resolver": name, "outcome": "no answer (passed on)",
                          **_detail(name, screener, text)})
            continue
        if res.resolved:
            names = ", ".join(i.name for i in res.ingredients) or "no ingredient of interest"
            steps.append({"resolver": name, "outcome": f"resolved: {names}",
                          **_detail(name, screener, text)})
            chosen = res
            break
        why = "; ".join(n.message for n in res.notices) or "not resolved"
        steps.append({"resolver": name, "outcome": why})
    built = {name for name, _ in resolvers}
    for r in screener.hooks.resolvers():
        if r.name not in built and chosen is None:
            steps.append({"resolver": r.name, "outcome": "not enabled by the configuration "
                          "(see --rxnav, [rxnav] and [rxnorm_index] in the config)"})
    if not resolvers:
        steps.append({"resolver": "-", "outcome": "no resolver is installed"})
    ingredients = [i.model_dump(mode="json") for i in chosen.ingredients] if chosen else []
    hits = [h.model_dump(mode="json") for h in classify(chosen, screener.kb)] if chosen else []
    notices = [n.model_dump(mode="json") for n in chosen.notices] if chosen else []
    screener.close()
    return {
        "query": query.describe(),
        "knowledge_version": screener.kb.version,
        "steps": steps,
        "ingredients": ingredients,
        "classes": hits,
        "notices": notices,
    }


def _detail(resolver: str, screener: Runtime, text: str) -> dict[str, Any]:
    """The knowledge base's own steps (name, synonym, brand, misspelling ...)."""
    if resolver != "knowledge-base":
        return {}
    from .resolve.offline import lookup_steps

    return {"detail": lookup_steps(screener.kb, text)}
