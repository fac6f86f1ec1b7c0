"""Helpers shared by the benchmark child scripts (standard library only).

The child scripts run in two interpreters: the current environment (modelshelf, raw boto3) and
the modelstore virtual environment. Both import this module from ``bench/`` (the script's own
directory is on ``sys.path``), so it must not import anything beyond the standard library at
import time; botocore is imported only when S3 requests are counted.

A child prints exactly one JSON object on its last stdout line; the parent adds the wall time and
its wall time; the child reports its own peak RSS (``VmHWM``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class RequestCounter:
    """Counts the HTTP requests botocore sends, and the bytes sent and received.

    It wraps ``botocore.endpoint.Endpoint._send``, the one place every request of every client and
    session (including boto3's managed transfers and retries) goes through, so the same counter
    works unchanged in the modelshelf process and in the modelstore process. Sizes come from the
    ``Content-Length`` headers (the decoded length for aws-chunked uploads), so a streamed body
    is counted without reading it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_method: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self.enabled = True

    def install(self) -> None:
        from botocore.endpoint import Endpoint

        original = Endpoint._send
        counter = self

        def _send(endpoint: Any, request: Any) -> Any:
            response = original(endpoint, request)
            if counter.enabled:
                counter.record(request, response)
            return response

        Endpoint._send = _send

    def record(self, request: Any, response: Any) -> None:
        headers = request.headers
        sent = headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0
        received = response.headers.get("Content-Length") or 0
        with self.lock:
            self.requests += 1
            self.by_method[request.method] = self.by_method.get(request.method, 0) + 1
            self.bytes_sent += int(sent)
            self.bytes_received += int(received)

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.by_method = {}
            self.bytes_sent = 0
            self.bytes_received = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "requests_by_method": dict(self.by_method),
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
            }


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``), in MiB.

    Read here rather than from the parent's ``wait4``: Linux carries the RSS a child had before
    ``exec`` (a fork of the large parent) into ``ru_maxrss``, but ``VmHWM`` belongs to the
    executed program's own memory map.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_chars() -> int:
    """Bytes this process has read through read() calls so far (``rchar`` in /proc/self/io)."""
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_chars() -> int:
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def measured(result: dict[str, Any], counter: RequestCounter | None = None) -> Iterator[None]:
    """Time the block; record its duration, read/written bytes and (if given) S3 requests."""
    if counter is not None:
        counter.reset()
    rchar, wchar = read_chars(), write_chars()
    started = time.perf_counter()
    yield
    result["seconds"] = time.perf_counter() - started
    result["read_bytes"] = read_chars() - rchar
    result["written_bytes"] = write_chars() - wchar
    if counter is not None:
        result.update(counter.snapshot())


def main(operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """``script.py <operation> '<json arguments>'``: run it and print its result as JSON."""
    operation, arguments = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = operations[operation](arguments)
    result["vmhwm_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def s3_counter_for(url_or_flag: bool) -> RequestCounter | None:
    """A counter installed before any S3 client exists, or None for local runs."""
    if not url_or_flag:
        return None
    counter = RequestCounter()
    counter.install()
    return counter


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
