"""Builtin plugin: the RxNav resolver (order 300, after the knowledge base and the
local RxNorm index).

Off by default, so the default configuration needs no network: enable it with
``[rxnav] enabled = true``, ``B12DRUGS_RXNAV_URL`` or ``--rxnav``.  Codes, NDCs and
text the earlier resolvers could not resolve are looked up through the RxNav REST
client (:mod:`b12drugs.resolve.rxnav`); when RxNav cannot be reached the queries come
back with ``source_unavailable`` notices and screening goes on.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import Config
from ..hookspecs import hookimpl
from ..records import ResolveFn, Resolver


def make_resolver(config: Config) -> ResolveFn | None:
    """The resolve function for one run, or ``None`` when RxNav is not enabled."""
    if not config.rxnav.enabled:
        return None
    # Imported here: requests-cache and friends load only when RxNav is used.
    from .rxnav import RxNavClient
    from .rxnav_resolver import ClosingResolveFn, ConceptResolver

    client = RxNavClient(config.rxnav)
    return ClosingResolveFn(ConceptResolver(client, resolver_name="rxnav"), close=client.close)


@hookimpl(trylast=True)
def b12drugs_resolvers() -> Iterable[Resolver]:
    return [
        Resolver(
            name="rxnav",
            order=300,
            factory=make_resolver,
            description="RxNorm codes, NDCs and names through the RxNav REST API "
            "(cached, rate-limited; enable with [rxnav] enabled or B12DRUGS_RXNAV_URL)",
        )
    ]
