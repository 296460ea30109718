"""`cra bench lsp`: the language server's latencies over real stdio JSON-RPC on the default model.

`initialize` answered after the server process starts (`cra lsp --stdio`, as editors start it; target < 300 ms),
the first codeAction after didOpen (target < 20 ms; once with the document opened shortly after `initialized`, as
when a file is opened in a running editor, and in fresh servers with didOpen and the codeAction sent right after
`initialized`, as when the editor starts the server for the file it opens), codeAction p50/p99 idle (target p99
< 20 ms) and while a pipeline job runs (target p99 < 50 ms), hover cached/uncached, cancel-to-idle time, and
action-to-applied-edit time per action.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from cra.pipeline.config import ROLES

ACTIONS = ("document", "implement", "tests", "plan", "scaffold")
SOURCE = """\
#include <stddef.h>

struct buffer { char *data; size_t len; size_t cap; };

size_t buffer_len(const struct buffer *b) {
    return b->len;
}

/** Counts the bytes equal to `c` in the first `n` bytes of `s`. */
size_t count_byte(const char *s, size_t n, char c) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == c) {
            total++;
        }
    }
    return total;
}

int checksum(const unsigned char *data, size_t n) {
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum = (sum << 1) ^ data[i];
    }
    return (int)(sum & 0x7fffffff);
}

/** Returns the larger of `a` and `b`. */
int max_int(int a, int b) {
    return 0;
}
"""
LINES = {"document": "checksum", "implement": "max_int", "tests": "count_byte", "plan": None, "scaffold": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="GGUF used for every role (default: the installed qwen2.5-coder-0.5b)")
    parser.add_argument("--requests", type=int, default=200, help="code actions to time while idle")
    parser.add_argument("--actions", default=",".join(ACTIONS),
                        help="actions to time end to end (comma list; empty: none)")
    parser.add_argument("--open-delay", type=float, default=1.0,
                        help="seconds between `initialized` and didOpen for the first codeAction (default 1.0)")
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="fresh servers timed for initialize and an immediate first codeAction (default 3)")
    parser.add_argument("--no-hover", action="store_true", help="skip the hover measurements (they run the model)")
    parser.add_argument("--busy-timeout", type=float, default=300.0,
                        help="seconds to keep timing code actions while a job runs (default 300; 0: skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _say(message: str) -> None:
    print(f"cra bench lsp: {message}", file=sys.stderr, flush=True)


def _server_argv() -> list[str]:
    """The server as an editor starts it: this environment's `cra lsp --stdio` (`python -m cra.server` when the
    script is not installed). `CRA_BENCH_SERVER` replaces what follows the interpreter (`-m cra.server --tcp`)."""
    extra = os.environ.get("CRA_BENCH_SERVER")
    if extra:
        return [sys.executable, *extra.split()]
    script = Path(sys.executable).with_name("cra")
    if script.is_file():
        return [str(script), "lsp", "--stdio"]
    return [sys.executable, "-m", "cra.server", "--stdio"]


def _percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"n": len(samples), "p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2),
            "max_ms": round(ordered[-1], 2)}


class _Bench:
    def __init__(self, root: Path, model: Path) -> None:
        from pygls.lsp.client import LanguageClient

        from cra.clients.lsp_types import install_code_action_hook

        self.root = root
        self.model = model
        self.uri = (root / "buf.c").as_uri()
        self.text = SOURCE
        self.version = 1
        self.applied_at: list[float] = []
        self.progress: dict[str, list[dict[str, Any]]] = {}
        client = LanguageClient("cra-bench", "0.1.0")
        install_code_action_hook(client.protocol._converter)
        self.client = client

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(ls: Any, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            self.applied_at.append(time.perf_counter())
            return types.ApplyWorkspaceEditResult(applied=True)  # not applied to the buffer: every run starts equal

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(ls: Any, params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @client.feature(types.PROGRESS)
        def progress(ls: Any, params: types.ProgressParams) -> None:
            value = params.value if isinstance(params.value, dict) else client.protocol._converter.unstructure(
                params.value)
            self.progress.setdefault(str(params.token), []).append(value)

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(ls: Any, params: types.ShowMessageParams) -> None:
            return None

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log(ls: Any, params: types.LogMessageParams) -> None:
            return None

    async def start(self) -> float:
        """Start the server, initialize it; the milliseconds from process start to the `initialize` answer."""
        from cra.clients.headless import _capabilities

        (self.root / "buf.c").write_text(SOURCE)
        config = {"models": {role: {"model": str(self.model), "context_length": 4096} for role in ROLES},
                  "validation": {"max_rounds": 0}}
        argv = _server_argv()
        params = types.InitializeParams(capabilities=_capabilities(), root_uri=self.root.as_uri(),
                                        initialization_options={"trust": False, "config": config})
        self.warm_initialize(params)
        started = time.perf_counter()
        await self.client.start_io(argv[0], *argv[1:])
        await self.client.initialize_async(params)
        initialize_ms = (time.perf_counter() - started) * 1000
        self.client.initialized(types.InitializedParams())
        self.warm_client()
        # Nobody else reads the server's stderr (llama.cpp logs there): a full pipe would freeze the server.
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        return initialize_ms

    def warm_initialize(self, params: types.InitializeParams) -> None:
        """Build the bench client's converter functions for the `initialize` exchange before the clock starts:
        writing the client's capabilities and reading the server's take a fresh Python client tens of ms, which
        `initialize` would otherwise count (an editor has its own, faster, code for them)."""
        protocol = self.client.protocol
        json.dumps(params, default=protocol._serialize_message)
        result = {"capabilities": {"positionEncoding": "utf-16", "textDocumentSync": {"openClose": True, "change": 2},
                                   "hoverProvider": True, "executeCommandProvider": {"commands": ["cra.implement"]},
                                   "codeActionProvider": {"codeActionKinds": ["refactor"], "resolveProvider": True},
                                   "workspace": {"workspaceFolders": {"supported": True}}},
                  "serverInfo": {"name": "cra", "version": "0"}}
        response_type = protocol.get_result_type(types.INITIALIZE)
        if response_type is not None:
            protocol._converter.structure({"jsonrpc": "2.0", "id": 0, "result": result}, response_type)

    def warm_client(self) -> None:
        """Build the bench client's own converter functions for code action and hover traffic before timing: a
        Python client pays tens of ms for them on first use, an editor does not, and the figures are the server's."""
        protocol = self.client.protocol
        position = types.Position(line=0, character=0)
        span = types.Range(start=position, end=position)
        document = types.TextDocumentIdentifier(uri=self.uri)
        requests = [types.CodeActionParams(text_document=document, range=span,
                                           context=types.CodeActionContext(diagnostics=[])),
                    types.HoverParams(text_document=document, position=position),
                    types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                        uri=self.uri, language_id="c", version=1, text=""))]
        for request in requests:
            json.dumps(request, default=protocol._serialize_message)
        command = {"title": "t", "command": "cra.implement", "arguments": [{"uri": self.uri}]}
        span_json = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
        action = {"title": "t", "kind": "refactor", "command": command}
        hover = {"contents": {"kind": "markdown", "value": "v"}, "range": span_json}
        for method, result in ((types.TEXT_DOCUMENT_CODE_ACTION, [action]), (types.TEXT_DOCUMENT_HOVER, hover)):
            response_type = protocol.get_result_type(method)
            if response_type is not None:
                protocol._converter.structure({"jsonrpc": "2.0", "id": 0, "result": result}, response_type)

    def open(self) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=self.uri, language_id="c", version=1, text=SOURCE)))

    async def _drain_stderr(self) -> None:
        stream = self.client._server.stderr if self.client._server else None
        while stream is not None and await stream.readline():
            pass

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def line_of(self, symbol: str | None) -> int:
        if symbol is None:
            return 0
        return next(i for i, line in enumerate(SOURCE.splitlines()) if f" {symbol}(" in line)

    async def code_action_ms(self, line: int) -> float:
        position = types.Position(line=line, character=0)
        started = time.perf_counter()
        await self.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri), range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[])))
        return (time.perf_counter() - started) * 1000

    async def hover(self, line: int) -> tuple[float, str]:
        started = time.perf_counter()
        result = await self.client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri), position=types.Position(line=line, character=4)))
        contents = result.contents if result else None
        return (time.perf_counter() - started) * 1000, (contents.value if isinstance(contents, types.MarkupContent)
                                                        else "")

    def execute(self, action: str) -> asyncio.Future[Any]:
        argument = {"uri": self.uri, "symbol": LINES[action], "version": self.version}
        return asyncio.ensure_future(self.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=f"cra.{action}", arguments=[argument])))

    def model_stage_token(self, seen: set[str]) -> str | None:
        for token, values in self.progress.items():
            if token not in seen and any(v.get("kind") == "report" and v.get("message") not in (
                    "locate", "context", "analyze", "route") for v in values):
                return token
        return None


async def _cold_start(model: Path) -> tuple[float, float]:
    """A fresh server: (process start to `initialize` answer, first codeAction sent right after didOpen, which is
    sent right after `initialized`), in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="cra-bench-lsp-") as tmp:
        bench = _Bench(Path(tmp), model)
        initialize_ms = await bench.start()
        try:
            bench.open()
            first_ms = await bench.code_action_ms(bench.line_of("max_int"))
        finally:
            await bench.stop()
    return initialize_ms, first_ms


def _summary(samples: list[float]) -> dict[str, Any]:
    return {"runs_ms": [round(s, 1) for s in samples], "median_ms": round(statistics.median(samples), 1),
            "max_ms": round(max(samples), 1)}


async def _run(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"model": model.name}
    initialize: list[float] = []
    cold_first: list[float] = []
    for _ in range(max(0, args.cold_runs)):
        initialize_ms, first_ms = await _cold_start(model)
        initialize.append(initialize_ms)
        cold_first.append(first_ms)
    with tempfile.TemporaryDirectory(prefix="cra-bench-lsp-") as tmp:
        bench = _Bench(Path(tmp), model)
        initialize.append(await bench.start())
        result["initialize"] = _summary(initialize)
        _say(f"initialize after process start: {result['initialize']}")
        if cold_first:
            result["first_code_action_cold"] = _summary(cold_first)
            _say(f"first codeAction right after initialized + didOpen: {result['first_code_action_cold']}")
        try:
            lines = [bench.line_of(s) for s in ("buffer_len", "count_byte", "checksum", "max_int")] + [0, 2]
            await asyncio.sleep(max(0.0, args.open_delay))  # the user opens a file in the running editor
            bench.open()
            result["first_code_action_ms"] = round(await bench.code_action_ms(bench.line_of("max_int")), 2)
            _say(f"first codeAction after didOpen: {result['first_code_action_ms']} ms")
            idle = [await bench.code_action_ms(lines[i % len(lines)]) for i in range(args.requests)]
            result["code_action_idle"] = _percentiles(idle)
            _say(f"code actions idle: {result['code_action_idle']}")

            if not args.no_hover:
                await _hover(bench, result)

            if args.busy_timeout > 0:
                await _busy(bench, args, lines, result)
            # Action to applied edit, per action.
            per_action: dict[str, Any] = {}
            for action in [a.strip() for a in args.actions.split(",") if a.strip()]:
                if action not in LINES:
                    raise SystemExit(f"cra bench lsp: unknown action {action!r} (actions: {', '.join(ACTIONS)})")
                bench.applied_at.clear()
                started = time.perf_counter()
                outcome = await bench.execute(action)
                done = time.perf_counter()
                _say(f"{action}: ok={outcome.get('ok')} in {done - started:.1f} s")
                per_action[action] = {
                    "ok": bool(outcome.get("ok")),
                    "to_applied_edit_s": round(bench.applied_at[0] - started, 2) if bench.applied_at else None,
                    "total_s": round(done - started, 2),
                    "error": (outcome.get("error") or "")[:160] or None,
                }
            result["actions"] = per_action
        finally:
            await bench.stop()
    return result


async def _busy(bench: _Bench, args: argparse.Namespace, lines: list[int], result: dict[str, Any]) -> None:
    """Code actions while a pipeline job runs (paced like cursor moves, until 50 were answered while the model
    generates), then cancel the job from its progress: cancel-to-idle."""
    seen = set(bench.progress)
    job = bench.execute("tests")
    busy: list[float] = []
    generating = 0
    token = None
    deadline = time.perf_counter() + args.busy_timeout
    while not job.done() and generating < 50 and time.perf_counter() < deadline:
        busy.append(await bench.code_action_ms(lines[len(busy) % len(lines)]))
        token = token or bench.model_stage_token(seen)
        generating += token is not None
        await asyncio.sleep(0.02)
    result["code_action_busy"] = _percentiles(busy)
    result["code_action_busy_while_generating"] = generating
    job_token = token
    while job_token is None and not job.done():  # the job's progress begins at once
        job_token = next((t for t in bench.progress if t not in seen), None)
        await asyncio.sleep(0.01)
    result["cancel_to_idle_ms"] = None
    if job_token is not None and not job.done():
        started = time.perf_counter()
        bench.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=job_token))
        outcome = await job
        result["cancel_to_idle_ms"] = round((time.perf_counter() - started) * 1000, 1)
        result["cancel_answered_cancelled"] = bool(outcome.get("cancelled"))
    else:
        await job
    _say(f"busy code actions: {result['code_action_busy']} ({generating} while generating); "
         f"cancel {result['cancel_to_idle_ms']} ms")


async def _hover(bench: _Bench, result: dict[str, Any]) -> None:
    """Hover on an undocumented function that needs the model: uncached, then cached once generated."""
    line = bench.line_of("checksum")
    uncached_ms, _ = await bench.hover(line)
    result["hover_uncached_ms"] = round(uncached_ms, 2)
    generated_at = time.perf_counter()
    text = ""
    while "/**" not in text and "could not" not in text and time.perf_counter() - generated_at < 300:
        await asyncio.sleep(0.5)
        _, text = await bench.hover(line)
    result["hover_doc_ready_s"] = round(time.perf_counter() - generated_at, 2)
    result["hover_doc_generated"] = "/**" in text
    cached = [(await bench.hover(line))[0] for _ in range(30)]
    result["hover_cached"] = _percentiles(cached)
    _say(f"hover: uncached {uncached_ms:.1f} ms, doc after {result['hover_doc_ready_s']} s")


def _default_model() -> Path | None:
    from cra.pipeline.models.registry import find_installed

    return find_installed("qwen2.5-coder-0.5b")


def main(args: argparse.Namespace) -> int:
    model = Path(args.model) if args.model else _default_model()
    if model is None or not model.is_file():
        print("cra bench lsp: no model: pass --model PATH or run `cra models install qwen2.5-coder-0.5b`",
              file=sys.stderr)
        return 2
    result = asyncio.run(_run(args, model))
    if args.json:
        print(json.dumps(result))
        return 0
    print("| metric | value | target |\n|---|---|---|")
    for key, target in (("initialize", "< 300 ms"), ("first_code_action_cold", "< 20 ms")):
        if key in result:
            stats = result[key]
            print(f"| {key} median / max (ms) | {stats['median_ms']} / {stats['max_ms']} "
                  f"(n={len(stats['runs_ms'])}) | {target} |")
    print(f"| first_code_action_ms | {result['first_code_action_ms']} | < 20 ms |")
    for key, target in (("code_action_idle", "p99 < 20 ms"), ("code_action_busy", "p99 < 50 ms"),
                        ("hover_cached", "")):
        if key in result:
            stats = result[key]
            print(f"| {key} p50 / p99 / max (ms) | {stats.get('p50_ms')} / {stats.get('p99_ms')} / "
                  f"{stats.get('max_ms')} (n={stats['n']}) | {target} |")
    for key in ("hover_uncached_ms", "hover_doc_ready_s", "hover_doc_generated", "cancel_to_idle_ms",
                "cancel_answered_cancelled"):
        if key in result:
            print(f"| {key} | {result.get(key)} | |")
    for action, row in result["actions"].items():
        print(f"| {action}: ok / to applied edit (s) / total (s) | {row['ok']} / {row['to_applied_edit_s']} / "
              f"{row['total_s']} | |" + (f" {row['error']}" if row["error"] and not row["ok"] else ""))
    return 0
