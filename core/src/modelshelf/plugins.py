"""The plugin manager: lazy, robust entry-point loading and what each plugin provides.

Plugins are found through the ``modelshelf`` entry-point group and loaded on first use, each in its
own ``try`` so that a broken plugin is reported and never takes the program down. Built-in plugins
register through the same hooks.

What can go wrong with a plugin, and what happens then:

* It fails to import, its hook signature is wrong (pluggy's whole validation message is kept), or
  a register hook raises: the plugin is ``failed``, with its error. Everything it would have
  provided is missing, and a :class:`PluginWarning` says so once; :func:`explain_missing_scheme`
  and :func:`explain_missing_serializer` tell a user who asks for what it would have provided
  that it is installed but failed, instead of advising to install it.
* It defines a ``modelshelf_*`` function that is not a hook (a misspelling), a hook function
  without ``@modelshelf.hookimpl``, or no hook at all: it stays ``loaded`` but each of these is
  one of its ``problems``, and a :class:`PluginWarning` is emitted.
* Two plugins register one URL scheme or serializer name: that name is a *conflict*. Neither
  registration is used (there is never a silent winner); every other scheme and serializer, of
  those plugins too, keeps working. Asking for the name explains the conflict.

``modelshelf plugins`` shows all of it (``--json`` too), and ``modelshelf plugins --check`` exits
non-zero when any plugin is failed, blocked, conflicting or has problems (:meth:`PluginRegistry.check`).

Environment:

* ``MODELSHELF_LOAD_PLUGINS``: comma-separated allow-list of entry-point names or distribution
  names; when set (even empty) nothing else is loaded. Built-ins are always loaded.
* ``MODELSHELF_DISABLE_PLUGINS``: comma-separated entry-point or distribution names that are never
  imported.
"""

from __future__ import annotations

import importlib.metadata as metadata
import inspect
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pluggy

from . import hookspecs
from .hookspecs import hookimpl as hookimpl  # the name plugins have always imported from here
from .plugin_checks import HOOK_NAMES, hook_problems, unsafe_default_problem

if TYPE_CHECKING:
    from .serializers import Serializer
    from .storage import Storage

GROUP = "modelshelf"
CORE_DISTRIBUTION = "modelshelf"

#: Where a plugin stands: imported and registered, failed to import or register, or kept out by
#: ``MODELSHELF_LOAD_PLUGINS`` / ``MODELSHELF_DISABLE_PLUGINS``.
PluginStatus = Literal["loaded", "failed", "blocked"]
#: What a registered name names: a URL scheme (``"storage"``) or a serializer.
RegisteredKind = Literal["storage", "serializer"]


#: Built-in plugin modules, registered like third-party ones.
BUILTIN_PLUGINS = (
    "modelshelf.default_plugins.filesystem",
    "modelshelf.default_plugins.files",
    "modelshelf.default_plugins.several",
)

#: Every hook a plugin can implement (the functions of :mod:`modelshelf.hookspecs`).

_HOW_TO_BLOCK = "uninstall one, or block one with MODELSHELF_DISABLE_PLUGINS=<entry-point name>"


class PluginWarning(UserWarning):
    """A plugin failed, conflicts with another one, or implements nothing that modelshelf calls."""


@attrs.define
class Conflict:
    """One name (URL scheme or serializer) registered by more than one plugin: none of them is used."""

    #: ``"storage"`` for a URL scheme, ``"serializer"`` for a serializer name.
    kind: RegisteredKind
    name: str
    #: ``"<entry-point name> (<distribution>)"`` of every plugin registering the name.
    plugins: list[str]

    def message(self) -> str:
        what = (
            f"URL scheme {self.name!r}" if self.kind == "storage" else f"serializer {self.name!r}"
        )
        return (
            f"{what} is registered by {' and '.join(self.plugins)}, so modelshelf uses neither: "
            f"{_HOW_TO_BLOCK}"
        )


@attrs.define
class PluginInfo:
    """One plugin as ``modelshelf plugins`` shows it."""

    name: str
    distribution: str
    version: str
    #: ``"loaded"``, ``"failed"`` (see ``error``) or ``"blocked"`` (by the environment).
    status: PluginStatus
    #: Why it failed (the whole message, possibly several lines) or is blocked.
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    schemes: list[str] = attrs.field(factory=list)
    serializers: list[dict[str, Any]] = attrs.field(factory=list)
    #: Names this plugin registers that another plugin registers too (neither is used).
    conflicts: list[Conflict] = attrs.field(factory=list)
    #: Mistakes that leave the plugin loaded but doing less than its author meant (one line each).
    problems: list[str] = attrs.field(factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.distribution})"


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
        self._conflicts: dict[tuple[str, str], Conflict] = {}
        #: Serializers left out because of a conflict, to tell which objects they would claim.
        self._conflicting_serializers: list[Serializer] = []
        self._loaded = False
        self._warned: set[str] = set()
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
        for info in list(self._infos.values()):
            self._warn_about(info)

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
        try:
            self.pm.register(plugin, name=name)
        except Exception:
            # Older pluggy versions leave the hooks validated before the failing one registered.
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            raise
        callers = self.pm.get_hookcallers(plugin) or []
        hooks = sorted(h.name for h in callers if h.name in HOOK_NAMES)
        info = PluginInfo(name, distribution, version, "loaded", hooks=hooks)
        info.problems = hook_problems(self.pm, plugin, hooks)
        self._infos[name] = info
        self._storages = None
        self._serializers = None

    def register(self, plugin: object, name: str, distribution: str = "?") -> None:
        """Register a plugin object at run time (tests, notebooks). Undo with :meth:`unregister`.

        Unlike entry points, a plugin registered here that fails pluggy's validation raises.
        """
        self.load()
        with self._lock:
            self._add(plugin, name, distribution, _distribution_version(distribution))
        info = self._infos.get(name)
        if info is not None:
            self._warn_about(info)

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
        for impl in caller.get_hookimpls():  # in registration order
            yield impl.plugin_name, impl.function

    def _fail(self, plugin: str, exc: BaseException, hook: str) -> None:
        info = self._infos.get(plugin)
        if info is not None:
            info.status = "failed"
            info.error = f"{hook} raised {_describe(exc)}"

    def _forget_conflicts(self, kind: RegisteredKind) -> None:
        for key in [k for k in self._conflicts if k[0] == kind]:
            del self._conflicts[key]
        for info in self._infos.values():
            info.conflicts = [c for c in info.conflicts if c.kind != kind]

    def _record_conflict(self, kind: RegisteredKind, name: str, owners: list[str]) -> None:
        conflict = Conflict(kind, name, sorted(self._infos[p].label for p in owners))
        self._conflicts[(kind, name)] = conflict
        for plugin in dict.fromkeys(owners):
            self._infos[plugin].conflicts.append(conflict)
        self._warn_once(conflict.message())

    def storages(self) -> dict[str, StorageEntry]:
        """Every usable URL scheme (conflicting ones are left out, see :meth:`conflicts`)."""
        self.load()
        with self._lock:
            if self._storages is None:
                self._forget_conflicts("storage")
                by_scheme: dict[str, list[StorageEntry]] = {}
                for plugin, function in self._impls("modelshelf_register_storage"):
                    info = self._infos[plugin]
                    added: list[StorageEntry] = []

                    def register(
                        scheme: str,
                        factory: Callable[..., Storage],
                        added: list[StorageEntry] = added,
                        plugin: str = plugin,
                        info: PluginInfo = info,
                    ) -> None:
                        if not isinstance(scheme, str) or not scheme or "://" in scheme:
                            raise TypeError(
                                f"register(scheme, factory) needs a scheme like 's3', got {scheme!r}"
                            )
                        if not callable(factory):
                            raise TypeError(
                                f"the factory registered for {scheme!r} is not callable: {factory!r}"
                            )
                        added.append(
                            StorageEntry(scheme.lower(), factory, plugin, info.distribution)
                        )

                    try:
                        function(register=register)
                    except Exception as exc:
                        self._fail(plugin, exc, "modelshelf_register_storage")
                        self._warn_about(info)
                        continue
                    for entry in added:
                        by_scheme.setdefault(entry.scheme, []).append(entry)
                    info.schemes = sorted({e.scheme for e in added})
                found: dict[str, StorageEntry] = {}
                for scheme, entries in by_scheme.items():
                    if len(entries) > 1:
                        self._record_conflict("storage", scheme, [e.plugin for e in entries])
                    else:
                        found[scheme] = entries[0]
                self._storages = found
            return self._storages

    def serializers(self) -> dict[str, SerializerEntry]:
        """Every usable serializer by name (conflicting ones are left out, see :meth:`conflicts`)."""
        from .serializers import Serializer

        self.load()
        with self._lock:
            if self._serializers is None:
                self._forget_conflicts("serializer")
                by_name: dict[str, list[SerializerEntry]] = {}
                for plugin, function in self._impls("modelshelf_register_serializers"):
                    info = self._infos[plugin]
                    added: list[Serializer] = []

                    def register(serializer: Serializer, added: list[Serializer] = added) -> None:
                        if isinstance(serializer, type) and issubclass(serializer, Serializer):
                            raise TypeError(
                                f"register() needs a serializer instance: register({serializer.__name__}()), "
                                f"not register({serializer.__name__})"
                            )
                        if not isinstance(serializer, Serializer):
                            raise TypeError(
                                f"register() needs a modelshelf.Serializer instance, got {serializer!r}"
                            )
                        added.append(serializer)

                    try:
                        function(register=register)
                    except Exception as exc:
                        self._fail(plugin, exc, "modelshelf_register_serializers")
                        self._warn_about(info)
                        continue
                    for serializer in added:
                        by_name.setdefault(serializer.name, []).append(
                            SerializerEntry(serializer, plugin, info.distribution, info.version)
                        )
                    info.serializers = [_serializer_summary(s) for s in added]
                    info.problems = [p for p in info.problems if not p.startswith("serializer ")]
                    for serializer in added:
                        # Listed (and failing --check) but not warned about: only the plugin's
                        # author can fix it, and its versions still need trust to load.
                        problem = unsafe_default_problem(serializer)
                        if problem:
                            info.problems.append(problem)
                found: dict[str, SerializerEntry] = {}
                self._conflicting_serializers = []
                for name, entries in by_name.items():
                    if len(entries) > 1:
                        self._record_conflict("serializer", name, [e.plugin for e in entries])
                        self._conflicting_serializers.extend(e.serializer for e in entries)
                    else:
                        found[name] = entries[0]
                self._serializers = found
            return self._serializers

    def conflicts(self) -> list[Conflict]:
        """Every conflicting scheme and serializer name, once hooks are resolved."""
        self.storages()
        self.serializers()
        return sorted(self._conflicts.values(), key=lambda c: (c.kind, c.name))

    def infos(self) -> list[PluginInfo]:
        """Every plugin seen, with what it provides. Resolves hooks so failures show."""
        self.storages()
        self.serializers()
        return sorted(
            self._infos.values(), key=lambda i: (i.distribution != CORE_DISTRIBUTION, i.name)
        )

    def check(self) -> list[str]:
        """One line per reason ``modelshelf plugins --check`` fails: failed plugins, plugins
        blocked by ``MODELSHELF_DISABLE_PLUGINS``, conflicts, and problems. Empty when every plugin
        loaded cleanly.

        Plugins left out by ``MODELSHELF_LOAD_PLUGINS`` are not checked, so that
        ``MODELSHELF_LOAD_PLUGINS=mine modelshelf plugins --check`` checks one plugin alone.
        """
        lines: list[str] = []
        for info in self.infos():
            if info.status == "blocked" and (info.error or "").endswith("MODELSHELF_LOAD_PLUGINS"):
                continue
            if info.status != "loaded":
                lines.append(
                    f"plugin {info.label} is {info.status}: {_first_line(info.error or '')}"
                )
            lines.extend(f"plugin {info.label}: {problem}" for problem in info.problems)
        lines.extend(conflict.message() for conflict in self.conflicts())
        return lines

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

    # --- explaining what is missing ------------------------------------------------------------

    def _unavailable(self, distribution: str | None, *names: str) -> list[PluginInfo]:
        """Failed or blocked plugins whose distribution is ``distribution``, or whose entry-point
        or distribution name is one of ``names``."""
        wanted = {n.lower() for n in names if n}
        if distribution:
            wanted.add(distribution.lower())
        return [
            info
            for info in self._infos.values()
            if info.status != "loaded"
            and (
                info.name.lower() in wanted
                or info.distribution.lower() in wanted
                or _normal(info.distribution) in {_normal(w) for w in wanted}
            )
        ]

    def explain_missing_scheme(self, scheme: str, distribution: str | None = None) -> str | None:
        """Why no storage is available for ``scheme``, when an installed plugin explains it."""
        self.storages()
        scheme = scheme.lower()
        conflict = self._conflicts.get(("storage", scheme))
        if conflict is not None:
            return conflict.message()
        suspects = self._unavailable(distribution, scheme, f"modelshelf-{scheme}")
        if suspects:
            return f"no storage plugin handles {scheme}:// URLs: {_unavailable_text(suspects)}"
        failed = [i for i in self._infos.values() if i.status == "failed"]
        if failed:
            return (
                f"no storage plugin handles {scheme}:// URLs, and {_unavailable_text(failed)}; "
                "it may be the one that provides it"
            )
        return None

    def explain_missing_serializer(self, name: str, distribution: str | None = None) -> str | None:
        """Why serializer ``name`` (saved by ``distribution``) is not available, when an installed
        plugin explains it."""
        self.serializers()
        conflict = self._conflicts.get(("serializer", name))
        if conflict is not None:
            return conflict.message()
        suspects = self._unavailable(distribution)
        if suspects:
            return f"serializer {name!r} is not available: {_unavailable_text(suspects)}"
        return None

    def explain_unclaimed(self, obj: Any, distribution: str | None = None) -> str | None:
        """Why no serializer claims ``obj``, when a conflicting or failed plugin explains it."""
        self.serializers()
        for serializer in self._conflicting_serializers:
            if serializer.claim_depth(obj) is not None:
                return self._conflicts[("serializer", serializer.name)].message()
        suspects = self._unavailable(distribution, type(obj).__module__.split(".")[0])
        if suspects:
            return _unavailable_text(suspects)
        failed = [i for i in self._infos.values() if i.status == "failed"]
        if failed:
            return f"{_unavailable_text(failed)}; it may be the one that handles it"
        return None

    # --- warnings --------------------------------------------------------------------------

    def _warn_about(self, info: PluginInfo) -> None:
        if info.status == "failed":
            self._warn_once(
                f"modelshelf plugin {info.label} {info.version} is installed but failed to load "
                f"({_first_line(info.error or '')}): what it provides is unavailable; run "
                f"`modelshelf plugins` for the whole error, or block it with "
                f"MODELSHELF_DISABLE_PLUGINS={info.name}"
            )
        for problem in info.problems:
            self._warn_once(f"modelshelf plugin {info.label}: {problem}")

    def _warn_once(self, message: str) -> None:
        if message in self._warned:
            return
        self._warned.add(message)
        warnings.warn(message, PluginWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The stack level of the first frame outside modelshelf, so a warning points at user code."""
    frame = inspect.currentframe()
    level = 0  # this frame; 1 is the function calling warnings.warn
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if level > 1 and module != "modelshelf" and not module.startswith("modelshelf."):
            return level
        frame = frame.f_back
        level += 1
    return 2


def _serializer_summary(s: Serializer) -> dict[str, Any]:
    return {
        "name": s.name,
        "framework": s.framework,
        "format": s.format,
        "safe": s.safe,
        "claims": list(s.claims),
        "unsafe_default_reason": str(s.unsafe_default_reason or "") or None,
    }


def _unavailable_text(infos: list[PluginInfo]) -> str:
    parts = []
    for info in sorted(infos, key=lambda i: i.name):
        if info.status == "blocked":
            parts.append(f"{info.label} is installed but {info.error}")
        else:
            parts.append(
                f"{info.label} is installed but failed to load ({_first_line(info.error or '')}); "
                "see `modelshelf plugins`"
            )
    return "; ".join(parts)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _describe(exc: BaseException) -> str:
    """The exception's type and whole message (pluggy's validation errors span several lines)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


def explain_missing_scheme(scheme: str, distribution: str | None = None) -> str | None:
    """A one-line message for ``open()`` when no storage serves ``scheme``, or ``None`` when
    nothing installed explains it (then "install the plugin" is the right advice).

    ``distribution`` is the plugin known to serve the scheme, if any (``"modelshelf-s3"``). The
    message names a conflict between two plugins, or an installed plugin that failed to load or is
    blocked, with its error.
    """
    return get_registry().explain_missing_scheme(scheme, distribution)


def explain_missing_serializer(name: str, distribution: str | None = None) -> str | None:
    """A one-line message for ``load()`` when serializer ``name`` is not available, or ``None``
    when nothing installed explains it.

    ``distribution`` is the one the manifest records as having saved the version. The message
    names a conflict, or says the distribution is installed but failed to load (or is blocked).
    """
    return get_registry().explain_missing_serializer(name, distribution)
