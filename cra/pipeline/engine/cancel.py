"""Cancellation tokens and per-call deadlines, checked between decode steps and inside llama.cpp's graph compute."""

from __future__ import annotations

import threading
import time

from .errors import Cancelled, Timeout


class CancelToken:
    """Set once from any thread; the engine call using it raises `Cancelled` shortly after."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class Deadline:
    """A call's stop conditions: an optional CancelToken and an optional timeout, measured from construction."""

    def __init__(self, cancel: CancelToken | None = None, timeout_s: float | None = None) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.cancel = cancel
        self.timeout_s = timeout_s
        self._expires = None if timeout_s is None else time.monotonic() + timeout_s

    def should_stop(self) -> bool:
        """Cheap poll (called from llama.cpp's abort callback)."""
        if self.cancel is not None and self.cancel.cancelled:
            return True
        return self._expires is not None and time.monotonic() >= self._expires

    def check(self) -> None:
        """Raise `Cancelled` or `Timeout` when the call must stop."""
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled("the call was cancelled")
        if self._expires is not None and time.monotonic() >= self._expires:
            raise Timeout(f"the call ran past its timeout of {self.timeout_s:g} s")
