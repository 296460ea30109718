"""Decoding speed while a call generates, for progress displays.

The engines call `decoded_token()` once per token they decode (the local session's decode loop, the remote
engine's stream). Whoever runs a call and wants its speed wraps it in `metering(meter)`: the count goes to that
meter, which reports tokens per second at most every `interval_s`. The meter is kept per thread, as the engine
runs a call on its caller's thread (the Scheduler too), so the `Engine` protocol stays as it is and a call nobody
watches costs one attribute lookup per token.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

_local = threading.local()


class DecodeMeter:
    """Counts the tokens of one call after another and reports `on_rate(tokens_per_s)`: while a call decodes, at
    most every `interval_s`; and when a call ends without a report in the last `interval_s` (short calls)."""

    def __init__(self, on_rate: Callable[[float], None], *, interval_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_rate = on_rate
        self._interval_s = interval_s
        self._clock = clock
        self._last_report = float("-inf")
        self._first: float | None = None  # when the current call's first token came
        self._tokens = 0

    def start(self) -> None:
        """A new call: the speed is measured from its first token (the prompt's prefill does not count)."""
        self._first, self._tokens = None, 0

    def token(self) -> None:
        now = self._clock()
        if self._first is None:
            self._first = now
        self._tokens += 1
        if now - self._last_report >= self._interval_s:
            self._report(now)

    def finish(self) -> None:
        now = self._clock()
        if now - self._last_report >= self._interval_s:
            self._report(now)

    def rate(self, now: float | None = None) -> float | None:
        """Tokens per second after the first token of the current call; None before its second token."""
        if self._first is None or self._tokens < 2:
            return None
        elapsed = (self._clock() if now is None else now) - self._first
        return (self._tokens - 1) / elapsed if elapsed > 0 else None

    def _report(self, now: float) -> None:
        rate = self.rate(now)
        if rate is None:
            return
        self._last_report = now
        try:
            self._on_rate(rate)
        except Exception:  # a display must never break generation
            pass


@contextlib.contextmanager
def metering(meter: DecodeMeter | None) -> Iterator[None]:
    """Count the tokens decoded on this thread inside the block with `meter` (None: nothing is counted)."""
    if meter is None:
        yield
        return
    previous = getattr(_local, "meter", None)
    _local.meter = meter
    meter.start()
    try:
        yield
    finally:
        _local.meter = previous
        meter.finish()


def decoded_token() -> None:
    """Called by an engine for each token it decodes."""
    meter = getattr(_local, "meter", None)
    if meter is not None:
        meter.token()
