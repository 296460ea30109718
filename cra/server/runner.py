"""The one place the server calls into the pipeline, through `pipeline.runtime`: one engine for the process and,
per workspace root, a `Workspace` (config, call log, persistent symbol index) that lives across actions.

The editor's buffers feed the workspace index (`note_text`), cra.toml is re-read when it changes on disk or the
settings change, and untrusted workspaces run with every config-named command removed.

The server module imports none of the pipeline beyond its data types, so that `initialize` is answered without
waiting for the C parser, numpy and the stages: `warm_up` imports them in the background right after it. The
engine (and with it llama.cpp) is created by the first action that needs it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cra.pipeline.actions import ACTIONS, ActionRequest, ActionResult

from .settings import ServerSettings
from .trust import restrict_untrusted

if TYPE_CHECKING:
    from cra.pipeline.context import FileIndex
    from cra.pipeline.engine import CancelToken, Engine
    from cra.pipeline.runtime import Workspace

logger = logging.getLogger(__name__)
CONFIG_FILENAME = "cra.toml"


class PipelineUnavailable(Exception):
    """The pipeline cannot run actions in this installation; the message says what is missing."""


class _Entry:
    """One workspace root: the runtime's Workspace plus what decides when its config is stale."""

    def __init__(self, workspace: Workspace, stamp: tuple[Any, ...]) -> None:
        self.workspace = workspace
        self.stamp = stamp  # (cra.toml mtime, overrides, config file) the config was loaded with
        self.stale = False  # set by a didChangeWatchedFiles notification
        self.pending: dict[str, str] = {}  # path -> buffer text not yet in the index (it was busy)
        self.run_lock = threading.Lock()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class PipelineRunner:
    """Workspaces by root, sharing one engine (resident models, KV caches) for the whole process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Engine | None = None  # created by the first action, shared by every workspace
        self._entries: dict[str, _Entry] = {}
        self._available: tuple[str, ...] | None = None
        self.watching_config = False  # the client notifies cra.toml changes: no stat before each action needed

    @staticmethod
    def _load() -> None:
        """Import the pipeline: the orchestrator (stages, flows, the C parser) and the runtime."""
        try:
            for module in ("cra.pipeline.orchestrator", "cra.pipeline.runtime"):
                importlib.import_module(module)
        except Exception as exc:  # a broken install must surface as a message, not a dead server
            raise PipelineUnavailable(f"the cra pipeline cannot be loaded ({type(exc).__name__}: {exc})") from None

    def warm_up(self) -> None:
        """Import the pipeline and learn its actions (the server runs this in the background after `initialize`)."""
        self.available_actions()

    def loaded_actions(self) -> tuple[str, ...] | None:
        """The pipeline's actions once it has been loaded, else None; never imports anything."""
        return self._available

    def available_actions(self) -> tuple[str, ...]:
        """The actions the orchestrator can run. When it cannot even load, every action is offered so that
        running one tells the user what is broken."""
        if self._available is None:
            try:
                self._load()
                from cra.pipeline.orchestrator import available_actions

                declared = available_actions()
            except Exception as exc:  # a broken pipeline: offer everything, running an action reports the cause
                logger.warning("cannot list the pipeline's actions: %s", exc)
                self._available = ACTIONS
            else:
                self._available = tuple(a for a in declared if a in ACTIONS)
        return self._available

    # -- workspaces --------------------------------------------------------------------------------------------
    @staticmethod
    def _stamp(root: str, settings: ServerSettings) -> tuple[Any, ...]:
        config_file = Path(settings.config_file) if settings.config_file else Path(root) / CONFIG_FILENAME
        return (_mtime(config_file), *PipelineRunner._stamp_settings(settings))

    @staticmethod
    def _stamp_settings(settings: ServerSettings) -> tuple[Any, ...]:
        return (repr(sorted(settings.config.items())), settings.config_file)

    def _load_config(self, root: str, settings: ServerSettings) -> Any:
        from cra.pipeline.config import load_config

        return load_config(root, overrides=settings.config or None, path=settings.config_file)

    def workspace(self, root: str, settings: ServerSettings) -> Workspace:
        """The root's Workspace with a current config. Raises `ConfigError` when cra.toml is broken."""
        return self._entry(root, settings).workspace

    def _entry(self, root: str, settings: ServerSettings) -> _Entry:
        from cra.pipeline.runtime import Workspace

        root = os.path.realpath(root)
        with self._lock:
            entry = self._entries.get(root)
            if entry is None:
                stamp = self._stamp(root, settings)
                config = self._load_config(root, settings)
                # Without an engine yet (no action ran), the workspace creates it on its first action: preparing
                # the index ahead of that must not load llama.cpp. The server's actions all use its one root.
                entry = _Entry(Workspace(root, config, engine=self._engine, overrides=settings.config or None), stamp)
                self._entries[root] = entry
                return entry
        self._refresh(entry, root, settings)
        return entry

    def _refresh(self, entry: _Entry, root: str, settings: ServerSettings) -> None:
        settings_part = self._stamp_settings(settings)
        if self.watching_config and not entry.stale and settings_part == entry.stamp[1:]:
            return  # the client tells us when cra.toml changes: no stat needed
        stamp = self._stamp(root, settings)
        if stamp == entry.stamp and not entry.stale:
            return
        # Raises ConfigError and keeps the old config when the new one is broken.
        entry.workspace.config = self._load_config(root, settings)
        entry.workspace.overrides = settings.config or None
        entry.stamp, entry.stale = stamp, False

    def config_changed(self, path: str) -> list[str]:
        """A cra.toml changed on disk (file watcher): mark the workspaces it configures; their roots."""
        directory = os.path.realpath(os.path.dirname(path))
        marked = []
        with self._lock:
            for root, entry in self._entries.items():
                if root == directory:
                    entry.stale = True
                    marked.append(root)
        return marked

    def reload(self, root: str, settings: ServerSettings) -> Any:
        """Load the root's config now (after a change notification); raises `ConfigError`."""
        entry = self._entry(root, settings)
        return entry.workspace.config

    def known_workspace(self, root: str) -> Workspace | None:
        entry = self._entries.get(os.path.realpath(root))
        return entry.workspace if entry is not None else None

    # -- the symbol index --------------------------------------------------------------------------------------
    def build_index(self, root: str, settings: ServerSettings) -> None:
        """Build (or load from its on-disk cache) the root's symbol index ahead of the first action."""
        entry = self._entry(root, settings)
        workspace = entry.workspace
        with workspace._lock:
            if workspace.index is None:
                from cra.pipeline.context import WorkspaceIndex

                workspace.index = WorkspaceIndex.build(str(workspace.root),
                                                       max_file_bytes=workspace.config.context.max_file_bytes)
            self._flush(entry)

    def note_text(self, root: str, path: str, text: str) -> FileIndex | None:
        """Feed an open buffer into the root's index (incremental re-parse). Returns the file's new index, or
        None when the index is busy with a running action (the text is applied right after it) or not built."""
        entry = self._entries.get(os.path.realpath(root))
        if entry is None:
            return None
        workspace = entry.workspace
        entry.pending[path] = text
        if workspace.index is None or not workspace._lock.acquire(blocking=False):
            return None
        try:
            return self._flush(entry).get(path)
        finally:
            workspace._lock.release()

    def _flush(self, entry: _Entry) -> dict[str, FileIndex]:
        """Apply buffered texts to the index; the caller holds the workspace's lock."""
        from cra.pipeline.context import ContextError

        updated: dict[str, FileIndex] = {}
        index = entry.workspace.index
        if index is None:
            return updated
        while entry.pending:
            path, text = entry.pending.popitem()
            try:
                updated[path] = index.update(path, text)
            except ContextError as exc:  # outside the workspace or over the size limit: not indexed
                logger.info("not indexed: %s", exc)
        return updated

    # -- running -----------------------------------------------------------------------------------------------
    def run(self, request: ActionRequest, *, trusted: bool, settings: ServerSettings,
            progress: Callable[[str, int], None], cancel: CancelToken) -> ActionResult:
        self._load()
        from cra.pipeline.calllog import CallLogError
        from cra.pipeline.config import ConfigError

        try:
            entry = self._entry(request.root, settings)
        except ConfigError as exc:
            return ActionResult(ok=False, task_id="", action=request.action, path=request.path,
                                symbol=request.symbol, error=f"configuration error: {exc}")
        workspace = entry.workspace
        with entry.run_lock:
            loaded = workspace.config
            # Untrusted workspaces must not run commands named by their config or build files: the config loses
            # them for this run and the orchestrator is told as well.
            restricted = restrict_untrusted(loaded, trusted)
            workspace.config = restricted
            try:
                with workspace._lock:
                    self._flush(entry)
                if self._engine is None:  # the first action: the engine (llama.cpp) every workspace shares
                    engine = workspace.base_engine
                    with self._lock:
                        self._engine = self._engine or engine
                return workspace.run(request, progress=progress, cancel=cancel, trusted=trusted)
            except CallLogError as exc:
                return ActionResult(ok=False, task_id="", action=request.action, path=request.path,
                                    symbol=request.symbol, error=f"the call log cannot be used: {exc}")
            finally:
                if workspace.config is restricted:  # not replaced by a reload meanwhile
                    workspace.config = loaded
                with workspace._lock:
                    self._flush(entry)

    def set_edit_status(self, root: str, task_id: str, status: str, reason: str | None = None) -> bool:
        """Record the editor's answer to a proposed edit in the workspace's call log."""
        from cra.pipeline.calllog import CallLogError

        workspace = self.known_workspace(root)
        if workspace is None or not task_id:
            return False
        try:
            return workspace.log.set_edit_status(task_id, status, reason)
        except CallLogError as exc:
            logger.warning("%s", exc)
            return False

    def close(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                entry.workspace.close()
