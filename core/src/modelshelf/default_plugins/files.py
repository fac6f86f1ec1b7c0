"""The built-in ``files`` serializer: upload files and directories exactly as they are.

``shelf.upload("tok", "path/to/dir")`` keeps the directory's relative structure;
``shelf.upload("w", ["a.bin", "cfg/"])`` stores ``a.bin`` and ``cfg/...`` side by side.
Loading returns a local path: the single file when one file was uploaded, else the directory.

Inside an uploaded directory, a symbolic link to a regular file is followed (its content is
stored under the link's name), but a symbolic link to a directory is refused, as is a link that
points nowhere: following a directory link could pull in a whole other tree (or loop), and
skipping it would drop files without a word. Copy the linked directory in, or pass its target
as another path (``upload NAME dir/ linked-target/``). Sockets, fifos and devices are skipped.
A path named explicitly may itself be a link to a file or a directory.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelshelfError
from ..hookspecs import hookimpl
from ..localfiles import collect_files
from ..refs import check_file_path
from ..serializers import SavedModel, Serializer


def _as_paths(obj: Any) -> list[Path] | None:
    if isinstance(obj, (str, os.PathLike)):
        return [Path(obj)]
    if (
        isinstance(obj, (list, tuple))
        and obj
        and all(isinstance(p, (str, os.PathLike)) for p in obj)
    ):
        return [Path(p) for p in obj]
    return None


class FilesSerializer(Serializer):
    name = "files"
    framework = "files"
    format = "files"
    safe = True
    # Paths are claimed explicitly in files(); strings and paths have no framework class to claim.
    claims = ("builtins.str", "pathlib.PurePath", "os.PathLike")
    records_framework = False

    def claim_depth(self, obj: Any) -> int | None:
        return 0 if _as_paths(obj) is not None else None

    def files(self, obj: Any) -> Mapping[str, Path] | None:
        paths = _as_paths(obj)
        if paths is None:
            raise ModelshelfError("the files serializer takes a path or a list of paths")
        return collect_files(paths)

    def describe(self, obj: Any) -> SavedModel:
        paths = _as_paths(obj) or []
        single = paths[0].name if len(paths) == 1 and paths[0].is_file() else None
        return SavedModel("files", platform.python_version(), details={"single_file": single})

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        raise NotImplementedError("files are uploaded in place; see files()")

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Path:
        single = details.get("single_file")
        if isinstance(single, str):
            return directory / check_file_path(single)
        return directory


@hookimpl
def modelshelf_register_serializers(register):  # type: ignore[no-untyped-def]
    register(FilesSerializer())
