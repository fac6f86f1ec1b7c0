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
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

from ..errors import ModelshelfError
from ..plugins import hookimpl
from ..refs import check_file_path
from ..serializers import SavedModel, Serializer


def _as_paths(obj: Any) -> list[Path] | None:
    if isinstance(obj, (str, os.PathLike)):
        return [Path(obj)]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(p, (str, os.PathLike)) for p in obj):
        return [Path(p) for p in obj]
    return None


def collect_files(paths: Iterable[Path]) -> dict[str, Path]:
    """Map relative, ``/``-separated upload paths to local files.

    A single directory contributes its contents at the top level; with several paths, each file
    keeps its base name and each directory its own name as a prefix.
    """
    paths = list(paths)
    single_dir = len(paths) == 1 and paths[0].is_dir()
    found: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            raise ModelshelfError(f"cannot upload {str(path)!r}: no such file or directory")
        if path.is_file():
            _add(found, path.name, path)
            continue
        if not path.is_dir():
            raise ModelshelfError(f"cannot upload {str(path)!r}: not a regular file or directory")
        prefix = PurePath() if single_dir else PurePath(path.resolve().name)
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in dirs:
                # os.walk lists a directory link among the directories but never enters it.
                _refuse_directory_link(Path(folder, name))
            for name in sorted(names):
                file = Path(folder, name)
                if file.is_file():  # follows links to files
                    relative = prefix / file.relative_to(path)
                    _add(found, relative.as_posix(), file)
                elif file.is_symlink():  # pointing nowhere (a directory link is listed in dirs)
                    raise ModelshelfError(
                        f"cannot upload {str(file)!r}: it is a symbolic link to {os.readlink(file)!r}, "
                        "which does not exist; fix or remove the link"
                    )
                # sockets, fifos and devices hold no file content: skipped
    if not found:
        raise ModelshelfError(f"nothing to upload: {', '.join(map(str, paths))} holds no files")
    return found


def _refuse_directory_link(folder: Path) -> None:
    if folder.is_symlink():
        raise ModelshelfError(
            f"cannot upload {str(folder)!r}: it is a symbolic link to the directory "
            f"{os.readlink(folder)!r}, which is not followed; copy that directory in, or pass its "
            "target as another path to upload"
        )


def _add(found: dict[str, Path], relative: str, file: Path) -> None:
    check_file_path(relative)
    if relative in found:
        raise ModelshelfError(
            f"two files would be stored as {relative!r} ({found[relative]} and {file}): "
            "upload them from one directory instead"
        )
    found[relative] = file


class FilesSerializer(Serializer):
    name = "files"
    framework = "files"
    format = "files"
    safe = True
    # Paths are claimed explicitly in files(); strings and paths have no framework class to claim.
    claims = ("builtins.str", "pathlib.PurePath", "os.PathLike")

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
