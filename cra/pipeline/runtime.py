"""What stays alive between actions: one engine for the process (models resident, adapters loaded once) and, per
workspace, its config, call log and symbol index. The language server and the Python API both go through here."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cra.pipeline.actions import ActionRequest, ActionResult
from cra.pipeline.calllog import CallLog
from cra.pipeline.config import Config, ConfigError, load_config
from cra.pipeline.engine import CancelToken, Engine
from cra.pipeline.orchestrator import Progress, run_action

if TYPE_CHECKING:
    from cra.pipeline.engine.scheduler import Scheduler

# A directory holding one of these is taken as the workspace root of a file outside any editor workspace.
def make_engine(config: Config) -> Engine:
    """The engine the config asks for: in-process llama.cpp (default) or a remote OpenAI-compatible server."""
    if config.engine.backend == "remote":
        from cra.pipeline.engine.remote import RemoteEngine

        return RemoteEngine(config.engine.remote_url)
    from cra.pipeline.engine import LocalEngine

    return LocalEngine(adapter_layout=config.engine.adapter_layout)


class Workspace:
    def __init__(self, root: str | Path, config: Config | None = None, *, engine: Engine | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        self.root = Path(root).resolve()
        self.overrides = overrides
        self.config = config or load_config(self.root, overrides=overrides)
        self._base_engine = engine  # shared by every workspace of the process: models stay resident
        self._engine: Scheduler | None = None  # this config's scheduler over it (memory budget, queues, timeouts)
        self._log: CallLog | None = None
        self.index: Any = None
        self._lock = threading.Lock()

    @property
    def base_engine(self) -> Engine:
        if self._base_engine is None:
            self._base_engine = make_engine(self.config)
        return self._base_engine

    @property
    def engine(self) -> Scheduler:
        """The scheduler the pipeline calls: the tier-0 model pinned, others unloaded LRU under the memory
        budget, one queue per model with its roles' `max_concurrency` and `default_timeout`."""
        if self._engine is None:
            from cra.pipeline.engine.scheduler import scheduler_from_config
            from cra.pipeline.router import ModelRouter

            try:
                self._engine = scheduler_from_config(self.config, ModelRouter(self.config, root=self.root),
                                                     self.base_engine)
            except ValueError as exc:  # e.g. max_concurrency > 1 for an in-process model
                raise ConfigError(f"[models]: {exc}") from None
        return self._engine

    @property
    def log(self) -> CallLog:
        if self._log is None:
            self._log = CallLog.for_workspace(self.root)
        return self._log

    def reload_config(self, overrides: dict[str, Any] | None = None) -> Config:
        """Re-read cra.toml (it changed on disk or the editor sent new settings); keep the old one on error."""
        if overrides is not None:
            self.overrides = overrides
        self.config = load_config(self.root, overrides=self.overrides)
        self._engine = None  # rebuilt from the new config on the next action; the base engine stays
        return self.config

    def run(self, request: ActionRequest, *, progress: Progress | None = None, cancel: CancelToken | None = None,
            trusted: bool = False) -> ActionResult:
        # One action at a time per workspace: the index and the engine's contexts are not shared mid-step.
        with self._lock:
            if self.index is None:
                from cra.pipeline.context import WorkspaceIndex

                self.index = WorkspaceIndex.build(str(self.root), max_file_bytes=self.config.context.max_file_bytes)
            return run_action(request, config=self.config, engine=self.engine, log=self.log, progress=progress,
                              cancel=cancel, index=self.index, trusted=trusted)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
