"""`cra bench adapters`: base vs adapter vs fused for one stage's adapter (file size, peak RSS, speed, accuracy).

The performance tracker's table on cra's own stages. Rows: the base model; the base with the adapter switched in at
run time by cra's engine (the LoRA stays F32/F16 beside the quantized base); and the adapter fused into the base
(`cra fuse`) at each requested type. Every row runs in a fresh subprocess so its peak RSS (VmHWM: the ru_maxrss
of its own image) is its own.

Columns: file size (model + adapter), peak RSS, decode tok/s (greedy, the same prompt and token budget on every
row; the fastest of `--repeats` runs, made in rounds over the rows in fresh processes), prefill tok/s (one fixed
prompt, uncached; fastest likewise), and accuracy on the pairs' held-out split (the prompt-hash split
`cra train` holds out): decision stages pick a label as the engine's `decide` does (one forward pass, the labels'
first tokens); other stages count exact matches of the greedy output. "Gain kept" = (acc_row - acc_base) /
(acc_adapter - acc_base). The summary names the fastest deployment that keeps at least 99 % of the adapter's gain
and its decode speed relative to the base.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

KEEP_GAIN = 0.99
_DECODE_PROMPT = "Write a long C program that implements a ring buffer of ints with push, pop and tests. Code only."
# A fixed C snippet as the prefill prompt: about the size of a context block cra sends.
_PREFILL_SNIPPET = ("static int ring_push(struct ring *r, int v) {\n    if (r->len == r->cap) return -1;\n"
                    "    r->data[(r->head + r->len) % r->cap] = v;\n    r->len++;\n    return 0;\n}\n")


class BenchError(Exception):
    """Bad inputs to the benchmark; the message says why."""


class Item(msgspec.Struct, frozen=True):
    messages: list[dict[str, str]]  # the prompt
    answer: str
    choices: list[str] | None  # decision stages: the labels


class RowSpec(msgspec.Struct, frozen=True):
    """What one subprocess measures."""

    name: str
    model: str
    adapter: str | None
    items: list[Item]
    decode_tokens: int
    prefill_repeat: int
    threads: int | None
    repeats: int = 1  # speed runs in this process; the fastest counts
    speed_only: bool = False  # skip the items (a later round of speed runs)
    n_ctx: int = 2048


class Row(msgspec.Struct, kw_only=True):
    name: str
    file_mib: float
    peak_rss_mib: float
    decode_tok_s: float
    decode_tokens: int
    prefill_tok_s: float
    prefill_tokens: int
    accuracy: float
    # Decision items: the mean over answers of the share of that answer's items picked right (always giving the
    # frequent answer scores 0.5 here however skewed the items are).
    balanced_accuracy: float | None = None
    items: int
    gain_kept: float | None = None  # None: the base row, or no gain to keep
    speed_vs_base: float | None = None


class Report(msgspec.Struct, kw_only=True):
    date: str
    stage: str
    base: str
    adapter: str
    data: str
    held_out: float
    rows: list[Row]
    best: str | None  # the fastest row keeping >= 99 % of the gain
    summary: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="MODEL", help="base model: a registered name or a GGUF")
    parser.add_argument("--adapter", required=True, metavar="ADAPTER.gguf", help="the stage's LoRA adapter")
    parser.add_argument("--data", required=True, action="append", metavar="PAIRS.jsonl",
                        help="`cra curate-data` pairs of the stage (repeatable: say, one file per held-out library)")
    parser.add_argument("--types", default="f16,q8_0,q6_k,q4_k", help="fused types (default f16,q8_0,q6_k,q4_k)")
    parser.add_argument("--held-out", type=float, default=0.1,
                        help="the held-out share `cra train` used; those pairs are scored (0.1; 1 = all pairs)")
    parser.add_argument("--limit", type=int, default=50, help="score at most this many pairs (50)")
    parser.add_argument("--decode-tokens", type=int, default=64, help="tokens decoded for decode tok/s (64)")
    parser.add_argument("--prefill-repeat", type=int, default=4,
                        help="copies of a 60-token C snippet in the prefill prompt (4)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="speed runs per row, in rounds over the rows, each in a fresh process; the fastest "
                             "counts (3)")
    parser.add_argument("--threads", type=int, help="llama.cpp threads per row (default: the engine's)")
    parser.add_argument("--work-dir", help="keep the fused models here (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


# ---- data -------------------------------------------------------------------------------------------------------


def load_items(paths: Sequence[str | Path], held_out: float, limit: int) -> tuple[str, list[Item]]:
    """(stage, the held-out items) from pairs files: the split is the prompt-hash one `cra train` uses. Past
    `limit`, the items kept are the first by prompt hash: a fixed sample across all the files."""
    stage: str | None = None
    keyed: list[tuple[str, Item]] = []
    for path in map(Path, paths):
        stage, found = _load_file(path, held_out, stage)
        keyed += found
    if stage is None:
        raise BenchError(f"{', '.join(map(str, paths))}: no pairs")
    if not keyed:
        raise BenchError(f"no pair falls in the held-out split {held_out} (use --held-out 1 for all)")
    if len(keyed) > limit:
        keyed = sorted(keyed, key=lambda k: k[0])[:limit]
    return stage, [item for _, item in keyed]


def _load_file(path: Path, held_out: float, stage: str | None) -> tuple[str | None, list[tuple[str, Item]]]:
    from cra.training.curate import in_valid_split, prompt_digest

    if not path.is_file():
        raise BenchError(f"{path}: data file not found")
    items: list[tuple[str, Item]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = record["messages"]
            prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
            answer = messages[-1]["content"]
            if messages[-1]["role"] != "assistant" or not prompt:
                raise ValueError("the last message must be the assistant's answer, after a prompt")
            meta = record.get("meta") or {}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise BenchError(f"{path}:{number}: not a `cra curate-data` pair ({exc})") from None
        line_stage = meta.get("stage")
        if not isinstance(line_stage, str):
            raise BenchError(f"{path}:{number}: the pair has no meta.stage")
        if stage is not None and line_stage != stage:
            raise BenchError(f"{path}:{number}: pairs of two stages ({stage!r}, {line_stage!r}); bench one stage")
        stage = line_stage
        key = prompt_digest(stage, prompt)
        if held_out < 1 and not in_valid_split(key, held_out):
            continue
        choices = meta.get("choices")
        ok = isinstance(choices, list) and answer in choices and all(isinstance(c, str) for c in choices)
        items.append((key, Item(messages=prompt, answer=answer, choices=choices if ok else None)))
    return stage, items


# ---- one row, in its own process --------------------------------------------------------------------------------


def measure_row(spec: RowSpec) -> Row:
    """Load the model (and adapter) with cra's engine, time prefill and decode, score the items."""
    from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec

    engine = LocalEngine()
    model = ModelSpec(name=spec.name, path=spec.model, n_ctx=spec.n_ctx, n_threads=spec.threads)
    adapters = [AdapterSpec(name="adapter", path=spec.adapter)] if spec.adapter else []
    # Warm-up: the first pass pages the weights in and loads the adapter; not part of either speed.
    engine.generate(model, adapters, [Message("user", "hi")], GenParams(max_tokens=2))
    # Best of `repeats`: on a shared machine the slowest runs measure the neighbours, not the model.
    prefill_text = _prefill_text(engine, model, spec)
    prefill_tokens, prefill_s = 0, float("inf")
    for attempt in range(spec.repeats):
        # A different first line each time: nothing past the chat template's opening is cached.
        text = f"({attempt}) {prefill_text}"
        pre = engine.generate(model, adapters, [Message("user", text)], GenParams(max_tokens=1)).stats
        if pre.prefill_s < prefill_s:
            prefill_tokens, prefill_s = pre.tokens_in - pre.cached_tokens, pre.prefill_s
    decode_s = min(_timed_decode(engine, model, adapters, spec.decode_tokens) for _ in range(spec.repeats))
    correct = 0
    per_answer: dict[str, list[int]] = {}  # decision items: answer -> [right, items]
    for item in [] if spec.speed_only else spec.items:
        messages = [Message(m["role"], m["content"]) for m in item.messages]
        if item.choices:
            got = engine.decide(model, adapters, messages, item.choices).label
            tally = per_answer.setdefault(item.answer, [0, 0])
            tally[0] += got == item.answer
            tally[1] += 1
        else:
            budget = engine.count_tokens(model, item.answer) + 8
            got = engine.generate(model, adapters, messages, GenParams(max_tokens=budget)).text.strip()
        correct += got == item.answer.strip()
    balanced = round(sum(r / n for r, n in per_answer.values()) / len(per_answer), 4) if per_answer else None
    engine.close()
    size = os.path.getsize(spec.model) + (os.path.getsize(spec.adapter) if spec.adapter else 0)
    return Row(name=spec.name, file_mib=round(size / 2**20, 2),
               peak_rss_mib=round(_peak_rss_kib() / 1024, 1),
               decode_tok_s=round(spec.decode_tokens / decode_s, 2) if decode_s > 0 else 0.0,
               decode_tokens=spec.decode_tokens,
               prefill_tok_s=round(prefill_tokens / prefill_s, 2) if prefill_s > 0 else 0.0,
               prefill_tokens=prefill_tokens, accuracy=0.0 if spec.speed_only else round(correct / len(spec.items), 4),
               balanced_accuracy=balanced, items=0 if spec.speed_only else len(spec.items))


def _peak_rss_kib() -> int:
    """This process's peak RSS since its exec. ru_maxrss is not: Linux carries the high-water mark of the forked
    parent's memory across exec, so every row would report the parent's peak. VmHWM is the current image's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _timed_decode(engine: Any, model: Any, adapters: list[Any], n: int) -> float:
    """Seconds to decode exactly `n` tokens greedily after _DECODE_PROMPT, through the engine's own session (its
    adapter switching, batch and KV bookkeeping). End-of-generation tokens are skipped, so every row decodes the
    same number of tokens whatever its weights prefer; the per-token work is what `generate` does."""
    import llama_cpp
    import numpy as np

    from cra.pipeline.engine import Message
    from cra.pipeline.engine.cancel import Deadline

    session = engine._get(model)  # the loaded ModelSession: the public calls stop at end of generation
    deadline = Deadline()
    with session.lock:
        key = session._apply_adapters(adapters)
        session._prefill(session.prompt_tokens([Message("user", _DECODE_PROMPT)]), key, deadline)
        t0 = time.perf_counter()
        for _ in range(n):
            logits = np.array(session._logits(), dtype=np.float32)
            token = int(logits.argmax())
            while llama_cpp.llama_vocab_is_eog(session.vocab, token):
                logits[token] = -np.inf
                token = int(logits.argmax())
            session._eval_token(token, deadline)
        return time.perf_counter() - t0


def _prefill_text(engine: Any, model: Any, spec: RowSpec) -> str:
    """The prefill prompt: `prefill_repeat` copies of the snippet, fewer when they would not fit the context."""
    from cra.pipeline.models.gguf_info import read_gguf_info

    info = read_gguf_info(spec.model)
    trained = int(info.metadata.get(f"{info.architecture}.context_length", spec.n_ctx))
    room = min(spec.n_ctx, trained) - 48  # the chat template's tokens and the one decoded token
    for repeat in range(spec.prefill_repeat, 0, -1):
        text = "Review this C code.\n" + _PREFILL_SNIPPET * repeat
        if engine.count_tokens(model, text) <= room:
            return text
    return "Review this C code.\n" + _PREFILL_SNIPPET[: room]


def run_row(spec: RowSpec, timeout_s: float = 3600) -> Row:
    """`measure_row` in a fresh interpreter (its own peak RSS); the spec goes in on stdin, the row comes back."""
    proc = subprocess.run([sys.executable, "-m", "cra.bench.adapters", "--row"], input=msgspec.json.encode(spec),
                          capture_output=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise BenchError(f"row {spec.name!r} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return msgspec.json.decode(proc.stdout.strip().splitlines()[-1], type=Row)


# ---- the table ----------------------------------------------------------------------------------------------------


def score(rows: list[Row]) -> tuple[str | None, str]:
    """Fill gain kept and speed vs base; (the fastest row keeping >= 99 % of the gain, the summary line)."""
    base = rows[0]
    adapter = next(r for r in rows if r.name == "base+adapter")
    gain = adapter.accuracy - base.accuracy
    for row in rows:
        row.speed_vs_base = round(row.decode_tok_s / base.decode_tok_s, 3) if base.decode_tok_s else None
        if row is not base and gain > 0:
            row.gain_kept = round((row.accuracy - base.accuracy) / gain, 3)
    if gain <= 0:
        return None, (f"the adapter does not beat the base on these items (accuracy {adapter.accuracy:.3f} vs "
                      f"{base.accuracy:.3f}): there is no gain to keep")
    keeping = [r for r in rows[1:] if r.gain_kept is not None and r.gain_kept >= KEEP_GAIN]
    if not keeping:
        return None, "no deployment keeps >= 99 % of the adapter's gain"
    best = max(keeping, key=lambda r: r.decode_tok_s)
    return best.name, (f"fastest deployment keeping >= 99 % of the adapter's gain "
                       f"(+{gain * 100:.1f} points over the base): {best.name}, decode {best.decode_tok_s} tok/s = "
                       f"{best.speed_vs_base} x base")


def run(args: argparse.Namespace, log: Any = lambda _: None) -> Report:
    from cra.training.fuse import FUSE_TYPES, FuseError, check_inputs, quantize, resolve_base_gguf, write_merged_f16

    types = [t.strip() for t in args.types.split(",") if t.strip()]
    unknown = [t for t in types if t not in FUSE_TYPES]
    if unknown:
        raise BenchError(f"unknown type(s) {', '.join(unknown)}: use {', '.join(FUSE_TYPES)}")
    if min(args.limit, args.decode_tokens, args.prefill_repeat, args.repeats) < 1:
        raise BenchError("--limit, --decode-tokens, --prefill-repeat and --repeats must be at least 1")
    if not 0 < args.held_out <= 1:
        raise BenchError(f"--held-out must be in (0, 1], got {args.held_out}")
    stage, items = load_items(args.data, args.held_out, args.limit)
    try:
        base = resolve_base_gguf(args.base)
        check_inputs(base, args.adapter, "f16")
    except FuseError as exc:
        raise BenchError(str(exc)) from None
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="cra-bench-adapters-"))
    work.mkdir(parents=True, exist_ok=True)

    def spec(name: str, model: Path | str, adapter: str | None) -> RowSpec:
        return RowSpec(name=name, model=str(model), adapter=adapter, items=items, decode_tokens=args.decode_tokens,
                       prefill_repeat=args.prefill_repeat, threads=args.threads)

    try:
        specs = [spec("base", base, None), spec("base+adapter", base, str(args.adapter))]
        if types:
            f16 = work / "fused-f16.gguf"
            t0 = time.perf_counter()
            write_merged_f16(base, Path(args.adapter), f16)
            log(f"merged at F16 in {time.perf_counter() - t0:.1f} s")
            for type_ in types:
                path = f16 if type_ == "f16" else work / f"fused-{type_}.gguf"
                if type_ != "f16":
                    quantize(f16, path, type_, threads=args.threads)
                specs.append(spec(f"fused-{type_}", path, None))
        rows = []
        for s in specs:
            log(f"measuring {s.name}")
            rows.append(run_row(s))
        # Speed again in rounds over all rows, each run in a fresh process; the fastest run of a row counts. On a
        # shared machine the load drifts over minutes: rounds spread each row's runs across that drift instead of
        # giving one row the quiet minute and another the busy one.
        for round_ in range(args.repeats - 1):
            log(f"speed round {round_ + 2} of {args.repeats}")
            for row, s in zip(rows, specs, strict=True):
                again = run_row(msgspec.structs.replace(s, speed_only=True))
                row.decode_tok_s = max(row.decode_tok_s, again.decode_tok_s)
                row.prefill_tok_s = max(row.prefill_tok_s, again.prefill_tok_s)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    best, summary = score(rows)
    return Report(date=datetime.date.today().isoformat(), stage=stage, base=str(base), adapter=str(args.adapter),
                  data=", ".join(map(str, args.data)), held_out=args.held_out, rows=rows, best=best, summary=summary)


def markdown(report: Report) -> str:
    def num(value: float | None, fmt: str = "{:.2f}") -> str:
        return "–" if value is None else fmt.format(value)

    lines = [f"stage `{report.stage}`, {report.rows[0].items} held-out items, base `{Path(report.base).name}`, "
             f"{report.date}", "",
             "| row | file MiB | peak RSS MiB | decode tok/s | prefill tok/s | accuracy | balanced accuracy | gain kept "
             "| speed vs base |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        lines.append(f"| {r.name} | {r.file_mib:.1f} | {r.peak_rss_mib:.0f} | {r.decode_tok_s:.1f} | "
                     f"{r.prefill_tok_s:.1f} | {r.accuracy:.3f} | {num(r.balanced_accuracy, '{:.3f}')} | "
                     f"{num(r.gain_kept)} | {num(r.speed_vs_base)} |")
    lines += ["", report.summary]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        report = run(args, log=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"cra bench adapters: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(msgspec.to_builtins(report), indent=2) if args.json else markdown(report))
    return 0


def _row_main() -> int:
    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=RowSpec)
    sys.stdout.write(msgspec.json.encode(measure_row(spec)).decode() + "\n")
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--row"]:
    sys.exit(_row_main())
