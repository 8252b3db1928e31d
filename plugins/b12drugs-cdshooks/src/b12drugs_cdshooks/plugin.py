"""The b12drugs plugin entry point: adds ``serve`` and ``audit`` to the command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from b12drugs import hookimpl


@hookimpl
def b12drugs_cli_commands() -> Iterable[Any]:
    from .cli import audit, serve

    return [serve, audit]
