"""One retry loop and one backoff rule for every storage backend.

Cloud SDKs retry what they recognise (throttling, 5xx, dropped connections). What they take for a
success but cannot use (an answer cut inside its headers), and conditional writes whose answer was
lost, are retried by modelshelf itself, always through :func:`retrying` with a :class:`Backoff`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import attrs

T = TypeVar("T")

__all__ = ["Backoff", "retrying"]


@attrs.frozen
class Backoff:
    """How often to try, and how long to wait between tries: exponential, capped, jittered."""

    #: Tries in all, the first one included.
    attempts: int
    #: Seconds before the second try; each later pause is ``factor`` times longer, up to ``cap``.
    first: float
    factor: float = 2.0
    cap: float = 30.0
    #: Full jitter (a uniform pause between 0 and the computed one), as AWS recommends, so that
    #: racing writers spread out instead of colliding again.
    jitter: bool = True

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second try)."""
        pause = min(self.cap, self.first * self.factor ** max(0, retry - 1))
        return random.uniform(0, pause) if self.jitter else pause

    def sleep(self, retry: int) -> None:
        time.sleep(self.delay(retry))


def retrying(
    call: Callable[[], T],
    backoff: Backoff,
    retryable: Callable[[Exception, int], bool],
    on_retry: Callable[[Exception], None] | None = None,
) -> T:
    """Return ``call()``, trying again after an exception for which ``retryable(exc, attempt)``
    is true, at most ``backoff.attempts`` times in all (``attempt`` counts from 1).

    The last exception is raised as it is when the tries run out or it is not retryable; the
    caller decides what it means. ``on_retry(exc)`` is told of every exception that is retried.
    """
    attempt = 1
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt >= backoff.attempts or not retryable(exc, attempt):
                raise
            if on_retry is not None:
                on_retry(exc)
            backoff.sleep(attempt)
            attempt += 1
