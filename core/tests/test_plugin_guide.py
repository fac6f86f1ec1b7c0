"""The plugin-author guide's complete storage backend and serializer, run exactly as printed.

Every ``python`` code block of ``docs/plugin-authors.md`` whose first line is ``# file: NAME`` is
written to NAME unchanged; the modules are installed as distributions (with the entry points the
guide gives them) and the guide's contract test modules run in a fresh pytest process: the
storage contract and the fault contract against the guide's object-store backend (over HTTP, on
``modelshelf.testing.objectserver``), the serializer contract against its serializer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).parents[2] / "docs" / "plugin-authors.md"

#: module -> (distribution, entry-point name or None for the framework), as the guide states them.
DISTRIBUTIONS = {
    "modelshelf_tinystore": ("modelshelf-tinystore", "tinystore"),
    "modelshelf_linear": ("modelshelf-linear", "linear"),
    "tinylinear": ("tinylinear", None),
}


def guide_files() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    files = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = block
    return files


def test_the_guide_names_its_entry_points() -> None:
    text = GUIDE.read_text()
    for module, (_, entry) in DISTRIBUTIONS.items():
        if entry is not None:
            assert f'`{entry} = "{module}"`' in text


def test_the_guides_backend_and_serializer_pass_their_contracts(tmp_path: Path) -> None:
    files = guide_files()
    assert set(files) == {
        "modelshelf_tinystore.py",
        "test_tinystore_contract.py",
        "tinylinear.py",
        "modelshelf_linear.py",
        "test_linear_contract.py",
    }
    site, tests = tmp_path / "site", tmp_path / "tests"
    site.mkdir()
    tests.mkdir()
    for name, source in files.items():
        (tests if name.startswith("test_") else site).joinpath(name).write_text(source)
    for module, (dist, entry) in DISTRIBUTIONS.items():
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "top_level.txt").write_text(f"{module}\n")
        if entry is not None:
            (info / "entry_points.txt").write_text(f"[modelshelf]\n{entry} = {module}\n")
    (tests / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MODELSHELF_LOAD_PLUGINS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs", str(tests)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tests,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes: dict[str, set[str]] = {}
    for test_id, outcome in re.findall(
        r"::(\w+)::\S+ (PASSED|FAILED|SKIPPED|ERROR)", result.stdout
    ):
        outcomes.setdefault(test_id, set()).add(outcome)
    # Every case of the storage and fault contracts ran on the guide's backend, and passed.
    assert outcomes.get("TestTinyStore") == {"PASSED"}, result.stdout[-3000:]
    assert outcomes.get("TestTinyStoreFaults") == {"PASSED"}, result.stdout[-3000:]
    assert "PASSED" in outcomes.get("TestLinearJSON", set()), result.stdout[-3000:]
    assert "FAILED" not in result.stdout and "ERROR" not in result.stdout
    check = subprocess.run(
        [sys.executable, "-m", "modelshelf", "plugins", "--check"],
        capture_output=True,
        text=True,
        env={**env, "MODELSHELF_LOAD_PLUGINS": "tinystore,linear"},
        check=False,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
