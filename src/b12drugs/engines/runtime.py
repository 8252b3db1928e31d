"""What a run needs and is costly to build: knowledge, rules, resolvers, a drug cache."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Sequence

from ..config import Config
from ..errors import ConfigError
from ..knowledge import KnowledgeBase, load_knowledge
from ..models import DrugQuery
from ..plugins import PluginManager, get_plugin_manager
from ..records import ResolveFn, Resolver, Rule
from ..resolve.chain import Outcome, resolve_queries

#: Not a knowledge-base class, but disabled like one (the folate-masking rule's alerts).
PSEUDO_CLASSES = ("folate_masking",)


class Runtime:
    """What is costly to build and safe to share across many screening runs.

    The knowledge base, the rules and each resolver (its vocabulary, HTTP session,
    cache file) are built once; distinct drugs resolved by one run are remembered for
    the next (up to ``cache_limit`` distinct drugs).  Services that screen one message
    or one CDS Hooks request at a time (the HL7 listener, the CDS Hooks service) keep one
    runtime and give it to every :class:`~b12drugs.engines.Screener`.

    Resolvers are built lazily once per thread, because some hold objects that must not
    cross threads (SQLite connections); :meth:`close` releases every one.

    >>> from b12drugs.engines import Screener
    >>> from b12drugs.models import Order
    >>> with Runtime() as runtime:
    ...     for message in (["metformin"], ["omeprazole"]):
    ...         s = Screener(runtime=runtime)
    ...         s.feed([Order(id="1", patient_id="p", text=t) for t in message], "msg")
    ...         report = s.finish()
    """

    def __init__(
        self,
        config: Config | None = None,
        manager: PluginManager | None = None,
        *,
        knowledge: KnowledgeBase | None = None,
        cache_limit: int = 100_000,
    ):
        self.config = config or Config()
        self.manager = manager or get_plugin_manager()
        self.hooks = self.manager.hooks
        #: the knowledge base is the plugins' (not one given in code)
        self.default_knowledge = knowledge is None
        self.kb = knowledge or load_knowledge(
            (k.classes, k.entries) for k in self.hooks.knowledge()
        )
        every_rule = self.hooks.rules()
        check_policy(self.config, self.kb, every_rule)
        disabled_rules = set(self.config.policy.disabled_rules)
        self.rules: list[Rule] = [r for r in every_rule if r.name not in disabled_rules]
        #: rules installed but switched off by ``[policy] disabled_rules`` (for the report)
        self.disabled_rules = tuple(sorted({r.name for r in every_rule} & disabled_rules))
        self.outcomes: dict[DrugQuery, Outcome] = {}
        self.cache_limit = cache_limit
        self._local = threading.local()
        self._built: list[list[tuple[str, ResolveFn]]] = []
        self._lock = threading.Lock()

    def resolvers(self) -> list[tuple[str, ResolveFn]]:
        """This thread's resolver chain, in order, built on first use."""
        chain: list[tuple[str, ResolveFn]] | None = getattr(self._local, "chain", None)
        if chain is None:
            chain = []
            for r in self.hooks.resolvers():
                build = functools.partial(_build, r, self.config, self.kb)
                fn = self.hooks.call_isolated(r.provider, f"resolver {r.name}", build)
                if fn is not None:
                    chain.append((r.name, fn))
            self._local.chain = chain
            with self._lock:
                self._built.append(chain)
        return chain

    def resolve(self, queries: Sequence[DrugQuery]) -> dict[DrugQuery, Outcome]:
        """The outcome of each query: from this runtime's cache, or resolved now (the
        new ones together, so that resolvers can batch them) and remembered.

        Outcomes shaped by an unavailable source are answered but not remembered, so
        that the next run asks again.  Bounded: past ``cache_limit`` drugs a fresh cache
        is started (swapped, never cleared, so runs holding the old one keep it).
        """
        cache = self.outcomes
        out = {q: o for q in queries if (o := cache.get(q)) is not None}
        new = [q for q in dict.fromkeys(queries) if q not in out]
        if new:
            got = resolve_queries(new, self.resolvers(), self.hooks, self.kb)
            if len(cache) + len(got) > self.cache_limit:
                cache = self.outcomes = {}
            for q, outcome in got.items():
                if not outcome.transient:
                    cache[q] = outcome
            out.update(got)
        return out

    def close(self) -> None:
        """Release what resolvers hold (HTTP sessions, cache files, worker threads)."""
        with self._lock:
            chains, self._built = self._built, []
        for chain in chains:
            for name, fn in chain:
                close = getattr(fn, "close", None)
                if callable(close):
                    self.hooks.call_isolated(name, f"closing resolver {name}", close)
        self._local = threading.local()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_policy(config: Config, kb: KnowledgeBase, rules: Sequence[Rule]) -> None:
    """A class or rule named in the policy must exist: a typo in ``disabled_classes`` or
    ``long_term_days`` would otherwise silently keep (or change) alerts.

    :raises ConfigError: naming the unknown key and the known ones.
    """
    policy = config.policy
    classes = sorted({*kb.classes, *PSEUDO_CLASSES})
    for section, keys, known in (
        ("disabled_classes", policy.disabled_classes, classes),
        ("long_term_days", list(policy.long_term_days), sorted(kb.classes)),
        ("monitoring.interval_days", list(policy.monitoring.interval_days), sorted(kb.classes)),
        ("disabled_rules", policy.disabled_rules, sorted(r.name for r in rules)),
    ):
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ConfigError(f"policy.{section}: unknown {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(known)})")


def _build(resolver: Resolver, config: Config, kb: KnowledgeBase) -> ResolveFn | None:
    """Call a resolver factory with ``(config, knowledge)`` or just ``(config)``."""
    factory = resolver.factory
    try:
        n = len(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        n = 1
    result: ResolveFn | None = factory(config, kb) if n >= 2 else factory(config)
    return result
