"""Fixtures live in ``cds_support`` (importable by the tests, unlike a conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cds_support import (  # noqa: F401
    _reset_fhir,
    fhir,
    insecure_service,
    jwks_server,
    keys,
    make_token,
    service,
)
