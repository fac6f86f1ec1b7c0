"""mkdocs hooks for the modelshelf documentation site (``mkdocs.yml`` names this file).

* The home page is ``core/README.md`` (the core package's page on the index) and each plugin's
  page is its ``plugins/<x>/README.md``, generated at build time, so a new plugin gets its page
  without anyone editing the site, and the index page and the site never disagree.
* ``plugins/index.md`` lists every plugin with its one-line description from its pyproject.
* A page added to ``docs/`` without a nav entry in ``mkdocs.yml`` is put in the nav (after the
  guides, titled by its first heading), so that nobody's new page is unreachable.
* READMEs link to the published site with absolute URLs (relative links break on the package
  index); on the site those links are made relative again, so ``mkdocs build --strict`` checks
  that each one leads to a real page, and the local site works offline.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SITE = "https://modelshelf.github.io/modelshelf/"
_SITE_LINK = re.compile(r"(\]\(|<)" + re.escape(SITE) + r"([^)>\s#]*)(#[^)>\s]*)?([)>])")


def _plugins() -> list[tuple[str, str, str]]:
    """(directory name, distribution, description) of every plugin, by name."""
    found = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        if not (pyproject.parent / "README.md").exists():
            continue
        project = tomllib.loads(pyproject.read_text())["project"]
        found.append((pyproject.parent.name, project["name"], project.get("description", "")))
    return found


def on_config(config: Any) -> Any:
    """Add one nav entry per plugin below the Plugins overview."""
    pages = [{"Overview": "plugins/index.md"}]
    pages += [{distribution: f"plugins/{name}.md"} for name, distribution, _ in _plugins()]
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Plugins" in entry:
            entry["Plugins"] = pages
    return config


def on_files(files: Files, config: Any) -> Files:
    if files.get_file_from_path("index.md") is None:
        files.append(
            File.generated(config, "index.md", content=(ROOT / "core" / "README.md").read_text())
        )
    rows = "\n".join(
        f"| [{distribution}]({name}.md) | `modelshelf[{name}]` | {description} |"
        for name, distribution, description in _plugins()
    )
    overview = (
        "# Plugins\n\n"
        "Each cloud and each ML framework is a package of its own, found through the `modelshelf`\n"
        "entry-point group. Install the ones you need, by name or through the core's extras\n"
        '(`pip install "modelshelf[s3,sklearn]"`, `"modelshelf[all]"`); `modelshelf plugins` lists\n'
        "what is installed. To write one, start from `modelshelf plugin new` and the\n"
        "[plugin author guide](../plugin-authors.md).\n\n"
        "| package | extra | what it does |\n|---|---|---|\n" + rows + "\n"
    )
    files.append(File.generated(config, "plugins/index.md", content=overview))
    for name, _, _ in _plugins():
        readme = ROOT / "plugins" / name / "README.md"
        files.append(File.generated(config, f"plugins/{name}.md", content=readme.read_text()))
    _add_pages_missing_from_nav(files, config)
    return files


def _nav_paths(entries: Any) -> set[str]:
    if isinstance(entries, str):
        return {entries}
    if isinstance(entries, dict):
        return set().union(*(_nav_paths(v) for v in entries.values()))
    if isinstance(entries, list):
        return set().union(*(_nav_paths(v) for v in entries)) if entries else set()
    return set()


def _add_pages_missing_from_nav(files: Files, config: Any) -> None:
    listed = _nav_paths(config["nav"])
    missing = sorted(
        f.src_uri for f in files.documentation_pages() if f.src_uri not in listed and f.abs_src_path
    )
    nav = config["nav"]
    at = next((i for i, e in enumerate(nav) if isinstance(e, dict) and "Reference" in e), len(nav))
    for src_uri in missing:
        text = Path(files.get_file_from_path(src_uri).abs_src_path).read_text()
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), src_uri)
        nav.insert(at, {title: src_uri})
        at += 1


def _relative(target: str, page: str) -> str:
    """``user-guide/`` (a site URL path) as a link from the page whose source is ``page``."""
    path = target.strip("/")
    docs = ROOT / "docs"
    generated = {"", "plugins"} | {f"plugins/{name}" for name, _, _ in _plugins()}
    if path in generated:
        source = (
            "index.md"
            if path == ""
            else ("plugins/index.md" if path == "plugins" else f"{path}.md")
        )
    elif (docs / f"{path}.md").exists():
        source = f"{path}.md"
    else:
        source = f"{path}/index.md"  # missing: strict mode reports the broken link
    return posixpath.relpath(source, posixpath.dirname(page) or ".")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        opening, target, anchor, closing = match.groups()
        link = _relative(target, page.file.src_uri) + (anchor or "")
        # An autolink <https://...> becomes an ordinary link, shown as the page's URL.
        return f"[{SITE}{target}]({link})" if opening == "<" else f"]({link}{closing}"

    return _SITE_LINK.sub(replace, markdown)
