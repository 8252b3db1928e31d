"""CDS Hooks service for b12drugs.

>>> from b12drugs.config import load_config
>>> from b12drugs_cdshooks import create_app
>>> app = create_app(load_config("b12drugs.toml"))   # doctest: +SKIP

The app is a Starlette ASGI application; run it with ``b12drugs serve`` or any ASGI
server (``uvicorn --factory`` with a small factory calling :func:`create_app`).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> object:
    # Lazy: importing the plugin entry point must not import Starlette and the engine.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
