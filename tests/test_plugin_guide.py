"""The plugin author's guide is executable: its example plugin is built from the
markdown and its own tests (including the input-format contract) are run in a real
subprocess against the installed core."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->.*?```\w*\n(?P<body>.*?)```", re.DOTALL)


def guide_files() -> dict[str, str]:
    return {m["path"]: m["body"] for m in BLOCK.finditer((DOCS / "plugin-guide.md").read_text())}


def test_guide_has_a_complete_plugin() -> None:
    files = guide_files()
    assert set(files) == {"pyproject.toml", "src/b12drugs_acme/plugin.py", "tests/sample.acme",
                          "tests/test_acme.py"}
    assert "[project.entry-points.b12drugs]" in files["pyproject.toml"]


def test_guide_plugin_passes_its_own_tests(tmp_path: Path) -> None:
    root = tmp_path / "b12drugs-acme"
    for rel, body in guide_files().items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    (root / "src" / "b12drugs_acme" / "__init__.py").write_text("")
    # Install by hand (a .dist-info with the entry point), as pip would, without network.
    site = tmp_path / "site"
    info = site / "b12drugs_acme-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: b12drugs-acme\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[b12drugs]\nacme = b12drugs_acme.plugin\n")
    env = {"PYTHONPATH": f"{site}:{root / 'src'}", "PATH": "/usr/bin:/bin",
           "B12DRUGS_STRICT_PLUGINS": "1", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True, text=True, env=env, timeout=300, cwd=root,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout
    listing = subprocess.run([sys.executable, "-m", "b12drugs", "plugins"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert re.search(r"acme\s+active\s+plugin\s+b12drugs-acme 0.1.0", listing.stdout)
