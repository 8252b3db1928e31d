"""Builtin plugin: the ``jsonl-file`` alert sink.

Appends each alert of a finished report to a JSON Lines file (one alert per line,
with ``schema_version`` and the report's ``generated_at``), so another process can
tail it.  Options: ``path`` (required).  Appends are serialised by a process-wide
lock so concurrent deliveries (the HL7 listener) never interleave lines.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..hookspecs import hookimpl
from ..models import Report
from ..records import AlertSink

_lock = threading.Lock()


def jsonl_file_sink(options: Mapping[str, Any]) -> Callable[[Report], None]:
    path = options.get("path")
    if not path:
        raise ConfigError("alert sink 'jsonl-file' needs a 'path' option")
    target = Path(str(path))

    def deliver(report: Report) -> None:
        lines = []
        for alert in report.alerts:
            row = {"schema_version": report.schema_version,
                   "generated_at": report.generated_at.isoformat(),
                   **alert.model_dump(mode="json")}
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        if not lines:
            return
        with _lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)

    return deliver


@hookimpl(trylast=True)
def b12drugs_alert_sinks() -> Iterable[AlertSink]:
    return [AlertSink("jsonl-file", "append alerts to a JSON Lines file (option: path)",
                      jsonl_file_sink)]
