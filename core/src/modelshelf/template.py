"""``modelshelf plugin new serializer|storage NAME``: write a ready plugin package to start from.

The package is the shape every modelshelf plugin has (``docs/plugin-authors.md``): a
``pyproject.toml`` with the ``modelshelf`` entry point, a module holding only the hook
implementation, the serializer or storage skeleton in a module of its own (the framework or SDK
imported inside it, never at import time), the contract test subclass from
:mod:`modelshelf.testing`, and a README. Every place the author must fill in says ``TODO``; once
they are filled, ``pytest`` runs the contract suite against the new plugin.

The templates are package data (``modelshelf/templates/<kind>/*.tmpl``), filled with
:class:`string.Template`: ``${name}`` placeholders, so the Python inside them needs no escaping.
This module imports nothing beyond the standard library and click.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import click

from . import __version__
from .errors import ModelshelfError

__all__ = ["KINDS", "create", "plugin"]

#: What ``plugin new`` can write.
KINDS = ("serializer", "storage")

#: A plugin name: it becomes the distribution ``modelshelf-NAME``, the module
#: ``modelshelf_NAME`` (dashes as underscores), the entry-point name and, for a storage, the URL
#: scheme; so it is lowercase letters and digits, dash-separated.
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

#: Output path (with placeholders) -> template file, for each kind. Tests are named after the
#: module so that they stay unique when several plugins are tested in one pytest session.
_LAYOUT: Mapping[str, Mapping[str, str]] = {
    "serializer": {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        "src/${module}/__init__.py": "init.py.tmpl",
        "src/${module}/serializer.py": "serializer.py.tmpl",
        "src/${module}/py.typed": "py.typed.tmpl",
        "tests/test_${module}_contract.py": "test_contract.py.tmpl",
    },
    "storage": {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        "src/${module}/__init__.py": "init.py.tmpl",
        "src/${module}/storage.py": "storage.py.tmpl",
        "src/${module}/py.typed": "py.typed.tmpl",
        "tests/test_${module}_contract.py": "test_contract.py.tmpl",
    },
}


def _placeholders(kind: str, name: str, framework: str | None) -> dict[str, str]:
    module = "modelshelf_" + name.replace("-", "_")
    major, minor, *_ = __version__.split(".")
    return {
        "kind": kind,
        "name": name,
        "module": module,
        "distribution": f"modelshelf-{name}",
        "class_name": "".join(part.capitalize() for part in name.split("-")),
        "framework": framework or name.replace("-", "_"),
        "core_version": f"{major}.{minor}",
    }


def create(kind: str, name: str, destination: Path, *, framework: str | None = None) -> list[Path]:
    """Write a new ``kind`` plugin called ``name`` into ``destination``; return the files written.

    ``destination`` must not exist or be an empty directory: nothing is ever overwritten.
    ``framework`` (serializers only) is the import name of the framework, by default the plugin
    name. Raises :class:`~modelshelf.errors.ModelshelfError` (one line) for a bad name or place.
    """
    if kind not in KINDS:
        raise ModelshelfError(f"unknown plugin kind {kind!r}: choose one of {', '.join(KINDS)}")
    if not _NAME.match(name) or len(name) > 60:
        raise ModelshelfError(
            f"invalid plugin name {name!r}: use lowercase letters and digits, dash-separated "
            "(e.g. mystore, my-framework); it becomes modelshelf-NAME and modelshelf_NAME"
        )
    if framework is not None and not _MODULE.match(framework):
        raise ModelshelfError(
            f"invalid framework module name {framework!r}: give its import name (e.g. sklearn)"
        )
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ModelshelfError(
            f"{destination} already exists and is not an empty directory: choose another --dir"
        )
    values = _placeholders(kind, name, framework)
    templates = resources.files("modelshelf") / "templates" / kind
    written = []
    for target, source in _LAYOUT[kind].items():
        text = string.Template((templates / source).read_text(encoding="utf-8")).substitute(values)
        path = destination / string.Template(target).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@click.group()
def plugin() -> None:
    """Write new plugins."""


@plugin.command("new")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.option(
    "--dir",
    "destination",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the package (default: ./modelshelf-NAME). Must not exist or be empty.",
)
@click.option(
    "--framework",
    default=None,
    metavar="MODULE",
    help="Serializers: the import name of the framework (default: NAME).",
)
def new(kind: str, name: str, destination: Path | None, framework: str | None) -> None:
    """Write a ready plugin package: a serializer for a framework, or a storage for a URL scheme.

    The package has the entry point, the hook implementation, a skeleton whose TODOs you fill,
    the contract tests it must pass (modelshelf.testing) and a README.
    """
    if framework is not None and kind != "serializer":
        raise click.UsageError("--framework applies to serializers only")
    destination = destination if destination is not None else Path(f"modelshelf-{name}")
    written = create(kind, name, destination, framework=framework)
    click.echo(f"Wrote {len(written)} files to {destination}:")
    for path in written:
        click.echo(f"  {path.relative_to(destination).as_posix()}")
    click.echo(
        "Next: fill in every TODO (grep -rn TODO), then\n"
        f"  pip install -e '{destination}[test]'\n"
        f"  pytest {destination / 'tests'}"
    )
