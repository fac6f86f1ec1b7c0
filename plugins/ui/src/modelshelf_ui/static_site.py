"""``modelshelf ui build DIR``: the server's pages written as files, updated in place.

The site is the server's assets plus every data document twice: as ``.json`` (what the pages
fetch over HTTP, e.g. from a bucket's static hosting) and as ``.js`` (what they load when opened
from disk, where browsers refuse ``fetch``). A file is rewritten only when its bytes change, and
data files of models or versions that are gone are removed, so re-running is cheap and a sync of
the folder to a bucket uploads only what changed.

DIR must be empty, missing, or a site built before (it holds :data:`MARKER`): the build removes
stale files, and must never do that in a folder of someone else's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import attrs
from modelshelf import ModelshelfError

from . import pages
from .data import ShelfView

#: Marks a folder as a site this command built (and may therefore clean).
MARKER = ".modelshelf-ui"


@attrs.frozen
class BuildReport:
    written: int
    unchanged: int
    removed: int
    models: int
    versions: int
    #: Models that could not be read, with the error: their pages are left as they were.
    failed: tuple[tuple[str, str], ...] = ()


def build_site(view: ShelfView, directory: Path) -> BuildReport:
    """Write (or bring up to date) the static site for the view's shelf in ``directory``."""
    directory = Path(directory)
    _check_target(directory)
    directory.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, bytes] = {path: pages.asset(path) for path in pages.ASSETS}
    outputs[MARKER] = (
        b"A site written by `modelshelf ui build`; the command rewrites this folder.\n"
    )

    def add(path: str, document: Any) -> None:
        outputs[path + ".json"] = pages.to_json(document)
        outputs[path + ".js"] = pages.to_script(path, document)

    shelf = view.shelf_document()
    add(pages.shelf_path(), shelf)
    failed: list[tuple[str, str]] = []
    kept: set[str] = set()
    versions = 0
    for model in shelf["models"]:
        name = model["name"]
        try:
            add(pages.model_path(name), view.model_document(name))
            documents = view.version_documents(name)
        except ModelshelfError as exc:
            failed.append((name, str(exc)))
            kept.add(f"data/models/{name}/_")  # keep what an earlier build showed of it
            continue
        for number, document in documents.items():
            add(pages.version_path(name, number), document)
        versions += len(documents)

    written = unchanged = 0
    for path, data in outputs.items():
        if _write_if_changed(directory, path, data):
            written += 1
        else:
            unchanged += 1
    removed = _remove_stale(directory, set(outputs), kept)
    return BuildReport(written, unchanged, removed, len(shelf["models"]), versions, tuple(failed))


def _check_target(directory: Path) -> None:
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise ModelshelfError(f"{directory} is not a directory: choose a folder for the site")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MARKER).is_file():
        raise ModelshelfError(
            f"{directory} is not empty and was not built by `modelshelf ui build` "
            f"(no {MARKER} file): choose an empty or new folder"
        )


def _write_if_changed(root: Path, relative: str, data: bytes) -> bool:
    target = root / relative
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    # A reader (a browser, a bucket sync) sees the old file or the new one, never half of one.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".~", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def _remove_stale(root: Path, current: set[str], kept: set[str]) -> int:
    """Delete data files the site no longer has (models or versions gone), then empty folders."""
    removed = 0
    data = root / "data"
    if not data.is_dir():
        return 0
    for path in sorted(data.rglob("*"), reverse=True):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink() or path.is_file():
            if relative not in current and not any(relative.startswith(k) for k in kept):
                path.unlink()
                removed += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed
