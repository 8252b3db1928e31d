"""JSON responses rendered by orjson.

Starlette renders with ``json.dumps``; orjson takes about a quarter of that time for a
call's cards, and every answer of the service is JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response (compact UTF-8, same headers), rendered by orjson.

    Unlike ``json.dumps``, orjson writes NaN as ``null`` instead of refusing it and
    refuses keys that are not strings; the service answers with neither.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
