"""``b12drugs lookup``: show how one drug text or code walks the resolution chain.

Used by pharmacists and integrators to answer "why did (or didn't) this alert?".
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .classify import classify
from .config import Config
from .engine import Screener
from .models import DrugQuery, normalize_ndc
from .plugins import PluginManager

_NDC_LIKE = re.compile(r"^\d{4,5}-\d{3,4}-\d{1,2}$|^\d{11}$")
_RXCUI_LIKE = re.compile(r"^\d{1,9}$")


def query_for(text: str) -> DrugQuery:
    """A query from what a user typed: an NDC, an RxCUI, or drug text."""
    value = text.strip()
    if _NDC_LIKE.match(value):
        try:
            return DrugQuery(ndcs=(normalize_ndc(value),))
        except ValueError:
            pass
    if _RXCUI_LIKE.match(value):
        return DrugQuery(rxcuis=(value,))
    return DrugQuery(texts=(value[:2000],))


def lookup(text: str, config: Config, manager: PluginManager) -> dict[str, Any]:
    """Every resolver's answer in chain order, the first resolved one's ingredients
    and the classes they belong to."""
    screener = Screener(config, manager)
    query = query_for(text)
    steps: list[dict[str, Any]] = []
    chosen = None
    for name, fn in screener.resolvers:
        got = screener.hooks.call_isolated(name, f"resolver {name}",
                                           functools.partial(fn, [query]))
        res = (got or {}).get(query)
        if res is None:
            steps.append({"resolver": name, "outcome": "no answer (passed on)"})
            continue
        if res.resolved:
            names = ", ".join(i.name for i in res.ingredients) or "no ingredient of interest"
            steps.append({"resolver": name, "outcome": f"resolved: {names}"})
            chosen = res
            break
        why = "; ".join(n.message for n in res.notices) or "not resolved"
        steps.append({"resolver": name, "outcome": why})
    if not screener.resolvers:
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
