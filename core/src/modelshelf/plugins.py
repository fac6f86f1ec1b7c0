"""The plugin manager: lazy, robust entry-point loading and what each plugin provides.

Plugins are found through the ``modelshelf`` entry-point group and loaded on first use, each in its
own ``try`` so that a broken plugin is reported (``modelshelf plugins`` lists it as failed, with the
error) and never takes the program down. Built-in plugins register through the same hooks.

Environment:

* ``MODELSHELF_LOAD_PLUGINS``: comma-separated allow-list of entry-point names or distribution
  names; when set (even empty) nothing else is loaded. Built-ins are always loaded.
* ``MODELSHELF_DISABLE_PLUGINS``: comma-separated entry-point or distribution names that are never
  imported.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

if TYPE_CHECKING:
    from .serializers import Serializer
    from .storage import Storage

GROUP = "modelshelf"
CORE_DISTRIBUTION = "modelshelf"

hookimpl = pluggy.HookimplMarker("modelshelf")

#: Built-in plugin modules, registered like third-party ones.
BUILTIN_PLUGINS = (
    "modelshelf.default_plugins.filesystem",
    "modelshelf.default_plugins.files",
)


@attrs.define
class PluginInfo:
    """One plugin as ``modelshelf plugins`` shows it."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded", "failed" or "blocked"
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    schemes: list[str] = attrs.field(factory=list)
    serializers: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.frozen
class StorageEntry:
    scheme: str
    factory: Callable[..., Storage]
    plugin: str
    distribution: str


@attrs.frozen
class SerializerEntry:
    serializer: Serializer
    plugin: str
    distribution: str
    distribution_version: str


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginRegistry:
    """Owns the pluggy manager and the resolved schemes and serializers."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._storages: dict[str, StorageEntry] | None = None
        self._serializers: dict[str, SerializerEntry] | None = None
        self._loaded = False
        self._lock = threading.RLock()

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Register built-ins and entry points. Safe to call many times; runs once."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            import importlib

            version = _distribution_version(CORE_DISTRIBUTION)
            for module_name in BUILTIN_PLUGINS:
                module = importlib.import_module(module_name)
                self._add(module, module_name, CORE_DISTRIBUTION, version)
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        allowed = _names_from_env("MODELSHELF_LOAD_PLUGINS")
        blocked = _names_from_env("MODELSHELF_DISABLE_PLUGINS") or set()
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=GROUP):
            dist_name = ep.dist.name if ep.dist is not None else "?"
            dist_version = ep.dist.version if ep.dist is not None else "?"
            # Editable installs can surface one distribution twice; load it once.
            if (ep.name, dist_name) in seen:
                continue
            seen.add((ep.name, dist_name))
            names = {ep.name, dist_name}
            if names & blocked or (allowed is not None and not names & allowed):
                why = "MODELSHELF_DISABLE_PLUGINS" if names & blocked else "MODELSHELF_LOAD_PLUGINS"
                self._infos[ep.name] = PluginInfo(
                    ep.name, dist_name, dist_version, "blocked", f"not loaded because of {why}"
                )
                continue
            try:
                plugin = ep.load()
                self._add(plugin, ep.name, dist_name, dist_version)
            except Exception as exc:  # a broken plugin must never break the program
                self._infos[ep.name] = PluginInfo(
                    ep.name, dist_name, dist_version, "failed", _describe(exc)
                )

    def _add(self, plugin: object, name: str, distribution: str, version: str) -> None:
        if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
            return
        self.pm.register(plugin, name=name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self._infos[name] = PluginInfo(name, distribution, version, "loaded", hooks=hooks)
        self._storages = None
        self._serializers = None

    def register(self, plugin: object, name: str, distribution: str = "?") -> None:
        """Register a plugin object at run time (tests, notebooks). Undo with :meth:`unregister`."""
        self.load()
        with self._lock:
            self._add(plugin, name, distribution, _distribution_version(distribution))

    def unregister(self, name: str) -> None:
        with self._lock:
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin)
            self._infos.pop(name, None)
            self._storages = None
            self._serializers = None

    # --- resolution ------------------------------------------------------------------------

    def _impls(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            yield impl.plugin_name, impl.function

    def _fail(self, plugin: str, exc: BaseException) -> None:
        info = self._infos.get(plugin)
        if info is not None:
            info.status = "failed"
            info.error = _describe(exc)

    def storages(self) -> dict[str, StorageEntry]:
        self.load()
        with self._lock:
            if self._storages is None:
                found: dict[str, StorageEntry] = {}
                for plugin, function in self._impls("modelshelf_register_storage"):
                    info = self._infos[plugin]
                    added: list[StorageEntry] = []

                    def register(
                        scheme: str, factory: Callable[..., Storage],
                        added: list[StorageEntry] = added, plugin: str = plugin, info: PluginInfo = info,
                    ) -> None:
                        added.append(StorageEntry(scheme.lower(), factory, plugin, info.distribution))

                    try:
                        function(register=register)
                    except Exception as exc:
                        self._fail(plugin, exc)
                        continue
                    for entry in added:
                        other = found.get(entry.scheme)
                        if other is not None:
                            raise PluginError(
                                f"URL scheme {entry.scheme!r} is registered by both "
                                f"{other.distribution} ({other.plugin}) and {entry.distribution} "
                                f"({entry.plugin}): uninstall one, or block one with "
                                "MODELSHELF_DISABLE_PLUGINS"
                            )
                        found[entry.scheme] = entry
                    info.schemes = sorted(e.scheme for e in added)
                self._storages = found
            return self._storages

    def serializers(self) -> dict[str, SerializerEntry]:
        self.load()
        with self._lock:
            if self._serializers is None:
                found: dict[str, SerializerEntry] = {}
                for plugin, function in self._impls("modelshelf_register_serializers"):
                    info = self._infos[plugin]
                    added: list[Serializer] = []
                    try:
                        function(register=added.append)
                    except Exception as exc:
                        self._fail(plugin, exc)
                        continue
                    for serializer in added:
                        other = found.get(serializer.name)
                        if other is not None:
                            raise PluginError(
                                f"serializer {serializer.name!r} is registered by both "
                                f"{other.distribution} ({other.plugin}) and {info.distribution} "
                                f"({plugin}): uninstall one, or block one with "
                                "MODELSHELF_DISABLE_PLUGINS"
                            )
                        found[serializer.name] = SerializerEntry(
                            serializer, plugin, info.distribution, info.version
                        )
                    info.serializers = [
                        {
                            "name": s.name,
                            "framework": s.framework,
                            "format": s.format,
                            "safe": s.safe,
                            "claims": list(s.claims),
                        }
                        for s in added
                    ]
                self._serializers = found
            return self._serializers

    def infos(self) -> list[PluginInfo]:
        """Every plugin seen, with what it provides. Resolves hooks so failures show."""
        self.load()
        for resolve in (self.storages, self.serializers):
            try:
                resolve()
            except PluginError as exc:
                warnings.warn(str(exc), stacklevel=2)
        return sorted(self._infos.values(), key=lambda i: (i.distribution != CORE_DISTRIBUTION, i.name))

    def broadcast(self, hook_name: str, **kwargs: Any) -> None:
        """Call a broadcast hook on every plugin; a failing plugin is reported, not raised."""
        self.load()
        for plugin, function in list(self._impls(hook_name)):
            try:
                function(**kwargs)
            except Exception as exc:
                warnings.warn(
                    f"plugin {plugin!r} failed in {hook_name}: {_describe(exc)}", stacklevel=2
                )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide plugin registry (created on first use, loading nothing until needed)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry()
        return _registry


def reset_registry() -> None:
    """Forget every loaded plugin; the next use loads them again (for tests)."""
    global _registry
    with _registry_lock:
        _registry = None
