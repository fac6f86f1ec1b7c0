"""Every distribution is ready for the package index: licence, README page, links, one version.

These read the source tree only (no build); ``scripts/check_dist.sh`` builds and installs the
distributions themselves. A new plugin under ``plugins/`` fails here until it has what the
others have: copy ``LICENSE``, give its ``pyproject.toml`` the same ``[project.urls]``,
``classifiers`` and ``license-files``, and add its extra to ``core/pyproject.toml``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
DISTRIBUTIONS = [ROOT / "core", *PLUGINS]


def _project(directory: Path) -> dict:
    return tomllib.loads((directory / "pyproject.toml").read_text())


def _id(directory: Path) -> str:
    return directory.name


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=_id)
def test_licence_readme_links_and_classifiers(directory: Path) -> None:
    project = _project(directory)["project"]
    assert project["license"] == "Apache-2.0"
    assert project.get("license-files") == ["LICENSE"]
    assert (directory / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes(), (
        f"{directory.name}/LICENSE differs from the repository's LICENSE: copy it"
    )
    assert project["readme"] == "README.md"
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(project.get("urls", {}))
    classifiers = project.get("classifiers", [])
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3 :: Only" in classifiers


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=_id)
def test_readme_is_a_page_of_its_own(directory: Path) -> None:
    """The README is the package's page on the index, where relative links lead nowhere."""
    text = (directory / "README.md").read_text()
    name = _project(directory)["project"]["name"]
    assert text.startswith(f"# {name}\n")
    assert "pip install" in text
    assert "```python" in text, "no example"
    assert "https://modelshelf.github.io/modelshelf/" in text, "no link to the documentation"
    relative = [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not target.startswith(("https://", "http://", "#", "mailto:"))
    ]
    assert not relative, f"relative links break on the package index: {relative}"


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=_id)
def test_one_source_for_the_version(directory: Path) -> None:
    """Either ``version`` in pyproject.toml, or ``__version__`` in the package read by setuptools."""
    pyproject = _project(directory)
    project = pyproject["project"]
    module = "modelshelf" if directory.name == "core" else f"modelshelf_{directory.name}"
    init = directory / "src" / module / "__init__.py"
    in_code = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.M)
    if in_code:
        assert "version" not in project and "version" in project.get("dynamic", [])
        assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
            "attr": f"{module}.__version__"
        }
    else:
        assert "version" in project, f"{directory.name}: no version anywhere"


def test_core_has_an_extra_for_every_plugin() -> None:
    extras = _project(ROOT / "core")["project"]["optional-dependencies"]
    names = [p.name for p in PLUGINS]
    for plugin in PLUGINS:
        distribution = _project(plugin)["project"]["name"]
        assert distribution == f"modelshelf-{plugin.name}"
        assert extras.get(plugin.name) == [f"{distribution}>=0.1"], (
            f'add {plugin.name} = ["{distribution}>=0.1"] to core/pyproject.toml and to "all"'
        )
    assert extras["all"] == [f"modelshelf[{','.join(names)}]"]
