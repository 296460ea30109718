"""The cra language server object: the state every feature module shares, and the helpers they all use.

The features themselves (lifecycle, documents, code actions, commands, generated docs) live in their own modules
and are registered by `cra.server.app.create_server`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from cra.pipeline.actions import ACTIONS

from . import pygls_compat
from .diagnostics import DiagnosticsBook
from .jobs import JobRunner
from .runner import PipelineRunner
from .settings import ServerSettings, SettingsError, parse_settings
from .trust import WorkspaceTrust

if TYPE_CHECKING:
    from .docgen import DocGenerator
    from .documents import DocumentSites

logger = logging.getLogger(__name__)

SERVER_NAME = "cra"
SERVER_VERSION = "0.1.0"


class CraLanguageServer(LanguageServer):
    # Set by the feature modules' `register`: they own these.
    documents: DocumentSites  # each open document's functions, parsed off the event loop
    docgen: DocGenerator  # hover docs, generated in the background

    def __init__(self, runner: PipelineRunner | None = None) -> None:
        super().__init__(SERVER_NAME, SERVER_VERSION)
        pygls_compat.install_fast_incremental_changes()  # keystrokes in a 20 MB document stay cheap
        pygls_compat.unstructure_once_types(self)  # the answer to `initialize` builds no cattrs functions
        self.runner = runner or PipelineRunner()
        self.jobs = JobRunner(max_workers=1)  # the actions the user asked for, one at a time
        self.diagnostics = DiagnosticsBook()
        self.trust = WorkspaceTrust()
        self.settings = ServerSettings()
        self.init_options: Any = None
        self.active_requests: set[Any] = set()  # executeCommand requests whose job is running
        # Background preparation (pipeline import, converter, index): one thread, in order, never on the loop.
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cra-warm")
        self.pipeline_ready: asyncio.Future[None] | None = None

    # -- the pipeline ----------------------------------------------------------------------------------------
    def load_pipeline(self) -> asyncio.Future[None]:
        """Import the pipeline in the background (once); the future is done when it is loaded (or failed)."""
        if self.pipeline_ready is None:
            self.pipeline_ready = asyncio.get_running_loop().run_in_executor(self.background, self.runner.warm_up)
        return self.pipeline_ready

    async def available_actions(self) -> tuple[str, ...]:
        """The actions the pipeline can run, once it is loaded (waits for the import)."""
        await asyncio.shield(self.load_pipeline())
        return self.runner.available_actions()

    def offered_actions(self) -> tuple[str, ...]:
        """The actions to offer now, without waiting: every action until the pipeline has loaded (running one
        then waits for it and says so when it is not available), what it can run afterwards."""
        return self.runner.loaded_actions() or ACTIONS

    # -- settings and messages -------------------------------------------------------------------------------
    def apply_settings(self, *layers: Any) -> None:
        try:
            self.settings = parse_settings(self.init_options, *layers)
        except SettingsError as exc:
            self.show(str(exc), types.MessageType.Error)
            return
        except UnicodeEncodeError:  # msgspec refuses a lone surrogate (JSON allows it as a \u escape)
            self.show("invalid cra setting: a string in the settings is not valid Unicode", types.MessageType.Error)
            return
        self.trust.apply_setting(self.settings.trust)
        root = self.root_path()
        if root and self.runner.known_workspace(root) is not None:
            self.reload_config(root)

    def reload_config(self, root: str) -> None:
        """Re-read the workspace's config now; a broken cra.toml is reported and the old config kept."""
        from cra.pipeline.config import ConfigError

        try:
            self.runner.reload(root, self.settings)
        except ConfigError as exc:
            self.show(f"configuration error (the previous configuration stays in use): {exc}",
                      types.MessageType.Error)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"cra: {message}"))

    # -- workspace -------------------------------------------------------------------------------------------
    def root_path(self) -> str | None:
        """The editor's workspace root; None before `initialize` or without one."""
        try:
            return self.workspace.root_path
        except RuntimeError:  # pygls: "the workspace is not available" before initialize
            return None

    def workspace_roots(self) -> list[str]:
        """The editor's workspace root and folders, as file-system paths (empty before `initialize`)."""
        from .documents import DocumentError, uri_to_path

        roots = [self.root_path()]
        try:
            folders = list(self.workspace.folders.values())
        except RuntimeError:  # before initialize
            folders = []
        for folder in folders:
            try:
                roots.append(uri_to_path(folder.uri))
            except DocumentError:  # a folder that is not on disk holds no file cra edits
                continue
        return [root for root in roots if root]

    def inside_workspace(self, path: str) -> bool:
        """Whether `path`, symlinks resolved, lies inside one of the workspace's roots (also resolved)."""
        target = os.path.realpath(path)
        for root in self.workspace_roots():
            real_root = os.path.realpath(root)
            if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
                return True
        return False

    def workspace_root(self, path: str) -> str:
        root = self.root_path()
        return root if root else os.path.dirname(path)

    def close(self) -> None:
        self.background.shutdown(wait=False, cancel_futures=True)
        self.documents.close()
