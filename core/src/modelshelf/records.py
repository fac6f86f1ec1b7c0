"""The records a shelf stores, as frozen attrs classes.

Records hold data only; turning them into JSON and back (and checking schema numbers) is the job of
:mod:`modelshelf.convert`. Every record carries ``schema``: the format version it was written in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

#: The newest record schema this core reads.
SCHEMA = 2
#: The schema records are written with unless they need a newer one, so that older modelshelf
#: releases keep reading them.
WRITTEN_SCHEMA = 1
#: The schema of a manifest whose files are stored in packs: older releases, which would look for
#: a packed file's own blob, refuse it with an upgrade message instead.
PACKED_SCHEMA = 2


@attrs.frozen
class Blob:
    """A stored blob: ``blobs/sha256/<aa>/<sha256>`` holding ``size`` bytes."""

    sha256: str
    size: int


@attrs.frozen
class FileEntry:
    """One file of a version: where it goes (relative, ``/``-separated) and what it contains.

    A small file may be stored inside a pack (see :mod:`modelshelf.packing`): ``pack`` is then the
    pack's sha256 and ``offset`` where the file's bytes start in it. ``sha256`` and ``size`` are
    always the file's own, so one packed file is still verified on its own.
    """

    path: str
    sha256: str
    size: int
    pack: str | None = None
    offset: int | None = None


@attrs.frozen
class SerializerInfo:
    """Which serializer wrote a version, from which plugin distribution."""

    name: str
    distribution: str
    distribution_version: str
    format: str
    safe: bool
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class FrameworkInfo:
    name: str
    version: str


@attrs.frozen
class GitInfo:
    commit: str | None
    branch: str | None
    dirty: bool | None


@attrs.frozen
class Lineage:
    """Where a version came from: the environment that made it, and any source it was copied from."""

    python: str
    platform: str
    packages: dict[str, str] = attrs.field(factory=dict)
    git: GitInfo | None = None
    source: dict[str, Any] | None = None


@attrs.frozen
class ScanFinding:
    """One file of a version whose pickle stream imports something outside the allow-list."""

    path: str
    #: ``module.name`` of every import found that is not known to be harmless, sorted.
    imports: tuple[str, ...] = ()
    #: Set when the file could not be read to its end (the verdict then covers only its start).
    note: str | None = None


@attrs.frozen
class ScanVerdict:
    """What the pickle scan at upload found (see :mod:`modelshelf.scanning`).

    ``dangerous`` is true when some pickle imports a callable outside the allow-list; loading such
    a version needs ``trust="ignore-scan"``.
    """

    scanner: str
    scanned: tuple[str, ...]
    findings: tuple[ScanFinding, ...] = ()
    schema: int = WRITTEN_SCHEMA

    @property
    def dangerous(self) -> bool:
        """True when a flagged import can run or reach the system (``os``, ``subprocess``,
        ``builtins.open``/``eval``...): then even ``trust=True`` is not enough. Other imports outside
        the allow-list are kept in ``findings`` for the record, and need ordinary trust."""
        from .scanning import is_dangerous_global  # scanning builds these records

        return any(is_dangerous_global(name) for f in self.findings for name in f.imports)


@attrs.frozen
class ModelVersion:
    """A published version of a model: the manifest at ``models/<name>/_versions/<n>.json``."""

    name: str
    version: int
    created_at: dt.datetime
    created_by: str
    serializer: SerializerInfo
    framework: FrameworkInfo | None
    files: tuple[FileEntry, ...]
    total_size: int
    lineage: Lineage
    metadata: dict[str, Any] = attrs.field(factory=dict)
    metrics: dict[str, float] = attrs.field(factory=dict)
    params: dict[str, Any] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)
    description: str = ""
    signature: dict[str, Any] | None = None
    schema: int = WRITTEN_SCHEMA
    kind: str = "version"
    #: The pickle scan's verdict, when a file looked like a pickle; absent from older manifests
    #: and from manifests without pickles (the key is then left out of the JSON).
    scan: ScanVerdict | None = None
    #: The packs holding this version's small files (left out of the JSON when there are none).
    packs: tuple[Blob, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def blobs(self) -> tuple[Blob, ...]:
        """Every stored blob this version needs: its packs, and the blobs of its other files.

        Everything that stores, keeps, deletes or checks a version's blobs asks this, never the
        file list: a packed file has no blob of its own.
        """
        found = {f.sha256: Blob(f.sha256, f.size) for f in self.files if f.pack is None}
        found.update((p.sha256, p) for p in self.packs)
        return tuple(sorted(found.values(), key=lambda b: b.sha256))


@attrs.frozen
class Tombstone:
    """What replaces a deleted version's manifest, so its number is never reused."""

    name: str
    version: int
    deleted_at: dt.datetime
    deleted_by: str
    schema: int = WRITTEN_SCHEMA
    kind: str = "tombstone"
    #: sha256 of the blobs ``gc`` keeps for its grace period after the deletion (retention sets
    #: it; left out of the JSON when empty).
    blobs: tuple[str, ...] = ()


@attrs.frozen
class Alias:
    """A named pointer to a version, at ``models/<name>/_aliases/<alias>.json``.

    Removing an alias writes ``version=None`` by compare-and-swap rather than deleting the key, so a
    concurrent move cannot be lost between a read and a delete.
    """

    name: str
    alias: str
    version: int | None
    set_at: dt.datetime
    set_by: str
    previous: int | None = None
    schema: int = WRITTEN_SCHEMA


@attrs.frozen
class Event:
    """One entry of a model's append-only log, at ``models/<name>/_log/<time>-<random>.json``."""

    name: str
    action: str  # "upload", "alias_set", "alias_removed", "delete"
    at: dt.datetime
    by: str
    version: int | None = None
    alias: str | None = None
    previous: int | None = None
    schema: int = WRITTEN_SCHEMA


@attrs.frozen
class ShelfMarker:
    """The ``.modelshelf.json`` marker at a shelf root: which layout format the shelf uses."""

    format: int = 1
    created_at: dt.datetime | None = None
    schema: int = WRITTEN_SCHEMA


@attrs.frozen
class Lease:
    """A writer's claim on blobs while it works, at ``leases/<kind>/<id>.json``.

    An upload lease (``kind="upload"``) names every blob the upload will reference, so that ``gc``
    keeps them until the manifest exists; a gc run (``kind="gc"``, no blobs) tells uploads that a
    sweep may be deleting old blobs. The holder rewrites it while it works: a lease whose stored
    modification time is older than ``ttl_seconds`` belongs to a dead or stalled writer.
    """

    kind: str  # "upload" or "gc"
    id: str
    started_at: dt.datetime
    by: str
    ttl_seconds: float
    name: str | None = None
    blobs: tuple[str, ...] = ()
    schema: int = WRITTEN_SCHEMA


@attrs.frozen
class AliasRule:
    """What a version needs before an alias matching ``pattern`` may point to it.

    ``pattern`` is ``alias`` or ``model@alias``, with ``*`` and ``?`` wildcards (``prod``,
    ``team/*@prod``). Every condition given must hold.
    """

    pattern: str
    #: Signers one of whom must have signed the version: PEM public keys or certificates, or
    #: ``sigstore:IDENTITY@ISSUER`` (checked by the plugin that verifies signatures).
    signed_by: tuple[str, ...] = ()
    #: Metric name -> the lowest value allowed.
    min_metrics: dict[str, float] = attrs.field(factory=dict)
    #: Tag name -> the value it must have.
    tags: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RetentionRule:
    """Which versions ``gc`` keeps; every other version of a matching model is deleted.

    Versions an alias points to are always kept, and so are versions an alias left less than
    ``recently_aliased_days`` ago; ``keep_aliased`` keeps every version that was ever aliased.
    """

    keep_last: int | None = None
    keep_newer_than_days: float | None = None
    keep_aliased: bool = False
    recently_aliased_days: float = 30.0
    #: Model names the rule applies to (``*`` wildcards); every model when empty.
    models: tuple[str, ...] = ()


@attrs.frozen
class Policy:
    """The shelf's policy, at ``policy/<n>.json``: each change is a new, create-only record."""

    number: int
    created_at: dt.datetime
    created_by: str
    aliases: tuple[AliasRule, ...] = ()
    retention: RetentionRule | None = None
    schema: int = WRITTEN_SCHEMA
    kind: str = "policy"


ACTIONS = ("upload", "alias_set", "alias_removed", "delete", "attach")
