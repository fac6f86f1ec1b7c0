"""modelstore's ``artifacts.tar.gz``: unpacked by hand, every member checked, nothing unpickled.

Links, devices, absolute paths, ``..`` and anything resolving outside the destination are refused
and never written; :func:`is_pickle_like` tells which extracted files would run code if loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from modelshelf.errors import ModelshelfError
from modelshelf.refs import check_file_path

#: Suffixes of files whose loading runs pickle (or a pickle-based format).
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".jbl", ".pt", ".pth", ".ckpt", ".sav", ".dill", ".p"}
)


def _member_problem(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why a tar member must not be extracted into ``dest`` (a resolved directory), or None."""
    name = member.name
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    if not member.isreg():
        return "is not a regular file (device, fifo or other special member)"
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "contains '..'"
    try:
        check_file_path("/".join(parts))
    except ModelshelfError as exc:
        return str(exc)
    target = dest.joinpath(*parts).resolve()
    if not target.is_relative_to(dest):
        return "would land outside the extraction directory"
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4 / 3.10.12
    if data_filter is not None:
        try:
            data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            return f"refused by tarfile's data filter ({exc})"
    return None


def extract_archive(archive: Path, dest: Path) -> tuple[dict[str, Path], list[str]]:
    """Extract the regular files of a ``.tar.gz`` into ``dest``, checking every member first.

    Returns (relative path -> extracted file, refused members with reasons). Links, devices,
    absolute paths, ``..`` and anything resolving outside ``dest`` are refused and never written;
    files are created exclusively (``O_EXCL | O_NOFOLLOW``), so no member can write through a path
    another member created. Never calls ``extractall``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    real = dest.resolve()
    files: dict[str, Path] = {}
    refused: list[str] = []
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_BINARY", 0)
    )
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isdir():
                continue  # folders are created for the files below them
            problem = _member_problem(member, real)
            if problem is not None:
                refused.append(f"{member.name!r} {problem}")
                continue
            relative = "/".join(p for p in member.name.split("/") if p not in ("", "."))
            if relative in files:
                refused.append(f"{member.name!r} appears twice in the archive")
                continue
            target = real.joinpath(*relative.split("/"))
            parent = target.parent
            try:
                # Only folders made here exist below dest (no member ever creates a link), and
                # the resolved target was checked above; this re-check guards against surprises.
                parent.mkdir(parents=True, exist_ok=True)
                if parent.resolve() != parent or not parent.is_relative_to(real):
                    refused.append(f"{member.name!r} would be written through a link")
                    continue
                source = tar.extractfile(member)
                if source is None:
                    refused.append(f"{member.name!r} has no readable content")
                    continue
                fd = os.open(target, flags, 0o644)
            except OSError as exc:
                refused.append(f"{member.name!r} cannot be created ({exc.strerror})")
                continue
            with source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            files[relative] = target
    return files, refused


def is_pickle_like(relative: str, path: Path) -> bool:
    """Whether loading this file would run pickle: by suffix, pickle magic, or a torch zip."""
    if PurePosixPath(relative).suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5 header
        return True
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zipped:
                return any(n.endswith(".pkl") for n in zipped.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    return False


__all__ = ["PICKLE_SUFFIXES", "extract_archive", "is_pickle_like"]
