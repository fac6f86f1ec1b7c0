"""Plugin discovery through real entry points, failure isolation, allow/block lists, conflicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import modelshelf
import pytest
from modelshelf import hookspecs
from modelshelf.errors import PluginError
from modelshelf.plugins import get_registry
from modelshelf.testing.frameworks import import_test_helpers

make_distribution = import_test_helpers(__file__, "modelshelf_core_testsite").make_distribution

GOOD = '''
import modelshelf
from modelshelf.default_plugins.filesystem import FileSystemStorage

def _open(url, **options):
    return FileSystemStorage(url.replace("memo://", "file://", 1))

@modelshelf.hookimpl
def modelshelf_register_storage(register):
    register("memo", _open)

@modelshelf.hookimpl
def modelshelf_register_commands(cli):
    import click

    @cli.command("hello")
    def hello():
        """Say hello from a third-party plugin."""
        click.echo("hello from good-plugin")
'''
BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "good-plugin", "good_plugin", GOOD, "good")
    make_distribution(site, "broken-plugin", "broken_plugin", BROKEN, "broken")
    return site


def run(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    for key in ("MODELSHELF_LOAD_PLUGINS", "MODELSHELF_DISABLE_PLUGINS"):
        if key not in env:
            environment.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=120,
    )


def plugin_table(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}


def test_third_party_plugin_is_discovered_and_broken_one_is_reported(
    site: Path, tmp_path: Path
) -> None:
    table = plugin_table(run(site, "plugins", "--json"))
    good, broken = table["good"], table["broken"]
    assert (good["status"], good["distribution"], good["version"]) == (
        "loaded",
        "good-plugin",
        "1.2.3",
    )
    assert good["schemes"] == ["memo"]
    assert good["hooks"] == ["modelshelf_register_commands", "modelshelf_register_storage"]
    assert broken["status"] == "failed"
    assert broken["error"] == "RuntimeError: this plugin is broken on purpose"
    # Everything else keeps working, including what the good plugin adds.
    model = tmp_path / "m.txt"
    model.write_text("x")
    shelf = f"memo://{tmp_path}/shelf"
    assert run(site, "--shelf", shelf, "upload", "m", str(model)).returncode == 0
    listed = run(site, "--shelf", shelf, "ls")
    assert listed.returncode == 0 and listed.stdout.split() == ["m"]
    hello = run(site, "hello")
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from good-plugin"
    text = run(site, "plugins")
    assert "broken  (broken-plugin 1.2.3)  failed" in text.stdout
    assert "storage: memo://" in text.stdout


def test_allow_list_and_block_list(site: Path) -> None:
    only_good = plugin_table(run(site, "plugins", "--json", MODELSHELF_LOAD_PLUGINS="good"))
    assert only_good["good"]["status"] == "loaded"
    assert only_good["broken"]["status"] == "blocked"
    none = plugin_table(run(site, "plugins", "--json", MODELSHELF_LOAD_PLUGINS=""))
    assert {p["status"] for p in none.values()} == {"blocked"}
    blocked = plugin_table(
        run(site, "plugins", "--json", MODELSHELF_DISABLE_PLUGINS="broken-plugin")
    )
    assert blocked["broken"]["status"] == "blocked"
    assert "MODELSHELF_DISABLE_PLUGINS" in blocked["broken"]["error"]
    assert blocked["good"]["status"] == "loaded"


def test_blocked_plugin_is_never_imported(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    make_distribution(
        site, "spy-plugin", "spy_plugin", f"open({str(marker)!r}, 'w').close()\n", "spy"
    )
    run(site, "plugins", MODELSHELF_DISABLE_PLUGINS="spy")
    assert not marker.exists()
    run(site, "plugins")
    assert marker.exists()


def test_plugins_are_loaded_lazily(site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    make_distribution(
        site, "spy-plugin", "spy_plugin", f"open({str(marker)!r}, 'w').close()\n", "spy"
    )
    script = "import modelshelf; modelshelf.hookimpl; from modelshelf.plugins import get_registry; get_registry()"
    env = {**os.environ, "PYTHONPATH": str(site)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    assert not marker.exists()


class _SchemeA:
    @modelshelf.hookimpl
    def modelshelf_register_storage(self, register):  # type: ignore[no-untyped-def]
        register("dup", lambda url, **o: None)


class _SchemeB(_SchemeA):
    pass


def test_duplicate_scheme_names_both_distributions() -> None:
    """A conflict names both distributions, disables only that scheme, and never picks a winner."""
    from modelshelf.plugins import PluginWarning, explain_missing_scheme

    registry = get_registry()
    registry.register(_SchemeA(), "dup-a", "modelshelf-dup-a")
    registry.register(_SchemeB(), "dup-b", "modelshelf-dup-b")
    try:
        with pytest.warns(PluginWarning, match="modelshelf-dup-a") as warned:
            storages = registry.storages()
        assert "modelshelf-dup-b" in str(warned[0].message)
        assert "dup" not in storages and "file" in storages  # the rest keeps working
        why = explain_missing_scheme("dup")
        assert why is not None and "modelshelf-dup-a" in why and "modelshelf-dup-b" in why
        assert [(c.kind, c.name) for c in registry.conflicts()] == [("storage", "dup")]
    finally:
        registry.unregister("dup-a")
        registry.unregister("dup-b")
    assert "dup" not in registry.storages()
    assert registry.conflicts() == []


def test_duplicate_serializer_names_both_distributions(local_shelf, model_file: Path) -> None:
    from modelshelf.default_plugins.files import FilesSerializer
    from modelshelf.plugins import PluginWarning, explain_missing_serializer

    class Again:
        @modelshelf.hookimpl
        def modelshelf_register_serializers(self, register):  # type: ignore[no-untyped-def]
            register(FilesSerializer())

    registry = get_registry()
    registry.register(Again(), "files-again", "modelshelf-files-again")
    try:
        with pytest.warns(PluginWarning, match="modelshelf-files-again") as warned:
            assert "files" not in registry.serializers()
        assert "both" not in str(warned[0].message)
        assert (
            "files-again (modelshelf-files-again) and modelshelf.default_plugins.files (modelshelf)"
            in str(warned[0].message)
        )
        why = explain_missing_serializer("files", "modelshelf")
        assert why is not None and "modelshelf-files-again" in why
        with pytest.raises(PluginError, match="modelshelf-files-again"):
            local_shelf.upload("m", model_file)  # the files serializer is what conflicts
    finally:
        registry.unregister("files-again")
    assert "files" in registry.serializers()


def test_broadcast_hooks_fire_and_a_failing_listener_is_only_a_warning(
    local_shelf, model_file: Path
) -> None:
    seen: list[tuple] = []

    class Listener:
        @modelshelf.hookimpl
        def modelshelf_version_published(self, shelf, version):  # type: ignore[no-untyped-def]
            seen.append(("published", version.ref))

        @modelshelf.hookimpl
        def modelshelf_alias_changed(self, shelf, name, alias, version, previous):  # type: ignore[no-untyped-def]
            seen.append(("alias", name, alias, version, previous.version if previous else None))

        @modelshelf.hookimpl
        def modelshelf_version_deleted(self, shelf, name, version):  # type: ignore[no-untyped-def]
            seen.append(("deleted", name, version))

    class Failing:
        @modelshelf.hookimpl
        def modelshelf_version_published(self, shelf, version):  # type: ignore[no-untyped-def]
            raise RuntimeError("listener down")

    registry = get_registry()
    registry.register(Listener(), "listener")
    registry.register(Failing(), "failing")
    try:
        with pytest.warns(UserWarning, match="listener down"):
            local_shelf.upload("m", model_file)
            local_shelf.upload("m", model_file)
        local_shelf.set_alias("m", "prod", 1)
        local_shelf.set_alias("m", "prod", 2)
        local_shelf.remove_alias("m", "prod")
        local_shelf.delete("m:1")
    finally:
        registry.unregister("listener")
        registry.unregister("failing")
    assert seen == [
        ("published", "m:1"),
        ("published", "m:2"),
        ("alias", "m", "prod", 1, None),
        ("alias", "m", "prod", 2, 1),
        ("alias", "m", "prod", None, 2),
        ("deleted", "m", 1),
    ]
    assert local_shelf.get("m").version == 2


def test_every_hook_is_documented_and_tested() -> None:
    """Meta-test: a new hook must come with documentation and a test."""
    hooks = sorted(n for n in dir(hookspecs) if n.startswith("modelshelf_"))
    assert len(hooks) == 7
    guide = (Path(__file__).parents[2] / "docs" / "plugin-authors.md").read_text()
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for hook in hooks:
        assert f"`{hook}" in guide, f"{hook} is not documented in docs/plugin-authors.md"
        assert f"def {hook}(" in tests, f"{hook} has no test implementing it"
