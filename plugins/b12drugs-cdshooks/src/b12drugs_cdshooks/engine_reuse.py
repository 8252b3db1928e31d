"""Build the resolution chain once per service, not once per request.

:class:`b12drugs.engine.Screener` calls every resolver factory when it is created
(the offline knowledge-base resolver builds its name index then, ~80 ms).  A batch run
pays that once; a CDS service creating one Screener per request would pay it on every
call.  This wrapper hands the Screener a view of the plugin manager whose resolver
records have memoised factories, so each factory runs once for the service's fixed
config and knowledge base and every request reuses the resolve functions (they are
read-only after construction; the RxNav resolver guards its own caches).

It uses only public API (the ``Resolver`` record and the ``Hooks`` facade).  A core
API for this (e.g. ``Screener(..., resolvers=...)``) would make the wrapper redundant.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import replace
from typing import Any

from b12drugs.config import Config
from b12drugs.knowledge import KnowledgeBase
from b12drugs.plugins import PluginManager
from b12drugs.records import ResolveFn, Resolver


def _call_factory(resolver: Resolver, config: Config, kb: KnowledgeBase) -> ResolveFn | None:
    factory: Any = resolver.factory
    try:
        n = len(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        n = 1
    result: ResolveFn | None = factory(config, kb) if n >= 2 else factory(config)
    return result


class _Hooks:
    """Delegates to the real ``Hooks`` facade except for memoised resolvers."""

    def __init__(self, hooks: Any, resolvers: list[Resolver]):
        self._hooks = hooks
        self._resolvers = resolvers

    def resolvers(self) -> list[Resolver]:
        return list(self._resolvers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hooks, name)


class _Manager:
    def __init__(self, manager: PluginManager, hooks: _Hooks):
        self._manager = manager
        self.hooks = hooks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def reusing_manager(manager: PluginManager, config: Config, kb: KnowledgeBase) -> PluginManager:
    """A manager view whose resolver factories are built once (lazily, thread-safely)."""
    lock = threading.Lock()
    built: dict[str, ResolveFn | None] = {}

    def memo(resolver: Resolver) -> Resolver:
        def factory(cfg: Config, knowledge: KnowledgeBase | None = None) -> ResolveFn | None:
            with lock:
                if resolver.name not in built:
                    built[resolver.name] = _call_factory(resolver, config, kb)
                return built[resolver.name]

        return replace(resolver, factory=factory)

    hooks = _Hooks(manager.hooks, [memo(r) for r in manager.hooks.resolvers()])
    view: Any = _Manager(manager, hooks)
    return view  # type: ignore[no-any-return]
