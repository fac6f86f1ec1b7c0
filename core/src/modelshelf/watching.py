"""Following an alias from a long-running service: :func:`watch` and :class:`Refreshing`.

``shelf.watch("churn@prod")`` polls the alias record's etag with one ``stat`` per interval (a
HEAD request on object stores, a ``stat`` call locally); only when the etag changes is the record
read, and the version it names resolved. ``name`` or ``name:latest`` are watched through one
listing of the model's versions per interval instead. A pinned ``name:N`` never changes and is
refused.

:class:`Refreshing` holds the loaded model of a watched reference and swaps in the new one when
the target moves:

* the first load happens in the constructor (a failure there raises: a service should not start
  without its model);
* later loads run on a background daemon thread; the new model replaces the old one in a single
  attribute assignment, so every reader sees either the old ``(version, model)`` pair or the new
  one, never a mix (take ``m = refreshing.model`` once per request to use one model throughout);
* a load that fails (a network error, a damaged file, a version that needs trust or breaks the
  alias's policy) keeps the old model serving; the failure is logged on the ``modelshelf.watching``
  logger, passed to ``on_error``, kept in :attr:`Refreshing.last_error`, and retried with backoff
  while the alias still points there;
* :meth:`Refreshing.stop` (or leaving a ``with`` block) ends the thread; a load in progress is
  finished first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import layout
from .errors import ModelshelfError, NotFound
from .records import ModelVersion
from .refs import parse_ref

if TYPE_CHECKING:
    from .shelf import Shelf

log = logging.getLogger("modelshelf.watching")

#: Seconds between polls by default.
DEFAULT_INTERVAL = 30.0
#: The longest wait before retrying a version that failed to load.
MAX_RETRY_DELAY = 600.0


class Watcher:
    """Where a reference points now, read cheaply: call :meth:`current` as often as you like."""

    def __init__(self, shelf: Shelf, ref: str) -> None:
        parsed = parse_ref(ref)
        if parsed.version is not None:
            raise ModelshelfError(
                f"{ref} is pinned to version {parsed.version} and never moves: watch an alias "
                f"({parsed.name}@ALIAS) or {parsed.name}:latest"
            )
        self.shelf = shelf
        self.ref = str(parsed)
        self.name = parsed.name
        self.alias = parsed.alias
        self._seen: object = None  # the alias etag, or the listing's newest live manifest
        self._target: ModelVersion | None = None

    def current(self) -> ModelVersion | None:
        """The version the reference points to now; ``None`` while the alias is removed or points
        to a deleted version. Storage errors propagate (the caller decides how to retry)."""
        catalog = self.shelf.catalog
        if self.alias is None:
            manifests, deleted = catalog.scan_versions(self.name)
            live = sorted((n for n in manifests if n not in deleted), reverse=True)
            seen = (live[0], manifests[live[0]].etag) if live else None
            if seen != self._seen:
                self._target = catalog.resolve(self.ref) if live else None
                self._seen = seen
            return self._target
        key = layout.alias_key(self.name, self.alias)
        info = catalog.storage.stat(key)
        if info is None:
            self._seen, self._target = None, None
            return None
        if info.etag != self._seen:
            stored = catalog.storage.read(key)
            record = catalog.parse_alias(self.name, self.alias, stored.data)
            target = None
            if record.version is not None:
                try:
                    target = catalog.live_version(self.name, record.version, via=self.ref)
                except NotFound as exc:
                    log.warning("%s points to a version that cannot be used: %s", self.ref, exc)
            self._seen, self._target = stored.etag, target
        return self._target


def watch(
    shelf: Shelf,
    ref: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    stop: threading.Event | None = None,
) -> Iterator[ModelVersion]:
    """Yield the version ``ref`` points to now, then each new one as it moves (see
    :meth:`modelshelf.Shelf.watch`)."""
    if not interval > 0:
        raise ModelshelfError(f"interval must be a positive number of seconds, got {interval!r}")
    watcher = Watcher(shelf, ref)
    first = watcher.current()
    if first is None:
        if watcher.alias is not None:
            raise shelf.catalog.alias_not_found(watcher.name, watcher.alias)
        raise NotFound(f"{ref}: no live version to watch")
    yield first
    last = first.version
    stop = stop or threading.Event()
    while not stop.wait(interval):
        try:
            target = watcher.current()
        except (ModelshelfError, OSError) as exc:
            log.warning("watching %s: %s (trying again in %ss)", ref, exc, interval)
            continue
        if target is not None and target.version != last:
            last = target.version
            yield target


def _default_loader(
    shelf: Shelf, ref: str, trust: bool | str, options: dict[str, Any]
) -> Callable[[ModelVersion], Any]:
    def load(version: ModelVersion) -> Any:
        from . import loading

        shelf.check_version(ref, version)  # the alias's policy, as shelf.load(ref) would check it
        return loading.load(shelf.catalog, version, trust=trust, **options)

    return load


class Refreshing:
    """A model loaded from ``ref`` that follows it: reloaded in the background when it moves.

    >>> model = modelshelf.Refreshing("churn@prod", shelf=shelf, interval=30)
    >>> model.model.predict(x)          # or model(x) when the model itself is callable
    >>> model.version.version           # which version is serving
    >>> model.stop()

    ``shelf`` is a :class:`~modelshelf.Shelf` or a URL (default: :func:`modelshelf.open`).
    ``trust`` and ``options`` go to the load; ``loader`` replaces it (called with the
    :class:`~modelshelf.records.ModelVersion` to load). ``on_change(old, new)`` is called after each
    swap and ``on_error(exc, version)`` after each failed load, on the background thread.
    """

    def __init__(
        self,
        ref: str,
        *,
        shelf: Shelf | str | None = None,
        interval: float = DEFAULT_INTERVAL,
        trust: bool | str = False,
        loader: Callable[[ModelVersion], Any] | None = None,
        on_change: Callable[[ModelVersion, ModelVersion], None] | None = None,
        on_error: Callable[[BaseException, ModelVersion], None] | None = None,
        **options: Any,
    ) -> None:
        if not interval > 0:
            raise ModelshelfError(
                f"interval must be a positive number of seconds, got {interval!r}"
            )
        if shelf is None or isinstance(shelf, str):
            from .shelf import open as open_shelf

            shelf = open_shelf(shelf)
        self.shelf = shelf
        self.ref = ref
        self.interval = interval
        self.on_change = on_change
        self.on_error = on_error
        #: The last failed load's exception (``None`` once a later load succeeded).
        self.last_error: BaseException | None = None
        self._load = loader or _default_loader(shelf, ref, trust, options)
        self._watcher = Watcher(shelf, ref)
        first = self._watcher.current()
        if first is None:
            if self._watcher.alias is not None:
                raise shelf.catalog.alias_not_found(self._watcher.name, self._watcher.alias)
            raise NotFound(f"{ref}: no live version to load")
        self._current: tuple[ModelVersion, Any] = (first, self._load(first))
        self._failed: tuple[int, float, float] | None = None  # version, retry at, delay
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one check at a time (the thread, or refresh())
        self._thread = threading.Thread(
            target=self._run, name=f"modelshelf-refresh {ref}", daemon=True
        )
        self._thread.start()

    # --- what a service uses ---------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The model serving now."""
        return self._current[1]

    @property
    def version(self) -> ModelVersion:
        """The version of :attr:`model`."""
        return self._current[0]

    @property
    def current(self) -> tuple[ModelVersion, Any]:
        """``(version, model)``, read together."""
        return self._current

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._current[1](*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Refreshing {self.ref} serving {self.version.ref}>"

    # --- lifecycle -------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Check the reference now; load and swap in its target if it moved. True if swapped.

        Never raises for a failed load or poll (those are reported as described above).
        """
        with self._lock:
            try:
                target = self._watcher.current()
            except (ModelshelfError, OSError) as exc:
                log.warning("watching %s: %s", self.ref, exc)
                return False
            old = self._current[0]
            if target is None or target.version == old.version:
                return False
            if (
                self._failed is not None
                and self._failed[0] == target.version
                and time.monotonic() < self._failed[1]
            ):
                return False
            try:
                model = self._load(target)
            except Exception as exc:  # any failure must leave the old model serving
                delay = (
                    self.interval
                    if self._failed is None or self._failed[0] != target.version
                    else self._failed[2] * 2
                )
                delay = min(delay, MAX_RETRY_DELAY)
                self._failed = (target.version, time.monotonic() + delay, delay)
                self.last_error = exc
                log.warning(
                    "%s moved to %s, which failed to load (still serving %s): %s",
                    self.ref,
                    target.ref,
                    old.ref,
                    exc,
                )
                self._report(self.on_error, exc, target)
                return False
            self._current = (target, model)  # one assignment: readers see old or new, whole
            self._failed = None
            self.last_error = None
            log.info("%s moved: now serving %s (was %s)", self.ref, target.ref, old.ref)
            self._report(self.on_change, old, target)
            return True

    def _report(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a broken callback must not stop the refreshing
            log.exception("callback of Refreshing(%s) failed", self.ref)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self, timeout: float | None = None) -> None:
        """Stop following the reference (the current model keeps serving); waits for the thread."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    close = stop

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Refreshing:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
