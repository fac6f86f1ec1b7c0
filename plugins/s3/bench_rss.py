"""Peak memory of a large transfer through S3Storage (a benchmark, not a test).

Uploads a file of random bytes with ``S3Storage.put_file`` (multipart, parallel) and downloads it
with ``S3Storage.read_stream`` (hashing as it goes, as core does), against a local moto server, and
reports the peak resident memory of this client process. moto holds the object in its own
process, which is not measured. Target: under 200 MB for 1 GiB.

    python plugins/s3/bench_rss.py            # 1 GiB
    python plugins/s3/bench_rss.py --mib 256  # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from modelshelf_s3.testing import DUMMY_CREDENTIALS, moto_server

MiB = 1 << 20


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, 4 * MiB))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    args = parser.parse_args()
    size = args.mib * MiB
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)

    with tempfile.TemporaryDirectory() as scratch, moto_server() as endpoint:
        source = Path(scratch) / "weights.bin"
        expected = write_random(source, size)

        import boto3
        from modelshelf_s3 import open_storage

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-rss")
        storage = open_storage("s3://bench-rss/shelf", endpoint_url=endpoint)
        baseline = current_rss_mib()
        peak_before = peak_rss_mib()

        started = time.perf_counter()
        storage.put_file("blobs/big", source)
        upload_s = time.perf_counter() - started
        peak_after_upload = peak_rss_mib()

        started = time.perf_counter()
        digest = hashlib.sha256()
        received = 0
        for chunk in storage.read_stream("blobs/big"):
            digest.update(chunk)
            received += len(chunk)
        download_s = time.perf_counter() - started
        storage.close()

        assert received == size, (received, size)
        assert digest.hexdigest() == expected, "downloaded content differs"
        result = {
            "size_mib": args.mib,
            "baseline_rss_mib": round(baseline, 1),
            "peak_rss_before_transfer_mib": round(peak_before, 1),
            "peak_rss_after_upload_mib": round(peak_after_upload, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "upload_s": round(upload_s, 2),
            "upload_mib_s": round(args.mib / upload_s, 1),
            "download_s": round(download_s, 2),
            "download_mib_s": round(args.mib / download_s, 1),
            "multipart_chunksize_mib": storage.options.multipart_chunksize // MiB,
            "max_concurrency": storage.options.max_concurrency,
            "target_met": peak_rss_mib() < 200,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
