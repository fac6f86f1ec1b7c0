"""What users and plugin authors are told when a plugin goes wrong, with real installed distributions.

Each case installs small distributions into a temporary site directory (a module plus a
``.dist-info`` with its entry point, as pip leaves them) and runs modelshelf in a subprocess that
sees them: a plugin that fails to import, a hook with a wrong signature, a misspelled hook, a
plugin implementing nothing, two plugins registering one scheme or serializer name, and
``modelshelf plugins --check``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from modelshelf.testing.frameworks import import_test_helpers

make_distribution = import_test_helpers(__file__, "modelshelf_core_testsite").make_distribution

#: A serializer of ``Note`` objects (a class of this distribution), saved as text.
NOTES = """
import json
from pathlib import Path
import modelshelf
from modelshelf.serializers import SavedModel, Serializer

class Note:
    def __init__(self, text):
        self.text = text

class NoteSerializer(Serializer):
    name = "note-text"
    framework = "notes"
    format = "text"
    claims = ("notes_plugin.Note",)

    def save(self, obj, directory, **options):
        (directory / "note.txt").write_text(obj.text)
        return SavedModel("notes", "1.0")

    def load(self, directory, *, details, trust=False, **options):
        return Note((directory / "note.txt").read_text())

@modelshelf.hookimpl
def modelshelf_register_serializers(register):
    register(NoteSerializer())
"""

#: Serves ``memo://`` URLs from the filesystem, under entry point ``name``.
MEMO = """
import modelshelf
from modelshelf.default_plugins.filesystem import FileSystemStorage

def _open(url, **options):
    return FileSystemStorage(url.replace("memo://", "file://", 1))

@modelshelf.hookimpl
def modelshelf_register_storage(register):
    register("memo", _open)
"""

#: A serializer of files that claims ``pathlib.Path`` and records its save options.
STAMPED = """
import shutil
import modelshelf
from modelshelf.serializers import SavedModel, Serializer

class Stamped(Serializer):
    name = "stamped"
    framework = "stamps"
    format = "copy"
    claims = ("pathlib.Path",)

    def save(self, obj, directory, **options):
        shutil.copy(obj, directory / obj.name)
        return SavedModel("stamps", "1.0", details={"options": options})

    def load(self, directory, *, details, trust=False, **options):
        return directory

class Pickled(Serializer):
    name = "pickled-object"
    framework = "anything"
    format = "pickle"
    safe = False

    def save(self, obj, directory, **options):
        raise AssertionError("never called from the CLI")

    def load(self, directory, *, details, trust=False, **options):
        raise AssertionError("never called")

@modelshelf.hookimpl
def modelshelf_register_serializers(register):
    register(Stamped())
    register(Pickled())
"""

BROKEN_IMPORT = "raise RuntimeError('this plugin is broken on purpose')\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return site


def environment(site: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    environ = {
        **os.environ,
        "PYTHONPATH": str(site),
        "MODELSHELF_CACHE": str(tmp_path / "cache"),
        **env,
    }
    for key in ("MODELSHELF_LOAD_PLUGINS", "MODELSHELF_DISABLE_PLUGINS", "MODELSHELF_URL"):
        if key not in env:
            environ.pop(key, None)
    # Only the plugins of the temporary site (and the built-ins): installed ones cannot interfere.
    names = [p.name.split("-")[0] for p in site.glob("*.dist-info")]
    environ.setdefault("MODELSHELF_LOAD_PLUGINS", ",".join(n.replace("_", "-") for n in names))
    return environ


def cli(site: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", *args],
        capture_output=True,
        text=True,
        env=environment(site, tmp_path, **env),
        check=False,
        timeout=120,
    )


def python(site: Path, tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment(site, tmp_path, **env),
        check=False,
        timeout=120,
    )


def table(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}


# --- 1. a plugin that fails is named as failed, with its error, where it matters ------------------


def test_failed_serializer_plugin_is_named_at_upload_and_warned_about(
    site: Path, tmp_path: Path
) -> None:
    make_distribution(site, "notes-plugin", "notes_plugin", NOTES, "notes")
    saved = python(
        site,
        tmp_path,
        f"""
        import modelshelf, notes_plugin
        shelf = modelshelf.open({str(tmp_path / "shelf")!r})
        print(shelf.upload("n", notes_plugin.Note("hello")).serializer.name)
    """,
    )
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "note-text"
    # The plugin breaks (a bad release, a missing dependency): its module no longer imports.
    (site / "notes_plugin.py").write_text(NOTES + "\nimport a_dependency_that_is_missing\n")
    result = python(
        site,
        tmp_path,
        f"""
        import sys, warnings
        import modelshelf
        from modelshelf.plugins import PluginWarning
        sys.path.insert(0, {str(tmp_path)!r})
        class Note:  # an object only the failed plugin would claim
            __module__ = "notes_plugin"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shelf = modelshelf.open({str(tmp_path / "shelf")!r})
            try:
                shelf.upload("n", Note())
            except modelshelf.errors.NoSerializer as exc:
                print("upload:", exc)
        for w in caught:
            if issubclass(w.category, PluginWarning):
                print("warning:", w.message)
    """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    warning = next(line for line in lines if line.startswith("warning:"))
    assert "notes (notes-plugin) 1.2.3 is installed but failed to load" in warning
    assert "ModuleNotFoundError: No module named 'a_dependency_that_is_missing'" in warning
    upload = next(line for line in lines if line.startswith("upload:"))
    assert "notes (notes-plugin) is installed but failed to load" in upload
    assert "a_dependency_that_is_missing" in upload and "pip install" not in upload
    assert "may be" not in upload  # the object's module is the failed plugin's: no guessing


def test_failed_serializer_plugin_is_named_at_load(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "notes-plugin", "notes_plugin", NOTES, "notes")
    saved = python(
        site,
        tmp_path,
        f"""
        import modelshelf, notes_plugin
        modelshelf.open({str(tmp_path / "shelf")!r}).upload("n", notes_plugin.Note("hello"))
    """,
    )
    assert saved.returncode == 0, saved.stderr
    (site / "notes_plugin.py").write_text(BROKEN_IMPORT)
    loaded = cli(
        site, tmp_path, "--shelf", str(tmp_path / "shelf"), "download", "n", str(tmp_path / "out")
    )
    assert loaded.returncode == 0, loaded.stderr  # files need no serializer
    result = python(
        site,
        tmp_path,
        f"""
        import modelshelf
        modelshelf.open({str(tmp_path / "shelf")!r}).load("n")
    """,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert (
        "notes-plugin" in last
        and "failed to load" in last
        and "this plugin is broken on purpose" in last
    )
    assert "pip install" not in last


def test_failed_plugin_is_a_one_line_warning_in_the_cli(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "broken-plugin", "broken_plugin", BROKEN_IMPORT, "broken")
    model = tmp_path / "m.txt"
    model.write_text("x")
    result = cli(site, tmp_path, "--shelf", str(tmp_path / "shelf"), "upload", "m", str(model))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(
        "Warning: modelshelf plugin broken (broken-plugin) 1.2.3 is installed but failed"
    )
    assert "RuntimeError: this plugin is broken on purpose" in warnings[0]
    assert "MODELSHELF_DISABLE_PLUGINS=broken" in warnings[0]
    # Blocking it silences it.
    quiet = cli(
        site,
        tmp_path,
        "--shelf",
        str(tmp_path / "shelf"),
        "ls",
        MODELSHELF_DISABLE_PLUGINS="broken",
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_failed_storage_plugin_is_named_when_its_scheme_is_opened(
    site: Path, tmp_path: Path
) -> None:
    make_distribution(site, "memo-plugin", "memo_plugin", BROKEN_IMPORT, "memo")
    result = cli(site, tmp_path, "--shelf", f"memo://{tmp_path}/shelf", "ls")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "memo (memo-plugin) is installed but failed to load" in error
    assert "this plugin is broken on purpose" in error


# --- 2. pluggy's whole validation message --------------------------------------------------------


def test_wrong_hook_signature_keeps_the_whole_validation_message(
    site: Path, tmp_path: Path
) -> None:
    source = """
        import modelshelf

        @modelshelf.hookimpl
        def modelshelf_register_storage(registrar):
            registrar("bad", None)
    """
    make_distribution(site, "bad-signature", "bad_signature", source, "badsig")
    info = table(cli(site, tmp_path, "plugins", "--json"))["badsig"]
    assert info["status"] == "failed"
    assert info["error"].startswith(
        "PluginValidationError: Plugin 'badsig' for hook 'modelshelf_register_storage'"
    )
    # The line that names the argument at fault, which the first line alone never showed.
    assert (
        "Argument(s) {'registrar'} are declared in the hookimpl but can not be found in the hookspec"
        in info["error"]
    )
    text = cli(site, tmp_path, "plugins").stdout
    assert "{'registrar'} are declared in the hookimpl" in text


# --- 3. misspelled hooks, unmarked hooks, plugins that implement nothing ---------------------------


def test_misspelled_unmarked_and_empty_plugins_are_reported(site: Path, tmp_path: Path) -> None:
    misspelled = """
        import modelshelf

        @modelshelf.hookimpl
        def modelshelf_register_serializer(register):
            pass
    """
    unmarked = """
        def modelshelf_register_storage(register):
            register("nope", None)
    """
    make_distribution(site, "typo-plugin", "typo_plugin", misspelled, "typo")
    make_distribution(site, "unmarked-plugin", "unmarked_plugin", unmarked, "unmarked")
    make_distribution(site, "empty-plugin", "empty_plugin", "VALUE = 1\n", "empty")
    plugins = table(cli(site, tmp_path, "plugins", "--json"))
    typo = plugins["typo"]["problems"]
    assert any(
        "modelshelf_register_serializer is not a modelshelf hook (did you mean "
        "modelshelf_register_serializers?)" in p
        for p in typo
    ), typo
    assert any("implements no modelshelf hook" in p for p in typo)
    assert any(
        "modelshelf_register_storage lacks the @modelshelf.hookimpl decorator" in p
        for p in plugins["unmarked"]["problems"]
    )
    assert any("implements no modelshelf hook" in p for p in plugins["empty"]["problems"])
    text = cli(site, tmp_path, "plugins")
    assert "typo  (typo-plugin 1.2.3)  loaded, with problems" in text.stdout
    assert "problem: modelshelf_register_serializer is not a modelshelf hook" in text.stdout
    assert text.stderr == ""  # the listing says it once, no warning on top
    check = cli(site, tmp_path, "plugins", "--check")
    assert check.returncode == 1
    assert "check failed: plugin typo (typo-plugin): modelshelf_register_serializer" in check.stderr
    # Any other command warns, in one line per problem.
    listed = cli(site, tmp_path, "--shelf", str(tmp_path / "shelf"), "ls")
    assert listed.returncode == 0
    assert (
        "Warning: modelshelf plugin typo (typo-plugin): modelshelf_register_serializer is not"
        in listed.stderr
    )


# --- 4. a conflict affects only the conflicting name -----------------------------------------------


def test_duplicate_scheme_leaves_everything_else_working(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "memo-one", "memo_one", MEMO, "memo1")
    make_distribution(site, "memo-two", "memo_two", MEMO, "memo2")
    make_distribution(site, "notes-plugin", "notes_plugin", NOTES, "notes")
    model = tmp_path / "m.txt"
    model.write_text("x")
    local = str(tmp_path / "local")
    upload = cli(site, tmp_path, "--shelf", local, "upload", "m", str(model))
    assert upload.returncode == 0, upload.stderr
    assert (
        "Warning: URL scheme 'memo' is registered by memo1 (memo-one) and memo2 (memo-two)"
        in upload.stderr
    )
    assert cli(site, tmp_path, "--shelf", local, "ls").stdout.split() == ["m"]
    # Another plugin's serializer keeps working too, through the API.
    notes = python(
        site,
        tmp_path,
        f"""
        import warnings
        warnings.simplefilter("ignore")
        import modelshelf, notes_plugin
        shelf = modelshelf.open({local!r})
        shelf.upload("n", notes_plugin.Note("kept"))
        print(shelf.load("n").text)
    """,
    )
    assert notes.returncode == 0, notes.stderr
    assert notes.stdout.strip() == "kept"
    # The conflicting scheme itself is refused, naming both distributions.
    memo = cli(site, tmp_path, "--shelf", f"memo://{tmp_path}/m", "ls")
    assert memo.returncode == 1
    assert "memo-one" in memo.stderr and "memo-two" in memo.stderr

    plugins = table(cli(site, tmp_path, "plugins", "--json"))
    for name in ("memo1", "memo2"):
        assert plugins[name]["status"] == "loaded"
        assert plugins[name]["conflicts"] == [
            {"kind": "storage", "name": "memo", "plugins": ["memo1 (memo-one)", "memo2 (memo-two)"]}
        ]
    assert plugins["notes"]["conflicts"] == []
    text = cli(site, tmp_path, "plugins")
    assert (
        "CONFLICT: URL scheme 'memo' is registered by memo1 (memo-one) and memo2 (memo-two), so modelshelf uses neither"
        in text.stdout
    )
    assert "Traceback" not in text.stderr and "warnings.warn" not in text.stderr
    check = cli(site, tmp_path, "plugins", "--check")
    assert check.returncode == 1
    assert (
        "check failed: URL scheme 'memo' is registered by memo1 (memo-one) and memo2 (memo-two)"
        in check.stderr
    )


def test_duplicate_serializer_name_leaves_other_serializers_working(
    site: Path, tmp_path: Path
) -> None:
    make_distribution(site, "notes-plugin", "notes_plugin", NOTES, "notes")
    make_distribution(
        site,
        "notes-fork",
        "notes_fork",
        NOTES.replace("notes_plugin.Note", "notes_fork.Note"),
        "fork",
    )
    result = python(
        site,
        tmp_path,
        f"""
        import warnings
        warnings.simplefilter("ignore")
        import modelshelf, notes_plugin
        shelf = modelshelf.open({str(tmp_path / "shelf")!r})
        print(shelf.upload("files", {str(tmp_path / "site" / "notes_plugin.py")!r}).serializer.name)
        try:
            shelf.upload("n", notes_plugin.Note("x"))
        except modelshelf.errors.PluginError as exc:
            print("refused:", exc)
    """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "files"
    assert lines[1].startswith(
        "refused: no serializer handles notes_plugin.Note: serializer 'note-text' is registered by"
    )
    assert "notes (notes-plugin)" in lines[1] and "fork (notes-fork)" in lines[1]
    plugins = table(cli(site, tmp_path, "plugins", "--json"))
    assert plugins["notes"]["conflicts"][0]["name"] == "note-text"


# --- --check ---------------------------------------------------------------------------------------


def test_check_exit_codes(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "memo-one", "memo_one", MEMO, "memo1")
    clean = cli(site, tmp_path, "plugins", "--check")
    assert clean.returncode == 0, clean.stderr
    assert "check passed" in clean.stdout
    assert cli(site, tmp_path, "plugins", "--check", "--json").returncode == 0
    blocked = cli(site, tmp_path, "plugins", "--check", MODELSHELF_DISABLE_PLUGINS="memo1")
    assert blocked.returncode == 1
    assert (
        "check failed: plugin memo1 (memo-one) is blocked: not loaded because of MODELSHELF_DISABLE_PLUGINS"
        in blocked.stderr
    )
    make_distribution(site, "broken-plugin", "broken_plugin", BROKEN_IMPORT, "broken")
    failed = cli(site, tmp_path, "plugins", "--check", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)  # the listing is still printed
    assert (
        "check failed: plugin broken (broken-plugin) is failed: RuntimeError: this plugin is broken on purpose"
        in failed.stderr
    )


def test_register_hook_that_raises_fails_only_that_plugin(site: Path, tmp_path: Path) -> None:
    source = """
        import modelshelf

        @modelshelf.hookimpl
        def modelshelf_register_storage(register):
            raise ValueError("endpoint table missing")
    """
    make_distribution(site, "raising-plugin", "raising_plugin", source, "raising")
    make_distribution(site, "memo-one", "memo_one", MEMO, "memo1")
    plugins = table(cli(site, tmp_path, "plugins", "--json"))
    assert plugins["raising"]["status"] == "failed"
    assert (
        plugins["raising"]["error"]
        == "modelshelf_register_storage raised ValueError: endpoint table missing"
    )
    assert plugins["memo1"]["schemes"] == ["memo"]


# --- 5. upload --serializer and serializer options from the CLI -------------------------------------


def test_upload_serializer_and_options_from_the_cli(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "stamped-plugin", "stamped_plugin", STAMPED, "stamped")
    model = tmp_path / "weights.bin"
    model.write_bytes(b"w")
    shelf = str(tmp_path / "shelf")
    stamped = cli(
        site,
        tmp_path,
        "--shelf",
        shelf,
        "upload",
        "m",
        str(model),
        "--serializer",
        "stamped",
        "--serializer-option",
        "note=hi",
        "--serializer-option",
        "level=3",
        "--json",
    )
    assert stamped.returncode == 0, stamped.stderr
    manifest = json.loads(stamped.stdout)
    assert manifest["serializer"]["name"] == "stamped"
    assert manifest["serializer"]["details"] == {"options": {"level": 3, "note": "hi"}}
    # --serializer files stores the file as it is although another serializer claims paths.
    plain = cli(
        site,
        tmp_path,
        "--shelf",
        shelf,
        "upload",
        "m",
        str(model),
        "--serializer",
        "files",
        "--json",
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["serializer"]["name"] == "files"
    # A serializer of in-memory objects cannot take PATHS: refused as bad usage, nothing uploaded.
    refused = cli(
        site,
        tmp_path,
        "--shelf",
        shelf,
        "upload",
        "m",
        str(model),
        "--serializer",
        "pickled-object",
    )
    assert refused.returncode == 2
    assert "serializer 'pickled-object' stores Python objects, not files" in refused.stderr
    assert "shelf.upload(NAME, obj, serializer='pickled-object')" in refused.stderr
    bad = cli(
        site, tmp_path, "--shelf", shelf, "upload", "m", str(model), "--serializer-option", "oops"
    )
    assert bad.returncode == 2 and "--serializer-option" in bad.stderr
    missing = cli(
        site, tmp_path, "--shelf", shelf, "upload", "m", str(model), "--serializer", "nope"
    )
    assert missing.returncode == 1 and "no serializer named 'nope'" in missing.stderr
    assert [
        line.split()[0]
        for line in cli(site, tmp_path, "--shelf", shelf, "ls", "m").stdout.splitlines()
    ] == ["1", "2"]
    # The listing advises what works: the Python API for an opt-in object serializer.
    text = cli(site, tmp_path, "plugins").stdout
    assert "opt-in (upload(..., serializer='pickled-object'))" in text
