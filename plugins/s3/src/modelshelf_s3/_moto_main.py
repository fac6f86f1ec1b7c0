"""Run moto's S3 server for tests: ``python -m modelshelf_s3._moto_main [--host H] [--port P]``.

Started by :func:`modelshelf_s3.testing.moto_server`, not by users. Differences from the plain
``moto_server`` command, each on purpose:

* It binds the port itself (``0`` = any free port) and prints ``PORT <n>`` on stdout once it is
  listening, so the parent never races another process for a port it probed.
* werkzeug's per-request access log is silenced (tests make tens of thousands of requests).
* Writes (PUT, POST, DELETE) are serialised by one lock. moto checks ``If-None-Match`` /
  ``If-Match`` and then writes, in two steps, while real S3 makes the check and the write one
  atomic step; two racing create-only PUTs can both succeed on an unlocked moto. Serialising
  writes gives moto the atomicity S3 guarantees, which is what the storage contract relies on.
  Reads stay concurrent.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

_WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})


class SerializedWrites:
    """WSGI middleware: at most one mutating request inside the wrapped app at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD", "GET").upper() not in _WRITE_METHODS:
            return self.app(environ, start_response)
        with self.lock:
            # moto builds the whole response inside the call; materialise it under the lock.
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, SerializedWrites(app), threaded=True)
    port = server.socket.getsockname()[1]
    # moto builds some URLs (e.g. in responses) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"PORT {port}", flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
