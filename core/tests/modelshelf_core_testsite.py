"""Plugins installed into a temporary site directory, for the tests of plugin discovery and
reporting (importable by name: the test modules put this folder on ``sys.path``)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_distribution(site: Path, dist: str, module: str, source: str, entry_name: str) -> None:
    """Install a distribution the way pip would leave it: a module plus a .dist-info directory."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[modelshelf]\n{entry_name} = {module}\n")
    (info / "RECORD").write_text("")
