"""What an import did (or, in a dry run, would do): the records :func:`import_modelstore` returns."""

from __future__ import annotations

from typing import Any, Literal

import attrs

#: What a :class:`SkippedItem` is.
SkippedKind = Literal["domain", "model", "state", "source"]


@attrs.frozen
class ImportedModel:
    """A modelstore model that was published (or, in a dry run, would be) as a version."""

    domain: str
    model_id: str
    name: str
    #: ``name:N``; in a dry run the number the next publish would most likely claim.
    ref: str
    version: int
    serializer: str
    library: str | None
    created: str | None
    files: int = 0
    size: int = 0
    unsafe_files: tuple[str, ...] = ()


@attrs.frozen
class AliasChange:
    """A modelstore state mirrored as an alias: ``name@alias -> ref``."""

    name: str
    alias: str
    state: str
    model_id: str
    ref: str
    #: The version the alias pointed to before, ``None`` when it did not exist.
    previous: int | None
    #: ``False`` when the alias already pointed there (nothing was written).
    changed: bool


@attrs.frozen
class SkippedItem:
    """Something not imported, and why."""

    kind: SkippedKind
    domain: str | None
    item: str
    reason: str


@attrs.frozen
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    source: str
    target: str
    dry_run: bool
    imported: tuple[ImportedModel, ...] = ()
    aliases: tuple[AliasChange, ...] = ()
    skipped: tuple[SkippedItem, ...] = ()
    #: Warnings that are not skips, e.g. creation times too coarse to order models for sure.
    notes: tuple[str, ...] = ()

    def refs(self) -> dict[str, dict[str, str]]:
        """Per domain, modelstore model id -> the version ref it was imported as."""
        found: dict[str, dict[str, str]] = {}
        for model in self.imported:
            found.setdefault(model.domain, {})[model.model_id] = model.ref
        return found

    def states(self) -> dict[str, dict[str, str]]:
        """Per model name, modelstore state -> the ``name@alias`` it became."""
        found: dict[str, dict[str, str]] = {}
        for change in self.aliases:
            found.setdefault(change.name, {})[change.state] = f"{change.name}@{change.alias}"
        return found

    def lines(self) -> list[str]:
        """A one-line-per-item human summary, ending with the totals."""
        verb = "would import" if self.dry_run else "imported"
        out: list[str] = []
        for m in self.imported:
            unsafe = f", unsafe: {', '.join(m.unsafe_files)}" if m.unsafe_files else ""
            files = "" if self.dry_run else f", {m.files} files"
            out.append(f"{verb} {m.ref} <- {m.domain}/{m.model_id} ({m.serializer}{files}{unsafe})")
        for a in self.aliases:
            if not a.changed:
                what = "alias unchanged"
            elif self.dry_run:
                what = "would set alias"
            else:
                what = "set alias"
            moved = f" (was {a.name}:{a.previous})" if a.changed and a.previous is not None else ""
            out.append(f"{what} {a.name}@{a.alias} -> {a.ref}{moved} <- state {a.state}")
        for s in self.skipped:
            where = f"{s.domain}/" if s.domain and s.kind != "domain" else ""
            out.append(f"skipped {s.kind} {where}{s.item}: {s.reason}")
        out.extend(f"note: {n}" for n in self.notes)
        set_count = sum(1 for a in self.aliases if a.changed)
        out.append(
            f"{len(self.imported)} model(s) {verb}, {set_count} alias(es) "
            f"{'to set' if self.dry_run else 'set'}, {len(self.skipped)} item(s) skipped"
            f"{' (dry run: nothing written)' if self.dry_run else ''}"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


__all__ = ["AliasChange", "ImportReport", "ImportedModel", "SkippedItem", "SkippedKind"]
