"""The cra language server: LSP ↔ pipeline translation only (code actions, executeCommand, progress, cancel,
hover with generated docs, diagnostics of failed validations, trust).

Advertises code actions, hover and executeCommand and nothing else, so it coexists with clangd in the same editor.

Modules: `server` (the server object and its shared state), one per feature — `lifecycle` (initialize,
initialized, shutdown, settings, cra.toml watching, background preparation), `documents` (didOpen/didChange/
didClose and each document's functions), `code_actions`, `commands` (the actions' executeCommand, trust),
`docgen` (hover, the generated-doc cache, insertDoc) — plus `edits` (edit application), `runner` (the one door
into the pipeline), `transport` (stdio, TCP), `pygls_compat` (every reliance on pygls internals), `startup` (what
makes the imports before `initialize` fast: the entry points start the server with its `serve_process`) and
`quickscan` (which function is where while the C parser is not ready).
"""

from __future__ import annotations

from . import code_actions, commands, docgen, documents, lifecycle, transport
from .runner import PipelineRunner
from .server import CraLanguageServer


def create_server(runner: PipelineRunner | None = None) -> CraLanguageServer:
    server = CraLanguageServer(runner)
    for feature in (lifecycle, documents, code_actions, commands, docgen):
        feature.register(server)
    return server


def start_stdio(server: CraLanguageServer) -> None:
    transport.serve_stdio(server)
