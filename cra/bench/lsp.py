"""`cra bench lsp`: the language server's latencies over real stdio JSON-RPC on the default model.

codeAction p50/p99 idle and while a pipeline job runs (target p99 < 50 ms), hover cached/uncached, cancel-to-idle
time, and action-to-applied-edit time per action.
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
    parser.add_argument("--actions", default=",".join(ACTIONS), help="actions to time end to end (comma list)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _say(message: str) -> None:
    print(f"cra bench lsp: {message}", file=sys.stderr, flush=True)


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

    async def start(self) -> None:
        from cra.clients.headless import _capabilities

        (self.root / "buf.c").write_text(SOURCE)
        await self.client.start_io(sys.executable, *(os.environ["CRA_BENCH_SERVER"].split() if os.environ.get("CRA_BENCH_SERVER") else ["-m", "cra.server"]))
        config = {"models": {role: {"model": str(self.model), "context_length": 4096} for role in ROLES},
                  "validation": {"max_rounds": 0}}
        await self.client.initialize_async(types.InitializeParams(
            capabilities=_capabilities(), root_uri=self.root.as_uri(),
            initialization_options={"trust": False, "config": config}))
        self.client.initialized(types.InitializedParams())
        # Nobody else reads the server's stderr (llama.cpp logs there): a full pipe would freeze the server.
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
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
        return (time.perf_counter() - started) * 1000, (result.contents.value if result else "")

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


async def _run(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"model": model.name}
    with tempfile.TemporaryDirectory(prefix="cra-bench-lsp-") as tmp:
        bench = _Bench(Path(tmp), model)
        await bench.start()
        try:
            lines = [bench.line_of(s) for s in ("buffer_len", "count_byte", "checksum", "max_int")] + [0, 2]
            await bench.code_action_ms(lines[0])  # first one imports the pipeline
            idle = [await bench.code_action_ms(lines[i % len(lines)]) for i in range(args.requests)]
            result["code_action_idle"] = _percentiles(idle)
            _say(f"code actions idle: {result['code_action_idle']}")

            # Hover on an undocumented function that needs the model: uncached, then cached once generated.
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

            # Code actions while a pipeline job runs, then cancel it: cancel-to-idle.
            seen = set(bench.progress)
            job = bench.execute("tests")
            busy: list[float] = []
            token = None
            while not job.done() and len(busy) < args.requests:
                busy.append(await bench.code_action_ms(lines[len(busy) % len(lines)]))
                token = token or bench.model_stage_token(seen)
                if token and len(busy) >= 50:
                    break
            result["code_action_busy"] = _percentiles(busy)
            if token is not None and not job.done():
                started = time.perf_counter()
                bench.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
                outcome = await job
                result["cancel_to_idle_ms"] = round((time.perf_counter() - started) * 1000, 1)
                result["cancel_answered_cancelled"] = bool(outcome.get("cancelled"))
            else:
                await job
                result["cancel_to_idle_ms"] = None

            _say(f"busy code actions: {result['code_action_busy']}; cancel {result['cancel_to_idle_ms']} ms")
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
    print("| metric | value |\n|---|---|")
    for key in ("code_action_idle", "code_action_busy", "hover_cached"):
        stats = result[key]
        print(f"| {key} p50 / p99 / max (ms) | {stats.get('p50_ms')} / {stats.get('p99_ms')} / {stats.get('max_ms')} "
              f"(n={stats['n']}) |")
    for key in ("hover_uncached_ms", "hover_doc_ready_s", "hover_doc_generated", "cancel_to_idle_ms",
                "cancel_answered_cancelled"):
        print(f"| {key} | {result.get(key)} |")
    for action, row in result["actions"].items():
        print(f"| {action}: ok / to applied edit (s) / total (s) | {row['ok']} / {row['to_applied_edit_s']} / "
              f"{row['total_s']} |" + (f" {row['error']}" if row["error"] and not row["ok"] else ""))
    return 0
