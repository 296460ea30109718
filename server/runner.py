"""The one place the server calls into the pipeline: config loading, the shared engine, the call log, `run_action`."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pipeline.actions import ACTIONS, ActionRequest, ActionResult

from .settings import ServerSettings
from .trust import restrict_untrusted

if TYPE_CHECKING:
    from pipeline.engine.cancel import CancelToken

logger = logging.getLogger(__name__)


class PipelineUnavailable(Exception):
    """The pipeline cannot run actions in this installation; the message says what is missing."""


class PipelineRunner:
    """Loads the layered config per action; keeps one engine (resident models, KV caches) and one call log per
    workspace across actions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None
        self._logs: dict[str, Any] = {}
        self._available: tuple[str, ...] | None = None

    def _orchestrator(self) -> ModuleType:
        try:
            return importlib.import_module("pipeline.orchestrator")
        except Exception as exc:  # a broken install must surface as a message, not a dead server
            raise PipelineUnavailable(f"the cra pipeline cannot be loaded ({type(exc).__name__}: {exc})") from None

    def warm_up(self) -> None:
        """Import the pipeline ahead of the first action so code actions and commands answer fast."""
        try:
            self._orchestrator()
        except PipelineUnavailable as exc:
            logger.warning("%s", exc)
        self.available_actions()

    def available_actions(self) -> tuple[str, ...]:
        """The actions the orchestrator can run. When it cannot even load, every action is offered so that
        running one tells the user what is broken."""
        if self._available is None:
            try:
                declared = self._orchestrator().available_actions()
            except Exception as exc:  # a broken pipeline: offer everything, running an action reports the cause
                logger.warning("cannot list the pipeline's actions: %s", exc)
                self._available = ACTIONS
            else:
                self._available = tuple(a for a in declared if a in ACTIONS)
        return self._available

    def _shared_engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from pipeline.engine import LocalEngine

                self._engine = LocalEngine()
            return self._engine

    def _log_for(self, root: str) -> Any:
        """The workspace's call log; an unusable log is reported and the action runs without one."""
        from pipeline.calllog import CallLog, CallLogError

        with self._lock:
            if root not in self._logs:
                try:
                    self._logs[root] = CallLog.for_workspace(root)
                except CallLogError as exc:
                    logger.warning("%s", exc)
                    self._logs[root] = None
            return self._logs[root]

    def run(self, request: ActionRequest, *, trusted: bool, settings: ServerSettings,
            progress: Callable[[str, int], None], cancel: CancelToken) -> ActionResult:
        orchestrator = self._orchestrator()
        from pipeline.config import ConfigError, load_config

        try:
            config = load_config(request.root, overrides=settings.config or None, path=settings.config_file)
        except ConfigError as exc:
            return ActionResult(ok=False, task_id="", action=request.action, path=request.path,
                                symbol=request.symbol, error=f"configuration error: {exc}")
        # Untrusted workspaces must not run commands named by their config or build files: the config loses
        # them here and the orchestrator is told as well.
        return orchestrator.run_action(
            request, config=restrict_untrusted(config, trusted), engine=self._shared_engine(),
            log=self._log_for(request.root), progress=progress, cancel=cancel, trusted=trusted)
