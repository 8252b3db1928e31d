"""Classify: resolved ingredients -> B12 classes and context roles.

An ingredient is placed by the knowledge base (RxCUI first, then its name); an
ingredient the knowledge base does not list is placed by its ATC codes (as RxNav or a
local RxNorm index reports them) against each class's ``atc_prefixes`` minus its
``atc_exclude`` — so any L01 cytotoxic resolves even when the curated list misses it.
"""

from __future__ import annotations

from .knowledge import KnowledgeBase
from .models import ClassHit, Resolution


def classify(resolution: Resolution, kb: KnowledgeBase) -> tuple[ClassHit, ...]:
    """Class hits for every ingredient of a resolution, without repeats."""
    hits: dict[tuple[str, str], ClassHit] = {}
    for match in resolution.ingredients:
        classes = kb.classes_for_ingredient(match.name, match.rxcui)
        method = match.method
        if not classes and match.atc and not kb.is_known(match.name):
            classes = kb.classes_for_atc(match.atc)
            method = "atc"
        for c in classes:
            key = (c.class_id, match.name)
            if key not in hits:
                hits[key] = ClassHit(
                    class_id=c.class_id,
                    role=c.role,
                    ingredient=match.name,
                    rxcui=match.rxcui,
                    method=method,
                    confidence=match.confidence,
                )
    return tuple(hits.values())
