"""Exceptions that carry what went wrong and where, for users rather than tracebacks.

The CLI maps each to its own exit code (see :mod:`b12drugs.cli`).
"""

from __future__ import annotations


class B12DrugsError(Exception):
    """Base class of every error b12drugs reports to a user."""


class InputError(B12DrugsError):
    """The input as a whole cannot be read (unknown format, unreadable file).

    Bad *records* inside a readable input are not errors: parsers yield
    :class:`~b12drugs.models.Rejection` records for them and go on.
    """

    def __init__(self, message: str, location: str | None = None):
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ConfigError(B12DrugsError):
    """The configuration file or an option is invalid."""


class PluginError(B12DrugsError):
    """A plugin failed to load or raised inside a hook (raised in strict mode)."""


class SourceUnavailable(B12DrugsError):
    """A knowledge source (RxNav, a local index) could not be reached or answered badly."""
