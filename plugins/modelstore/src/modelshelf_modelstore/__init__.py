"""modelshelf plugin ``modelshelf-modelstore``: ``modelshelf import-modelstore`` and
:func:`import_modelstore`, which bring a modelstore registry (filesystem or S3) into a shelf.

Importing this module imports neither modelstore nor any cloud SDK or framework: the registry is
read through modelshelf's storage plugins, and models get serializers by name from the plugin
registry (:mod:`modelshelf_modelstore.managers`).
"""

from __future__ import annotations

import click
from modelshelf.plugins import hookimpl

from .archives import extract_archive, is_pickle_like
from .commands import add_commands
from .importer import import_modelstore
from .managers import MANAGERS, ManagerMapping
from .report import AliasChange, ImportedModel, ImportReport, SkippedItem
from .source import public_location

__all__ = [
    "MANAGERS",
    "AliasChange",
    "ImportReport",
    "ImportedModel",
    "ManagerMapping",
    "SkippedItem",
    "extract_archive",
    "import_modelstore",
    "is_pickle_like",
    "public_location",
]


@hookimpl
def modelshelf_register_commands(cli: click.Group) -> None:
    add_commands(cli)
