"""``modelshelf import-modelstore`` over hand-written registries whose metadata has wrong types.

modelstore's metadata is read as found (an older or newer modelstore, a hand edit): a field of an
unexpected type means "not recorded", never a traceback. Each case runs the command as a user runs
it, in a fresh process: exit 0 and nothing on stderr, or one line and exit 1.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

BAD_FIELDS = (
    "code-list",
    "deps-list",
    "model-type-text",
    "sklearn-type-list",
    "storage-list",
    "domain-model-list",
    "domain-file-list",
    "model-list",
    "model-id-number",
    "runtime-dict",
    "git-list",
    "modelstore-dict",
    "created-number",
    "params-list",
)


def _registry(base: Path, bad: str) -> Path:
    """A hand-written modelstore 0.0.82 layout with one model whose metadata has a wrong type."""
    root = base / "ms" / "operatorai-model-store"
    archive = root / "churn" / "2024.01.02-03.04.05" / "id1" / "artifacts.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        data = b"weights"
        info = tarfile.TarInfo("model.joblib")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    meta: dict[str, Any] = {
        "model": {
            "domain": "churn",
            "model_id": "id1",
            "model_type": {"library": "sklearn", "type": "LogisticRegression"},
            "parameters": {"C": 1},
        },
        "code": {
            "runtime": "python:3.11",
            "created": "2024/01/02/03:04:05",
            "dependencies": {"sklearn": "1.5"},
            "git": {"sha": "abc", "branch": "main"},
        },
        "storage": {"type": "file_system", "path": str(archive)},
        "modelstore": "0.0.82",
    }
    domain: Any = {"model": {"model_id": "id1", "domain": "churn"}}
    if bad == "code-list":
        meta["code"] = [1]
    elif bad == "deps-list":
        meta["code"]["dependencies"] = ["sklearn"]
    elif bad == "model-type-text":
        meta["model"]["model_type"] = "sklearn"
    elif bad == "sklearn-type-list":
        meta["model"]["model_type"]["type"] = ["LogisticRegression"]
    elif bad == "storage-list":
        meta["storage"] = [str(archive)]
    elif bad == "domain-model-list":
        domain = {"model": ["id1"]}
    elif bad == "domain-file-list":
        domain = ["id1"]
    elif bad == "model-list":
        meta["model"] = ["id1"]
    elif bad == "model-id-number":
        meta["model"]["model_id"] = 1
    elif bad == "runtime-dict":
        meta["code"]["runtime"] = {"python": "3.11"}
    elif bad == "git-list":
        meta["code"]["git"] = ["abc"]
    elif bad == "modelstore-dict":
        meta["modelstore"] = {"version": 1}
    elif bad == "created-number":
        meta["code"]["created"] = 20240102
    elif bad == "params-list":
        meta["model"]["parameters"] = [1, 2]
    (root / "domains").mkdir(parents=True)
    (root / "domains" / "churn.json").write_text(json.dumps(domain))
    (root / "churn" / "versions").mkdir(parents=True)
    (root / "churn" / "versions" / "id1.json").write_text(json.dumps(meta))
    return root.parent


def _import(case_dir: Path, source: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELSHELF_DEBUG"}
    env.update(
        MODELSHELF_URL=str(case_dir / "shelf"), MODELSHELF_CACHE=str(case_dir / "cache"), TZ="UTC"
    )
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", "import-modelstore", "--from", source],
        capture_output=True,
        text=True,
        env=env,
        cwd=case_dir,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("bad", BAD_FIELDS)
def test_a_wrong_type_in_modelstore_metadata_is_not_recorded_never_a_crash(
    tmp_path: Path, bad: str
) -> None:
    result = _import(tmp_path, str(_registry(tmp_path, bad)))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert [line for line in result.stderr.splitlines() if line.strip()] == [], result.stderr


def test_a_missing_registry_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = _import(tmp_path, "nowhere")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and result.stderr.count("\n") == 1, result.stderr
