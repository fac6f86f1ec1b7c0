"""Checks every framework plugin's tests repeat, beside the
:class:`~modelshelf.testing.SerializerContract`.

* :func:`chosen_serializer`: which serializer ``shelf.upload(name, obj)`` picks for ``obj``.
* :func:`assert_light_import`: importing the plugin and listing serializers imports no framework.
* :func:`assert_plugins_command_lists`: ``modelshelf plugins`` shows the plugin's serializers.
* :class:`WritesMarker`: a pickle payload that writes a marker file when unpickled (a stand-in for
  arbitrary code), and :func:`assert_payload_needs_trust`: a version holding one never runs it
  without trust, and runs it with trust (so the payload is known to be live).
* :func:`assert_load_needs_trust`: the same, one level down: the serializer's own ``load``.
* :func:`assert_planted_link_refused`: a link planted in place of a version's file is refused,
  never followed.
* :func:`load_trusted`: ``shelf.load(ref, trust=True)``, or where core's pickle scan flagged the
  version, the checks that it flagged only the framework's own classes and that ``trust=True`` is
  refused, then ``trust="ignore-scan"``.
* :func:`fresh_process_report`: run a script against a shelf in a fresh process, get its report.
* :func:`import_test_helpers`: put a tests folder on ``sys.path`` and import a helper module from
  it, so that pickles and fresh processes find its classes by name.

For example::

    def test_light_import() -> None:
        assert_light_import("mine", ["mine-json"], ["mine_framework", "numpy"])

Only the standard library and pytest are imported here: frameworks are the caller's.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

__all__ = [
    "WritesMarker",
    "assert_light_import",
    "assert_load_needs_trust",
    "assert_payload_needs_trust",
    "assert_planted_link_refused",
    "assert_plugins_command_lists",
    "chosen_serializer",
    "fresh_process_report",
    "import_test_helpers",
    "load_trusted",
]


def chosen_serializer(obj: Any) -> str:
    """The name of the serializer ``shelf.upload(name, obj)`` picks among all registered ones: the
    one whose claim matches earliest in ``type(obj).__mro__``."""
    from modelshelf.plugins import get_registry
    from modelshelf.serializers import choose

    return choose(obj, [entry.serializer for entry in get_registry().serializers().values()]).name


def _run_with_only(plugin: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python *args`` in a fresh process that loads only ``plugin``; it must succeed."""
    # Only this plugin is loaded, so that another plugin's imports cannot fail (or pass) the check.
    env = {**os.environ, "MODELSHELF_LOAD_PLUGINS": plugin}
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, (
        f"python {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


def assert_light_import(
    plugin: str, serializer_names: Iterable[str], heavy_modules: Iterable[str], *, then: str = ""
) -> None:
    """In a fresh process loading only the plugin ``plugin`` (its entry-point name), import
    ``modelshelf_<plugin>`` and list the serializers: each of ``serializer_names`` must be
    registered, and none of ``heavy_modules`` (top-level names such as ``"torch"``) imported.
    ``then``: Python code run after the import, before the check (``modelshelf_<plugin>`` is
    imported under that name), to also use what the plugin exports."""
    code = textwrap.dedent(
        f"""
        import sys
        import modelshelf_{plugin}
        from modelshelf.plugins import get_registry
        names = set(get_registry().serializers())
        missing = sorted(set({sorted(serializer_names)!r}) - names)
        assert not missing, f"not registered: {{missing}} (registered: {{sorted(names)}})"
        """
    )
    check = textwrap.dedent(
        f"""
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({sorted(heavy_modules)!r}))
        assert not loaded, f"importing the plugin and listing serializers imported {{loaded}}"
        """
    )
    _run_with_only(plugin, ["-c", code + textwrap.dedent(then) + check])


def assert_plugins_command_lists(plugin: str, *expected: str) -> str:
    """Run ``modelshelf plugins`` in a fresh process loading only the plugin ``plugin``; each of
    ``expected`` (say ``"serializer mine-json [json, safe]: mine.Model"``) must be in its output,
    which is returned."""
    out = _run_with_only(plugin, ["-m", "modelshelf", "plugins"]).stdout
    missing = [text for text in expected if text not in out]
    assert not missing, f"`modelshelf plugins` does not show {missing}:\n{out}"
    return out


class WritesMarker:
    """Unpickling this object writes the file ``path``: a stand-in for arbitrary code in a hostile
    pickle. Subclass it to pass for a framework's object (its unpickling stays the payload)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (Path.write_text, (Path(self.path), "code from the stored model ran\n"))


def assert_payload_needs_trust(shelf: Any, ref: str, marker: Path, reader_cache: Path) -> None:
    """``ref`` on ``shelf`` holds a :class:`WritesMarker` payload writing ``marker``: a reader
    (with its own cache ``reader_cache``) is refused it without trust and nothing runs; then
    loading it with trust runs the payload, which shows the refusal was not for another reason.

    Where core's pickle scan flagged the version at upload, ``trust=True`` is refused as well
    (nothing runs) and ``trust="ignore-scan"`` runs it."""
    import modelshelf
    from modelshelf.errors import ModelshelfError, UntrustedFormat

    assert not marker.exists(), f"{marker} exists before the check"
    with (
        modelshelf.open(shelf.url, cache=reader_cache) as reader,
        pytest.raises(UntrustedFormat, match="trust=True"),
    ):
        reader.load(ref)
    assert not marker.exists(), "the payload ran without trust"
    try:
        shelf.load(ref, trust=True)
    except UntrustedFormat:
        assert not marker.exists(), "the payload ran although trust=True was refused"
        with contextlib.suppress(ModelshelfError):  # what the payload returns is no model
            shelf.load(ref, trust="ignore-scan")
    except ModelshelfError:
        pass  # the payload ran, and what it returned is no model
    assert marker.exists(), "loading with trust did not run the payload: it proves nothing"


def assert_load_needs_trust(
    serializer: Any, directory: Path, details: dict[str, Any], marker: Path, **load_options: Any
) -> None:
    """``directory`` holds a version whose files carry a :class:`WritesMarker` payload writing
    ``marker``: ``serializer.load`` refuses it without trust (an ``UntrustedFormat`` naming
    ``trust=True``) and nothing runs; with ``trust=True`` it loads, and the payload runs."""
    from modelshelf.errors import UntrustedFormat

    assert not marker.exists(), f"{marker} exists before the check"
    with pytest.raises(UntrustedFormat, match=r"trust=True"):
        serializer.load(directory, details=details, **load_options)
    assert not marker.exists(), "the payload ran without trust"
    serializer.load(directory, details=details, trust=True, **load_options)
    assert marker.exists(), "loading with trust did not run the payload: it proves nothing"


def assert_planted_link_refused(
    serializer: Any, version: Path, details: dict[str, Any], stored: str, **load_options: Any
) -> None:
    """Move the file ``stored`` of the saved ``version`` beside the version and plant a symbolic
    link to it in its place: ``serializer.load(version, details=details, **load_options)`` must
    refuse it with one :class:`~modelshelf.errors.IntegrityError` line, not follow it."""
    from modelshelf.errors import IntegrityError

    outside = version.parent / f"outside-{Path(stored).name}"
    (version / stored).rename(outside)
    (version / stored).symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=details, **load_options)
    message = str(caught.value)
    assert message and "\n" not in message, f"not one line: {message!r}"


def load_trusted(shelf: Any, ref: str, framework_imports: tuple[str, ...], **options: Any) -> Any:
    """``shelf.load(ref, trust=True, **options)``. Where core's pickle scan flagged the version at
    upload (its allow-list does not know every framework's classes), first check that every import
    it flagged starts with one of ``framework_imports`` (``("mine.", "builtins.hash")``) and that
    ``trust=True`` is refused, then load with ``trust="ignore-scan"``."""
    from modelshelf.errors import UntrustedFormat

    scan = getattr(shelf.get(ref), "scan", None)
    if scan is None or not scan.dangerous:
        return shelf.load(ref, trust=True, **options)
    flagged = sorted({name for finding in scan.findings for name in finding.imports})
    unexpected = [name for name in flagged if not name.startswith(framework_imports)]
    assert not unexpected, f"the pickle scan flagged {unexpected}, not only the framework's classes"
    with pytest.raises(UntrustedFormat):
        shelf.load(ref, trust=True, **options)
    return shelf.load(ref, trust="ignore-scan", **options)


def fresh_process_report(
    run_python: Callable[..., subprocess.CompletedProcess[str]],
    script: str,
    shelf: Any,
    data: Any = None,
    *,
    importable: Path | None = None,
) -> Any:
    """Run ``script`` (dedented) with ``run_python`` (core's ``modelshelf_run_python`` fixture: a
    fresh process, an empty cache) as ``script SHELF_URL DOWNLOAD_DIR [DATA]``: ``DOWNLOAD_DIR``
    is a new directory to download into, ``DATA`` is ``data`` as JSON, when given. The folder
    ``importable`` (say the tests folder whose helper module the script imports) is on its
    ``PYTHONPATH``. The script prints a JSON report as its last line of output: returned, parsed."""
    env = {"PYTHONPATH": str(importable)} if importable is not None else None
    args = [] if data is None else [json.dumps(data)]
    with tempfile.TemporaryDirectory(prefix="modelshelf-fresh-") as scratch:
        download = str(Path(scratch) / "download")
        result = run_python(textwrap.dedent(script), shelf.url, download, *args, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_test_helpers(conftest: str, module: str) -> ModuleType:
    """Put the folder of ``conftest`` (pass ``__file__``) first on ``sys.path`` and import its
    module ``module``. Classes a test pickles, or a fresh process imports, must be importable by
    name; give the module a name unique across the repository (``modelshelf_mine_testmodels``)."""
    folder = str(Path(conftest).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(module)
