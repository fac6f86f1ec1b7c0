"""Fixtures of the reliability suite: real servers (moto, Azurite, fake-gcs-server) for the whole
session, and ``make_backend(kind)`` giving a fresh, empty shelf on any of them.

Counts are small by default (CI); ``MODELSHELF_RELIABILITY_FULL=1`` runs the full counts reported in
docs/reliability.md. Figures are printed (``-s`` shows them) and appended, one JSON line per test,
to ``$MODELSHELF_RELIABILITY_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
# The helpers are plain modules beside this file (imported by child processes too).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from rel_backends import (  # noqa: E402
    AWS_ENV,
    FULL,
    Backend,
    new_azure_backend,
    new_gcs_backend,
    new_s3_backend,
)


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Dummy AWS credentials and no machine AWS configuration, for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
        ):
            mp.delenv(name, raising=False)
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def rel_moto(aws_env: None) -> Iterator[str]:
    """Endpoint of a moto S3 server for the session."""
    pytest.importorskip("modelshelf_s3")
    from modelshelf_s3.testing import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def rel_azurite() -> Iterator[str]:
    """Connection string of an in-memory Azurite for the session."""
    pytest.importorskip("modelshelf_azure")
    from modelshelf_azure.testing import AzuriteNotFound, azurite, find_azurite

    try:
        find_azurite()
    except AzuriteNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with azurite() as connection_string:
        yield connection_string


@pytest.fixture(scope="session")
def rel_gcs() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a fake-gcs-server for the session."""
    pytest.importorskip("modelshelf_gcs")
    from modelshelf_gcs.testing import fake_gcs_server

    with fake_gcs_server() as host:
        yield host


@pytest.fixture
def make_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Backend]:
    """``make_backend(kind, **options) -> Backend``: a fresh, empty shelf of that kind."""

    def make(kind: str, **options: Any) -> Backend:
        if kind == "file":
            root = tmp_path_factory.mktemp("shelf") / "shelf"
            return Backend("file", str(root), dict(options))
        if kind == "s3":
            return new_s3_backend(request.getfixturevalue("rel_moto"), **options)
        if kind == "azure":
            return new_azure_backend(request.getfixturevalue("rel_azurite"), **options)
        if kind == "gcs":
            return new_gcs_backend(request.getfixturevalue("rel_gcs"), **options)
        raise ValueError(kind)

    return make


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``report(**figures)``: print the figures of this test and append them to the report file."""

    def emit(**figures: Any) -> None:
        line = {"test": request.node.nodeid, "full": FULL, **figures}
        text = json.dumps(line, sort_keys=True, default=str)
        print(f"\nRELIABILITY {text}")
        target = os.environ.get("MODELSHELF_RELIABILITY_REPORT")
        if target:
            with open(target, "a") as out:
                out.write(text + "\n")

    return emit
