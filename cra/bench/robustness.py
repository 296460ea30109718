"""`cra bench robustness`: fuzz a real `cra lsp` process over stdio and count what broke it.

Each case sends something a careless or hostile client could send — garbage or lying frame headers, bodies that
are not JSON, UTF-8 or an object, every method cra registers and every `cra.*` command with random or mutated
params, hostile documents (NUL bytes, huge, deeply nested) — then a normal request. Counted: cases tried, crashes
(the process died), hangs (the normal request after the case got no answer within the per-request timeout) and
unanswered requests (a well-framed request of the case that never got a response). Targets: all three 0 over at
least 1,000 cases. The cases come from a seeded generator, so a run is repeatable (`--seed`).

Escapes (generated code getting out of the sandbox: host files, unix sockets, the network, writes outside the
copy, an untrusted `-wrapper` flag) are counted by the sandbox's containment probe, run once after the fuzzing.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

DEFAULT_CASES = 1000
DEFAULT_TIMEOUT_S = 10.0
STUB_SOURCE = """\
#include <stddef.h>

/* Adds two numbers. */
int add(int a, int b) {
    return a + b;
}

int clamp(int value, int low, int high) {
    return 0;
}
"""
LIVENESS_LINE = 3  # inside `add`
# A cra.toml whose models do not exist: an action a fuzz case manages to start fails fast instead of loading one.
FUZZ_CONFIG = "".join(f'[models.{role}]\nmodel = "/nonexistent/cra-robustness.gguf"\n\n'
                      for role in ("router", "reasoning", "coding", "summarization", "validation"))
# `shutdown` and `exit` end the session by design; they are exercised by the framing tests, not fuzzed.
SESSION_ENDING = frozenset({"shutdown", "exit"})


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


# -- a raw client -------------------------------------------------------------------------------------------------
class LspProcess:
    """A language-server subprocess driven over raw stdio bytes; answers the server's own requests like an editor
    that refuses edits. Thread-safe for one driver thread (responses are read on a background thread)."""

    def __init__(self, command: Sequence[str], cwd: str | Path | None = None, env: dict[str, str] | None = None,
                 stderr: IO[bytes] | int = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                        cwd=cwd, env=env)
        self._write_lock = threading.Lock()
        self._changed = threading.Condition()
        self.responses: dict[Any, dict[str, Any]] = {}
        self.null_id_errors: list[dict[str, Any]] = []  # errors for frames/messages the server could not read
        self.notifications: list[dict[str, Any]] = []
        self.stream_error: str | None = None  # the server wrote something that is not a valid frame
        self._next_id = 0
        threading.Thread(target=self._read, name="lsp-reader", daemon=True).start()

    # sending
    def send_bytes(self, data: bytes) -> bool:
        with self._write_lock:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(data)
                self.process.stdin.flush()
                return True
            except (BrokenPipeError, OSError, ValueError):
                return False

    def send(self, message: Any) -> bool:
        return self.send_bytes(frame(message))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request_message(self, method: str, params: Any = None, *, with_params: bool = True) -> tuple[int, dict]:
        msg_id = self.new_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if with_params:
            message["params"] = params
        return msg_id, message

    def request(self, method: str, params: Any = None, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any] | None:
        msg_id, message = self.request_message(method, params)
        self.send(message)
        return self.wait_for(msg_id, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # receiving
    def wait_for(self, msg_id: Any, timeout: float) -> dict[str, Any] | None:
        missing = self.wait_all([msg_id], timeout)
        return None if missing else self.responses[msg_id]

    def wait_all(self, ids: Iterable[Any], timeout: float) -> set[Any]:
        """The ids still unanswered after up to `timeout` seconds (empty when all arrived)."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                missing = wanted - self.responses.keys()
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0 or not self.alive:
                    return missing
                self._changed.wait(min(remaining, 0.2))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while True:
                length = None
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    if not line.strip():
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    self.stream_error = "a frame without Content-Length"
                    return
                self._dispatch(json.loads(stream.read(length)))
        except (ValueError, OSError) as exc:
            self.stream_error = f"unreadable output from the server: {exc}"
        finally:
            with self._changed:
                self._changed.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:  # the server asks the editor something
            method = message["method"]
            if method == "workspace/applyEdit":
                result: Any = {"applied": False, "failureReason": "robustness fuzzing: edits are refused"}
            elif method == "workspace/configuration":
                result = [None for _ in (message.get("params") or {}).get("items", [])]
            else:
                result = None
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        with self._changed:
            if "method" in message:
                self.notifications.append(message)
            elif message.get("id") is None:
                self.null_id_errors.append(message)
            else:
                self.responses[message["id"]] = message
            self._changed.notify_all()

    def close(self, timeout: float = 10.0) -> int | None:
        """Shut down politely, kill when that does not work; the exit code."""
        if self.alive:
            msg_id, message = self.request_message("shutdown", with_params=False)
            self.send(message)
            self.wait_for(msg_id, timeout)
            self.send({"jsonrpc": "2.0", "method": "exit"})
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        return self.process.wait()


# -- a session: a workspace, an initialized server, a liveness probe ----------------------------------------------
class Session:
    """A `cra lsp` process serving a small workspace with one open C document."""

    def __init__(self, command: Sequence[str], workspace: Path, env: dict[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.workspace = workspace
        self.timeout = timeout
        self.uri = (workspace / "math.c").as_uri()
        self.server = LspProcess(command, cwd=workspace, env=env)
        answer = self.server.request("initialize", {"processId": None, "rootUri": workspace.as_uri(),
                                                    "capabilities": {}}, timeout=max(timeout, 60.0))
        if answer is None or "result" not in answer:
            code = self.server.close()
            raise RuntimeError(f"the server did not initialize (answer {answer}, exit code {code})")
        self.server.notify("initialized", {})
        self.server.notify("textDocument/didOpen", {"textDocument": {
            "uri": self.uri, "languageId": "c", "version": 1, "text": STUB_SOURCE}})

    def liveness(self) -> dict[str, Any] | None:
        """A code action request on the open document: its answer, or None when none came in time."""
        position = {"line": LIVENESS_LINE, "character": 0}
        return self.server.request("textDocument/codeAction", {
            "textDocument": {"uri": self.uri}, "range": {"start": position, "end": position},
            "context": {"diagnostics": []}}, timeout=self.timeout)

    def close(self) -> int | None:
        return self.server.close()


def make_workspace(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "math.c").write_text(STUB_SOURCE)
    (root / "cra.toml").write_text(FUZZ_CONFIG)
    return root


class Case(msgspec.Struct, kw_only=True):
    """One fuzz case: bytes to send (in chunks, as a client may split them) and the request ids they carry in
    well-formed frames (each must be answered)."""

    kind: str
    chunks: list[bytes]
    expected_ids: list[Any] = []


class CaseOutcome(msgspec.Struct, kw_only=True):
    crashed: bool = False
    hung: bool = False
    unanswered: list[Any] = []
    liveness_error: str | None = None  # the normal request was answered with an error


def run_case(session: Session, case: Case) -> CaseOutcome:
    """Send the case, then a normal request; what went wrong."""
    server = session.server
    for chunk in case.chunks:
        server.send_bytes(chunk)
    answer = session.liveness()
    if not server.alive:
        return CaseOutcome(crashed=True, unanswered=sorted(server.wait_all(case.expected_ids, 0), key=str))
    if answer is None:
        return CaseOutcome(hung=True, unanswered=sorted(server.wait_all(case.expected_ids, 0), key=str))
    missing = server.wait_all(case.expected_ids, session.timeout)
    error = answer.get("error")
    return CaseOutcome(unanswered=sorted(missing, key=str),
                       liveness_error=json.dumps(error)[:300] if error is not None else None)


# -- case generation (seeded) -------------------------------------------------------------------------------------
KEYS = ("uri", "textDocument", "position", "range", "start", "end", "line", "character", "context", "only",
        "diagnostics", "command", "arguments", "text", "version", "languageId", "contentChanges", "settings",
        "symbol", "doc", "taskId", "instruction", "changes", "type", "capabilities", "rootUri", "processId",
        "initializationOptions", "token", "id", "value", "title", "kind", "data", "cra", "trust",
        "maxDocumentBytes", "config", "configFile", "event", "added", "removed")
STRINGS = ("", "file:///", "file:///etc/passwd", "file:///dev/zero", "untitled:Untitled-1", "c", "cra.implement",
           "cra.trust", "cra.insertDoc", "add", "\x00", "\ud800", "../../x.c", "é" * 10, "refactor", "a" * 300,
           "file:///nonexistent/x.c", "http://example.com/x.c", "file://host/share/x.c", "%00", "file:///tmp/%2e%2e/x.c")
NUMBERS = (0, 1, -1, 2**31, -(2**31) - 1, 2**63, 10**30, 0.5, -0.0, 1e308)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice([None, True, False, rng.choice(NUMBERS), rng.randint(-5, 50), rng.choice(STRINGS),
                           "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 12)))])
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def templates(uri: str) -> dict[str, Any]:
    """Valid params per method (the base that mutations start from)."""
    position = {"line": LIVENESS_LINE, "character": 4}
    span = {"start": position, "end": position}
    document = {"uri": uri}
    argument = {"uri": uri.replace("math.c", "missing.c"), "symbol": "add", "version": 1}
    return {
        "initialize": {"processId": None, "capabilities": {},
                       "initializationOptions": {"trust": False, "maxDocumentBytes": 100_000,
                                                 "config": {"validation": {"max_rounds": 0}}}},
        "initialized": {},
        "textDocument/didOpen": {"textDocument": {"uri": uri.replace("math.c", "other.c"), "languageId": "c",
                                                  "version": 1, "text": STUB_SOURCE}},
        "textDocument/didChange": {"textDocument": {**document, "version": 2},
                                   "contentChanges": [{"range": span, "text": " "}]},
        "textDocument/didClose": {"textDocument": {"uri": uri.replace("math.c", "other.c")}},
        "textDocument/codeAction": {"textDocument": document, "range": span, "context": {"diagnostics": []}},
        "codeAction/resolve": {"title": "t", "kind": "refactor.rewrite.cra.implement"},
        "textDocument/hover": {"textDocument": document, "position": position},
        "workspace/didChangeConfiguration": {"settings": {"cra": {
            "maxDocumentBytes": 100_000, "configFile": None, "config": {"models": {"coding": {"model": "x.gguf"}}}}}},
        "workspace/didChangeWatchedFiles": {"changes": [{"uri": uri.replace("math.c", "cra.toml"), "type": 2}]},
        "workspace/didChangeWorkspaceFolders": {"event": {"added": [], "removed": []}},
        "window/workDoneProgress/cancel": {"token": "x"},
        "$/setTrace": {"value": "off"},
        "$/cancelRequest": {"id": 1},
        "workspace/executeCommand": {"command": "cra.implement", "arguments": [argument]},
    }


def mutate(rng: random.Random, value: Any) -> Any:
    """The value with one random subtree replaced, removed or retyped."""
    if isinstance(value, dict) and value and rng.random() < 0.75:
        key = rng.choice(list(value))
        out = dict(value)
        action = rng.random()
        if action < 0.2:
            del out[key]
        elif action < 0.6:
            out[key] = mutate(rng, value[key])
        else:
            out[key] = random_json(rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.75:
        index = rng.randrange(len(value))
        out_list = list(value)
        out_list[index] = mutate(rng, value[index])
        return out_list
    return random_json(rng)


def method_params(rng: random.Random, method: str, uri: str) -> Any:
    base = templates(uri).get(method, {})
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.35:
        return random_json(rng)
    return mutate(rng, base)


def _message_case(rng: random.Random, session_ids: Callable[[], int], methods: Sequence[str],
                  requests: frozenset[str], uri: str, kind: str) -> Case:
    method = rng.choice(methods)
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if rng.random() < 0.9:
        message["params"] = method_params(rng, method, uri)
    expected: list[Any] = []
    if method in requests:
        message["id"] = session_ids()
        expected.append(message["id"])
    return Case(kind=kind, chunks=[frame(message)], expected_ids=expected)


def _command_case(rng: random.Random, session_ids: Callable[[], int], commands: Sequence[str], uri: str) -> Case:
    command = rng.choice([*commands, "cra.unknown", ""])
    argument = {"uri": rng.choice([uri.replace("math.c", "missing.c"), "file:///nonexistent/x.c", "file:///"]),
                "symbol": "add", "version": 1}
    roll = rng.random()
    if roll < 0.3:
        arguments: Any = [mutate(rng, argument)]
    elif roll < 0.5:
        arguments = [random_json(rng) for _ in range(rng.randint(0, 3))]
    elif roll < 0.6:
        arguments = random_json(rng)
    else:
        arguments = [mutate(rng, argument), *([random_json(rng)] if rng.random() < 0.3 else [])]
    params: Any = {"command": command, "arguments": arguments}
    if rng.random() < 0.1:
        params = mutate(rng, params)
    msg_id = session_ids()
    return Case(kind="command", chunks=[frame({"jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand",
                                               "params": params})], expected_ids=[msg_id])


def _split(rng: random.Random, data: bytes) -> list[bytes]:
    if len(data) < 2 or rng.random() < 0.5:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _framing_case(rng: random.Random, session_ids: Callable[[], int], uri: str) -> Case:
    msg_id = session_ids()
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover",
                       "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}}}).encode()
    good = {"Content-Length: %d", "content-length: %d", "CONTENT-LENGTH:%d", "Content-Length:   %d  "}
    variant = rng.choice([*sorted(good), "", "Content-Length: 0", "Content-Length: -%d", "Content-Length: abc",
                          "Content-Length: 1000000000000", "Content-Length: 99999999999999999999999999",
                          "Content-Length: %d.0", "Content-Length %d", "Content-Type: application/json",
                          "X: %d", "Content-Length: 0x10"])
    header = (variant.replace("%d", str(len(body)))).encode()
    extra = rng.choice([b"", b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n", b"X-Junk\r\n"])
    if variant in good:
        data = header + b"\r\n" + extra + b"\r\n" + body
        expected = [msg_id]
    else:
        data = header + b"\r\n" + extra + b"\r\n" + body
        expected = []
    prefix = rng.choice([b"", b"\r\n", bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))),
                         b"garbage without newline"])
    if prefix and not prefix.endswith(b"\n") and rng.random() < 0.5:
        expected = []  # glued to the header line: that frame is junk, the next header resynchronises
        data = prefix + data
    elif prefix:
        data = prefix + b"\r\n" + data if not prefix.endswith(b"\n") else prefix + data
    if rng.random() < 0.2:  # a length shorter than the body: a parse error, then the rest is junk
        short = rng.randint(1, len(body) - 1)
        data = b"Content-Length: %d\r\n\r\n" % short + body
        expected = []
    return Case(kind="framing", chunks=_split(rng, data), expected_ids=expected)


def _body_case(rng: random.Random, session_ids: Callable[[], int]) -> Case:
    msg_id = session_ids()
    bodies = [
        b"{", b"}", b"null", b"[]", b"[1,2]", b"42", b'"x"', b"\xff\xfe\x00", b"{\"jsonrpc\": \"2.0\"",
        b'{"jsonrpc":"2.0","id":%d,"method":"textDocument/hover","params":"\xff"}' % msg_id,
        b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
        json.dumps({"jsonrpc": "1.0", "id": msg_id, "method": "textDocument/hover"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": [msg_id], "method": "textDocument/hover"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": True, "method": "textDocument/hover"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": ["x"]}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "no/suchMethod", "params": {}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": {"applied": "yes"}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": 5}).encode(),
        bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
    ]
    index = rng.randrange(len(bodies))
    body = bodies[index]
    expected = [msg_id] if index in (12, 15, 16) else []  # the ones carrying a readable id
    return Case(kind="body", chunks=[b"Content-Length: %d\r\n\r\n" % len(body) + body], expected_ids=expected)


def hostile_text(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "int f(void) {\x00 return 0; }\n"
    if kind == 1:
        return "{" * rng.randint(1000, 20000) + "}" * rng.randint(0, 20000)
    if kind == 2:
        return "int f(int a) { return a; }\n" * rng.randint(40_000, 60_000)  # ~1.2-1.6 MB: over the default cap
    if kind == 3:
        return "".join(chr(rng.randint(1, 0x10FFFF)) for _ in range(rng.randint(1, 400))).replace("\ud800", "")
    if kind == 4:
        return "#define X(" + "(" * 5000 + "\n" + STUB_SOURCE
    return STUB_SOURCE.replace("return", "\ud800return") if rng.random() < 0.5 else STUB_SOURCE * 50


def _document_case(rng: random.Random, session_ids: Callable[[], int], workspace_uri: str, number: int) -> Case:
    uri = f"{workspace_uri}/fuzz{number}.{rng.choice(['c', 'h', 'txt', 'C'])}"
    text = hostile_text(rng)
    position = {"line": rng.randint(0, 5), "character": rng.randint(0, 5)}
    chunks = [frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "c", "version": 1, "text": text}}})]
    if rng.random() < 0.5:
        chunks.append(frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": position, "end": position}, "text": hostile_text(rng)[:2000]}]}}))
    expected = []
    for method, params in (("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": {
            "start": position, "end": position}, "context": {"diagnostics": []}}),
            ("textDocument/hover", {"textDocument": {"uri": uri}, "position": position})):
        msg_id = session_ids()
        expected.append(msg_id)
        chunks.append(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
    chunks.append(frame({"jsonrpc": "2.0", "method": "textDocument/didClose", "params": {
        "textDocument": {"uri": uri}}}))
    return Case(kind="document", chunks=chunks, expected_ids=expected)


def registered_methods() -> tuple[list[str], frozenset[str], list[str]]:
    """(every method cra's server handles but shutdown/exit, the requests among them, the cra.* commands)."""
    from lsprotocol import types

    from cra.server.app import create_server
    from cra.server.pygls_compat import registered

    handled, commands = registered(create_server())
    methods = sorted(m for m in {*handled, "$/cancelRequest"} if m not in SESSION_ENDING)
    requests = frozenset(m for m in methods
                         if getattr(types.METHOD_TO_TYPES.get(m, (None,))[0], "__name__", "").endswith("Request"))
    return methods, requests, sorted(commands)


def generate_cases(count: int, seed: int, uri: str, workspace_uri: str, ids: Callable[[], int]) -> Iterable[Case]:
    rng = random.Random(seed)
    methods, requests, commands = registered_methods()
    for number in range(count):
        roll = rng.random()
        if roll < 0.35:
            yield _message_case(rng, ids, methods, requests, uri, "params")
        elif roll < 0.55:
            yield _command_case(rng, ids, commands, uri)
        elif roll < 0.75:
            yield _framing_case(rng, ids, uri)
        elif roll < 0.9:
            yield _body_case(rng, ids)
        else:
            yield _document_case(rng, ids, workspace_uri, number)


# -- the benchmark ------------------------------------------------------------------------------------------------
class Report(msgspec.Struct, kw_only=True):
    cases: int
    crashes: int
    hangs: int
    unanswered: int
    liveness_errors: int
    escape_attempts: int  # the containment probe's attempts (0 when it could not run)
    escapes: int | None  # how many got out; None when the probe could not run
    containment: str  # the sandbox's isolation, or why the probe did not run
    by_kind: dict[str, int]
    seed: int
    timeout_s: float
    seconds: float
    failures: list[dict[str, Any]]  # the first few failing cases, to reproduce


def server_command() -> list[str]:
    return [sys.executable, "-m", "cra.clients.cli", "lsp", "--stdio"]


def measure(cases: int, seed: int, timeout: float, command: Sequence[str] | None = None,
            on_case: Callable[[int], None] | None = None, probe: bool = True) -> Report:
    started = time.monotonic()
    crashes = hangs = unanswered = liveness_errors = 0
    by_kind: dict[str, int] = {}
    failures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cra-robustness-") as tmp:
        workspace = make_workspace(Path(tmp) / "ws")
        command = list(command or server_command())
        session = Session(command, workspace, timeout=timeout)
        counter = iter(range(10**6, 10**9))
        try:
            uri, workspace_uri = session.uri, workspace.as_uri()
            for index, case in enumerate(generate_cases(cases, seed, uri, workspace_uri, lambda: next(counter))):
                by_kind[case.kind] = by_kind.get(case.kind, 0) + 1
                outcome = run_case(session, case)
                crashes += outcome.crashed
                hangs += outcome.hung
                unanswered += len(outcome.unanswered)
                liveness_errors += outcome.liveness_error is not None
                if outcome.crashed or outcome.hung or outcome.unanswered or outcome.liveness_error:
                    if len(failures) < 10:
                        failures.append({"case": index, "kind": case.kind, **msgspec.to_builtins(outcome),
                                         "sent": b"".join(case.chunks)[:400].decode("utf-8", "replace")})
                    if outcome.crashed or outcome.hung:  # start over with a fresh server
                        session.server.process.kill()
                        session.close()
                        session = Session(command, workspace, timeout=timeout)
                if on_case:
                    on_case(index)
        finally:
            session.close()
    attempts, escapes, containment = probe_containment() if probe else (0, None, "not probed (--no-containment)")
    return Report(cases=cases, crashes=crashes, hangs=hangs, unanswered=unanswered, liveness_errors=liveness_errors,
                  escape_attempts=attempts, escapes=escapes, containment=containment, by_kind=by_kind, seed=seed,
                  timeout_s=timeout, seconds=round(time.monotonic() - started, 1), failures=failures)


def probe_containment() -> tuple[int, int | None, str]:
    """(attempts, escapes, isolation) from the sandbox's containment probe; (0, None, why) when it cannot run."""
    try:
        from cra.pipeline.sandbox.containment import containment_probe
    except ImportError:
        return 0, None, "not probed: this installation has no sandbox containment probe"
    try:
        result = containment_probe()
    except Exception as exc:  # no gcc, no namespaces: say so instead of failing the fuzz figures
        return 0, None, f"not probed: {type(exc).__name__}: {exc}"
    escaped = [str(a["name"]) for a in result["attempts"] if a["escaped"]]  # type: ignore[attr-defined, index]
    isolation = str(result["isolation"]) + (f"; escaped: {', '.join(escaped)}" if escaped else "")
    return int(result["tried"]), int(result["escaped"]), isolation  # type: ignore[call-overload]


def markdown(report: Report) -> str:
    rows = [("cases tried", report.cases), ("crashes (process died)", report.crashes),
            (f"hangs (no answer within {report.timeout_s:g} s)", report.hangs),
            ("unanswered requests", report.unanswered), ("liveness answered with an error", report.liveness_errors),
            ("escapes (containment probe)", "not probed" if report.escapes is None
             else f"{report.escapes} of {report.escape_attempts} attempts"),
            ("sandbox", report.containment), ("seconds", report.seconds)]
    lines = ["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    lines.append("")
    lines.append("cases by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(report.by_kind.items())))
    for failure in report.failures:
        lines.append(f"- failed case {failure['case']} ({failure['kind']}): {json.dumps(failure)[:400]}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help=f"fuzz cases to run (default {DEFAULT_CASES})")
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds a request may take before it counts as a hang (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--no-containment", action="store_true",
                        help="skip the sandbox containment probe (escapes are then not counted)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    if args.cases < 1:
        print("cra bench robustness: --cases must be at least 1", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("cra bench robustness: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        report = measure(args.cases, args.seed, args.timeout, probe=not args.no_containment)
    except RuntimeError as exc:
        print(f"cra bench robustness: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(msgspec.to_builtins(report)) if args.json else markdown(report))
    return 0 if report.crashes == report.hangs == report.unanswered == 0 and not report.escapes else 1


if __name__ == "__main__":  # pragma: no cover
    namespace = argparse.ArgumentParser()
    add_arguments(namespace)
    sys.exit(main(namespace.parse_args()))
