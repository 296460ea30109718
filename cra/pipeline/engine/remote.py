"""The engine interface over an OpenAI-compatible server with per-request LoRA (standard library HTTP only).

Two ways a server picks the adapter for a request (`adapter_mode`):

- ``"lora-field"`` — llama.cpp's `llama-server` started with `--lora FILE ...`: each request carries
  ``"lora": [{"id": n, "scale": s}, ...]``; ids come from ``GET /lora-adapters`` (matched by file path, then file
  name). Every known adapter is sent, unused ones at scale 0, so a base call is a base call whatever the server's
  default scales are.
- ``"model-name"`` — vLLM with ``--enable-lora --lora-modules NAME=PATH`` (or llama-cpp-python's server with one
  model alias per adapter): the adapter is chosen by using its name as the request's ``model``; the base model is
  requested by `ModelSpec.name`. One adapter per call, at the scale the server loaded it with.

Generation always streams (SSE) so that TTFT is measured, text reaches `on_text` as it comes, and a cancel or
deadline closes the connection at once. Every socket operation has a timeout.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from .cancel import CancelToken, Deadline
from .decisions import best_label
from .errors import (
    AdapterMismatchError,
    Cancelled,
    EngineError,
    InvalidRequestError,
    Timeout,
)
from .grammar import gbnf_for, structured_result
from .meter import decoded_token
from .types import AdapterSpec, CallStats, Decision, FinishReason, Generation, GenParams, Message, ModelSpec

T = TypeVar("T")

AdapterMode = Literal["lora-field", "model-name"]
StructuredMode = Literal["grammar", "json_object", "json_schema"]
_WATCH_S = 0.02  # how often a running request checks its cancel token / deadline


class RemoteError(EngineError):
    """The engine server could not be reached, refused the request, or answered something unusable."""


class _Stopped(Exception):
    """The watcher closed the connection because the call was cancelled or timed out."""


class RemoteEngine:
    """An `Engine` served by a remote OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        adapter_mode: AdapterMode = "lora-field",
        *,
        structured_mode: StructuredMode = "grammar",
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        top_logprobs: int = 20,
    ) -> None:
        """`structured_mode`: how a JSON shape is requested — ``"grammar"`` (GBNF in a ``grammar`` field:
        llama-server, llama-cpp-python), ``"json_object"`` (``response_format`` with a ``schema``: the llama.cpp
        family) or ``"json_schema"`` (OpenAI's ``response_format``: vLLM)."""
        if adapter_mode not in ("lora-field", "model-name"):
            raise ValueError(f"adapter_mode must be 'lora-field' or 'model-name', got {adapter_mode!r}")
        if structured_mode not in ("grammar", "json_object", "json_schema"):
            raise ValueError(
                f"structured_mode must be 'grammar', 'json_object' or 'json_schema', got {structured_mode!r}"
            )
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("connect_timeout_s and read_timeout_s must be positive")
        if not 1 <= top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be in 1..20 (the OpenAI limit), got {top_logprobs}")
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be an http(s) URL like http://127.0.0.1:8080, got {base_url!r}")
        self.base_url = base_url
        self.api_key = api_key
        self.adapter_mode = adapter_mode
        self.structured_mode = structured_mode
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.top_logprobs = top_logprobs
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        # Accept ".../v1" as well as the server root: the OpenAI routes are under /v1, llama-server's extras at /.
        root = parsed.path.rstrip("/")
        self._root = root[: -len("/v1")] if root.endswith("/v1") else root
        self._lora_ids: list[tuple[int, str]] | None = None  # (id, server-side path) from GET /lora-adapters
        self._lora_lock = threading.Lock()
        self._tokenize_route: str | None = None

    # ------------------------------------------------------------------ engine calls (documented on `Engine`)

    def generate(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        params: GenParams | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
        timeout_s: float | None = None,
    ) -> Generation:
        params = params or GenParams()
        return self._chat(model, adapters, messages, params, cancel, on_text, timeout_s, extra={})

    def structured(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        struct_type: type[T],
        params: GenParams | None = None,
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> tuple[T, Generation]:
        params = params or GenParams()
        name = getattr(struct_type, "__name__", str(struct_type))
        schema = msgspec.json.schema(struct_type)
        if self.structured_mode == "grammar":
            extra: dict[str, Any] = {"grammar": gbnf_for(struct_type)}  # type: ignore[arg-type]  # a class is hashable
        elif self.structured_mode == "json_object":
            extra = {"response_format": {"type": "json_object", "schema": schema}}
        else:
            extra = {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema,
                                                                                 "strict": True}}}
        # The grammar decides where the output ends: stop sequences could cut the JSON.
        params = msgspec.structs.replace(params, stop=[])
        gen = self._chat(model, adapters, messages, params, cancel, None, timeout_s, extra=extra)
        return structured_result(gen, struct_type, params.max_tokens)

    def decide(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        labels: Sequence[str],
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> Decision:
        # One next-token step with top-k logprobs; each label gets the mass of the top tokens that start it,
        # renormalized over the labels (a label none of whose first tokens is in the top k gets 0).
        _check_labels(labels)
        deadline = Deadline(cancel, timeout_s)
        body = self._body(model, adapters, messages)
        body.update(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs, stream=False)
        t0 = time.perf_counter()
        reply = self._json_call("POST", "/v1/chat/completions", body, deadline)
        elapsed = time.perf_counter() - t0
        try:
            top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            candidates = [(str(item["token"]), float(item["logprob"])) for item in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RemoteError(
                "the server's reply has no top_logprobs for the next token: it must support "
                f"'logprobs'/'top_logprobs' on chat completions ({type(exc).__name__}: {exc})"
            ) from exc
        probs = _label_probs(candidates, labels)
        if probs is None:
            shown = ", ".join(repr(t) for t, _ in candidates[:8])
            raise RemoteError(
                f"none of the labels {list(labels)!r} starts any of the server's top {len(candidates)} next tokens "
                f"({shown}, ...): the prompt does not steer the model towards the labels"
            )
        label, prob = best_label(probs)
        usage = reply.get("usage") or {}
        stats = CallStats(
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=1,
            cached_tokens=_cached_tokens(usage),
            prefill_s=elapsed,
            ttft_s=elapsed,
        )
        return Decision(label=label, prob=prob, probs=probs, stats=stats)

    def decide_batch(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        prefix_messages: Sequence[Message],
        questions: Sequence[str],
        labels: Sequence[str] = ("yes", "no"),
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> list[Decision]:
        # One request per question (the server's prefix cache keeps the shared prefix); one deadline for all.
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        expires = None if timeout_s is None else time.monotonic() + timeout_s
        results = []
        for question in questions:
            left = None if expires is None else max(expires - time.monotonic(), 1e-3)
            messages = [*prefix_messages, Message(role="user", content=question)]
            results.append(self.decide(model, adapters, messages, labels, cancel=cancel, timeout_s=left))
        return results

    def count_tokens(self, model: ModelSpec, text: str) -> int:
        if not text:
            return 0
        name = self._model_name(model, ())
        deadline = Deadline(None, self.read_timeout_s)
        routes = [self._tokenize_route] if self._tokenize_route else ["/tokenize", "/extras/tokenize"]
        last: RemoteError | None = None
        for route in routes:
            body = {"model": name, "content": text, "prompt": text, "input": text, "add_special": False}
            try:
                reply = self._json_call("POST", route, body, deadline)
            except RemoteError as exc:
                if getattr(exc, "status", None) in (404, 405, 422):
                    last = exc
                    continue
                raise
            if "count" in reply:
                count = int(reply["count"])
            elif isinstance(reply.get("tokens"), list):
                count = len(reply["tokens"])
            else:
                raise RemoteError(f"POST {route} answered without 'tokens' or 'count': {str(reply)[:200]}")
            self._tokenize_route = route
            return count
        raise RemoteError(f"the server has no tokenize endpoint (/tokenize or /extras/tokenize): {last}")

    def lora_adapters(self) -> list[tuple[int, str]]:
        """The server's (id, path) adapter list (`GET /lora-adapters`); empty when the server has none."""
        with self._lora_lock:
            if self._lora_ids is None:
                try:
                    reply = self._json_call("GET", "/lora-adapters", None, Deadline(None, self.read_timeout_s))
                except RemoteError as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
                    reply = []
                if not isinstance(reply, list):
                    raise RemoteError(f"GET /lora-adapters answered {str(reply)[:200]}, expected a list")
                self._lora_ids = [(int(item["id"]), str(item.get("path", ""))) for item in reply]
            return list(self._lora_ids)

    def close(self) -> None:
        """Nothing is held between calls (one connection per request)."""

    # ------------------------------------------------------------------ requests

    def _model_name(self, model: ModelSpec, adapters: Sequence[AdapterSpec]) -> str:
        if self.adapter_mode == "lora-field" or not adapters:
            return model.name
        if len(adapters) > 1:
            raise InvalidRequestError(
                f"adapter_mode 'model-name' serves one adapter per request, got {[a.name for a in adapters]}"
            )
        if adapters[0].scale != 1.0:
            raise InvalidRequestError(
                f"adapter_mode 'model-name' applies adapter {adapters[0].name} at the scale the server loaded it "
                f"with; a per-request scale ({adapters[0].scale}) needs adapter_mode 'lora-field'"
            )
        return adapters[0].name

    def _lora_field(self, adapters: Sequence[AdapterSpec]) -> list[dict[str, Any]] | None:
        known = self.lora_adapters()
        if not known:
            if adapters:
                raise AdapterMismatchError(
                    adapters[0].path, self.base_url,
                    "the server has no LoRA adapters (GET /lora-adapters is empty or missing): start llama-server "
                    "with --lora FILE for each adapter, or use adapter_mode 'model-name' for vLLM-style servers",
                )
            return None
        scales = {server_id: 0.0 for server_id, _ in known}
        for adapter in adapters:
            scales[_match_adapter(adapter, known, self.base_url)] = float(adapter.scale)
        return [{"id": server_id, "scale": scale} for server_id, scale in scales.items()]

    def _body(self, model: ModelSpec, adapters: Sequence[AdapterSpec], messages: Sequence[Message]) -> dict[str, Any]:
        if not messages:
            raise InvalidRequestError("a chat call needs at least one message")
        body: dict[str, Any] = {
            "model": self._model_name(model, adapters),
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            # llama.cpp-family servers may default to a repeat penalty; the engine contract has none (greedy at
            # temperature 0 must match the local engine). Other servers ignore the field.
            "repeat_penalty": 1.0,
        }
        if self.adapter_mode == "lora-field":
            lora = self._lora_field(adapters)
            if lora is not None:
                body["lora"] = lora
        return body

    def _chat(
        self,
        model: ModelSpec,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        params: GenParams,
        cancel: CancelToken | None,
        on_text: Callable[[str], None] | None,
        timeout_s: float | None,
        *,
        extra: Mapping[str, Any],
    ) -> Generation:
        if params.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
        if params.temperature < 0:
            raise InvalidRequestError(f"temperature must be >= 0, got {params.temperature}")
        deadline = Deadline(cancel, timeout_s if timeout_s is not None else params.timeout_s)
        body = self._body(model, adapters, messages)
        body.update(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            seed=params.seed,
            stream=True,
            stream_options={"include_usage": True},
        )
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(extra)
        stats = CallStats()
        pieces: list[str] = []
        finish: FinishReason = "length"
        t0 = time.perf_counter()
        first: float | None = None
        try:
            for event in self._stream("/v1/chat/completions", body, deadline):
                usage = event.get("usage")
                if usage:
                    stats.tokens_in = int(usage.get("prompt_tokens") or 0)
                    stats.tokens_out = int(usage.get("completion_tokens") or stats.tokens_out)
                    stats.cached_tokens = _cached_tokens(usage)
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        if first is None:
                            first = time.perf_counter()
                        pieces.append(text)
                        if not usage:
                            stats.tokens_out += 1  # llama.cpp servers send one chunk per token
                        decoded_token()  # the decoding speed, for whoever shows progress (meter.py)
                        if on_text is not None:
                            on_text(text)
                    reason = choice.get("finish_reason")
                    if reason:
                        finish = "length" if reason == "length" else "stop"
        except (Cancelled, Timeout) as exc:
            stats.finish_reason = "timeout" if isinstance(exc, Timeout) else "cancelled"
            exc.stats = stats  # type: ignore[union-attr]
            exc.partial_text = "".join(pieces)  # type: ignore[union-attr]
            raise
        end = time.perf_counter()
        stats.ttft_s = (first if first is not None else end) - t0
        stats.prefill_s = stats.ttft_s
        stats.decode_s = end - (first if first is not None else end)
        stats.finish_reason = finish
        return Generation(text="".join(pieces), stats=stats)

    # ------------------------------------------------------------------ HTTP

    def _connect(self, deadline: Deadline) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
        except OSError as exc:
            raise RemoteError(f"cannot reach the engine server at {self.base_url}: {exc}") from exc
        conn.sock.settimeout(self.read_timeout_s)
        return conn

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _send(self, method: str, route: str, body: Any, deadline: Deadline) -> tuple[Any, Any, _Watcher]:
        deadline.check()
        conn = self._connect(deadline)
        watcher = _Watcher(conn, deadline)
        payload = None if body is None else json.dumps(body).encode("utf-8")
        try:
            conn.request(method, self._root + route, body=payload, headers=self._headers())
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            watcher.stop()
            conn.close()
            watcher.raise_if_stopped()
            raise self._transport_error(method, route, exc) from exc
        if response.status >= 400:
            detail = response.read(4096).decode("utf-8", errors="replace")
            watcher.stop()
            conn.close()
            error = RemoteError(f"{method} {route} failed with HTTP {response.status}: {_error_detail(detail)}")
            error.status = response.status  # type: ignore[attr-defined]
            raise error
        return conn, response, watcher

    def _json_call(self, method: str, route: str, body: Any, deadline: Deadline) -> Any:
        conn, response, watcher = self._send(method, route, body, deadline)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            watcher.raise_if_stopped()
            raise self._transport_error(method, route, exc) from exc
        finally:
            watcher.stop()
            conn.close()
        watcher.raise_if_stopped()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RemoteError(f"{method} {route} answered something that is not JSON: {raw[:200]!r}") from exc

    def _stream(self, route: str, body: Any, deadline: Deadline) -> Iterator[dict[str, Any]]:
        """Server-sent events of a streaming completion, as parsed JSON objects, until `[DONE]` or the end."""
        conn, response, watcher = self._send("POST", route, body, deadline)
        try:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    watcher.raise_if_stopped()
                    raise self._transport_error("POST", route, exc) from exc
                if not line:
                    watcher.raise_if_stopped()
                    return
                text = line.decode("utf-8", errors="replace").strip()
                if not text.startswith("data:"):
                    continue  # blank separators, comments/pings (": ping"), event names
                data = text[len("data:"):].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError as exc:
                    raise RemoteError(f"the server streamed an event that is not JSON: {data[:200]!r}") from exc
                if isinstance(event, dict) and "error" in event:
                    raise RemoteError(f"the server reported an error mid-stream: {_error_detail(json.dumps(event))}")
                yield event
                watcher.raise_if_stopped()
        finally:
            watcher.stop()
            conn.close()

    def _transport_error(self, method: str, route: str, exc: BaseException) -> RemoteError:
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return RemoteError(
                f"{method} {route}: the server at {self.base_url} sent nothing for {self.read_timeout_s:g} s"
            )
        return RemoteError(f"{method} {route}: connection to {self.base_url} failed: {exc}")


class _Watcher:
    """Closes the request's socket as soon as the call is cancelled or its deadline passes (wakes a blocked read)."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: Deadline) -> None:
        self._conn = conn
        self._deadline = deadline
        self._done = threading.Event()
        self.fired = False
        self._thread: threading.Thread | None = None
        if deadline.cancel is not None or deadline.timeout_s is not None:
            self._thread = threading.Thread(target=self._run, name="cra-remote-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(_WATCH_S):
            if self._deadline.should_stop():
                self.fired = True
                sock = self._conn.sock
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    def stop(self) -> None:
        self._done.set()

    def raise_if_stopped(self) -> None:
        """Raise Cancelled/Timeout if the call must stop (whether or not the watcher got to it first)."""
        if self.fired or self._deadline.should_stop():
            self._deadline.check()
            raise Cancelled("the call was cancelled")


def _check_labels(labels: Sequence[str]) -> None:
    if len(labels) < 2:
        raise InvalidRequestError(f"a decision needs at least two labels, got {list(labels)!r}")
    if len(set(labels)) != len(labels) or any(not label for label in labels):
        raise InvalidRequestError(f"decision labels must be distinct and non-empty, got {list(labels)!r}")


def _label_probs(candidates: Sequence[tuple[str, float]], labels: Sequence[str]) -> dict[str, float] | None:
    """Mass of the top tokens that begin exactly one label, renormalized over the labels; None if no mass."""
    mass = {label: 0.0 for label in labels}
    for token, logprob in candidates:
        if not token:
            continue
        owners = [label for label in labels if label.startswith(token)]
        if len(owners) == 1:  # a token that starts several labels says nothing about which one
            mass[owners[0]] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: value / total for label, value in mass.items()}


def _match_adapter(adapter: AdapterSpec, known: Sequence[tuple[int, str]], base_url: str) -> int:
    wanted = Path(adapter.path).expanduser()
    resolved = str(wanted.resolve())
    for server_id, path in known:
        if path and (path == adapter.path or str(Path(path).expanduser().resolve()) == resolved):
            return server_id
    by_name = [server_id for server_id, path in known if path and Path(path).name == wanted.name]
    if len(by_name) == 1:
        return by_name[0]
    listing = ", ".join(f"{server_id}: {path}" for server_id, path in known)
    raise AdapterMismatchError(
        adapter.path, base_url, f"the server has not loaded this adapter (its adapters are {listing})"
    )


def _cached_tokens(usage: Mapping[str, Any]) -> int:
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0


def _error_detail(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(data)[:300]
