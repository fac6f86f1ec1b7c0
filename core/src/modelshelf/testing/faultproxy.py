"""One fault-injecting HTTP proxy for storage tests: the network failures a real service shows.

Put :class:`FaultProxy` between a storage client and a real local server (moto, Azurite,
fake-gcs-server, ...) and arm the faults a test needs::

    with FaultProxy(server_port) as proxy:
        storage = open_storage(url, endpoint_url=proxy.endpoint)
        lost = proxy.lose_answers(when="PUT")      # applied by the server, answer never arrives
        storage.put_if_absent("k", b"v")
        assert lost.hits == 1

Faults, each armed for ``times`` matching answers after letting ``skip`` through:

* :meth:`~FaultProxy.cut_headers`: the answer stops cleanly just before one header line.
  ``http.client`` takes an end of file at a line boundary for the end of the headers, so the
  client sees a plausible answer lacking that header and every later one, and (without
  ``Content-Length``) an empty body.
* :meth:`~FaultProxy.cut_body`: the connection closes after ``after`` bytes of the body.
* :meth:`~FaultProxy.lose_answers`: the request reaches the server and is applied, then the
  connection closes without an answer, or the answer is replaced by an error status: what a
  write whose answer was lost looks like.
* :meth:`~FaultProxy.deny_requests`: matching requests never reach the server; the proxy answers
  an error status itself (a gateway refusing writes to a read-only caller, a 401 or 403).
* ``strip=`` headers: removed from every request (a server that ignores ``If-None-Match``).
* ``seed=``/``rate=``: seeded random faults for soak tests; each connection draws one from
  ``Random(f"{seed}/{connection number}")``: ``refuse`` (reset when the request arrives),
  ``reset`` / ``cut`` / ``stall`` (reset, clean close, or a stall of ``stall_seconds`` then a
  reset, ``offset`` bytes into an answer; an offset past a short answer carries over into the
  next answers on that connection).

The proxy reads the HTTP/1.1 framing of both directions (``Content-Length``, chunked, bodiless
answers to ``HEAD``, 1xx interim answers) and forwards bytes as they come, one upstream connection
per client connection: bodies of any size stream through. It listens on 127.0.0.1 only and
imports no SDK and no pytest, so any plugin's suite, benchmark or child process can use it.
"""

from __future__ import annotations

import contextlib
import io
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._http import (
    Struck,
    close_socket,
    framing,
    parse_headers,
    read_head,
    relay_body,
    reset_socket,
    skip_body,
)

__all__ = ["CONDITIONAL_HEADERS", "RANDOM_KINDS", "Fault", "FaultProxy", "Request"]

#: The request headers that make a write conditional on S3 and Azure Blob Storage.
CONDITIONAL_HEADERS = ("If-None-Match", "If-Match")
#: What a seeded random fault can be (see the module docstring).
RANDOM_KINDS = ("refuse", "reset", "cut", "stall")
#: The body of an answer the proxy makes up (the JSON error shape of GCS; S3 and Azure clients
#: go by the status).
_ERROR_BODY = '{"error": {"code": %d, "message": "%s"}}'


@dataclass(frozen=True)
class Request:
    """One request as the proxy saw it, handed to the ``when`` predicates of faults."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def __str__(self) -> str:
        return f"{self.method} {self.path.split('?', 1)[0]}"


@dataclass
class Fault:
    """One armed fault. ``hits`` counts the answers it struck, ``struck`` says which requests."""

    kind: str
    when: Callable[[Request], bool]
    times: int
    skip: int
    header: bytes = b""
    after: int = 0
    status: int | None = None
    message: str = "answer lost by the test proxy"
    struck: list[str] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return len(self.struck)

    @property
    def spent(self) -> bool:
        return self.hits >= self.times


def _matcher(when: str | Callable[[Request], bool] | None) -> Callable[[Request], bool]:
    if when is None:
        return lambda request: True
    if isinstance(when, str):
        methods = {method.strip().upper() for method in when.split(",")}
        return lambda request: request.method in methods
    return when


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` (a port on 127.0.0.1, or ``http://host:port``).

    Counters: ``seen`` lists ``(method, path)`` of every request forwarded, ``requests`` counts
    them, ``stripped`` counts headers removed by name as the client spelt it, ``injected`` counts
    faults by kind, ``connections`` and ``exchanges`` count what went through. Set ``enabled =
    False`` to forward everything unchanged from then on (a counting pass-through).
    """

    def __init__(
        self,
        target: int | str,
        *,
        strip: Iterable[str] = (),
        seed: int | None = None,
        rate: float = 0.0,
        weights: Mapping[str, float] | None = None,
        max_offset: int = 256 * 1024,
        stall_seconds: float = 3.0,
        listen_port: int = 0,
        timeout: float = 60.0,
    ) -> None:
        if isinstance(target, int):
            self.target = ("127.0.0.1", target)
        else:
            parts = urlsplit(target)
            self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.strip = frozenset(name.lower() for name in strip)
        weights = dict(weights or {"refuse": 1, "reset": 1, "cut": 1, "stall": 0.2})
        if set(weights) - set(RANDOM_KINDS) or not 0 <= rate <= 1 or (rate and seed is None):
            raise ValueError(f"bad fault plan: seed {seed}, rate {rate}, weights {weights}")
        self.seed, self.rate, self.weights = seed, rate, weights
        self.max_offset = max_offset
        self.stall_seconds = stall_seconds
        self.timeout = timeout
        self.enabled = True
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str]] = []
        self.stripped: Counter[str] = Counter()
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

    # --- arming faults ---------------------------------------------------------------------------

    def cut_headers(
        self,
        before: str,
        *,
        when: str | Callable[[Request], bool] | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> Fault:
        """Cut the next ``times`` answers that carry header ``before`` (to requests matching
        ``when``: a predicate, or methods such as ``"GET"`` or ``"PUT,POST"``) just before it."""
        needle = b"\r\n" + before.lower().encode("latin-1") + b":"
        return self._arm(Fault("cut-headers", _matcher(when), times, skip, header=needle))

    def cut_body(
        self,
        after: int,
        *,
        when: str | Callable[[Request], bool] | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> Fault:
        """Close the connection after ``after`` body bytes of the next ``times`` matching answers
        whose body is longer than that."""
        return self._arm(Fault("cut-body", _matcher(when), times, skip, after=after))

    def lose_answers(
        self,
        *,
        when: str | Callable[[Request], bool] | None = None,
        times: int = 1,
        skip: int = 0,
        status: int | None = None,
    ) -> Fault:
        """Let the next ``times`` matching requests reach the server, then close the connection
        without their answer, or (``status``) answer that status with a JSON error instead."""
        return self._arm(Fault("lose-answer", _matcher(when), times, skip, status=status))

    def deny_requests(
        self,
        *,
        when: str | Callable[[Request], bool] | None = None,
        times: int = 1_000_000,
        skip: int = 0,
        status: int = 403,
        message: str = "denied by the test proxy",
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (and a JSON error carrying
        ``message``) without forwarding them: the server never sees them."""
        return self._arm(Fault("deny", _matcher(when), times, skip, status=status, message=message))

    def disarm(self) -> None:
        """Forget every armed fault (random faults stay as configured)."""
        with self._lock:
            self.faults.clear()

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _claim(
        self, kind: str, request: Request, fits: Callable[[Fault], bool] | None = None
    ) -> Fault | None:
        """The first live fault of ``kind`` that matches ``request`` and ``fits`` this answer, if it
        strikes now (counted); ``None`` when none does or the matching one lets it through."""
        with self._lock:
            if not self.enabled:
                return None
            for fault in self.faults:
                if (
                    fault.kind != kind
                    or fault.spent
                    or (fits and not fits(fault))
                    or not fault.when(request)
                ):
                    continue
                if fault.skip:
                    fault.skip -= 1
                    return None
                fault.struck.append(str(request))
                self.injected[kind] += 1
                return fault
        return None

    # --- counters --------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """How many requests were forwarded."""
        with self._lock:
            return len(self.seen)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no connection is open through the proxy (best effort, between phases)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sockets:
                    return
            time.sleep(0.05)

    # --- plumbing --------------------------------------------------------------------------------

    def _plan(self, number: int) -> tuple[str, int, int] | None:
        """Connection ``number``'s random fault: its kind, the exchange it hits (1-based), the
        offset into that exchange's answer."""
        if not self.enabled or not self.rate:
            return None
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

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(self.timeout)
            except OSError:
                reset_socket(client)
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            _Connection(self, client, upstream, self._plan(number)).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)

    def close(self) -> None:
        self._closing.set()
        # shutdown wakes the thread blocked in accept(); close alone would not, on Linux.
        close_socket(self.server)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            close_socket(sock)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Connection:
    """One client connection and its upstream connection: a request pump and an answer pump."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: socket.socket,
        upstream: socket.socket,
        plan: tuple[str, int, int] | None,
    ) -> None:
        self.proxy = proxy
        self.client, self.upstream = client, upstream
        self.plan = plan
        self.pending: deque[Request] = deque()
        self.arrived = threading.Condition()
        self.done = threading.Event()
        #: Answer bytes sent to the client, and where in them a random fault strikes.
        self.sent = 0
        self.strike_at: int | None = None

    def start(self) -> None:
        threading.Thread(target=self._requests, daemon=True, name="faultproxy-requests").start()
        threading.Thread(target=self._answers, daemon=True, name="faultproxy-answers").start()

    def _finish(self, *, rst: bool) -> None:
        self.done.set()
        (reset_socket if rst else close_socket)(self.client)
        close_socket(self.upstream)
        self.proxy._forget(self.client, self.upstream)
        with self.arrived:
            self.arrived.notify_all()

    def _requests(self) -> None:
        """Client -> server, one request at a time; ``refuse`` strikes before forwarding."""
        proxy = self.proxy
        reader = self.client.makefile("rb")
        number = 0
        try:
            while not self.done.is_set():
                head = read_head(reader)
                if not head:
                    break
                number += 1
                method, target, *_ = [*head.split(b" ", 2), b"", b""]
                headers = parse_headers(head.split(b"\r\n\r\n", 1)[0])
                request = Request(
                    method.decode("latin-1"), target.decode("latin-1"), tuple(headers)
                )
                if (
                    self.plan
                    and self.plan[0] == "refuse"
                    and number == self.plan[1]
                    and proxy.enabled
                ):
                    with proxy._lock:
                        proxy.injected["refuse"] += 1
                    self._finish(rst=True)
                    return
                denied = proxy._claim("deny", request)
                if denied is not None:
                    self._deny(denied, request)
                    return
                head = self._stripped(head, headers, request)
                with self.arrived:
                    self.pending.append(request)
                    self.arrived.notify_all()
                self.upstream.sendall(head)
                chunked, length = framing(headers)
                relay_body(reader, self.upstream.sendall, chunked, length, to_eof=False)
        except (OSError, ValueError, Struck):
            pass
        if not self.done.is_set():
            with contextlib.suppress(OSError):
                self.upstream.shutdown(socket.SHUT_WR)

    def _stripped(self, head: bytes, headers: list[tuple[str, str]], request: Request) -> bytes:
        proxy = self.proxy
        with proxy._lock:
            proxy.seen.append((request.method, request.path))
            proxy.exchanges += 1
            if not proxy.enabled or not proxy.strip:
                return head
            removed = [name for name, _ in headers if name.lower() in proxy.strip]
            proxy.stripped.update(removed)
        if not removed:
            return head
        lines = head.split(b"\r\n")
        kept = [lines[0]] + [
            line
            for line in lines[1:]
            if line.partition(b":")[0].strip().lower().decode("latin-1") not in proxy.strip
        ]
        return b"\r\n".join(kept)

    def _next_request(self) -> Request | None:
        with self.arrived:
            self.arrived.wait_for(
                lambda: self.pending or self.done.is_set(), timeout=self.proxy.timeout
            )
            return self.pending.popleft() if self.pending else None

    def _answers(self) -> None:
        """Server -> client, one answer at a time; armed and random faults strike here."""
        reader = self.upstream.makefile("rb")
        answers = 0
        try:
            while not self.done.is_set():
                head = read_head(reader)
                if not head:
                    break
                answers += 1
                if (
                    self.plan
                    and self.plan[0] != "refuse"
                    and answers == self.plan[1]
                    and self.proxy.enabled
                ):
                    self.strike_at = self.sent + self.plan[2]
                if not self._answer(head, reader):
                    break
        except (OSError, ValueError, Struck):
            pass
        if not self.done.is_set():
            self._finish(rst=False)

    def _answer(self, head: bytes, reader: io.BufferedIOBase) -> bool:
        """Relay (or strike) one answer; ``False`` when the connection ends with it."""
        status = int(head.split(b" ", 2)[1])
        if 100 <= status < 200 and status != 101:
            self._send(head)  # interim answer: the final one follows, for the same request
            return True
        request = self._next_request()
        if request is None:
            return False
        chunked, length = framing(parse_headers(head.split(b"\r\n\r\n", 1)[0]))
        if request.method == "HEAD" or status in (204, 304):
            chunked, length, to_eof = False, None, False
        else:
            to_eof = not chunked and length is None
        lowered = head.lower()
        cut = self.proxy._claim("cut-headers", request, lambda f: f.header in lowered)
        if cut is not None:
            self.client.sendall(head[: lowered.find(cut.header) + 2])  # ends with a whole line
            self._finish(rst=False)
            return False
        lost = self.proxy._claim("lose-answer", request)
        if lost is not None:
            self._lose(lost, reader, request, chunked, length, to_eof)
            return False
        body = self.proxy._claim("cut-body", request, lambda f: chunked or (length or 0) > f.after)
        self._send(head)
        left = [body.after] if body is not None else None
        relay_body(reader, lambda data: self._send(data, left), chunked, length, to_eof)
        return not to_eof

    def _send(self, data: bytes, left: list[int] | None = None) -> None:
        """Send answer bytes to the client, striking a random fault at ``strike_at`` or a body cut
        once ``left`` (body bytes still allowed) runs out."""
        if self.strike_at is not None and self.sent + len(data) > self.strike_at:
            kind = self.plan[0] if self.plan else "cut"
            self.client.sendall(data[: self.strike_at - self.sent])
            with self.proxy._lock:
                self.proxy.injected[kind] += 1
            if kind == "stall":
                self.proxy._closing.wait(self.proxy.stall_seconds)
            self._finish(rst=kind != "cut")
            raise Struck
        if left is not None and left[0] < len(data):
            self.client.sendall(data[: left[0]])
            self._finish(rst=False)
            raise Struck
        if left is not None:
            left[0] -= len(data)
        self.client.sendall(data)
        self.sent += len(data)

    def _lose(
        self,
        fault: Fault,
        reader: io.BufferedIOBase,
        request: Request,
        chunked: bool,
        length: int | None,
        to_eof: bool,
    ) -> None:
        if fault.status is None:
            self._finish(rst=False)
            return
        with contextlib.suppress(Struck, OSError):
            skip_body(reader, chunked, length, to_eof)
        self._answer_instead(fault, request)

    def _deny(self, fault: Fault, request: Request) -> None:
        """Answer ``request`` without forwarding it, then close (its body, if the client sends it
        after all, is not read: nothing else follows on this connection)."""
        with self.proxy._lock:
            self.proxy.seen.append((request.method, request.path))
            self.proxy.exchanges += 1
        self._answer_instead(fault, request)

    def _answer_instead(self, fault: Fault, request: Request) -> None:
        """Send the client a made-up error answer for ``request``, then close the connection."""
        status = fault.status or 503
        body = (_ERROR_BODY % (status, fault.message)).encode()
        answer = (
            f"HTTP/1.1 {status} Test Proxy\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + (b"" if request.method == "HEAD" else body)
        with contextlib.suppress(OSError):
            self.client.sendall(answer)
        self._finish(rst=False)
