"""Benchmark (not a test): upload and download a large random file through the Azure backend.

    python plugins/azure/bench_rss.py                 # 1 GiB against a throw-away Azurite
    python plugins/azure/bench_rss.py --size-mib 256  # smaller
    AZURE_STORAGE_CONNECTION_STRING=... python plugins/azure/bench_rss.py --container bench

Reports wall time, throughput and the client's peak resident memory (``ru_maxrss``) after each
phase. The target is a peak under 200 MB for 1 GiB: ``put_file`` streams parallel blocks from the
open file and ``read_stream`` pulls ranged chunks, so memory must not grow with the file size.
The download is verified by sha256 against the upload.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes in 8 MiB pieces (never the whole file in memory)."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(8 * MiB, left))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


@contextlib.contextmanager
def connection(args: argparse.Namespace) -> Iterator[str]:
    existing = args.connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if existing:
        yield existing
        return
    from modelshelf_azure.testing import azurite

    with azurite() as connection_string:
        yield connection_string


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--container", default=None, help="existing container (default: a new one)")
    parser.add_argument("--connection-string", default=None)
    parser.add_argument("--max-concurrency", type=int, default=None)
    args = parser.parse_args()
    size = args.size_mib * MiB

    from azure.storage.blob import BlobServiceClient
    from modelshelf_azure.storage import AzureBlobStorage

    with tempfile.TemporaryDirectory(prefix="modelshelf-bench-") as scratch:
        source = Path(scratch) / "weights.bin"
        print(f"writing {args.size_mib} MiB of random data...", flush=True)
        expected = write_random_file(source, size)
        with connection(args) as connection_string:
            service = BlobServiceClient.from_connection_string(connection_string)
            container = args.container or f"bench-{secrets.token_hex(4)}"
            if args.container is None:
                service.create_container(container)
            options = {}
            if args.max_concurrency:
                options["max_concurrency"] = args.max_concurrency
            storage = AzureBlobStorage(
                f"az://{container}/bench", connection_string=connection_string, **options
            )
            baseline = peak_rss_mb()
            try:
                started = time.perf_counter()
                storage.put_file("blobs/weights.bin", source)
                upload_s = time.perf_counter() - started
                after_upload = peak_rss_mb()

                digest = hashlib.sha256()
                received = 0
                started = time.perf_counter()
                for chunk in storage.read_stream("blobs/weights.bin"):
                    digest.update(chunk)
                    received += len(chunk)
                download_s = time.perf_counter() - started
                after_download = peak_rss_mb()
            finally:
                storage.delete("blobs/weights.bin")
                storage.close()
                if args.container is None:
                    service.delete_container(container)
                service.close()

    ok = received == size and digest.hexdigest() == expected
    print(f"size             {args.size_mib} MiB")
    print(f"upload           {upload_s:6.1f} s  {size / MiB / upload_s:7.1f} MiB/s")
    print(f"download         {download_s:6.1f} s  {size / MiB / download_s:7.1f} MiB/s")
    print(
        f"peak RSS         {baseline:6.1f} MB before, {after_upload:6.1f} MB after upload, "
        f"{after_download:6.1f} MB after download (target < 200 MB)"
    )
    print(f"sha256 verified  {ok}")
    return 0 if ok and after_download < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
