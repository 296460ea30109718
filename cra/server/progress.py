"""`window/workDoneProgress` for one action: create, begin, report from any thread, end.

The reports say the pipeline stage and percentage; while the model generates, its speed (`"implement: 18.5
tok/s"`, at most every 0.5 s); and each attempt's verdict as it lands (`"validate: attempt 1 failed: does not
compile: ..."`). The message is what any editor shows; the value also carries them as fields for clients that read
them (`cra run`'s progress line, `cra.clients.progress`): `tokensPerSecond` (a number) and `verdict` (an object:
`attempt`, `ok`, `compiled`, `tests_passed`, `message`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from . import pygls_compat

if TYPE_CHECKING:
    from cra.pipeline.actions import Verdict

logger = logging.getLogger(__name__)
TOKENS_PER_S_FIELD = "tokensPerSecond"
VERDICT_FIELD = "verdict"
VERDICT_MESSAGE_CHARS = 200  # an editor shows one line: the verdict's message is cut there (the field keeps it)


class ActionProgress:
    """Progress of one action. Silent when the client does not support server-created progress. Called as
    `progress(stage, percent)` by the pipeline (it is an orchestrator `DetailedProgress`), from its worker thread."""

    def __init__(self, server: LanguageServer, title: str) -> None:
        self._server = server
        self._title = title
        # Fresh token per action: pygls never releases tokens and re-use raises.
        self.token = f"cra-{uuid.uuid4().hex}"
        self._loop = asyncio.get_running_loop()
        self._active = False
        self._last_percent = 0

    def _client_supports(self) -> bool:
        window = self._server.client_capabilities.window
        return bool(window and window.work_done_progress)

    async def begin(self, on_cancel: Callable[[], None]) -> None:
        """Create the token and send `begin`; `on_cancel` runs when the user cancels from the progress UI."""
        if not self._client_supports():
            return
        try:
            await self._server.work_done_progress.create_async(self.token)
        except Exception as exc:  # a client that refuses progress still gets the action done
            logger.warning("client refused progress token: %s", exc)
            return
        pygls_compat.on_progress_cancel(self._server, self.token, on_cancel)
        self._server.work_done_progress.begin(self.token, types.WorkDoneProgressBegin(
            title=self._title, cancellable=True, percentage=0))
        self._active = True

    def report(self, message: str, percent: int) -> None:
        """Thread-safe: called by the pipeline's worker thread once per stage."""
        self._loop.call_soon_threadsafe(self._report, message, percent, {})

    __call__ = report

    def speed(self, stage: str, tokens_per_s: float) -> None:
        """Thread-safe: the model generates in `stage` at this speed."""
        self._loop.call_soon_threadsafe(self._report, f"{stage}: {tokens_per_s:.1f} tok/s", None,
                                        {TOKENS_PER_S_FIELD: round(tokens_per_s, 2)})

    def verdict(self, stage: str, attempt: int, passed: bool, verdict: Verdict) -> None:
        """Thread-safe: attempt `attempt` was judged (see `orchestrator.DetailedProgress.verdict`)."""
        said = f"{stage}: attempt {attempt} {'passed' if passed else 'failed'}"
        detail = " ".join(verdict.message.split())
        if detail:
            said += f": {detail[:VERDICT_MESSAGE_CHARS]}" + ("…" if len(detail) > VERDICT_MESSAGE_CHARS else "")
        self._loop.call_soon_threadsafe(self._report, said, None, {VERDICT_FIELD: {
            "attempt": attempt, "ok": passed, "compiled": verdict.compiled, "tests_passed": verdict.tests_passed,
            "message": verdict.message}})

    def _report(self, message: str, percent: int | None, fields: dict[str, Any]) -> None:
        if not self._active:
            return
        if percent is not None:  # LSP wants a non-decreasing percentage in 0..100.
            self._last_percent = max(self._last_percent, min(100, max(0, int(percent))))
        if not fields:
            self._server.work_done_progress.report(self.token, types.WorkDoneProgressReport(
                message=message, percentage=self._last_percent, cancellable=True))
            return
        # The typed report has no room for extra fields: the value goes out as the JSON object it is.
        value = {"kind": "report", "message": message, "percentage": self._last_percent, "cancellable": True,
                 **fields}
        self._server.work_done_progress.report(self.token, value)  # type: ignore[arg-type]

    def end(self, message: str) -> None:
        if self._active:
            self._active = False
            self._server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
