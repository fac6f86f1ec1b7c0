"""Hook specifications: the whole surface a modelshelf plugin can implement.

Register hooks collect (core resolves conflicts); broadcast hooks announce events after the fact,
and an exception raised by one is reported as a warning, never undoing what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .records import Alias, ModelVersion
    from .serializers import Serializer
    from .shelf import Shelf
    from .storage import Storage

hookspec = pluggy.HookspecMarker("modelshelf")
#: Marks a plugin's hook implementations: ``@modelshelf.hookimpl``.
hookimpl = pluggy.HookimplMarker("modelshelf")

#: ``register(scheme, factory)``: ``factory(url, **options) -> Storage``, importing its SDK lazily.
StorageRegistrar = Callable[[str, Callable[..., "Storage"]], None]
#: ``register(serializer)``: an instance of a :class:`~modelshelf.serializers.Serializer`.
SerializerRegistrar = Callable[["Serializer"], None]


@hookspec
def modelshelf_register_storage(register: StorageRegistrar) -> None:
    """Register URL schemes. Call ``register("s3", factory)`` once per scheme.

    The factory receives the whole shelf URL as the user wrote it and the keyword options given to
    ``modelshelf.open`` (from the CLI's ``-o KEY=VALUE``: strings, or the value when it reads as
    JSON), and returns a :class:`~modelshelf.storage.Storage`. Import the SDK inside the factory,
    never at module import time. A scheme registered by two plugins is used from neither.
    """


@hookspec
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    """Register serializers. Call ``register(MySerializer())`` (an instance) once per serializer.

    A serializer name registered by two plugins is used from neither.
    """


@hookspec
def modelshelf_register_commands(cli: click.Group) -> None:
    """Add commands to the ``modelshelf`` command line group."""


@hookspec
def modelshelf_version_published(shelf: Shelf, version: ModelVersion) -> None:
    """Called after a new version's manifest is written."""


@hookspec
def modelshelf_alias_changed(
    shelf: Shelf, name: str, alias: str, version: int | None, previous: Alias | None
) -> None:
    """Called after an alias is set (``version`` is the new target) or removed (``None``)."""


@hookspec
def modelshelf_version_deleted(shelf: Shelf, name: str, version: int) -> None:
    """Called after a version is replaced by a tombstone."""


@hookspec
def modelshelf_check_version(
    shelf: Shelf, version: ModelVersion, requirements: dict[str, Any]
) -> dict[str, str | None] | None:
    """Check ``version`` against the ``requirements`` this plugin understands.

    Called before ``load`` and ``set_alias`` when a policy or the caller asks for more than core
    can check (``signed_by``: ``True`` or a list of allowed signers), and by ``verify
    --signatures``. Return ``{requirement: None}`` for each requirement met and ``{requirement:
    "one-line reason"}`` for each one not met; leave out the requirements you do not know. A
    requirement is met when one plugin answers None; one no plugin answers is not met, and a
    plugin that raises counts as a "not met" answer.
    """
