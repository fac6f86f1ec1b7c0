"""``modelshelf plugin new``: the package it writes passes its contract tests once filled in.

Each case generates a plugin through the real command line, fills every TODO with a tiny working
implementation (a numpy ``.npy`` serializer; a storage whose "service" is a local directory with
a lock file for its conditional writes), checks the result with the repository's ruff rules,
installs it with pip into a private target directory (its entry point then works as after a real
install, without touching this environment) and runs the package's own tests, the modelshelf
contract suites, in a child pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from modelshelf.errors import ModelshelfError
from modelshelf.template import create

ROOT = (
    Path(__file__).resolve().parents[2]
)  # the repository root (its pyproject holds the ruff setup)

# --- the fill-ins: TODO line in the generated file -> working code ------------------------------

SERIALIZER_FILL = {
    "src/modelshelf_npy/serializer.py": {
        'MODEL_FILE = "model.bin"  # TODO: your format\'s file name, e.g. "model.json"': 'MODEL_FILE = "model.npy"',
        '"""Saves numpy objects in TODO format (safe: loading runs no code)."""': '"""Saves numpy arrays in the npy format, without pickle (safe: loading runs no code)."""',
        'format = "native"  # TODO: the name of the file format you write': 'format = "npy"',
        'claims = ("numpy.TODO",)  # TODO: e.g. ("numpy.core.Model",)': 'claims = ("numpy.ndarray",)',
        'raise NotImplementedError("TODO: write obj to directory / MODEL_FILE")': 'with open(directory / MODEL_FILE, "wb") as file:\n'
        "            numpy.save(file, obj, allow_pickle=False)",
        'signature=None,  # TODO: {"inputs": [...], "outputs": [...]} where the model knows them': 'signature={"inputs": [], "outputs": [{"name": "y", "dtype": str(obj.dtype)}]},',
        "import numpy  # noqa: F401 - TODO: remove this line if the code below uses it": "import numpy",
        'raise NotImplementedError("TODO: read path back into a numpy object")': "return numpy.load(path, allow_pickle=False)",
    },
    "tests/test_modelshelf_npy_contract.py": {
        'raise NotImplementedError("TODO: a small real numpy model, built with a fixed seed")': "import numpy\n\n        return numpy.random.default_rng(0).normal(size=(3, 4))",
        'raise NotImplementedError("TODO: a fixed input for predict")': "import numpy\n\n        return numpy.ones(4)",
        "return lambda obj, x: obj.predict(x)  # TODO: how your framework predicts": "return lambda obj, x: obj @ x",
    },
}

_STORAGE_HELPERS = '''\
    # --- the "service": objects are files below <endpoint>/<bucket>/objects ------------------

    def _path(self, name: str) -> Path:
        return self.client / "objects" / name

    @staticmethod
    def _info(name: str, st: os.stat_result) -> ObjectInfo:
        etag = f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        return ObjectInfo(name, st.st_size, etag, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    def _replace(self, name: str, write: Callable[[BinaryIO], object]) -> str:
        """Write a temporary file, then rename it into place: readers never see a partial one."""
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.client / "tmp")
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(temporary, target)
        return self._info(name, target.stat()).etag

    def _bucket_exists(self) -> bool:
        return (self.client / "objects").is_dir()

'''

STORAGE_FILL = {
    "src/modelshelf_dirstore/storage.py": {
        "import datetime as dt  # noqa: F401 - TODO: for ObjectInfo.modified; remove if unused": "import datetime as dt\nimport fcntl\nimport os\nimport shutil\nimport tempfile\n"
        "from collections.abc import Callable",
        "from typing import Any\n": "from typing import Any, BinaryIO\n",
        "from modelshelf.errors import KeyNotFound, ModelshelfError, StorageError  # noqa: F401 - TODO": "from modelshelf.errors import KeyNotFound, ModelshelfError, StorageError",
        "from modelshelf.objectstore import (  # noqa: F401 - TODO: drop the names you do not use": "from modelshelf.objectstore import (",
        "self.client: Any = None  # TODO: create the SDK client (import the SDK in this module)": "self.client = Path(self.endpoint) / self.bucket",
        "    # --- primitives: one SDK call each": _STORAGE_HELPERS
        + "    # --- primitives: one SDK call each",
        'raise NotImplementedError("TODO: _get")': 'with open(self._path(name), "rb") as file:\n'
        "            return StoredBytes(file.read(), self._info(name, os.fstat(file.fileno())).etag)",
        'raise NotImplementedError("TODO: _open_read")': 'file = open(self._path(name), "rb")  # noqa: SIM115 - closed by ObjectRead.close\n'
        "        info = self._info(name, os.fstat(file.fileno()))\n"
        "        if pin is not None and info.etag != pin.etag:\n"
        "            file.close()\n"
        "            raise Replaced(name)\n"
        "        file.seek(start)\n"
        '        chunks = iter(lambda: file.read(chunk_size), b"")\n'
        "        return ObjectRead(size=info.size, etag=info.etag, chunks=chunks, close=file.close)",
        'raise NotImplementedError("TODO: _head")': "return self._info(name, self._path(name).stat())",
        'raise NotImplementedError("TODO: _list_page")': 'base = self.client / "objects"\n'
        "        objects, prefixes = [], set()\n"
        '        for directory, _, files in os.walk(base / prefix.rpartition("/")[0]):\n'
        "            for file in files:\n"
        "                found = Path(directory, file).relative_to(base).as_posix()\n"
        "                if not found.startswith(prefix):\n"
        "                    continue\n"
        '                if delimited and "/" in found[len(prefix):]:\n'
        '                    prefixes.add(prefix + found[len(prefix):].split("/")[0] + "/")\n'
        "                    continue\n"
        "                try:\n"
        "                    objects.append(self._info(found, Path(directory, file).stat()))\n"
        "                except FileNotFoundError:\n"
        "                    continue\n"
        "        return ListPage(objects=objects, prefixes=sorted(prefixes))",
        'raise NotImplementedError("TODO: _put")': 'with open(self.client / "lock", "ab") as lock:\n'
        "            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes\n"
        "            try:\n"
        "                current: str | None = self._info(name, self._path(name).stat()).etag\n"
        "            except FileNotFoundError:\n"
        "                current = None\n"
        "            if if_none_match and current is not None:\n"
        "                raise Refused(create_only=True)\n"
        "            if if_match is not None and current != if_match:\n"
        "                raise Refused(create_only=False)\n"
        "            return self._replace(name, lambda file: file.write(data))",
        'raise NotImplementedError("TODO: _upload_file")': 'with open(path, "rb") as source:\n'
        "            self._replace(name, lambda file: shutil.copyfileobj(source, file))",
        'raise NotImplementedError("TODO: _delete")': "self._path(name).unlink()",
        'return None  # TODO: map your SDK\'s exceptions, at least "not found" to KeyNotFound': "if isinstance(exc, FileNotFoundError):\n"
        '            return KeyNotFound(f"{key} does not exist in shelf {self.url}")\n'
        "        return None",
    },
    "tests/test_modelshelf_dirstore_contract.py": {
        'raise NotImplementedError("TODO: storage_url")': 'for part in ("objects", "tmp"):\n'
        '            (tmp_path / "service" / "bucket" / part).mkdir(parents=True)\n'
        '        return "dirstore://bucket/team/models"',
        'return {}  # TODO: e.g. {"endpoint": "http://127.0.0.1:9000"}': 'return {"endpoint": str(tmp_path / "service")}',
    },
}


def _generate(tmp_path: Path, kind: str, name: str, *extra: str) -> Path:
    package = tmp_path / f"modelshelf-{name}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshelf",
            "plugin",
            "new",
            kind,
            name,
            "--dir",
            str(package),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "TODO" in result.stdout  # tells the author what comes next
    return package


def _fill(package: Path, fills: dict[str, dict[str, str]]) -> None:
    for relative, replacements in fills.items():
        path = package / relative
        text = path.read_text()
        for todo, code in replacements.items():
            assert text.count(todo) == 1, f"{relative}: the template no longer has {todo!r}"
            text = text.replace(todo, code)
        path.write_text(text)
    left = [
        f"{path.relative_to(package)}: {line.strip()}"
        for path in package.rglob("*.py")
        for line in path.read_text().splitlines()
        if "NotImplementedError" in line or "noqa: F401 - TODO" in line
    ]
    assert not left, f"TODOs left unfilled: {left}"


def _lint(package: Path) -> None:
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if ruff is None:
        return
    result = subprocess.run(
        [ruff, "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _install_and_test(package: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """pip-install the package (its real entry point) into a private directory and run its tests."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "MODELSHELF_CACHE": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(package),
            str(package / "tests"),
        ],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_generated_serializer_passes_its_contract_once_filled(tmp_path: Path) -> None:
    package = _generate(tmp_path, "serializer", "npy", "--framework", "numpy")
    _fill(package, SERIALIZER_FILL)
    _lint(package)
    result = _install_and_test(package, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_generated_storage_passes_its_contract_once_filled(tmp_path: Path) -> None:
    package = _generate(tmp_path, "storage", "dirstore")
    _fill(package, STORAGE_FILL)
    _lint(package)
    result = _install_and_test(package, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_unfilled_template_fails_its_contract_on_the_todos(tmp_path: Path) -> None:
    """Before the fill-in the contract fails, and it fails on the TODOs, not on the package."""
    package = _generate(tmp_path, "serializer", "todo-only")
    result = _install_and_test(package, tmp_path)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "NotImplementedError: TODO" in result.stdout


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("serializer", "My_Plugin", "invalid plugin name"),
        ("serializer", "-x", "invalid plugin name"),
        ("serializer", "a" * 61, "invalid plugin name"),
        ("widget", "x", "unknown plugin kind"),
    ],
)
def test_bad_names_are_refused_in_one_line(
    tmp_path: Path, kind: str, name: str, message: str
) -> None:
    with pytest.raises(ModelshelfError, match=message):
        create(kind, name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nothing_is_ever_overwritten(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "README.md").write_text("mine")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshelf",
            "plugin",
            "new",
            "storage",
            "x",
            "--dir",
            str(tmp_path / "taken"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert (tmp_path / "taken" / "README.md").read_text() == "mine"
