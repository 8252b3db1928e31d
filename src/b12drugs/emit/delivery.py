"""Delivery of a finished report to the alert sinks named in the configuration."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..errors import ConfigError, PluginError
from ..models import Notice, Report

if TYPE_CHECKING:
    from ..config import Config
    from ..plugins import Hooks


def deliver(report: Report, config: Config, hooks: Hooks) -> Report:
    """Give ``report`` to every configured sink; the report returned also holds a
    ``plugin_error`` notice for each sink that failed (the sinks got it without them).

    :raises PluginError: a configured sink is not installed.
    :raises ConfigError: a sink refused its options.
    """
    if not config.sinks:
        return report
    before = hooks.problems.mark()
    sinks = {s.name: s for s in hooks.alert_sinks()}
    for cfg in config.sinks:
        sink = sinks.get(cfg.name)
        if sink is None:
            raise PluginError(f"alert sink {cfg.name!r} is not installed "
                              f"(installed: {', '.join(sorted(sinks)) or 'none'})")
        options = cfg.model_dump(exclude={"name"})
        try:
            send = sink.factory(options)
        except (ConfigError, PluginError):
            raise  # a misconfigured sink is a configuration error, not a lost report
        except Exception as exc:
            hooks.problem(sink.provider, f"sink {sink.name}", exc)
            continue
        if send is not None:
            hooks.call_isolated(sink.provider, f"sink {sink.name}",
                                functools.partial(send, report))
    failed = [Notice(kind="plugin_error", message=f"plugin {p.plugin!r} failed in "
                     f"{p.where} ({p.exc_type or 'error'}): alerts were not delivered "
                     "there"[:1000]) for p in hooks.problems.since(before)]
    if failed:
        report = report.model_copy(update={"notices": (*report.notices, *failed)})
    return report
