"""``import modelshelf`` and ``modelshelf plugins`` must not import cloud SDKs or ML frameworks."""

from __future__ import annotations

import subprocess
import sys

HEAVY = [
    "boto3",
    "botocore",
    "azure",
    "google",
    "onnx",
    "onnxruntime",
    "torch",
    "sklearn",
    "skops",
    "xgboost",
    "lightgbm",
    "catboost",
    "keras",
    "transformers",
    "tensorflow",
    "safetensors",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
]

CHECK = f"""
import sys
heavy = {HEAVY!r}
def loaded():
    return sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))
"""


def run(script: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK + script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_import_modelshelf_is_light() -> None:
    run(
        "import modelshelf\nassert loaded() == [], loaded()\nassert 'modelshelf.shelf' not in sys.modules"
    )


def test_plugins_command_imports_no_sdk_or_framework() -> None:
    # Every plugin installed in this environment is listed; none may import its SDK to do so.
    run(
        "from modelshelf.cli import main\n"
        "try:\n    main(['plugins', '--all'])\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
        "assert loaded() == [], loaded()"
    )


def test_opening_a_local_shelf_imports_no_sdk_or_framework(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run(
        f"import modelshelf\nshelf = modelshelf.open({str(tmp_path)!r})\nshelf.models()\n"
        "assert loaded() == [], loaded()"
    )
