"""The registry: :func:`open` a shelf, and :class:`Shelf`, the one object users work with.

``Shelf`` is a façade; each concern lives in its own module, built on the few primitives of a
:class:`~modelshelf.storage.Storage`:

* :mod:`~modelshelf.layout`: where every record and blob lives below the root;
* :mod:`~modelshelf.catalog`: reading records and listings, defensively;
* :mod:`~modelshelf.drafting` and :mod:`~modelshelf.publishing`: from a model object to a
  published version (blobs first, then a create-only manifest);
* :mod:`~modelshelf.lifecycle`: alias moves and deletions;
* :mod:`~modelshelf.loading`: downloads and loads, verified;
* :mod:`~modelshelf.maintenance`: ``gc`` and ``verify``;
* :mod:`~modelshelf.leases`: how uploads and ``gc`` keep a published version whole;
* :mod:`~modelshelf.policy`, :mod:`~modelshelf.retention`, :mod:`~modelshelf.scanning` and
  :mod:`~modelshelf.attachments`: protected aliases, retention, the pickle scan at upload, and
  records plugins keep beside a version (signatures);
* :mod:`~modelshelf.query`, :mod:`~modelshelf.finding`, :mod:`~modelshelf.cards` and
  :mod:`~modelshelf.watching`: the ``where`` language and ``find``, model cards, and following an
  alias (``watch``, :class:`~modelshelf.watching.Refreshing`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import attachments, eventlog, lifecycle, loading, maintenance, policy
from .cache import Cache
from .catalog import Catalog, Problem, VersionSummary
from .drafting import draft_upload
from .errors import UnknownScheme
from .known_plugins import STORAGE_SCHEMES, scheme_of, storage_plugin_for
from .leases import default_ttl
from .maintenance import DEFAULT_GC_GRACE, GcReport
from .plugins import explain_missing_scheme, get_registry
from .publishing import Published, Publisher
from .records import Alias, AliasRule, Event, ModelVersion, Policy, RetentionRule, Tombstone
from .refs import Ref, check_name, parse_ref
from .storage import Storage
from .transfer import staged_hashing

if TYPE_CHECKING:
    import threading

    from .cards import Card

#: Kept for code written against earlier releases; :mod:`modelshelf.known_plugins` is the table.
KNOWN_STORAGE_PLUGINS = STORAGE_SCHEMES


def default_url() -> str:
    return os.environ.get("MODELSHELF_URL") or str(Path("~/.modelshelf").expanduser())


def open(
    url: str | None = None, *, cache: Cache | str | Path | None = None, **options: Any
) -> Shelf:
    """Open the shelf at ``url`` (default ``MODELSHELF_URL``, else ``~/.modelshelf``).

    ``options`` go to the storage plugin (credentials, endpoint, region...). ``cache`` is the
    download cache directory (default ``MODELSHELF_CACHE``, else ``~/.cache/modelshelf``).
    """
    url = str(url or default_url())
    scheme = scheme_of(url)
    storages = get_registry().storages()
    entry = storages.get(scheme)
    if entry is None:
        hint = storage_plugin_for(scheme)
        explained = explain_missing_scheme(scheme, hint)
        if explained:
            raise UnknownScheme(explained)
        if hint:
            raise UnknownScheme(
                f"no storage plugin handles {scheme}:// URLs: install it with `pip install {hint}`"
            )
        known = ", ".join(f"{s}://" for s in sorted(storages))
        raise UnknownScheme(
            f"no storage plugin handles {scheme}:// URLs (installed: {known}); "
            "check the URL or install the plugin for this storage"
        )
    storage = entry.factory(url, **options)
    return Shelf(storage, cache=cache if isinstance(cache, Cache) else Cache(cache))


class Shelf:
    """A model registry on one storage root. Create it with :func:`modelshelf.open`."""

    def __init__(self, storage: Storage, *, cache: Cache | None = None) -> None:
        self.storage = storage
        self.cache = cache or Cache()
        #: Reads records and listings (see :mod:`modelshelf.catalog`).
        self.catalog = Catalog(storage, self.cache)
        self._publisher = Publisher(self.catalog)
        #: Lifetime of the leases this shelf's uploads and gc runs hold (see :mod:`modelshelf.leases`).
        self.lease_ttl = default_ttl()
        #: How often an upload looks again whether a running gc has finished.
        self.lease_poll = 0.25

    @property
    def url(self) -> str:
        return self.storage.url

    def __repr__(self) -> str:
        return f"<Shelf {self.storage.describe()}>"

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of every model with at least one claimed version, sorted.

        Folders that are not valid model names are skipped with a warning.
        """
        return self.catalog.models()

    def versions(self, name: str) -> list[ModelVersion]:
        """Every live version of a model, oldest first, with its whole manifest.

        Manifests are read in parallel and kept in the local record cache, so listing again reads
        only what changed. :meth:`list_versions` answers from one listing without reading any.
        """
        return self.catalog.versions(name)

    def list_versions(self, name: str) -> list[VersionSummary]:
        """Version numbers and creation times of a model's live versions, from one listing.

        The cheap way to enumerate thousands of versions on object storage (a request per 1,000
        versions); use :meth:`versions` or :meth:`get` for metadata.
        """
        return self.catalog.list_versions(name)

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name``, ``name:N``, ``name:latest`` or ``name@alias`` to a version."""
        return self.catalog.resolve(ref)

    def aliases(self, name: str) -> dict[str, Alias]:
        """The aliases currently set on a model, by alias name (damaged entries skipped, warned)."""
        return self.catalog.aliases(name)

    def find(
        self,
        name: str,
        where: str | None = None,
        *,
        order_by: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[ModelVersion]:
        """The live versions of ``name`` that match ``where``, sorted by ``order_by``, at most ``limit``.

        ``where`` is an expression such as ``"metrics.auc >= 0.9 and tags.data == '2026-11'"``
        over metrics, params, tags, metadata, creator, dates, framework, serializer, version and
        aliases (see :mod:`modelshelf.query`); it is parsed, never evaluated as Python, and a bad
        one raises :class:`~modelshelf.query.QueryError` naming the column. ``order_by`` is a
        field or a list of fields, ``-`` first for descending (``"-metrics.auc"``); the default is
        version order. Candidates come from a summary in the local record cache, so thousands of
        versions answer quickly; every version returned is read from its manifest.
        """
        from .finding import find

        return find(self.catalog, name, where, order_by=order_by, limit=limit)

    def card(self, ref: str) -> Card | None:
        """The model card stored with ``ref`` (text, front matter, summary), or ``None``."""
        from .cards import read_card

        return read_card(self.catalog, self.get(ref))

    def watch(
        self, ref: str, *, interval: float = 30.0, stop: threading.Event | None = None
    ) -> Iterator[ModelVersion]:
        """Yield the version ``ref`` (``name@alias`` or ``name:latest``) points to now, then each
        new target as it moves, polling every ``interval`` seconds.

        An alias is polled with one ``stat`` of its record (cheap on every backend); setting
        ``stop`` (or closing the generator) ends it. Errors while polling are logged and retried.
        For a model that reloads itself, see :class:`modelshelf.Refreshing`.
        """
        from .watching import watch

        return watch(self, ref, interval=interval, stop=stop)

    def history(self, name: str) -> list[Event]:
        """The model's event log (uploads, alias moves, deletions), oldest first."""
        check_name(name)
        if not self.catalog.version_numbers(name):
            raise self.catalog.model_not_found(name)
        events, problems = eventlog.scan(self.catalog, name)
        self.catalog.warn_skipped(problems)
        return events

    # --- publishing ------------------------------------------------------------------------

    def upload(
        self,
        name: str,
        obj: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        extra_files: Iterable[str | os.PathLike[str]] | None = None,
        serializer: str | None = None,
        options: Mapping[str, Any] | None = None,
        card: str | os.PathLike[str] | None = None,
    ) -> ModelVersion:
        """Publish ``obj`` (a model object, a file, a directory or a list of paths) as a new version.

        Every file is hashed and stored once as a content-addressed blob; then the manifest is
        created as version ``max + 1``. ``extra_files`` are stored beside the model under
        ``extra/``. ``options`` go to the serializer's ``save``. ``card`` is a markdown model
        card (YAML front matter allowed), stored as ``card/README.md`` (see :meth:`card`).
        """
        with (
            staged_hashing(self.storage),
            draft_upload(  # a local shelf copies files in while hashing
                name,
                obj,
                metadata=metadata,
                metrics=metrics,
                params=params,
                tags=tags,
                description=description,
                extra_files=extra_files,
                serializer=serializer,
                options=options,
                card=card,
            ) as draft,
        ):
            return self.publish(draft.manifest, draft.blobs)

    def publish(self, draft: ModelVersion, blobs: Mapping[str, Path]) -> ModelVersion:
        """Publish a manifest as the next version of ``draft.name``; return it with its number.

        ``blobs`` maps the sha256 of every file to a local copy, used to (re-)upload any blob the
        shelf lacks. This is the common end of uploads, copies and imports; most users want
        :meth:`upload`.
        """
        return self.publish_counted(draft, blobs).version

    def publish_counted(self, draft: ModelVersion, blobs: Mapping[str, Path]) -> Published:
        """:meth:`publish`, reporting the version and how many bytes of blobs were sent."""
        if draft.scan is None:
            from .scanning import scan_files

            verdict = scan_files(
                {f.path: blobs[f.sha256] for f in draft.files if f.sha256 in blobs}
            )
            if verdict is not None:
                draft = attrs.evolve(draft, scan=verdict)
        published = self._publisher.publish(
            draft, blobs, lease_ttl=self.lease_ttl, lease_poll=self.lease_poll
        )
        get_registry().broadcast(
            "modelshelf_version_published", shelf=self, version=published.version
        )
        return published

    # --- aliases and deletion --------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point ``name@alias`` at ``version`` (compare-and-swap; every move is logged).

        When the shelf's policy protects the alias, a version that does not meet its rule is
        refused with :class:`~modelshelf.errors.PolicyViolation`.
        """

        def check(target: ModelVersion) -> None:  # called once names are checked, before the swap
            policy.check_alias_target(self, policy.current_policy(self.catalog), target, alias)

        record, previous = lifecycle.set_alias(self.catalog, name, alias, version, check=check)
        self._announce_alias(name, alias, version, previous)
        return record

    def remove_alias(self, name: str, alias: str) -> None:
        _, previous = lifecycle.remove_alias(self.catalog, name, alias)
        self._announce_alias(name, alias, None, previous)

    def delete(self, ref: str, *, force: bool = False) -> Tombstone:
        """Replace a version's manifest by a tombstone; its number is never reused.

        A version that an alias points to is kept unless ``force`` is true, which also removes
        those aliases. Blobs are reclaimed later by :meth:`gc`.
        """
        tombstone, removed = lifecycle.delete(self.catalog, ref, force=force)
        for alias, _, previous in removed:
            self._announce_alias(tombstone.name, alias, None, previous)
        get_registry().broadcast(
            "modelshelf_version_deleted", shelf=self, name=tombstone.name, version=tombstone.version
        )
        return tombstone

    def _announce_alias(
        self, name: str, alias: str, version: int | None, previous: Alias | None
    ) -> None:
        get_registry().broadcast(
            "modelshelf_alias_changed",
            shelf=self,
            name=name,
            alias=alias,
            version=version,
            previous=previous,
        )

    # --- files back ------------------------------------------------------------------------

    def fetch(self, version: ModelVersion, files: Iterable[Any] | None = None) -> None:
        """Make sure every blob of ``version`` is in the local cache, verified while streaming."""
        loading.fetch(self.catalog, version, files)

    def download(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        link: bool = False,
        keep_cache: bool = False,
    ) -> Path:
        """Materialise a version's files into ``dest`` (created if needed); return ``dest``.

        Files are independent copies, each byte written once: a blob the cache holds is copied
        from it, one it lacks is streamed from the shelf straight into ``dest``. Every file is
        hashed on the way and none appears in ``dest`` before all of them matched.
        ``keep_cache=True`` also keeps a cache copy of what was streamed (written in the same
        pass), so a later :meth:`load` or download reads nothing from the shelf; the default
        leaves the cache as it was (small packed files aside), so a download never costs twice
        its size on disk. ``link=True`` fills the cache and hardlinks the files from it instead
        (no extra disk space, read-only like the cache, each hashed before it is exposed); never
        edit such files in place: that changes the cached blob, which its next use then evicts
        and downloads again.
        """
        return loading.download(self.catalog, self.get(ref), dest, link=link, keep_cache=keep_cache)

    def load(
        self,
        ref: str,
        *,
        trust: bool | str = False,
        enforce_policy: bool | None = None,
        require_signature: bool | Iterable[str] | None = None,
        **options: Any,
    ) -> Any:
        """Load a version back into memory with the serializer that saved it.

        Versions saved in a format whose loading can execute code (pickle, joblib...) need
        ``trust=True``; one whose pickle scan at upload flagged dangerous imports needs
        ``trust="ignore-scan"``. The checks happen before anything is downloaded.

        ``enforce_policy`` (default: on when the shelf has a policy) refuses a version reached
        through a protected alias that does not meet the alias's rule, however the alias was set.
        ``require_signature`` is ``True`` (a valid signature by anyone) or the signers allowed
        (PEM public keys or certificates, their paths, or key fingerprints); it needs a plugin that
        checks signatures (modelshelf-sign).
        """
        version = self.get(ref)
        self.check_version(
            ref, version, enforce_policy=enforce_policy, require_signature=require_signature
        )
        return loading.load(self.catalog, version, trust=trust, **options)

    def check_version(
        self,
        ref: str,
        version: ModelVersion,
        *,
        enforce_policy: bool | None = None,
        require_signature: bool | Iterable[str] | None = None,
    ) -> None:
        """Raise :class:`~modelshelf.errors.PolicyViolation` if ``version`` (resolved from ``ref``)
        fails the policy of the alias it was reached through, or ``require_signature``."""
        alias = parse_ref(ref).alias
        if alias is not None and enforce_policy is not False:
            current = policy.current_policy(self.catalog)
            if enforce_policy and current is None:
                raise policy.PolicyViolation(
                    f"{ref}: enforce_policy=True, but shelf {self.url} has no policy"
                )
            policy.check_alias_target(self, current, version, alias)
        if require_signature:
            policy.check_signature(self, version, require_signature)

    # --- maintenance -----------------------------------------------------------------------

    def gc(
        self,
        *,
        dry_run: bool = False,
        grace: dt.timedelta | None = None,
        keep: RetentionRule | None = None,
    ) -> GcReport:
        """Delete blobs that no manifest and no upload in progress references, if older than
        ``grace`` (default 24 hours, ``MODELSHELF_GC_GRACE`` seconds).

        First, versions that no retention rule keeps (the shelf policy's, and ``keep``) are
        deleted like :meth:`delete` does; their blobs go a grace period later. Safe to run while
        others upload, delete and move aliases: see :mod:`modelshelf.leases` and
        :mod:`modelshelf.retention`.
        """
        report = maintenance.gc(
            self.catalog, lease_ttl=self.lease_ttl, dry_run=dry_run, grace=grace, keep=keep
        )
        for ref in report.retired if not dry_run else ():
            parsed = parse_ref(ref)
            get_registry().broadcast(
                "modelshelf_version_deleted", shelf=self, name=parsed.name, version=parsed.version
            )
        return report

    def verify(self, ref: str | None = None, *, repair: bool = False) -> list[Problem]:
        """Re-hash stored blobs of one version (``ref``) or of the whole shelf; return every defect.

        With ``repair``, a stored blob whose bytes do not match its sha256 (bit rot, an old client,
        a stray write) is removed, under the same protocol as ``gc``: an upload or copy of the
        genuine file then stores it again, which a corrupt blob of the right size would prevent.
        """
        return maintenance.verify(self.catalog, ref, repair=repair, lease_ttl=self.lease_ttl)

    def verify_signatures(self, ref: str, signers: bool | Iterable[str] = True) -> list[Problem]:
        """Check that ``ref`` carries a valid signature (by one of ``signers``, when given)."""
        version = self.get(ref)
        try:
            policy.check_signature(self, version, signers)
        except policy.PolicyViolation as exc:
            return [Problem(version.ref, None, str(exc).removeprefix(f"{version.ref}: "))]
        return []

    # --- policy and attachments ------------------------------------------------------------

    def policy(self) -> Policy | None:
        """The shelf's current policy (protected aliases, retention), or ``None``."""
        return policy.current_policy(self.catalog)

    def policy_history(self) -> list[Policy]:
        """Every policy the shelf has had, oldest first."""
        return policy.policy_history(self.catalog)

    def set_policy(
        self, *, aliases: Iterable[AliasRule] = (), retention: RetentionRule | None = None
    ) -> Policy:
        """Store a new policy (the previous ones stay readable in :meth:`policy_history`)."""
        return policy.set_policy(self.catalog, aliases=aliases, retention=retention)

    def attach(self, ref: str, kind: str, data: bytes, *, action: str = "attach") -> str:
        """Store a JSON record of ``kind`` beside a version (create-only; logged as ``action``);
        it travels with copies, exports and imports. Returns its id."""
        version = self.get(ref)
        return attachments.attach(
            self.catalog, version.name, version.version, kind, data, action=action
        )

    def attached(self, ref: str, kind: str | None = None) -> dict[str, dict[str, bytes]]:
        """``{kind: {id: bytes}}`` of the records attached to a version (unverified)."""
        version = self.get(ref)
        return attachments.attached(self.catalog, version.name, version.version, kind)

    def convert(
        self,
        ref: str,
        serializer: str,
        *,
        trust: bool | str = False,
        options: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Load ``ref`` and upload it again with ``serializer`` (a safe format, say) as a new
        version of the same model, with the same metadata and ``lineage.source`` naming ``ref``."""
        from .converting import convert

        return convert(self, ref, serializer, trust=trust, options=options)


__all__ = [
    "DEFAULT_GC_GRACE",
    "GcReport",
    "Problem",
    "Published",
    "Ref",
    "Shelf",
    "VersionSummary",
    "default_url",
    "open",
    "scheme_of",
]
