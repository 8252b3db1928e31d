"""Plugin manager: builtins, entry points, isolation, listing.

Builtins are registered exactly like external plugins (same path, same checks).
Each entry point is loaded in its own ``try``: a plugin that fails to import, names
a hook that does not exist, or raises inside a hook is reported with its name and
distribution, and everything else keeps working.  Strict mode (for plugin authors'
CI) turns every such problem into a :class:`~b12drugs.errors.PluginError`.

Environment:

``B12DRUGS_LOAD_PLUGINS``
    When set, only the entry-point plugins named in this comma-separated allowlist
    are loaded (an empty value loads none).  Builtins are not affected.
``B12DRUGS_DISABLE_PLUGINS``
    Comma-separated names of plugins (entry-point or builtin) not to load; they are
    listed as ``blocked``.
``B12DRUGS_STRICT_PLUGINS``
    ``1`` turns plugin problems into errors.

The :class:`Hooks` facade is the only place that calls ``pm.hook``: the rest of the
code gets typed results and never handles untyped hook calls.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib
import importlib.metadata as md
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, TypeVar

import pluggy

from . import hookspecs
from .config import Config
from .errors import PluginError
from .models import PatientContext
from .records import AlertSink, InputFormat, Knowledge, OutputFormat, Resolver, Rule

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "b12drugs"

#: Builtin plugins: (name, module).  Registered through the same path as entry points.
BUILTINS: tuple[tuple[str, str], ...] = (
    ("csv", "b12drugs.read.delimited"),
    ("jsonl", "b12drugs.read.jsonl"),
    ("parquet", "b12drugs.read.parquet"),
    ("labs", "b12drugs.read.labs"),
    ("outputs", "b12drugs.emit.outputs"),
    ("knowledge-base", "b12drugs.resolve.kb_plugin"),
    ("rxnorm-index", "b12drugs.resolve.index_plugin"),
    ("rxnav", "b12drugs.resolve.rxnav_plugin"),
    ("policy", "b12drugs.assess.plugin"),
    ("sinks", "b12drugs.emit.sinks"),
)

Status = Literal["active", "blocked", "failed"]


@dataclass
class PluginInfo:
    """What ``b12drugs plugins`` lists about one plugin."""

    name: str
    distribution: str
    version: str
    status: Status
    hooks: tuple[str, ...] = ()
    error: str | None = None
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "error": self.error,
        }


@dataclass
class PluginProblem:
    """A plugin that failed at load time or inside a hook."""

    plugin: str
    distribution: str
    where: str
    error: str
    #: the exception's type name (safe to show: no patient data), "" for a message
    exc_type: str = ""

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution}) failed in {self.where}: {self.error}"


#: The arguments of ``b12drugs_risk_factors`` in the order of its specification.
_RISK_ARGS = ("patient", "as_of", "config")


class ProblemLog:
    """A manager's plugin problems: the last :attr:`LIMIT` kept, every one counted.

    One manager may serve a long-running service (the HL7 listener, the CDS Hooks
    service) for months, so keeping every problem would grow without end.  A run that
    wants the problems of its own work takes a :meth:`mark` first and asks
    :meth:`since` after; ``since`` only gives problems recorded by the calling thread,
    so concurrent runs sharing one manager do not report each other's failures.
    Iterating gives the kept problems, oldest first.
    """

    LIMIT = 1000

    def __init__(self) -> None:
        self._kept: collections.deque[tuple[int, int, PluginProblem]] = collections.deque(
            maxlen=self.LIMIT)
        self._lock = threading.Lock()
        self.total = 0  # problems ever recorded

    def append(self, problem: PluginProblem) -> None:
        with self._lock:  # numbered in the order kept, never repeated
            self._kept.append((self.total, threading.get_ident(), problem))
            self.total += 1

    def mark(self) -> int:
        """A position to ask :meth:`since` about later."""
        return self.total

    def since(self, mark: int) -> list[PluginProblem]:
        """The kept problems this thread recorded after ``mark``."""
        me = threading.get_ident()
        return [p for n, t, p in list(self._kept) if n >= mark and t == me]

    def __iter__(self) -> Iterator[PluginProblem]:
        return (p for _, _, p in list(self._kept))

    def __len__(self) -> int:
        return len(self._kept)

    def __getitem__(self, index: int) -> PluginProblem:
        return self._kept[index][2]


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _declared_hooks(plugin: object, pm: pluggy.PluginManager) -> list[str]:
    """Names of the attributes of ``plugin`` marked as b12drugs hook implementations."""
    names = []
    for attr in dir(plugin):
        if not attr.startswith("b12drugs_"):
            continue
        if pm.parse_hookimpl_opts(plugin, attr) is not None:
            names.append(attr)
    return names


T = TypeVar("T")


class Hooks:
    """Typed facade over ``pm.hook`` with per-plugin isolation.

    Registration hooks are called one implementation at a time so that one
    plugin's exception does not hide the others' records.
    """

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo], strict: bool):
        self.pm = pm
        self.infos = infos
        self.strict = strict
        self.problems = ProblemLog()
        self._cache: dict[str, list[Any]] = {}

    # -- generic machinery -------------------------------------------------
    def _dist(self, plugin_name: str) -> str:
        info = self.infos.get(plugin_name)
        return info.distribution if info else "?"

    def problem(self, plugin_name: str, where: str, exc: BaseException | str) -> None:
        err = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        prob = PluginProblem(plugin_name, self._dist(plugin_name), where, err,
                             "" if isinstance(exc, str) else type(exc).__name__)
        self.problems.append(prob)
        # Logs get the plugin, the place and the exception type only: an exception's
        # message may quote a record (patient data); it goes to DEBUG only.
        log.warning("plugin %r (%s) failed in %s: %s", plugin_name, prob.distribution, where,
                    prob.exc_type or "problem", extra={"b12drugs_problem": True})
        log.debug("plugin %r failed in %s: %s", plugin_name, where, err,
                  extra={"b12drugs_problem": True})
        if self.strict:
            raise PluginError(str(prob))

    def _impls(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
        """Each implementation, in pluggy's call order, bound to the arguments it takes
        (an implementation may accept fewer arguments than the spec)."""
        for plugin_name, function, argnames in self._hookimpls(hook_name):
            args = {a: kwargs[a] for a in argnames}
            yield plugin_name, functools.partial(function, **args)

    def _hookimpls(self, hook_name: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        """``(plugin, function, argument names)`` per implementation, in pluggy's call
        order; kept until plugins change (risk factors are asked once per patient)."""
        key = "impls:" + hook_name
        impls = self._cache.get(key)
        if impls is None:
            hook = getattr(self.pm.hook, hook_name)
            impls = self._cache[key] = [(i.plugin_name, i.function, tuple(i.argnames))
                                        for i in reversed(hook.get_hookimpls())]
        return impls

    def _collect(self, hook_name: str, cls: type[T], key: Callable[[T], str] | None) -> list[T]:
        if hook_name in self._cache:
            return self._cache[hook_name]
        out: list[T] = []
        seen: dict[str, str] = {}  # record key -> providing plugin
        for plugin_name, fn in self._impls(hook_name):
            try:
                got = list(fn() or ())
                for rec in got:
                    if not isinstance(rec, cls):
                        raise TypeError(f"returned {type(rec).__name__}, expected {cls.__name__}")
            except PluginError:
                raise
            except Exception as exc:
                self.problem(plugin_name, hook_name, exc)
                continue
            for rec in got:
                if dataclasses.is_dataclass(rec):
                    rec = dataclasses.replace(rec, provider=plugin_name)  # type: ignore[type-var]
                if key is not None:
                    k = key(rec)
                    if k in seen:
                        first = seen[k]
                        self.problem(
                            plugin_name,
                            hook_name,
                            f"{cls.__name__} {k!r} is provided by both {first!r} "
                            f"({self._dist(first)}) and {plugin_name!r} "
                            f"({self._dist(plugin_name)}); keeping the first",
                        )
                        continue
                    seen[k] = plugin_name
                out.append(rec)
        self._cache[hook_name] = out
        return out

    # -- typed hooks ---------------------------------------------------------
    def input_formats(self) -> list[InputFormat]:
        return self._collect("b12drugs_input_formats", InputFormat, lambda r: r.name)

    def output_formats(self) -> list[OutputFormat]:
        return self._collect("b12drugs_output_formats", OutputFormat, lambda r: r.name)

    def resolvers(self) -> list[Resolver]:
        found = self._collect("b12drugs_resolvers", Resolver, lambda r: r.name)
        return sorted(found, key=lambda r: r.order)

    def knowledge(self) -> list[Knowledge]:
        return self._collect("b12drugs_knowledge", Knowledge, lambda r: f"{r.provider}:{r.name}")

    def rules(self) -> list[Rule]:
        return self._collect("b12drugs_rules", Rule, lambda r: r.name)

    def alert_sinks(self) -> list[AlertSink]:
        return self._collect("b12drugs_alert_sinks", AlertSink, lambda r: r.name)

    def cli_commands(self) -> list[Any]:
        import click

        return self._collect("b12drugs_cli_commands", click.Command, lambda c: c.name or "")

    def risk_factors(self, patient: PatientContext, as_of: date, config: Config) -> set[str]:
        found: set[str] = set()
        given = {"patient": patient, "as_of": as_of, "config": config}
        for plugin_name, function, argnames in self._hookimpls("b12drugs_risk_factors"):
            try:
                if argnames == _RISK_ARGS:  # the usual signature: no keyword dict per call
                    got = function(patient, as_of, config) or ()
                else:
                    got = function(**{a: given[a] for a in argnames}) or ()
                # a str is iterable too: "neuropathy" must not become 10 one-letter factors
                if isinstance(got, (str, bytes)) or not all(isinstance(f, str) for f in got):
                    raise TypeError(f"returned {type(got).__name__}, expected a collection "
                                    "of risk factor ids (str)")
                found.update(got)
            except PluginError:
                raise
            except Exception as exc:
                self.problem(plugin_name, "b12drugs_risk_factors", exc)
        return found

    def call_isolated(self, plugin_name: str, where: str, fn: Callable[[], T]) -> T | None:
        """Run a plugin-provided callable, turning its exception into a problem."""
        try:
            return fn()
        except PluginError:
            raise
        except Exception as exc:
            self.problem(plugin_name, where, exc)
            return None

    def format_for(self, name: str) -> InputFormat | None:
        return next((f for f in self.input_formats() if f.name == name), None)

    def output_for(self, name: str) -> OutputFormat | None:
        return next((f for f in self.output_formats() if f.name == name), None)


class PluginManager:
    """Loads builtins and entry points; exposes :attr:`hooks` and :attr:`infos`."""

    def __init__(self, *, strict: bool | None = None, entry_points: bool = True):
        if strict is None:
            strict = os.environ.get("B12DRUGS_STRICT_PLUGINS", "") not in ("", "0")
        self.strict = strict
        self.entry_points = entry_points
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.hooks = Hooks(self.pm, self.infos, strict)
        self._disabled = set(_env_list("B12DRUGS_DISABLE_PLUGINS") or ())
        self._allow = _env_list("B12DRUGS_LOAD_PLUGINS")
        version = md.version("b12drugs") if _has_dist("b12drugs") else "0"
        for name, module in BUILTINS:
            loader = functools.partial(importlib.import_module, module)
            self._load(name, "b12drugs", version, loader, True)
        if entry_points:
            for ep in md.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist else "?"
                dver = ep.dist.version if ep.dist else "?"
                if self._allow is not None and ep.name not in self._allow:
                    self._block(ep.name, dist, dver, "not in B12DRUGS_LOAD_PLUGINS")
                    continue
                self._load(ep.name, dist, dver, ep.load, False)
        #: plugins registered or removed in code since loading: a fresh interpreter (a
        #: worker process, a Spark executor) would not have the same set
        self.edited = False

    # -- registration --------------------------------------------------------
    def _block(self, name: str, dist: str, version: str, why: str) -> None:
        self.infos[name] = PluginInfo(name, dist, version, "blocked", error=why)

    def _load(
        self, name: str, dist: str, version: str, loader: Callable[[], object], builtin: bool
    ) -> None:
        if name in self.infos and self.infos[name].status == "active":
            other = self.infos[name]
            self.infos[f"{name}@{dist}"] = PluginInfo(
                name,
                dist,
                version,
                "failed",
                error=f"name {name!r} already used by {other.distribution}",
                builtin=builtin,
            )
            self.hooks.problem(name, "load", f"plugin name {name!r} is used by both "
                               f"{other.distribution} and {dist}")
            return
        if name in self._disabled:
            self._block(name, dist, version, "disabled by B12DRUGS_DISABLE_PLUGINS")
            self.infos[name].builtin = builtin
            return
        try:
            plugin = loader()
            self.register(plugin, name, dist=dist, version=version, builtin=builtin)
        except Exception as exc:  # isolation: any failure marks this plugin only
            self.infos[name] = PluginInfo(
                name, dist, version, "failed", error=f"{type(exc).__name__}: {exc}", builtin=builtin
            )
            self.hooks.problem(name, "load", exc)

    def register(
        self,
        plugin: object,
        name: str,
        *,
        dist: str = "?",
        version: str = "?",
        builtin: bool = False,
    ) -> None:
        """Register a plugin object (module or instance) after checking its hooks.

        Raises on unknown hook names or bad signatures; :meth:`_load` turns that into a
        ``failed`` plugin, tests and strict mode see the exception.
        """
        declared = _declared_hooks(plugin, self.pm)
        unknown = [h for h in declared if not hasattr(self.pm.hook, h) or
                   getattr(self.pm.hook, h).spec is None]
        if unknown:
            raise PluginError(f"plugin {name!r} implements unknown hook(s): {', '.join(unknown)}")
        self.pm.register(plugin, name=name)
        self.edited = True
        self.infos[name] = PluginInfo(
            name, dist, version, "active", tuple(sorted(declared)), builtin=builtin
        )
        self.hooks._cache.clear()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.edited = True
        self.infos.pop(name, None)
        self.hooks._cache.clear()

    def active(self) -> tuple[str, ...]:
        """The names of the plugins loaded and registered, sorted."""
        return tuple(sorted(n for n, i in self.infos.items() if i.status == "active"))

    def list(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda i: (not i.builtin, i.name))


def _has_dist(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


_default: PluginManager | None = None


def get_plugin_manager(*, reload: bool = False) -> PluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _default
    if _default is None or reload:
        _default = PluginManager()
    return _default

