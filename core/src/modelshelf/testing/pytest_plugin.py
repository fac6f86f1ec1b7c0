"""Fixtures every modelshelf test suite wants, registered through the ``pytest11`` entry point.

* ``modelshelf_cache``: an empty download cache, also exported as ``MODELSHELF_CACHE``.
* ``local_shelf_path``: where ``local_shelf`` lives (``tmp_path / "shelf"``), for code that opens
  the same shelf again (a fresh process, a second cache).
* ``local_shelf``: a fresh filesystem shelf using that cache.
* ``modelshelf_run_python``: run code in a fresh Python process with an empty cache.
* ``modelshelf_fresh_load``: list, download, load and run a stored model in a fresh process.
* ``tabular_data``: ``(X, y)``, 200 rows of 4 float features and a binary target that depends on
  two of them (fixed seed; needs numpy), for the serializer tests of tabular frameworks.

A suite that wants no test to touch the user's cache adds to its ``conftest.py``::

    @pytest.fixture(autouse=True)
    def _own_cache(modelshelf_cache: Path) -> Path:
        return modelshelf_cache
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from modelshelf.shelf import Shelf


@pytest.fixture
def modelshelf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty modelshelf download cache for this test (a directory below ``tmp_path``), also set
    as ``MODELSHELF_CACHE`` so shelves opened without ``cache=`` use it too."""
    cache = tmp_path / "modelshelf-cache"
    monkeypatch.setenv("MODELSHELF_CACHE", str(cache))
    return cache


@pytest.fixture
def local_shelf_path(tmp_path: Path) -> Path:
    """Where ``local_shelf`` lives (``tmp_path / "shelf"``), to open the same shelf again."""
    return tmp_path / "shelf"


@pytest.fixture
def local_shelf(local_shelf_path: Path, modelshelf_cache: Path) -> Iterator[Shelf]:
    """A fresh, empty filesystem shelf at ``local_shelf_path``, using ``modelshelf_cache``;
    closed after the test."""
    import modelshelf

    shelf = modelshelf.open(str(local_shelf_path), cache=modelshelf_cache)
    try:
        yield shelf
    finally:
        shelf.close()


@pytest.fixture
def modelshelf_run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(code, *args, env=None)``: run ``python -c code`` in a fresh process with an empty cache.

    Serializer tests use it to prove a model loads in a process that never saw the original.
    The process must succeed; its output is returned.
    """
    counter = iter(range(1_000_000))

    def run(
        code: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "MODELSHELF_CACHE": str(tmp_path / f"fresh-cache-{next(counter)}"),
        }
        full_env.update(env or {})
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
        return result

    return run


@pytest.fixture
def tabular_data() -> tuple[Any, Any]:
    """200 rows, 4 features, a binary target that depends on two of them (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@dataclass(frozen=True)
class FreshLoad:
    """What a fresh process saw of a stored model (see ``modelshelf_fresh_load``)."""

    #: Version numbers listed for the model's name.
    versions: list[int]
    #: Relative paths of the downloaded files, sorted.
    files: list[str]
    #: Name of the loaded object's class.
    type: str
    #: ``method name -> numpy array`` of what each method returned on the inputs.
    outputs: dict[str, Any]


_FRESH_LOAD = """
import json, pickle, sys
from pathlib import Path
import numpy as np, modelshelf
shelf_path, ref, dest, inputs, methods, out, trust = sys.argv[1:]
shelf = modelshelf.open(shelf_path)
name = ref.split("@")[0].split(":")[0]
versions = [v.version for v in shelf.versions(name)]
folder = Path(shelf.download(ref, dest))
files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
if trust == "trust":
    scan = shelf.get(ref).scan
    model = shelf.load(ref, trust="ignore-scan" if scan is not None and scan.dangerous else True)
else:
    model = shelf.load(ref)
with open(inputs, "rb") as given:
    X = pickle.load(given)
np.savez(out, **{m: np.asarray(getattr(model, m)(X)) for m in methods.split(",")})
print(json.dumps({"versions": versions, "files": files, "type": type(model).__name__}))
"""


@pytest.fixture
def modelshelf_fresh_load(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> Callable[..., FreshLoad]:
    """``fresh_load(shelf_path, ref, inputs, *methods, trust=False)``: in a fresh process with an
    empty cache, list the versions of ``ref``'s model, download ``ref``, load it and call each
    method (default ``predict``) on ``inputs`` (passed by pickle); returns a :class:`FreshLoad`.
    Needs numpy. ``trust=True`` loads an unsafe format with trust, and past core's pickle scan
    where it flagged the version (check in-process which imports it flagged, say with
    :func:`~modelshelf.testing.frameworks.load_trusted`).

    Serializer tests use it to prove a model comes back whole in a process that never saw it.
    """
    counter = iter(range(1_000_000))

    def fresh_load(
        shelf_path: Path | str, ref: str, inputs: Any, *methods: str, trust: bool = False
    ) -> FreshLoad:
        import numpy as np

        work = tmp_path / f"fresh-load-{next(counter)}"
        work.mkdir()
        with open(work / "inputs.pkl", "wb") as out:
            pickle.dump(inputs, out)
        names = ",".join(methods or ("predict",))
        args = (
            str(shelf_path),
            ref,
            str(work / "download"),
            str(work / "inputs.pkl"),
            names,
            str(work / "out.npz"),
            "trust" if trust else "no-trust",
        )
        seen = json.loads(modelshelf_run_python(_FRESH_LOAD, *args).stdout.strip().splitlines()[-1])
        # Our own file: object arrays (string class labels) come back through pickle.
        with np.load(work / "out.npz", allow_pickle=True) as outputs:
            return FreshLoad(
                seen["versions"],
                seen["files"],
                seen["type"],
                {k: outputs[k] for k in outputs.files},
            )

    return fresh_load
