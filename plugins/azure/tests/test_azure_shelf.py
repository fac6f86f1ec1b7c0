"""``modelshelf.open("az://...")`` end to end against Azurite: credentials, read-only shelves, errors."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf.errors import AccessDenied, ReadOnlyShelf, StorageError
from modelshelf_azure.testing import DEV_ACCOUNT, DEV_KEY


def _read_only_sas(container: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        DEV_ACCOUNT,
        container,
        account_key=DEV_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),  # noqa: UP017 - 3.10
    )


def _blob_endpoint(connection_string: str) -> str:
    return next(
        p.split("=", 1)[1] for p in connection_string.split(";") if p.startswith("BlobEndpoint=")
    )


def test_open_with_a_connection_string(
    container: str, azurite_connection_string: str, modelshelf_cache: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model.txt"
    source.write_text("weights v1")
    with modelshelf.open(
        f"az://{container}/registry", connection_string=azurite_connection_string
    ) as shelf:
        assert "az://" in repr(shelf) and DEV_KEY not in repr(shelf)
        v1 = shelf.upload("team/churn", source, metrics={"auc": 0.9})
        source.write_text("weights v2")
        v2 = shelf.upload("team/churn", source)
        shelf.set_alias("team/churn", "prod", v1.version)
        assert (v1.version, v2.version) == (1, 2)
    # The azure:// spelling opens the same shelf, from the environment-free options again.
    with modelshelf.open(
        f"azure://{container}/registry", connection_string=azurite_connection_string
    ) as shelf:
        assert [v.version for v in shelf.versions("team/churn")] == [1, 2]
        assert Path(shelf.load("team/churn@prod")).read_text() == "weights v1"
        assert shelf.get("team/churn:1").metrics == {"auc": 0.9}


def test_open_from_the_environment(
    container: str, azure_env: str, modelshelf_cache: Path, tmp_path: Path
) -> None:
    source = tmp_path / "m.txt"
    source.write_text("x")
    with modelshelf.open(f"az://{container}/p") as shelf:
        assert shelf.upload("m", source).version == 1
        assert [v.version for v in shelf.versions("m")] == [1]


def test_read_only_sas_shelf_loads_but_refuses_writes(
    container: str, azurite_connection_string: str, modelshelf_cache: Path, tmp_path: Path
) -> None:
    url = f"az://{container}/registry"
    source = tmp_path / "model.txt"
    source.write_text("weights")
    with modelshelf.open(url, connection_string=azurite_connection_string) as shelf:
        shelf.upload("m", source)
    sas = _read_only_sas(container)
    signature = sas.split("sig=", 1)[1].split("&", 1)[0]
    with modelshelf.open(
        url, account_url=_blob_endpoint(azurite_connection_string), sas_token=sas
    ) as shelf:
        assert Path(shelf.load("m:1")).read_text() == "weights"
        source.write_text("other weights")
        writes = [
            lambda: shelf.upload("m", source),
            lambda: shelf.set_alias("m", "prod", 1),
            lambda: shelf.delete("m:1"),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyShelf) as info:
                write()
            message = str(info.value)
            assert f"shelf {url} is read-only for these credentials" in message
            assert "\n" not in message and signature not in message and sas not in message
        assert [v.version for v in shelf.versions("m")] == [1]


def test_no_credentials_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if azure-identity were absent
    with pytest.raises(AccessDenied, match="no Azure credentials found: set AZURE_STORAGE_"):
        modelshelf.open("az://models/p")


def test_missing_container_through_the_shelf(
    azurite_connection_string: str, modelshelf_cache: Path, tmp_path: Path
) -> None:
    source = tmp_path / "m.txt"
    source.write_text("x")
    with modelshelf.open(
        "az://not-created-yet/p", connection_string=azurite_connection_string
    ) as shelf:
        for call in (lambda: shelf.versions("m"), lambda: shelf.upload("m", source)):
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                call()
            assert time.monotonic() - started < 5
            message = str(info.value)
            assert message.startswith("shelf az://not-created-yet/p: container 'not-created-yet'")
            assert message.endswith("create the container or check its name")
            assert DEV_KEY not in message


def test_plugins_listing_shows_the_schemes() -> None:
    from modelshelf.plugins import PluginRegistry

    infos: dict[str, Any] = {i.name: i for i in PluginRegistry().infos()}
    assert infos["azure"].status == "loaded"
    assert infos["azure"].schemes == ["az", "azure"]
