"""One resident base model and its llama.cpp context: prefill, KV bookkeeping, batches, adapter switching.

A `ModelSession` owns the context of one base model, every adapter loaded for it, and `KVState`: what sequence 0
of the KV cache holds and under which adapter set. A cached prefix is reused only under the adapter set it was
computed with. The session's lock serializes calls on its context; `LocalEngine` keeps one session per model.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

from .adapter_layout import cpu_layout
from .cancel import Deadline
from .chat import ChatRenderer
from .decisions import best_label, label_first_tokens, label_probs
from .errors import (
    AdapterMismatchError,
    Cancelled,
    ContextOverflowError,
    DecodeError,
    EngineError,
    InvalidRequestError,
    ModelLoadError,
    Timeout,
)
from .ggufcheck import GGUFInfo, check_adapter_fits
from .meter import decoded_token
from .prefix import AdapterKey, KVState, adapter_key, common_prefix_len
from .sampling import TokenSampler
from .types import (
    AdapterSpec,
    CallStats,
    Decision,
    EngineStats,
    FinishReason,
    Generation,
    GenParams,
    Message,
    ModelSpec,
)

_log = logging.getLogger("cra.engine")
_DECODE_ABORTED = 2

# llama.cpp logs to stderr by default; keep recent warnings/errors to explain failures, print nothing.
_recent_log: collections.deque[str] = collections.deque(maxlen=32)
_last_level = [0]


@llama_cpp.llama_log_callback
def _log_sink(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    if level != 5:  # 5 = continuation of the previous message
        _last_level[0] = level
    if _last_level[0] in (2, 3) and text:
        _recent_log.append(text.decode("utf-8", errors="replace").strip())


_backend_ready = threading.Lock()
_backend_initialized = [False]


def init_backend() -> None:
    """Route llama.cpp's log into `_log_sink` and initialize its backend: once per process, by the first engine."""
    with _backend_ready:
        if not _backend_initialized[0]:
            llama_cpp.llama_log_set(_log_sink, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_initialized[0] = True


def recent_errors() -> str:
    lines = [line for line in _recent_log if line]
    return "; ".join(lines[-3:]) if lines else "no details from llama.cpp"


def default_threads() -> int:
    """Every core: on an idle 2-core machine that is 1.6x the prefill and 2x the decode speed of one thread
    (0.5B: 100 vs 61 tok/s prefill, 33 vs 17 tok/s decode). llama.cpp's threads spin at barriers, so on a machine
    kept busy by other work fewer threads can win: `[engine] threads` sets it."""
    return max(1, os.cpu_count() or 1)


class ModelSession:
    """One base model with its context, batch, adapters, KV bookkeeping and lock.

    `stats` is the owning engine's counters (shared by all its sessions). Every call method takes the lock.
    """

    def __init__(
        self,
        spec: ModelSpec,
        path: str,
        info: GGUFInfo,
        *,
        n_seq_max: int,
        prefill_chunk: int,
        adapter_layout: str,
        adapter_cache: str | Path | None,
        stats: EngineStats,
    ) -> None:
        self.spec = spec
        self.path = path
        self.info = info
        self.prefill_chunk = prefill_chunk
        self.adapter_layout = adapter_layout
        self.adapter_cache = adapter_cache
        self.stats = stats
        self.lock = threading.RLock()
        self.deadline: Deadline | None = None
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = spec.n_gpu_layers
        try:
            # verbose=True only skips llama-cpp-python's dup2 of fds 1/2 to /dev/null around the load, which would
            # swallow whatever another thread (the language server) writes meanwhile; logs go to `_log_sink` anyway.
            self.model = _internals.LlamaModel(path_model=path, params=model_params, verbose=True)
        except ValueError as exc:
            raise ModelLoadError(path, f"llama.cpp refused the file ({recent_errors()})") from exc
        n_ctx_train = self.model.n_ctx_train()
        # RoPE past the trained length produces garbage: never go beyond it.
        self.n_ctx = min(spec.n_ctx, n_ctx_train) if n_ctx_train > 0 else spec.n_ctx
        self.n_batch = min(self.n_ctx, 512)
        self.n_seq_max = n_seq_max
        n_threads = spec.n_threads or default_threads()
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = self.n_ctx
        ctx_params.n_batch = self.n_batch
        ctx_params.n_ubatch = self.n_batch
        ctx_params.n_seq_max = n_seq_max
        ctx_params.n_threads = n_threads
        ctx_params.n_threads_batch = n_threads
        # One cache shared by all sequences: decide_batch copies the prefix to other sequence ids for free.
        ctx_params.kv_unified = True
        ctx_params.no_perf = True
        # Flash attention on CPU rounds through F16 in a way that depends on the batch layout: batched decisions
        # would drift from one-by-one ones (~1e-3). Without it they agree to ~1e-7.
        ctx_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        try:
            self.ctx = _internals.LlamaContext(model=self.model, params=ctx_params, verbose=True)
        except ValueError as exc:
            self.model.close()
            raise ModelLoadError(path, f"llama.cpp could not create a context ({recent_errors()})") from exc
        self.memory = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.vocab = self.model.vocab
        self.n_vocab = self.model.n_vocab()
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=n_seq_max, verbose=True)
        # Polled by llama.cpp between graph nodes: a cancel or timeout interrupts even a long prefill batch.
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._abortable = False
        self.kv = KVState()
        self.adapters: dict[str, Any] = {}  # resolved adapter path → llama_adapter_lora pointer
        self.applied: AdapterKey = ()
        metadata = self.model.metadata()
        self.add_bos = self.model.add_bos_token()
        bos_id, eos_id = self.model.token_bos(), self.model.token_eos()
        bos = self.model.token_get_text(bos_id) if bos_id >= 0 else ""
        eos = self.model.token_get_text(eos_id) if eos_id >= 0 else ""
        self.renderer = ChatRenderer(metadata.get("tokenizer.chat_template"), bos_token=bos, eos_token=eos)

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()
        self.model.close()  # frees the adapters loaded for it too

    # ---------------------------------------------------------------- abort

    def set_abortable(self, on: bool) -> None:
        """Install the abort callback only for multi-token batches: each poll takes the GIL, which single-token
        decode steps (checked between steps anyway) should not pay for when other Python threads are busy."""
        if on != self._abortable:
            callback = self._abort_cb if on else llama_cpp.ggml_abort_callback()
            llama_cpp.llama_set_abort_callback(self.ctx.ctx, callback, None)
            self._abortable = on

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        deadline = self.deadline
        return deadline is not None and deadline.should_stop()

    # ---------------------------------------------------------------- adapters

    def load_adapter(self, adapter: AdapterSpec) -> None:
        with self.lock:
            self._adapter_handle(adapter)

    def set_adapters(self, adapters: Sequence[AdapterSpec]) -> None:
        with self.lock:
            self._apply_adapters(adapters)

    def _adapter_handle(self, adapter: AdapterSpec) -> Any:
        path = str(Path(adapter.path).expanduser().resolve())
        handle = self.adapters.get(path)
        if handle is not None:
            return handle
        check_adapter_fits(path, self.info)
        file = self._adapter_file(path)
        handle = llama_cpp.llama_adapter_lora_init(self.model.model, file.encode("utf-8"))
        if not handle and file != path:  # a damaged cached copy: drop it, the original is the adapter
            _log.warning("adapter %s: its CPU copy %s does not load (%s); loading the file as is",
                         path, file, recent_errors())
            Path(file).unlink(missing_ok=True)
            handle = llama_cpp.llama_adapter_lora_init(self.model.model, path.encode("utf-8"))
        if not handle:
            raise AdapterMismatchError(path, self.path, f"llama.cpp refused the adapter ({recent_errors()})")
        self.adapters[path] = handle
        self.stats.adapter_loads += 1
        return handle

    def _adapter_file(self, path: str) -> str:
        """The file llama.cpp loads for the adapter at `path`: its CPU layout (see adapter_layout) unless disabled.
        The adapter keeps its identity (`path`) everywhere else, prefix-reuse keys included."""
        if self.adapter_layout == "as-is":
            return path
        try:
            return str(cpu_layout(path, self.adapter_cache))
        except (OSError, ValueError, KeyError, IndexError) as exc:  # no room for the copy, odd metadata: load the file
            _log.warning("adapter %s loaded as is, without its CPU layout: %s", path, exc)
            return path

    def _apply_adapters(self, adapters: Sequence[AdapterSpec]) -> AdapterKey:
        handles = [self._adapter_handle(a) for a in adapters]
        key = adapter_key([(str(Path(a.path).expanduser().resolve()), a.scale) for a in adapters])
        if key == self.applied:
            return key
        n = len(handles)
        if n:
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*handles)
            scales = (ctypes.c_float * n)(*[a.scale for a in adapters])
            rc = llama_cpp.llama_set_adapters_lora(self.ctx.ctx, arr, n, scales)
        else:
            rc = llama_cpp.llama_set_adapters_lora(self.ctx.ctx, None, 0, None)
        if rc != 0:
            raise EngineError(f"llama.cpp could not apply adapters {[a.name for a in adapters]} (code {rc})")
        self.applied = key
        self.stats.adapter_switches += 1
        return key

    # ---------------------------------------------------------------- text

    def tokenize(self, text: str, *, special: bool, add_bos: bool) -> list[int]:
        if not text:
            return []
        return list(self.model.tokenize(text.encode("utf-8"), add_bos, special))

    def piece(self, token: int) -> bytes:
        """The bytes of one token (control tokens render as nothing)."""
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:  # buffer too small: -n is the size needed
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        text = self.renderer.render(messages)
        bos = self.renderer.bos_token
        add_bos = self.add_bos and not (bos and text.startswith(bos))
        return self.tokenize(text, special=True, add_bos=add_bos)

    # ---------------------------------------------------------------- calls

    def generate(
        self,
        adapters: Sequence[AdapterSpec],
        messages: Sequence[Message],
        params: GenParams,
        deadline: Deadline,
        on_text: Callable[[str], None] | None,
        *,
        grammar: str | None,
    ) -> Generation:
        """Decode a reply to `messages` (constrained by `grammar` if given; stop sequences then do not apply)."""
        stops = [] if grammar is not None else [s for s in params.stop if s]
        with self.lock:
            deadline.check()
            tokens = self.prompt_tokens(messages)
            sampler = TokenSampler(
                vocab=self.vocab,
                n_vocab=self.n_vocab,
                piece=self.piece,
                is_eog=lambda t: bool(llama_cpp.llama_vocab_is_eog(self.vocab, t)),
                temperature=params.temperature,
                seed=params.seed,
                grammar=grammar,
            )
            stats = CallStats(tokens_in=len(tokens))
            stream = TextStream(stops, on_text)
            self.deadline = deadline
            t0 = time.perf_counter()
            try:
                key = self._apply_adapters(adapters)
                stats.cached_tokens = self._prefill(tokens, key, deadline)
                stats.prefill_s = time.perf_counter() - t0
                finish: FinishReason = "length"
                t1 = time.perf_counter()
                while True:
                    deadline.check()
                    token = sampler.pick(self._logits())
                    if stats.tokens_out == 0:
                        stats.ttft_s = time.perf_counter() - t0
                    if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                        finish = "stop"
                        break
                    stats.tokens_out += 1
                    decoded_token()  # the decoding speed, for whoever shows progress (meter.py)
                    if stream.feed(self.piece(token)):
                        finish = "stop"
                        break
                    if stats.tokens_out >= params.max_tokens or len(self.kv.tokens) + 1 >= self.n_ctx:
                        break
                    self._eval_token(token, deadline)
                stats.decode_s = time.perf_counter() - t1
            except (Cancelled, Timeout) as exc:
                stats.finish_reason = "timeout" if isinstance(exc, Timeout) else "cancelled"
                elapsed = time.perf_counter() - t0
                if stats.prefill_s == 0.0:
                    stats.prefill_s = elapsed
                else:
                    stats.decode_s = elapsed - stats.prefill_s
                exc.stats = stats  # type: ignore[union-attr]
                exc.partial_text = stream.text  # type: ignore[union-attr]
                raise
            finally:
                self.deadline = None
                sampler.close()
        stats.finish_reason = finish
        self._count_call(len(tokens), stats.cached_tokens)
        return Generation(text=stream.finish(), stats=stats)

    def decide(
        self, adapters: Sequence[AdapterSpec], messages: Sequence[Message], labels: Sequence[str], deadline: Deadline
    ) -> Decision:
        """One forward pass: a softmax over the labels' first-token logits."""
        with self.lock:
            deadline.check()
            firsts = label_first_tokens(labels, lambda s: self.tokenize(s, special=False, add_bos=False))
            tokens = self.prompt_tokens(messages)
            self.deadline = deadline
            try:
                key = self._apply_adapters(adapters)
                t0 = time.perf_counter()
                cached = self._prefill(tokens, key, deadline)
                logits = self._logits()
            finally:
                self.deadline = None
            elapsed = time.perf_counter() - t0
        self._count_call(len(tokens), cached)
        probs = label_probs(logits, labels, firsts)
        label, prob = best_label(probs)
        stats = CallStats(
            tokens_in=len(tokens), tokens_out=1, cached_tokens=cached, prefill_s=elapsed, ttft_s=elapsed
        )
        return Decision(label=label, prob=prob, probs=probs, stats=stats)

    def decide_batch(
        self,
        adapters: Sequence[AdapterSpec],
        prefix_messages: Sequence[Message],
        questions: Sequence[str],
        labels: Sequence[str],
        deadline: Deadline,
    ) -> list[Decision]:
        """The shared prefix is evaluated once in sequence 0, copied to one sequence per question, and all question
        tails are decoded together in one batch. Equal to `decide(prefix_messages + [user question])` per question.
        """
        with self.lock:
            deadline.check()
            firsts = label_first_tokens(labels, lambda s: self.tokenize(s, special=False, add_bos=False))
            prompts = [self.prompt_tokens([*prefix_messages, Message(role="user", content=q)]) for q in questions]
            longest = max(len(p) for p in prompts)
            if longest >= self.n_ctx:
                raise ContextOverflowError(
                    f"a question's prompt has {longest} tokens but the context window is {self.n_ctx} tokens"
                )
            shared = min(_common_all(prompts), min(len(p) for p in prompts) - 1)
            self.deadline = deadline
            try:
                key = self._apply_adapters(adapters)
                t0 = time.perf_counter()
                if shared > 0:
                    cached = self._prefill(prompts[0][:shared], key, deadline, need_logits=False)
                else:  # nothing shared: every question starts from an empty cache
                    llama_cpp.llama_memory_clear(self.memory, True)
                    self.kv.reset(key)
                    cached = 0
                all_logits = self._eval_tails([p[shared:] for p in prompts], shared, deadline)
            finally:
                self.deadline = None
            elapsed = time.perf_counter() - t0
        self._count_call(sum(len(p) for p in prompts), cached * len(prompts))
        results = []
        for prompt, logits in zip(prompts, all_logits):
            probs = label_probs(logits, labels, firsts)
            label, prob = best_label(probs)
            stats = CallStats(
                tokens_in=len(prompt),
                tokens_out=1,
                cached_tokens=cached,
                prefill_s=elapsed,
                ttft_s=elapsed,
            )
            results.append(Decision(label=label, prob=prob, probs=probs, stats=stats))
        return results

    def _count_call(self, prompt_tokens: int, cached: int) -> None:
        self.stats.calls += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.cached_tokens += cached

    # ---------------------------------------------------------------- evaluation

    def _decode(self, deadline: Deadline) -> None:
        self.set_abortable(self.batch.batch.n_tokens > 1)
        rc = llama_cpp.llama_decode(self.ctx.ctx, self.batch.batch)
        if rc == 0:
            return
        if rc == _DECODE_ABORTED:
            deadline.check()
            raise Cancelled("the call was interrupted")
        if rc == 1:
            raise ContextOverflowError("no room left in the KV cache for this batch")
        raise DecodeError(f"llama_decode failed with code {rc} ({recent_errors()})")

    def _rollback(self) -> None:
        """Drop anything past the bookkept tokens (a failed/aborted batch) and any auxiliary sequences."""
        mem = self.memory
        for seq in range(1, self.n_seq_max):
            llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
        if not llama_cpp.llama_memory_seq_rm(mem, 0, len(self.kv.tokens), -1):
            llama_cpp.llama_memory_clear(mem, True)
            self.kv.reset(self.kv.key)

    def _prefill(self, tokens: list[int], key: AdapterKey, deadline: Deadline, *, need_logits: bool = True) -> int:
        """Bring sequence 0 to exactly `tokens` under `key`, reusing the cached prefix; returns the reused count."""
        if not tokens:
            raise InvalidRequestError("the prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the context window is {self.n_ctx} tokens"
            )
        kv = self.kv
        mem = self.memory
        if key != kv.key:
            llama_cpp.llama_memory_clear(mem, True)
            kv.reset(key)
        reuse = kv.reusable(tokens, key)
        if not need_logits and key == kv.key:
            # Without a need for fresh logits the whole prompt may come from the cache.
            reuse = common_prefix_len(kv.tokens, tokens)
        if reuse < len(kv.tokens):
            if llama_cpp.llama_memory_seq_rm(mem, 0, reuse, -1):
                kv.truncate(reuse)
            else:  # some memory types cannot drop a suffix: start over
                llama_cpp.llama_memory_clear(mem, True)
                kv.reset(key)
                reuse = 0
        pos = reuse
        chunk = self.prefill_chunk
        try:
            while pos < len(tokens):
                deadline.check()
                part = tokens[pos : pos + min(chunk, self.n_batch)]
                last = pos + len(part) == len(tokens)
                self._fill_batch([(0, part, pos, last and need_logits)])
                self._decode(deadline)
                kv.extend(part)
                pos += len(part)
        except BaseException:
            self._rollback()
            raise
        return reuse

    def _fill_batch(self, items: Sequence[tuple[int, Sequence[int], int, bool]]) -> None:
        """items: (seq id, tokens, first position, want logits of the last token)."""
        batch = self.batch.batch
        i = 0
        for seq, toks, pos0, want_last in items:
            for j, tok in enumerate(toks):
                batch.token[i] = tok
                batch.pos[i] = pos0 + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = want_last and j == len(toks) - 1
                i += 1
        batch.n_tokens = i

    def _eval_token(self, token: int, deadline: Deadline) -> None:
        pos = len(self.kv.tokens)
        self._fill_batch([(0, [token], pos, True)])
        try:
            self._decode(deadline)
        except BaseException:
            self._rollback()
            raise
        self.kv.extend([token])

    def _eval_tails(self, tails: list[list[int]], start: int, deadline: Deadline) -> list[np.ndarray]:
        """Evaluate each tail in its own sequence on top of sequence 0's first `start` tokens; last-token logits."""
        mem = self.memory
        per_group = self.n_seq_max - 1
        out: list[np.ndarray] = []
        try:
            for g in range(0, len(tails), per_group):
                group = tails[g : g + per_group]
                for s in range(1, len(group) + 1):
                    llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
                # Pack (seq, token) entries into batches of at most n_batch; a tail may straddle two batches.
                entries = [(s + 1, tok, start + j, j == len(t) - 1) for s, t in enumerate(group) for j, tok in enumerate(t)]
                logits_by_seq: dict[int, np.ndarray] = {}
                for b in range(0, len(entries), self.n_batch):
                    deadline.check()
                    part = entries[b : b + self.n_batch]
                    self._fill_batch([(seq, [tok], pos, last) for seq, tok, pos, last in part])
                    self._decode(deadline)
                    for i, (seq, _tok, _pos, last) in enumerate(part):
                        if last:
                            logits_by_seq[seq] = self._logits(i)
                out.extend(logits_by_seq[s] for s in range(1, len(group) + 1))
                for s in range(1, len(group) + 1):
                    llama_cpp.llama_memory_seq_rm(mem, s, -1, -1)
        except BaseException:
            self._rollback()
            raise
        return out

    def _logits(self, index: int = -1) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self.ctx.ctx, index)
        if not ptr:
            raise DecodeError(f"llama.cpp has no logits for batch index {index}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()


def _common_all(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for s in seqs[1:]:
        n = min(n, common_prefix_len(first[:n], s[:n]))
    return n


class TextStream:
    """Incremental UTF-8 text with stop sequences; streams only text that cannot turn into a stop sequence."""

    def __init__(self, stops: list[str], on_text: Callable[[str], None] | None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = stops
        self._on_text = on_text
        self.text = ""
        self._emitted = 0
        self._stopped = False

    def feed(self, piece: bytes) -> bool:
        """Add a token's bytes; returns True when a stop sequence appeared (the text is cut before it)."""
        self.text += self._decoder.decode(piece)
        if self._stops:
            longest = max(len(s) for s in self._stops)
            window_start = max(0, self._emitted - longest)
            hits = [i for i in (self.text.find(s, window_start) for s in self._stops) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self._stopped = True
                self._emit(len(self.text))
                return True
        self._emit(len(self.text) - self._held_back())
        return False

    def _held_back(self) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop sequence."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:k]):
                    best = k
                    break
        return best

    def _emit(self, upto: int) -> None:
        if upto > self._emitted:
            chunk = self.text[self._emitted : upto]
            self._emitted = upto
            if self._on_text is not None:
                self._on_text(chunk)

    def finish(self) -> str:
        # An unfinished UTF-8 character at the end (token budget ran out mid-character) is dropped.
        self._emit(len(self.text))
        return self.text
