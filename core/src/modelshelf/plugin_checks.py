"""What can be wrong with a plugin even when it imports: hooks that are never called, and
unsafe formats chosen by default without a reason. :mod:`modelshelf.plugins` reports them."""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from .serializers import Serializer

#: Every hook a plugin can implement (the ``modelshelf_*`` functions of :mod:`modelshelf.hookspecs`).
HOOK_NAMES = frozenset(name for name in dir(hookspecs) if name.startswith("modelshelf_"))


def hook_problems(pm: pluggy.PluginManager, plugin: object, hooks: list[str]) -> list[str]:
    """Misspelled hook names, hook functions without the marker, and plugins with no hook at all."""
    problems: list[str] = []
    for attr in sorted(dir(plugin)):
        try:
            opts = pm.parse_hookimpl_opts(plugin, attr)
        except Exception:  # an attribute pluggy cannot inspect is not a hook
            opts = None
        if opts is not None:
            hook = opts.get("specname") or attr
            if hook not in HOOK_NAMES:
                problems.append(
                    f"{hook} is not a modelshelf hook{_did_you_mean(hook)}, so it is never called"
                )
            continue
        if not attr.startswith("modelshelf_"):
            continue
        value = inspect.getattr_static(plugin, attr, None)
        if not callable(value) and not isinstance(value, (staticmethod, classmethod)):
            continue
        if attr in HOOK_NAMES:
            problems.append(
                f"{attr} lacks the @modelshelf.hookimpl decorator, so it is never called"
            )
        else:
            problems.append(
                f"{attr} is not a modelshelf hook{_did_you_mean(attr)}, so it is never called"
            )
    if not hooks:
        problems.append(
            "implements no modelshelf hook, so it provides nothing (hooks are functions named "
            "modelshelf_* from modelshelf.hookspecs, decorated with @modelshelf.hookimpl)"
        )
    return problems


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(HOOK_NAMES), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unsafe_default_problem(serializer: Serializer) -> str | None:
    """The rule for unsafe formats chosen by default, or ``None`` when ``serializer`` keeps it.

    A serializer whose loading can run code (``safe = False``) is opt-in (``claims = ()``), unless
    no safe format can store the objects it claims: then it says why in
    ``unsafe_default_reason``, which ``modelshelf plugins`` shows.
    """
    if (
        serializer.safe
        or not serializer.claims
        or str(serializer.unsafe_default_reason or "").strip()
    ):
        return None
    return (
        f"serializer {serializer.name!r} is unsafe (loading it can run code) but claims "
        f"{', '.join(serializer.claims)} by default without an unsafe_default_reason: make it "
        "opt-in (claims = ()) or state why no safe format can store these objects"
    )
