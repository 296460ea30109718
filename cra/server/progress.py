"""`window/workDoneProgress` for one action: create, begin, report (stage + percentage) from any thread, end."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from . import pygls_compat

logger = logging.getLogger(__name__)


class ActionProgress:
    """Progress of one action. Silent when the client does not support server-created progress."""

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
        self._loop.call_soon_threadsafe(self._report, message, percent)

    def _report(self, message: str, percent: int) -> None:
        if not self._active:
            return
        # LSP wants a non-decreasing percentage in 0..100.
        self._last_percent = max(self._last_percent, min(100, max(0, int(percent))))
        self._server.work_done_progress.report(self.token, types.WorkDoneProgressReport(
            message=message, percentage=self._last_percent, cancellable=True))

    def end(self, message: str) -> None:
        if self._active:
            self._active = False
            self._server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
