"""Shelf URL parsing and credential resolution: decided before any request, never leaking secrets."""

from __future__ import annotations

import sys

import pytest
from modelshelf.errors import AccessDenied, StorageError
from modelshelf_azure.options import parse_url, resolve_connection, safe_url


@pytest.mark.parametrize(
    ("url", "container", "prefix", "normalised"),
    [
        ("az://models", "models", "", "az://models"),
        ("az://models/", "models", "", "az://models"),
        ("az://models/team/a/", "models", "team/a/", "az://models/team/a"),
        ("azure://my-models/x", "my-models", "x/", "azure://my-models/x"),
        ("AZ://models/x", "models", "x/", "az://models/x"),
    ],
)
def test_parse_url(url: str, container: str, prefix: str, normalised: str) -> None:
    location = parse_url(url)
    assert (location.container, location.prefix, location.url) == (container, prefix, normalised)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("az://", "names no container"),
        ("az://Models/x", "invalid Azure container name"),
        ("az://ab/x", "invalid Azure container name"),
        ("az://a--b/x", "invalid Azure container name"),
        ("az://models/a//b", "invalid prefix"),
        ("az://models/a/../b", "invalid prefix"),
        ("s3://models/a", "not an Azure shelf URL"),
    ],
)
def test_bad_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(StorageError, match=complaint):
        parse_url(url)


def test_a_sas_token_in_the_url_is_refused_without_echo() -> None:
    with pytest.raises(StorageError, match="sas_token") as info:
        parse_url("az://models/x?sv=2024-01-01&sig=SECRETSIGNATURE")
    assert "SECRETSIGNATURE" not in str(info.value)


def test_explicit_options_beat_the_environment() -> None:
    env = {"AZURE_STORAGE_CONNECTION_STRING": "env-string", "AZURE_STORAGE_SAS_TOKEN": "env-sas"}
    assert resolve_connection("az://c", environ=env).connection_string == "env-string"
    chosen = resolve_connection("az://c", connection_string="option-string", environ=env)
    assert chosen.connection_string == "option-string"
    chosen = resolve_connection(
        "az://c", account_url="https://acct.blob.core.windows.net", environ=env
    )
    assert (chosen.account_url, chosen.credential) == (
        "https://acct.blob.core.windows.net",
        "env-sas",
    )
    chosen = resolve_connection("az://c", account_name="acct", sas_token="?sv=1&sig=x", environ=env)
    assert (chosen.account_url, chosen.credential) == (
        "https://acct.blob.core.windows.net",
        "sv=1&sig=x",
    )


def test_account_from_the_environment() -> None:
    env = {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x"}
    chosen = resolve_connection("az://c", environ=env)
    assert chosen.account_url == "https://acct.blob.core.windows.net"
    assert chosen.source == "SAS token"
    env = {"AZURE_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net?sv=1&sig=x"}
    chosen = resolve_connection("az://c", environ=env)
    assert chosen.credential is None and chosen.source == "SAS token in the account URL"


def test_a_credential_without_an_account_is_refused() -> None:
    with pytest.raises(AccessDenied, match="without an account") as info:
        resolve_connection("az://c", sas_token="sv=1&sig=SECRET", environ={})
    assert "SECRET" not in str(info.value)


def test_no_credentials_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if azure-identity were absent
    for env in ({}, {"AZURE_STORAGE_ACCOUNT": "acct"}):
        with pytest.raises(AccessDenied) as info:
            resolve_connection("az://c/p", environ=env)
        message = str(info.value)
        assert message.startswith("shelf az://c/p: no")
        assert "AZURE_STORAGE_CONNECTION_STRING" in message and "azure-identity" in message
        assert "\n" not in message


def test_default_azure_credential_when_installed() -> None:
    pytest.importorskip("azure.identity")
    chosen = resolve_connection("az://c", account_name="acct", environ={})
    assert chosen.source == "DefaultAzureCredential"


def test_invalid_account_name_and_url() -> None:
    with pytest.raises(StorageError, match="invalid Azure storage account name"):
        resolve_connection("az://c", account_name="Bad_Name", environ={})
    with pytest.raises(StorageError, match="invalid Azure account URL") as info:
        resolve_connection("az://c", account_url="ftp://x?sig=SECRET", sas_token="s", environ={})
    assert "SECRET" not in str(info.value)


def test_safe_url_drops_query_and_user() -> None:
    assert safe_url("https://u:p@acct.blob.core.windows.net/?sv=1&sig=x") == (
        "https://acct.blob.core.windows.net"
    )
    assert safe_url("http://127.0.0.1:10000/devstoreaccount1/") == (
        "http://127.0.0.1:10000/devstoreaccount1"
    )
