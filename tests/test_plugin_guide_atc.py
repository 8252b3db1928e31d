"""The plugin guide's worked example (national product codes -> ATC) runs as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

from b12drugs.engines import Screener
from b12drugs.models import Coding, Order

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugin-guide.md"
BLOCK = re.compile(r"<!-- example: national_codes.py -->\s*```python\n(?P<body>.*?)```",
                   re.DOTALL)


def _example() -> types.ModuleType:
    m = BLOCK.search(GUIDE.read_text(encoding="utf-8"))
    assert m, "the worked example is missing from docs/plugin-guide.md"
    module = types.ModuleType("b12drugs_natcodes")
    exec(compile(m["body"], str(GUIDE), "exec"), module.__dict__)
    return module


def test_national_codes_resolve_through_atc(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    ex = _example()
    assert ex.load_table()["0000002"] == ("A10BD07",)
    register_plugin(ex.plugin, "natcodes")

    def coded(oid: str, code: str, text: str | None = None) -> Order:
        return Order(id=oid, patient_id=f"p{oid}", text=text,
                     codings=(Coding(system=ex.SYSTEM, code=code),))

    s = Screener(manager=plugin_manager)
    s.feed([coded("1", "0000001"), coded("2", "0000002"), coded("3", "0000004"),
            coded("4", "9999999", text="omeprazole 20 mg"), coded("5", "9999998")], "t")
    report = s.finish()
    by_order = {o: a.class_id for a in report.alerts for o in a.orders}
    assert by_order == {"1": "metformin", "2": "metformin", "4": "proton_pump_inhibitors"}
    unresolved = {n.order_id for n in report.notices if n.kind == "unresolved"}
    assert unresolved == {"5"}  # a code nobody knows is not a silent negative
    assert "3" not in by_order  # ramipril: checked, nothing found
