"""python-hl7 as an independent reference for the plugin's own field splitting.

The plugin splits fields itself for speed (see ``b12drugs_hl7v2.fields``); here every
segment of every sample message is also parsed with :func:`hl7.parse` and each field's
repetitions, components and subcomponents must be identical.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import hl7
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from b12drugs_hl7v2.fields import Seg
from b12drugs_hl7v2.framing import RawMessage, iter_messages
from b12drugs_hl7v2.message import read_header
from hl7_helpers import DATA


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def _reference(field: Any) -> list[list[list[str]]]:
    out = [[[str(s) for s in _as_list(c)] for c in _as_list(r)] for r in _as_list(field)]
    return [] if out == [[[""]]] else out


def _messages(raw: bytes) -> list[RawMessage]:
    return [m for m in iter_messages(io.BytesIO(raw)) if isinstance(m, RawMessage)]


SAMPLES = sorted(p.name for p in DATA.glob("*.hl7") if p.name != "partly_bad.hl7")


@pytest.mark.parametrize("name", SAMPLES)
def test_fields_match_python_hl7(name: str) -> None:
    compared = 0
    for raw in _messages((DATA / name).read_bytes()):
        header = read_header(raw)
        text = "\r".join(s.decode("utf-8") for s in raw.segments)
        tree = hl7.parse(text)
        assert len(tree) == len(raw.segments)
        for node, seg_bytes in zip(tree, raw.segments, strict=True):
            seg_text = seg_bytes.decode("utf-8")
            name3 = seg_text[:3]
            seg = Seg(seg_text, name3, 1, 1, header.encoding, "utf-8")
            assert len(seg) == len(node)
            for n in range(3 if name3 == "MSH" else 1, len(node)):
                assert seg.reps(n) == _reference(node[n]), (name, name3, n)
                compared += 1
    assert compared > 10
