"""Network faults: uploads and downloads through a proxy that resets, cuts and stalls connections.

For each cloud backend, a seeded :class:`~modelshelf.testing.faultproxy.FaultProxy` sits between the client and
the server. Every operation must either succeed with verified content or fail with a one-line
``modelshelf.errors`` exception; afterwards, through a clean connection, every listed version
must verify and load with exactly the content its upload wrote, no upload that reported success
may be missing, and no upload may have been published twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from modelshelf.errors import AlreadyExists, InvalidRecord, NotFound
from modelshelf.testing.faultproxy import FaultProxy
from modelshelf.testing.servers import free_port
from rel_backends import (
    Backend,
    azure_connection_string,
    blob_port,
    count,
    new_azure_backend,
    new_gcs_backend,
    new_s3_backend,
    one_line_error,
    tree_digests,
    write_model,
)

#: Operations per backend: half uploads, half downloads of an earlier version.
OPERATIONS = count(40, 400)
#: Probability that one HTTP exchange is hit by a fault.
FAULT_RATE = 0.06
SEED = 20240611
#: Client read timeout (s); a stall lasts longer.
READ_TIMEOUT = 2.0


def _proxied(
    kind: str, request: pytest.FixtureRequest, stack: contextlib.ExitStack
) -> tuple[Backend, Backend, FaultProxy]:
    seed = SEED + {"s3": 1, "azure": 2, "gcs": 3}[kind]
    if kind == "s3":
        endpoint = request.getfixturevalue("rel_moto")
        port = int(endpoint.rsplit(":", 1)[1])
        proxy = stack.enter_context(
            FaultProxy(port, seed=seed, rate=FAULT_RATE, stall_seconds=READ_TIMEOUT + 1)
        )
        clean = new_s3_backend(endpoint)
        faulty = Backend(
            "s3",
            clean.url,
            {
                "endpoint_url": proxy.endpoint,
                "read_timeout": READ_TIMEOUT,
                "connect_timeout": READ_TIMEOUT,
            },
            clean.env,
        )
        return faulty, clean, proxy
    if kind == "azure":
        connection = request.getfixturevalue("rel_azurite")
        proxy = stack.enter_context(
            FaultProxy(
                blob_port(connection), seed=seed, rate=FAULT_RATE, stall_seconds=READ_TIMEOUT + 1
            )
        )
        clean = new_azure_backend(connection)
        small = 256 * 1024  # small blocks and ranges, so that one blob takes several requests
        faulty = Backend(
            "azure",
            clean.url,
            {
                "connection_string": azure_connection_string(connection, proxy.endpoint),
                "read_timeout": READ_TIMEOUT,
                "connection_timeout": READ_TIMEOUT,
                "max_single_put_size": small,
                "max_block_size": small,
                "max_chunk_get_size": small,
            },
        )
        return faulty, clean, proxy
    # GCS: a server of our own whose resumable-upload URLs point at the proxy too.
    pytest.importorskip("modelshelf_gcs")
    server_port, proxy_port = free_port(), free_port()
    proxy = stack.enter_context(
        FaultProxy(
            server_port,
            seed=seed,
            rate=FAULT_RATE,
            stall_seconds=READ_TIMEOUT + 1,
            listen_port=proxy_port,
        )
    )
    from modelshelf_gcs.testing import fake_gcs_server

    host = stack.enter_context(
        fake_gcs_server(port=server_port, external_url=proxy.endpoint, log_level="error")
    )
    clean = new_gcs_backend(host)
    faulty = Backend(
        "gcs",
        clean.url,
        {"timeout": READ_TIMEOUT, "retry_deadline": 30, "chunk_size": 256 * 1024},
        {**clean.env, "STORAGE_EMULATOR_HOST": proxy.endpoint},
    )
    return faulty, clean, proxy


#: Backends whose cut-answer defects (raw exceptions, cut listings or bodies read as missing or
#: damaged records) are fixed: such a failure from them is a new defect, not a known one.
CUT_ANSWERS_FIXED = {"s3", "azure", "gcs"}


def _known_defect(kind: str, exc: BaseException) -> str | None:
    """The already reported defect ``exc`` comes from, if any (docs/reliability.md, "Defects")."""
    plugin = {"s3": "modelshelf_s3", "azure": "modelshelf_azure", "gcs": "modelshelf_gcs"}[kind]
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    through_plugin = any(f"{plugin}{os.sep}storage.py" in f for f in frames)
    if isinstance(exc, AlreadyExists):
        return "upload: create-only write whose answer was lost -> AlreadyExists"
    if kind in CUT_ANSWERS_FIXED:
        return None
    if through_plugin and isinstance(exc, KeyError | ValueError | TypeError | AttributeError):
        # An answer whose header block was cut short (see test_rel_header_cuts.py): S3 KeyError
        # 'ContentLength'; Azure ValueError 'Content-Range', DeserializationError, TypeError
        # int(None), AttributeError on a None page; GCS SDK AttributeError on a bytes body.
        return f"{kind}: answer with cut headers -> raw {type(exc).__name__}"
    return None


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_operations_through_faulty_network(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, report: Callable[..., None]
) -> None:
    rng = random.Random(SEED)
    with contextlib.ExitStack() as stack:
        faulty, clean, proxy = _proxied(kind, request, stack)
        shelf = faulty.open(tmp_path / "cache-faulty")
        stack.callback(shelf.close)
        published: dict[int, dict[str, str]] = {}  # version -> expected tree
        uploaded_ops: dict[int, dict[str, str]] = {}  # op id -> expected tree (every attempt)
        outcomes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        raw: list[
            str
        ] = []  # errors that are not one-line modelshelf errors, or misreport the fault
        known: Counter[str] = Counter()  # ... of which already reported defects

        def classify(exc: BaseException, what: str) -> None:
            errors[type(exc).__name__] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            try:
                one_line_error(exc)
                # A network fault must not read as a missing model, a damaged record or a
                # conflict: those send the user hunting for a problem that is not there.
                assert not isinstance(exc, NotFound | InvalidRecord | AlreadyExists), (
                    f"network fault misreported as {type(exc).__name__}: {exc}"
                )
            except AssertionError as problem:
                defect = _known_defect(kind, exc)
                if defect:
                    known[defect] += 1
                else:
                    raw.append(f"{what}: {problem} at {Path(where.filename).name}:{where.lineno}")

        started = time.monotonic()
        slow: list[tuple[float, int, str]] = []  # operations that took over 5 s
        last_started, last_kind = started, ""
        for op in range(OPERATIONS):
            op_started = time.monotonic()
            if op:
                duration = op_started - last_started
                if duration > 5:
                    slow.append((round(duration, 1), op - 1, last_kind))
            last_started, last_kind = (
                op_started,
                "upload" if (op % 2 == 0 or not published) else "download",
            )
            upload = op % 2 == 0 or not published
            if upload:
                folder = tmp_path / "src" / f"op{op}"
                expected = write_model(
                    folder, rng, files=rng.randint(1, 3), max_size=600_000, tag=f"{kind}-op{op}"
                )
                uploaded_ops[op] = expected
                try:
                    version = shelf.upload("flaky/model", folder, metadata={"op": op})
                except Exception as exc:
                    outcomes["upload failed"] += 1
                    classify(exc, "upload")
                    continue
                assert version.metadata == {"op": op}
                assert {f.path: f.sha256 for f in version.files} == expected
                published[version.version] = expected
                outcomes["upload ok"] += 1
            else:
                number = rng.choice(sorted(published))
                cache = tmp_path / "cache-faulty"
                shutil.rmtree(cache, ignore_errors=True)  # every download crosses the network
                dest = tmp_path / "dest" / f"op{op}"
                try:
                    shelf.download(f"flaky/model:{number}", dest)
                except Exception as exc:
                    outcomes["download failed"] += 1
                    classify(exc, "download")
                    # Nothing half-written is left where the user asked for the files.
                    assert not dest.exists() or tree_digests(dest) == {}, (
                        "partial download left behind"
                    )
                    continue
                assert tree_digests(dest) == published[number], (
                    f"wrong content for version {number}"
                )
                outcomes["download ok"] += 1
        elapsed = time.monotonic() - started

        # --- the state, seen through a clean connection ----------------------------------------
        proxy.enabled = False
        checker = clean.open(tmp_path / "cache-clean")
        stack.callback(checker.close)
        problems = checker.verify()
        assert problems == [], problems
        listed = checker.versions("flaky/model")
        ops = Counter(v.metadata["op"] for v in listed)
        duplicates = {op: n for op, n in ops.items() if n > 1}
        for version in listed:
            expected = uploaded_ops[version.metadata["op"]]
            assert {f.path: f.sha256 for f in version.files} == expected
            dest = tmp_path / "check" / str(version.version)
            checker.download(version.ref, dest)
            assert tree_digests(dest) == expected
        listed_numbers = {v.version for v in listed}
        lost = sorted(set(published) - listed_numbers)
        published_despite_error = len(listed_numbers - set(published))
        attempts = (
            outcomes["upload ok"]
            + outcomes["upload failed"]
            + outcomes["download ok"]
            + outcomes["download failed"]
        )
        report(
            backend=kind,
            operations=attempts,
            outcomes=dict(outcomes),
            errors=dict(errors),
            success_rate=round((outcomes["upload ok"] + outcomes["download ok"]) / attempts, 4),
            faults_injected=dict(proxy.injected),
            http_exchanges=proxy.exchanges,
            connections=proxy.connections,
            versions_listed=len(listed),
            published_despite_error=published_despite_error,
            duplicates=len(duplicates),
            lost=len(lost),
            unclear_errors=len(raw) + sum(known.values()),
            known_defects=dict(known),
            seconds=round(elapsed, 1),
            slow_operations=slow[:10],
        )
        assert sum(proxy.injected.values()) > 0, (
            "the proxy injected no fault: the test proved nothing"
        )
        assert lost == [], f"versions reported as published but missing: {lost}"
        assert duplicates == {}, f"uploads published more than once: {duplicates}"
        # A write whose answer was lost is read back: an upload either reports its version, or
        # failed before publishing, so retrying it never publishes the same model twice.
        assert published_despite_error == 0, (
            f"{published_despite_error} failed uploads were published"
        )
        assert raw == [], f"{len(raw)} failures were not clear modelshelf errors: {raw[:5]}"
        if known:
            # Randomised: whether a known defect shows up depends on the run, so this cannot be a
            # strict xfail. Everything else above was checked; see test_rel_header_cuts.py for the
            # deterministic reproducers (strict xfails).
            pytest.xfail(f"known defects seen: {dict(known)}")
