"""Read-only credentials: reads work, every write fails with one line saying the shelf is read-only.

* Azure: a container SAS token with read and list permissions only (Azurite enforces it).
* S3: moto with authentication on, and an IAM user whose policy allows only s3:Get* / s3:List*.
* GCS: fake-gcs-server has no IAM, so two stand-ins: a gateway that answers 403 to every write
  (as GCS does for a reader role), and the plugin's anonymous (read-only) mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import ReadOnlyShelf
from modelshelf.testing.faultproxy import FaultProxy
from rel_backends import (
    AWS_ENV,
    Backend,
    new_s3_backend,
    one_line_error,
    stored_blob_keys,
    tree_digests,
)


def _populate(backend: Backend, tmp: Path) -> dict[str, str]:
    shelf = backend.open(tmp / "cache-writer")
    folder = tmp / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(100_000))
    (folder / "config.json").write_bytes(b'{"a": 1}')
    shelf.upload("team/m", folder)
    shelf.upload("team/m", folder / "config.json")
    shelf.set_alias("team/m", "prod", 1)
    shelf.close()
    return tree_digests(folder)


def _check_read_only(
    reader: Any, expected: dict[str, str], tmp: Path, report: Any, backend: str
) -> None:
    # Reads work.
    assert [v.version for v in reader.versions("team/m")] == [1, 2]
    assert tree_digests(reader.download("team/m@prod", tmp / "dest")) == expected
    assert tree_digests(reader.load("team/m:1")) == expected
    assert reader.verify() == []
    assert [e.action for e in reader.history("team/m")].count("upload") == 2
    blobs_before = stored_blob_keys(reader.storage)
    # Writes fail, clearly.
    fresh = tmp / "fresh.bin"
    fresh.write_bytes(os.urandom(1000))
    attempts = {
        "upload new content": lambda: reader.upload("team/m", fresh),
        "upload existing content": lambda: reader.upload("team/m", tmp / "model"),
        "set_alias": lambda: reader.set_alias("team/m", "prod", 2),
        "delete": lambda: reader.delete("team/m:2", force=True),
    }
    messages = {}
    for what, call in attempts.items():
        with pytest.raises(ReadOnlyShelf) as caught:
            call()
        one_line_error(caught.value)
        assert "read-only" in str(caught.value), str(caught.value)
        messages[what] = str(caught.value)
    # And changed nothing.
    assert [v.version for v in reader.versions("team/m")] == [1, 2]
    assert reader.get("team/m@prod").version == 1
    assert stored_blob_keys(reader.storage) == blobs_before
    report(backend=backend, refused=sorted(messages), example=messages["set_alias"])


def test_azure_sas_read_and_list_only(rel_azurite: str, tmp_path: Path, report: Any) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from modelshelf_azure.testing import DEV_ACCOUNT, DEV_KEY
    from rel_backends import blob_port, new_azure_backend

    writer = new_azure_backend(rel_azurite)
    expected = _populate(writer, tmp_path)
    container = writer.url.split("/")[2]
    token = generate_container_sas(
        DEV_ACCOUNT,
        container,
        account_key=DEV_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    account_url = f"http://127.0.0.1:{blob_port(rel_azurite)}/{DEV_ACCOUNT}"
    reader = Backend("azure", writer.url, {"account_url": account_url, "sas_token": token}).open(
        tmp_path / "cache-reader"
    )
    _check_read_only(reader, expected, tmp_path, report, "azure")
    reader.close()


@contextlib.contextmanager
def _moto_auth_server() -> Iterator[str]:
    """Start rel_moto_auth.py (moto with the signature patch, see there); yield its endpoint."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("rel_moto_auth.py")), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PORT "), line
        endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "moto did not answer"
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def moto_with_auth(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """A dedicated moto server with a read-only IAM user; yields (endpoint, profile of that user).

    Authentication is switched on only after the IAM user exists (moto's reset-auth endpoint)."""
    import boto3
    from modelshelf_s3.testing import reset_moto_auth

    with _moto_auth_server() as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="reader")
        iam.put_user_policy(
            UserName="reader",
            PolicyName="read-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        credentials = tmp_path / "aws-credentials"
        credentials.write_text(
            f"[reader]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n"
        )
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        yield endpoint, "reader"
        reset_moto_auth(endpoint, float("inf"))


def test_s3_read_only_iam_policy(
    moto_with_auth: tuple[str, str], tmp_path: Path, report: Any
) -> None:
    from modelshelf_s3.testing import reset_moto_auth

    endpoint, profile = moto_with_auth
    writer = new_s3_backend(endpoint)
    expected = _populate(writer, tmp_path)
    reset_moto_auth(endpoint, 0)  # from now on every request needs a known key and a policy
    env = {k: v for k, v in AWS_ENV.items() if k != "AWS_SHARED_CREDENTIALS_FILE"}
    reader = Backend("s3", writer.url, {"endpoint_url": endpoint, "profile": profile}, env).open(
        tmp_path / "cache-reader"
    )
    # The dummy keys of the writer are now refused outright: authentication really is on.
    with pytest.raises(Exception) as refused:
        writer.open(tmp_path / "cache-x").versions("team/m")
    one_line_error(refused.value)
    _check_read_only(reader, expected, tmp_path, report, "s3")
    reader.close()


def _read_only_gateway(upstream: str) -> FaultProxy:
    """A proxy to fake-gcs-server that forwards GET/HEAD and answers 403 to every write, like GCS
    does for a caller holding only roles/storage.objectViewer."""
    proxy = FaultProxy(upstream)
    proxy.deny_requests(
        when=lambda r: r.method not in ("GET", "HEAD"), message="reader may not write"
    )
    return proxy


@pytest.mark.parametrize("mode", ["403-gateway", "anonymous"])
def test_gcs_reader(rel_gcs: str, tmp_path: Path, report: Any, mode: str) -> None:
    from rel_backends import new_gcs_backend

    writer = new_gcs_backend(rel_gcs)
    expected = _populate(writer, tmp_path)
    if mode == "anonymous":
        reader_backend = Backend("gcs", writer.url, {"anonymous": True}, writer.env)
        gateway = None
    else:
        gateway = _read_only_gateway(rel_gcs)
        reader_backend = Backend(
            "gcs", writer.url, {}, {**writer.env, "STORAGE_EMULATOR_HOST": gateway.endpoint}
        )
    reader = reader_backend.open(tmp_path / "cache-reader")
    try:
        _check_read_only(reader, expected, tmp_path, report, f"gcs-{mode}")
    finally:
        reader.close()
        if gateway:
            gateway.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_filesystem_read_only_directory(make_backend: Any, tmp_path: Path, report: Any) -> None:
    backend = make_backend("file")
    expected = _populate(backend, tmp_path)
    root = Path(backend.url)
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.chmod(os.path.join(folder, name), 0o555 if name in dirs else 0o444)
    os.chmod(root, 0o555)
    try:
        reader = backend.open(tmp_path / "cache-reader")
        _check_read_only(reader, expected, tmp_path, report, "file")
    finally:
        for folder, _dirs, _ in os.walk(root):
            os.chmod(folder, 0o755)
