"""HTTP/1.1 framing over raw sockets, for :mod:`modelshelf.testing.faultproxy`.

Reads one message head at a time and forwards bodies as framed (``Content-Length``, chunked, or
up to the end of the connection), so a proxy can act between messages and inside them.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
from collections.abc import Callable, Iterable


def reset_socket(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN: what a crashed peer or a middlebox does.

    ``shutdown(SHUT_RD)`` first wakes the other pump thread blocked in ``recv`` on this socket:
    until that ``recv`` returns the kernel keeps the socket open, and no RST would be sent."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


def close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class Struck(Exception):
    """A fault ended this connection."""


def read_head(reader: io.BufferedIOBase) -> bytes:
    """The start line and headers up to and including the blank line; ``b""`` at end of file."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
        if not line:
            return b""
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerated stray blank line between messages
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def parse_headers(head: bytes) -> list[tuple[str, str]]:
    found = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            found.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return found


def framing(headers: Iterable[tuple[str, str]]) -> tuple[bool, int | None]:
    """(chunked, content length) of a message."""
    chunked, length = False, None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif lowered == "content-length":
            length = int(value)
    return chunked, length


def relay_body(
    reader: io.BufferedIOBase,
    send: Callable[[bytes], None],
    chunked: bool,
    length: int | None,
    to_eof: bool,
) -> None:
    """Forward one message body, as framed, through ``send``."""
    if chunked:
        while True:
            size_line = reader.readline(65537)
            if not size_line:
                raise Struck
            send(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the blank line
                    line = reader.readline(65537)
                    send(line)
                    if line in (b"\r\n", b"\n", b""):
                        return
            relay_exactly(reader, send, size + 2)
    elif length is not None:
        relay_exactly(reader, send, length)
    elif to_eof:
        while data := reader.read1(65536):
            send(data)


def relay_exactly(reader: io.BufferedIOBase, send: Callable[[bytes], None], count: int) -> None:
    while count > 0:
        data = reader.read1(min(count, 65536))
        if not data:
            raise Struck
        send(data)
        count -= len(data)


def skip_body(reader: io.BufferedIOBase, chunked: bool, length: int | None, to_eof: bool) -> None:
    relay_body(reader, lambda data: None, chunked, length, to_eof)
