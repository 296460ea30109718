"""The CLI shows its work: a headless run's progress on stderr.

On a terminal: one live status line (stage, percent, elapsed seconds, tokens/s while generating when the server's
progress carries it), redrawn in place, with each attempt's verdict printed above it as it lands. Otherwise: one
plain line per stage change, per verdict and at the end. `cra run --json` and `cra check --json` show nothing.

The server's progress says the pipeline stage (`message`, `stage` or `stage: detail`) and percent; while the
model generates, the value's `tokensPerSecond` (the message then says `stage: N tok/s`). A verdict comes from the
progress value itself when the server says it (a `verdict` field: `attempt`, `ok`, `compiled`, `tests_passed`,
`message`; or a message naming `attempt N failed|passed`), else from the stages: an `adjust` round follows a failed
attempt, and an action that validated and ends `done` passed. cra's server sends both (`cra.server.progress`).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from cra.clients.headless import ProgressEvent

VALIDATE, ADJUST = "validate", "adjust"
_ATTEMPT = re.compile(r"\battempt (\d+):? (failed|passed)\b(.*)", re.I)
_SPINNER = "|/-\\"
# Progress value fields a server may add with the decoding speed of the current generation.
TOKENS_PER_S_FIELDS = ("tokensPerSecond", "tokens_per_s")


def tokens_per_second(value: dict[str, Any]) -> float | None:
    for field in TOKENS_PER_S_FIELDS:
        speed = value.get(field)
        if isinstance(speed, (int, float)) and not isinstance(speed, bool) and speed > 0:
            return float(speed)
    return None


def split_stage(message: str) -> tuple[str, str]:
    """`validate: compile failed` -> (`validate`, `compile failed`); a bare stage has no detail."""
    stage, _, detail = message.partition(":")
    return stage.strip(), detail.strip()


class ProgressView:
    """The `on_progress` callback of one headless run, drawing on `stream` (live or plain lines)."""

    def __init__(self, stream: TextIO, label: str, *, live: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.2) -> None:
        self.stream = stream
        self.label = label
        self.live = stream.isatty() if live is None else live
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._stage = ""
        self._detail = ""
        self._percent: int | None = None
        self._speed: float | None = None
        self._attempt = 1  # the attempt now running (an adjustment round starts the next one)
        self._validated = False  # the running attempt reached validation
        self._judged = 0  # the last attempt whose verdict was shown
        self._status = ""  # the live line now on screen
        self._ended = False
        self._frame = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> ProgressView:
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="cra-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
            self._ticker = None
        with self._lock:
            self._clear()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                if not self._ended:
                    self._draw()

    # -- events ---------------------------------------------------------------------------------------------
    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "report":
                self._report(event)
            elif event.kind == "end":
                self._end(event.message)

    def cancelling(self) -> None:
        """Ctrl-C was pressed: say so while the server stops the job."""
        with self._lock:
            self._line(f"cancelling (stopping the running job, {self._elapsed():.1f} s)")

    def _report(self, event: ProgressEvent) -> None:
        stage, detail = split_stage(event.message)
        verdict = event.value.get("verdict")
        said = _ATTEMPT.search(event.message)
        speed = tokens_per_second(event.value)
        if verdict or said is not None or speed is not None:
            detail = self._detail  # the detail says the verdict or the speed, shown on their own
        if verdict:
            number = verdict.get("attempt") if isinstance(verdict, dict) else None
            self._verdict(_describe(verdict) if isinstance(verdict, dict) else str(verdict),
                          attempt=number if isinstance(number, int) and not isinstance(number, bool) else None)
        elif said is not None:
            self._verdict(f"{said.group(2).lower()}{said.group(3)}", attempt=int(said.group(1)))
        changed = stage != self._stage
        if changed:
            if self._stage == ADJUST:  # the adjustment round is over: the next attempt starts
                self._attempt += 1
                self._validated = False
            if stage == ADJUST:  # an adjustment round follows a failed attempt only
                self._verdict("failed")
            elif stage == VALIDATE:
                self._validated = True
        self._stage, self._detail = stage, detail
        if event.percent is not None:
            self._percent = event.percent
        self._speed = speed
        if self.live:
            self._draw()
        elif changed:
            self._line(self._describe_stage())

    def _end(self, message: str) -> None:
        if message in ("done", "not applied") and self._validated:
            self._verdict("passed")
        elif message == "failed" and (self._validated or self._attempt > 1):
            self._verdict("failed")
        self._stage, self._ended = "", True
        self._line(f"{message or 'finished'} ({self._elapsed():.1f} s)")

    def _verdict(self, text: str, attempt: int | None = None) -> None:
        number = attempt or self._attempt
        if number <= self._judged:
            return  # already shown (the server said it, then the next stage implied it again)
        self._judged = number
        self._line(f"attempt {number}: {text}")

    # -- drawing --------------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self._clock() - self._started

    def _describe_stage(self) -> str:
        """`implement (35%, 4.2 s, 18.5 tok/s)`; before the first stage: `starting (1.1 s)`."""
        facts = [] if self._percent is None or not self._stage else [f"{self._percent}%"]
        facts.append(f"{self._elapsed():.1f} s")
        if self._speed is not None and self._stage:
            facts.append(f"{self._speed:.1f} tok/s")
        stage = self._stage + (f": {self._detail}" if self._detail else "") if self._stage else "starting"
        return f"{stage} ({', '.join(facts)})"

    def _line(self, text: str) -> None:
        """A line that stays (the live status is redrawn under it)."""
        self._clear()
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
        if self.live and not self._ended:
            self._draw()

    def _draw(self) -> None:
        self._frame = (self._frame + 1) % len(_SPINNER)
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        status = f"{_SPINNER[self._frame]} {self.label}: {self._describe_stage()}"[:width]
        self.stream.write("\r\x1b[2K" + status)
        self.stream.flush()
        self._status = status

    def _clear(self) -> None:
        if self._status:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._status = ""


def _describe(verdict: dict[str, Any]) -> str:
    """`failed: compile failed: ...`; without a message, what was checked: `passed (compiled, tests passed)`."""
    ok = verdict.get("ok")
    head = "done" if ok is None else "passed" if ok else "failed"
    message = " ".join(str(verdict.get("message") or "").split())
    if message:
        return f"{head}: {message}"
    facts = []
    if verdict.get("compiled") is not None:
        facts.append("compiled" if verdict["compiled"] else "did not compile")
    if verdict.get("tests_passed") is not None:
        facts.append("tests passed" if verdict["tests_passed"] else "tests failed")
    return f"{head} ({', '.join(facts)})" if facts else head
