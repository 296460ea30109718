"""`cra bench engine`: the in-process engine on the real default model, against raw llama-cpp-python.

Measured in one run (a few minutes on 2 cores; prefill of the 1,000- and 500-token contexts dominates):

- engine_overhead: decode tok/s through cra's engine ÷ raw `Llama.create_completion` on the same prompt;
- lora_decode_ratio: decode tok/s with a rank-16 LoRA (`--lora-rank`) on q/k/v/o and the FFN projections ÷ without
  (F16 tensors, as llama.cpp's convert_lora_to_gguf.py writes them; loaded in the engine's CPU layout unless
  `--adapter-layout as-is`, see pipeline/engine/adapter_layout.py);
- switch_ms / reloads: median time to switch the context's adapter set; model loads during 100 switches;
- prefix_reuse_ttft_ratio: TTFT of a call sharing a 1,000-token prefix with the previous call ÷ the same call cold;
- decisions_per_s / batched_speedup: 64 yes/no questions on a 500-token prefix, batched vs one by one;
- cancel_ms: cancel → return during a long generation (worst of three);
- rss_mb: resident memory of the process with the engine, the model and both adapters loaded.

Decode rates are timed in process CPU time from the first to the last streamed token (prefill excluded); ratios are
taken between neighbouring runs and the median over DECODE_ROUNDS (9) rounds is reported, so a noisy neighbour on a
shared machine affects both sides alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
TARGETS: dict[str, str] = {
    "engine_overhead": ">= 0.95",
    "lora_decode_ratio": ">= 0.90",
    "switch_ms": "< 5",
    "reloads": "0",
    "prefix_reuse_ttft_ratio": "<= 0.15",
    "cancel_ms": "<= 200",
}
DECODE_PROMPT = (
    "Write a C11 implementation of a hash map from strings to ints with separate chaining: the struct "
    "definitions, create, insert, lookup, remove and free functions, each with a short comment."
)
DECODE_TOKENS = 48
DECODE_ROUNDS = 9
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help=f"GGUF path or registry name (default: $CRA_TEST_MODEL_0_5B, else {DEFAULT_MODEL})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context window (>= 1,200 for the prefix tests)")
    parser.add_argument("--adapter-type", choices=("f16", "f32"), default="f16",
                        help="tensor type of the generated LoRAs (default f16, what llama.cpp's converter writes)")
    parser.add_argument("--adapter-layout", choices=("cpu", "as-is"), default="cpu",
                        help="load the adapters in the engine's CPU layout (Q8_0, rank padded to 32; the default) "
                             "or as they are")
    parser.add_argument("--lora-rank", type=int, default=16,
                        help="rank of the generated LoRAs (default 16, the target's; 1 with --adapter-type f32 "
                             "--adapter-layout as-is isolates what the adapter's graph costs apart from its "
                             "arithmetic: the CPU layout pads every rank to 32)")


class BenchError(Exception):
    """The benchmark cannot run (no model, bad arguments)."""


def resolve_model(ref: str | None) -> Path:
    """--model as a path or registry name, else CRA_TEST_MODEL_0_5B, else the installed default model."""
    candidates: list[str] = [ref] if ref else []
    if not ref and os.environ.get("CRA_TEST_MODEL_0_5B"):
        candidates.append(os.environ["CRA_TEST_MODEL_0_5B"])
    for candidate in candidates or [DEFAULT_MODEL]:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
        try:
            from cra.pipeline.models.registry import find_installed
        except ImportError:
            continue
        installed = find_installed(candidate)
        if installed is not None:
            return installed
    shown = ref or os.environ.get("CRA_TEST_MODEL_0_5B") or DEFAULT_MODEL
    raise BenchError(
        f"model {shown!r} is neither a GGUF file nor an installed registry model; "
        f"run `cra models install {DEFAULT_MODEL}` or pass --model PATH"
    )


def _log(message: str) -> None:
    print(f"[bench engine] {message}", file=sys.stderr, flush=True)


def _stream_rate(run: Callable[[Callable[[str], None]], None]) -> float:
    """Tokens per CPU-second of this process between the first and the last streamed piece of one generation.

    CPU time, not wall time: on a shared machine the wall rate swings by tens of percent from run to run while
    the CPU cost per token stays put, and the comparisons here are about cost (with idle cores the two agree).
    """
    stamps: list[float] = []
    run(lambda _piece: stamps.append(time.process_time()))
    if len(stamps) < 8:
        raise BenchError(f"the model stopped after {len(stamps)} tokens: too few to time decoding")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _context_text(engine: Any, model: Any, tokens: int, offset: int = 0) -> str:
    """Plausible C source of about `tokens` tokens (distinct functions, so nothing collapses into a repeat)."""
    parts: list[str] = []
    i = offset
    while True:
        parts.append(
            f"/* Scale a reading from sensor {i}: clamps to the valid range first. */\n"
            f"static int scale_{i}(int raw) {{\n    if (raw < {i}) raw = {i};\n"
            f"    return raw * {i % 7 + 2} + {i * 3 % 11};\n}}\n\n"
        )
        i += 1
        text = "".join(parts)
        if engine.count_tokens(model, text) >= tokens:
            return text


def main(args: argparse.Namespace) -> int:
    try:
        result = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else markdown_table(result))
    return 0


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| metric | value | target |", "|---|---|---|"]
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} | {TARGETS.get(key, '')} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads < 1:
        raise BenchError(f"--threads must be >= 1, got {args.threads}")
    if args.lora_rank < 1:
        raise BenchError(f"--lora-rank must be >= 1, got {args.lora_rank}")
    if args.n_ctx < 1200:
        raise BenchError(f"--n-ctx must be at least 1200 for the 1,000-token prefix test, got {args.n_ctx}")
    model_path = resolve_model(args.model)

    from llama_cpp import Llama

    from cra.pipeline.engine import AdapterSpec, Cancelled, CancelToken, GenParams, LocalEngine, Message, ModelSpec
    from cra.training.synthetic import write_lora_for

    model = ModelSpec(name=model_path.stem, path=str(model_path), n_ctx=args.n_ctx, n_threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="cra-bench-engine-") as tmp:
        engine = LocalEngine(adapter_layout=args.adapter_layout, adapter_cache=Path(tmp) / "layout")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        _log(f"model {model_path}, {args.threads} threads, n_ctx {args.n_ctx}, load average {load:.1f} on "
             f"{os.cpu_count()} CPUs (llama.cpp threads spin: more threads than idle cores slows it down)")
        _log(f"writing two rank-{args.lora_rank} {args.adapter_type.upper()} LoRAs")
        lora_a = AdapterSpec(name="bench-a", path=str(write_lora_for(
            model_path, Path(tmp) / "a.gguf", rank=args.lora_rank, targets=LORA_TARGETS, seed=1, scale_init=0.1,
            dtype=args.adapter_type)))
        lora_b = AdapterSpec(name="bench-b", path=str(write_lora_for(
            model_path, Path(tmp) / "b.gguf", rank=args.lora_rank, targets=LORA_TARGETS, seed=2, scale_init=0.1,
            dtype=args.adapter_type)))
        engine.load(model)
        engine.load_adapter(model, lora_a)
        engine.load_adapter(model, lora_b)

        messages = [Message(role="user", content=DECODE_PROMPT)]
        params = GenParams(max_tokens=DECODE_TOKENS)

        # ---- engine overhead: cra vs raw llama-cpp-python, same rendered prompt, greedy
        _log("decode rate: cra engine vs raw Llama.create_completion")
        prompt_text = engine.render(model, messages)
        raw = Llama(str(model_path), n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads,
                    n_batch=512, verbose=False)

        def raw_run(on_piece: Callable[[str], None]) -> None:
            raw.reset()  # cold KV each time, like the engine's first call would not be
            for chunk in raw.create_completion(prompt_text, max_tokens=DECODE_TOKENS, temperature=0.0,
                                               repeat_penalty=1.0, stream=True):
                on_piece(chunk["choices"][0]["text"])  # type: ignore[index]  # a stream yields chunks

        def cra_run(adapters: tuple[AdapterSpec, ...]) -> Callable[[Callable[[str], None]], None]:
            def run(on_piece: Callable[[str], None]) -> None:
                engine.generate(model, adapters, messages, params, on_text=on_piece)

            return run

        # Paired ratios, median over rounds, run order reversed every other round: on a shared machine the
        # speed drifts by tens of percent between rounds, much less between neighbouring runs.
        overheads, lora_ratios, rates = [], [], []
        runs = {"raw": raw_run, "cra": cra_run(()), "lora": cra_run((lora_a,))}
        for round_no in range(DECODE_ROUNDS):
            order = list(runs) if round_no % 2 == 0 else list(reversed(runs))
            rate = {name: _stream_rate(runs[name]) for name in order}
            overheads.append(rate["cra"] / rate["raw"])
            lora_ratios.append(rate["lora"] / rate["cra"])
            rates.append(rate)
        del runs
        raw.close()  # free the second copy of the model before the memory-sensitive figures
        gc.collect()
        engine_overhead = statistics.median(overheads)
        lora_ratio = statistics.median(lora_ratios)
        for rate in rates:
            _log(f"per CPU-second: raw {rate['raw']:.1f} tok/s, cra {rate['cra']:.1f} tok/s, "
                 f"cra+LoRA {rate['lora']:.1f} tok/s")

        # ---- adapter switches (the context's adapter set only; no model reload, no prefill)
        _log("adapter switches")
        switch = _adapter_switcher(engine, model)
        loads_before = engine.stats.model_loads
        sets: list[tuple[AdapterSpec, ...]] = [(lora_a,), (lora_b,), (), (lora_a, lora_b)]
        times = []
        for i in range(100):
            t0 = time.perf_counter()
            switch(sets[i % len(sets)])
            times.append((time.perf_counter() - t0) * 1000)
        switch_ms = statistics.median(times)
        reloads = engine.stats.model_loads - loads_before

        # ---- prefix reuse: a call sharing a 1,000-token prefix with the previous call vs the same call cold
        _log("prefix reuse (a cold 1,000-token prefill takes a while)")
        context = _context_text(engine, model, 1000)
        system = Message(role="system", content="You are an expert C reviewer. Answer briefly.")

        def ask(question: str) -> list[Message]:
            return [system, Message(role="user", content=f"{context}\nQuestion: {question}")]

        one = GenParams(max_tokens=1)
        engine.generate(model, (lora_a,), [Message(role="user", content="hi")], one)  # another adapter: KV reset
        cold = engine.generate(model, (), ask("Which function has the largest multiplier?"), one).stats
        engine.generate(model, (), ask("Which function clamps to 3?"), one)
        warm = engine.generate(model, (), ask("Which function has the largest multiplier?"), one).stats
        reuse_ratio = warm.ttft_s / cold.ttft_s
        _log(f"TTFT cold {cold.ttft_s:.2f} s ({cold.tokens_in} tokens), warm {warm.ttft_s:.3f} s "
             f"({warm.cached_tokens} cached)")

        # ---- decisions: 64 yes/no questions on a 500-token prefix, batched vs one by one
        _log("decisions: 64 questions, batched vs one by one")
        prefix = [system, Message(role="user", content=_context_text(engine, model, 500, offset=1000))]
        questions = [f"Does scale_{1000 + i} ever return a negative value for a non-negative input?" for i in range(64)]
        engine.decide_batch(model, (), prefix, questions[:1])  # the shared prefix into the cache for both runs
        t0 = time.perf_counter()
        batched = engine.decide_batch(model, (), prefix, questions)
        batched_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        single = [engine.decide(model, (), [*prefix, Message(role="user", content=q)], ["yes", "no"])
                  for q in questions]
        single_s = time.perf_counter() - t0
        agree = sum(a.label == b.label for a, b in zip(batched, single))
        _log(f"batched {batched_s:.2f} s, one by one {single_s:.2f} s, {agree}/64 labels agree")

        # ---- cancellation latency during a long generation
        _log("cancel latency")
        cancel_ms = max(_cancel_latency(engine, model, messages, CancelToken, Cancelled, GenParams) for _ in range(3))

        rss_mb = _rss_mb()
        engine.close()
    return {
        "engine_overhead": round(engine_overhead, 3),
        "lora_decode_ratio": round(lora_ratio, 3),
        "switch_ms": round(switch_ms, 3),
        "reloads": reloads,
        "prefix_reuse_ttft_ratio": round(reuse_ratio, 4),
        "decisions_per_s": round(len(questions) / batched_s, 2),
        "batched_speedup": round(single_s / batched_s, 2),
        "cancel_ms": round(cancel_ms, 1),
        "rss_mb": round(rss_mb, 1),
        "model": str(model_path),
        "threads": args.threads,
        "n_ctx": args.n_ctx,
        "adapter_type": args.adapter_type,
        "adapter_layout": args.adapter_layout,
        "lora_rank": args.lora_rank,
    }


def _adapter_switcher(engine: Any, model: Any) -> Callable[[tuple[Any, ...]], None]:
    """Set the context's adapter set the way a call does, without the call."""
    return lambda adapters: engine.set_adapters(model, adapters)


def _cancel_latency(engine: Any, model: Any, messages: Any, token_cls: Any, cancelled_cls: Any, params_cls: Any) -> float:
    """Milliseconds from `cancel()` to the generate call returning, cancelled after ~10 decoded tokens."""
    token = token_cls()
    pieces = threading.Semaphore(0)
    returned: list[float] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            engine.generate(model, (), messages, params_cls(max_tokens=1000), cancel=token,
                            on_text=lambda _p: pieces.release())
        except cancelled_cls:
            returned.append(time.perf_counter())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    for _ in range(10):
        if not pieces.acquire(timeout=60):
            break
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join(30)
    if errors:
        raise BenchError(f"the cancelled generation failed instead: {errors[0]}")
    if not returned:
        raise BenchError("the generation finished before it could be cancelled")
    return (returned[0] - cancelled_at) * 1000
