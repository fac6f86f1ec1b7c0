"""Local files to upload: walking paths and directories into relative, ``/``-separated names.

Symbolic links to files are followed (their content is what the user sees); links to directories
are refused rather than silently left out, and so are links that point nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePath

from .errors import ModelshelfError
from .refs import check_file_path


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
            # Joined as strings, once per folder: a tree of many small files is mostly this loop.
            base = (prefix / Path(folder).relative_to(path)).as_posix()
            for name in sorted(names):
                file = Path(folder, name)
                if file.is_file():  # follows links to files
                    _add(found, name if base == "." else f"{base}/{name}", file)
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
