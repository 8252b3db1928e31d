"""Render the hook reference (``docs/hooks.md``) from :mod:`b12drugs.hookspecs`.

The reference is generated, never written by hand, so it cannot drift from the code;
a test fails when the committed file differs.  Regenerate with::

    python -m b12drugs.hookdocs > docs/hooks.md
"""

from __future__ import annotations

import inspect

from . import hookspecs

HEADER = """# Hook reference

Generated from `src/b12drugs/hookspecs.py` by `python -m b12drugs.hookdocs`; do not edit.
Implement hooks with `from b12drugs import hookimpl` and register your module under the
`b12drugs` entry-point group (see the [plugin author's guide](plugin-guide.md)).
"""


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("b12drugs_"))


def render() -> str:
    parts = [HEADER]
    for name in hook_names():
        fn = getattr(hookspecs, name)
        opts = getattr(fn, "b12drugs_spec", {}) or {}
        sig = str(inspect.signature(fn)).replace("'", "")
        kind = "firstresult: stops at the first non-None result" if opts.get("firstresult") \
            else "all implementations are called (not firstresult)"
        doc = inspect.cleandoc(fn.__doc__ or "")
        parts.append(f"## `{name}`\n\n```python\ndef {name}{sig}\n```\n\n*{kind}*\n\n{doc}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
