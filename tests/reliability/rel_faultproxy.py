"""A fault-injecting TCP proxy for the reliability suite (127.0.0.1 only, threads, seeded).

Placed between a storage client and a local server (moto, Azurite, fake-gcs-server), it forwards
bytes both ways and strikes each HTTP exchange with probability ``rate`` with one of:

* ``refuse``: reset the connection when the request arrives (nothing reaches the server; the
  request was certainly not applied);
* ``reset``: forward the request, then reset the connection after ``k`` bytes of the answer (the
  request may well have been applied: the "write landed, answer lost" case);
* ``cut``: close the connection cleanly after ``k`` bytes of the answer (truncated headers or body);
* ``stall``: after ``k`` bytes of the answer, stop forwarding for ``stall_seconds`` (longer than the
  client's read timeout), then reset.

``k`` is inside the status line and headers half of the time, else anywhere up to ``max_offset``
(a short answer then carries the fault over into the next exchange on the connection).
Exchanges are counted by spotting request lines (`` HTTP/1.1\r\n``) and status lines
(``HTTP/1.1 ``) in the byte streams, a heuristic that random payloads do not fool in practice.

Each connection draws its plan (which exchange, which kind, which offset) from
``Random(f"{seed}/{connection number}")``: a run is reproducible up to the order in which a
client's threads open connections. Counters say what was injected.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping

KINDS = ("refuse", "reset", "cut", "stall")


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN: what a crashed peer or a middlebox does.

    ``shutdown(SHUT_RD)`` first wakes the other pump thread blocked in ``recv`` on this socket:
    until that ``recv`` returns the kernel keeps the socket open, and no RST would be sent."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_port``, injecting seeded faults.

    ``rate`` is the probability that one HTTP exchange is hit; ``weights`` how often each kind
    (see :data:`KINDS`) is chosen. ``enabled = False`` makes new connections clean.
    """

    def __init__(
        self,
        target_port: int,
        *,
        seed: int,
        rate: float,
        weights: Mapping[str, float] | None = None,
        max_offset: int = 256 * 1024,
        stall_seconds: float = 3.0,
        listen_port: int = 0,
    ) -> None:
        weights = dict(weights or {"refuse": 1, "reset": 1, "cut": 1, "stall": 0.2})
        if set(weights) - set(KINDS) or not 0 <= rate <= 1:
            raise ValueError(f"bad fault plan: rate {rate}, weights {weights}")
        self.target = ("127.0.0.1", target_port)
        self.seed = seed
        self.rate = rate
        self.weights = weights
        self.max_offset = max_offset
        self.stall_seconds = stall_seconds
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self.exchanges = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.port = int(self.server.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True, name="faultproxy")
        self._thread.start()

    def _plan(self, number: int) -> tuple[str, int, int]:
        """Connection ``number``'s fault: its kind, the exchange it hits (1-based), the offset."""
        rng = random.Random(f"{self.seed}/{number}")
        kinds = list(self.weights)
        kind = rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        exchange = 1
        while rng.random() >= self.rate:  # geometric: each exchange is hit with probability rate
            exchange += 1
            if exchange > 1_000_000:
                break
        offset = rng.randint(0, 511) if rng.random() < 0.5 else rng.randint(0, self.max_offset)
        return kind, exchange, offset

    # --- plumbing ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            plan = self._plan(number) if self.enabled and self.rate > 0 else None
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            state = {"done": False}
            threading.Thread(
                target=self._requests, args=(client, upstream, plan, state), daemon=True
            ).start()
            threading.Thread(
                target=self._answers, args=(upstream, client, plan, state), daemon=True
            ).start()

    def _record(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _finish(self, client: socket.socket, upstream: socket.socket, *, rst: bool) -> None:
        (_reset if rst else _close)(client)
        _close(upstream)
        with self._lock:
            self._sockets.discard(client)
            self._sockets.discard(upstream)

    def _requests(
        self,
        client: socket.socket,
        upstream: socket.socket,
        plan: tuple[str, int, int] | None,
        state: dict,
    ) -> None:
        """Client -> server. ``refuse`` strikes here, before its request is forwarded."""
        seen = 0
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                lines = data.count(b" HTTP/1.1\r\n")
                seen += lines
                with self._lock:
                    self.exchanges += lines
                if plan and plan[0] == "refuse" and seen >= plan[1] and not state["done"]:
                    state["done"] = True
                    self._record("refuse")
                    self._finish(client, upstream, rst=True)
                    return
                upstream.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _answers(
        self,
        upstream: socket.socket,
        client: socket.socket,
        plan: tuple[str, int, int] | None,
        state: dict,
    ) -> None:
        """Server -> client. ``reset``, ``cut`` and ``stall`` strike ``offset`` bytes into the
        answer of their exchange. Interim ``100 Continue`` answers count as answers too: a fault
        there is a fault of that exchange as well."""
        armed = plan is not None and plan[0] != "refuse"
        kind, exchange, offset = plan if plan else ("", 0, 0)
        sent = 0
        answers = 0
        strike_at: int | None = None
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if armed and strike_at is None:
                    position = data.find(b"HTTP/1.1 ")
                    while position != -1:
                        answers += 1
                        if answers == exchange:
                            strike_at = sent + position + offset
                            break
                        position = data.find(b"HTTP/1.1 ", position + 1)
                if strike_at is not None and not state["done"] and sent + len(data) > strike_at:
                    state["done"] = True
                    head = data[: strike_at - sent]
                    if head:
                        client.sendall(head)
                    self._record(kind)
                    if kind == "stall":
                        self._closing.wait(self.stall_seconds)
                    self._finish(client, upstream, rst=kind != "cut")
                    return
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._finish(client, upstream, rst=False)

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self.server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def wait_closed(proxy: FaultProxy, timeout: float = 5.0) -> None:
    """Wait until the proxy holds no open connection (best effort; used between phases)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with proxy._lock:
            if not proxy._sockets:
                return
        time.sleep(0.05)


class HeaderCutProxy:
    """Forward to ``target_port``; the first ``times`` answers that carry header ``header`` are cut
    (clean close) just before that header line: the client sees a complete-looking but shorter
    header block. A deterministic reproducer for one of :class:`FaultProxy`'s ``cut`` faults."""

    def __init__(self, target_port: int, header: bytes, *, times: int = 1, skip: int = 0) -> None:
        self.target = ("127.0.0.1", target_port)
        self.needle = b"\r\n" + header.lower() + b":"
        self.left = times
        #: Answers carrying the header to let through before cutting.
        self.skip = skip
        self.cuts = 0
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers:
                    at = data.lower().find(self.needle)
                    if at != -1:
                        with self._lock:
                            cut = self.left > 0 and self.skip == 0
                            self.skip = max(0, self.skip - 1)
                            self.left -= cut
                            self.cuts += cut
                        if cut:
                            sink.sendall(data[: at + 2])
                            break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.close()
