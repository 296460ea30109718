"""`cra train STAGE`: a PEFT LoRA for one pipeline stage from `cra curate-data` pairs, exported as a GGUF adapter.

- Loss on the answer only: prompt positions carry the label -100, and only the answer positions' logits are
  computed at all (`logits_to_keep`), which is most of the speed on short decision answers.
- A deterministic held-out split by a hash of the prompt (the same hash curate-data splits by), evaluated on the
  base (adapter disabled) and on the trained adapter: mean answer-token loss and accuracy (decision stages: the
  label whose first token scores best, as the engine's `decide` picks, is the logged one; others: every answer
  token is the greedy choice).
- Memory stays bounded: batch size 1 with gradient accumulation, and `max_tokens` cuts the prompt from the left.
- Resumable: the PEFT weights, the optimizer and the step go to `<out stem>.ckpt/` next to the adapter every
  `save_every` steps, on interruption and at the end; `resume` continues from there. The example order is a pure
  function of (seed, position), so a resumed run sees the same examples an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model

from cra.pipeline.stages.registry import STAGE_SPECS
from cra.training.curate import in_valid_split, prompt_digest
from cra.training.hf_base import BaseSource, load_base, resolve_base
from cra.training.lora_export import export_lora

# PEFT module names of the seven projections (llama.cpp: attn_q/k/v/output, ffn_gate/up/down).
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_SHORT_TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
                  "down": "down_proj"}
STATE_FILE = "state.json"


class TrainError(Exception):
    """Training cannot proceed as asked; the message says what to fix."""


class TrainOptions(msgspec.Struct, kw_only=True):
    stage: str
    data: list[str]  # JSONL files, or curate-data output directories (their <stage>.{train,valid}.jsonl)
    base: str  # registered model name, GGUF path or Hugging Face directory
    out: str
    rank: int = 16
    alpha: int | None = None  # None: 2 × rank
    targets: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_TARGETS))
    steps: int | None = None  # optimizer steps; None: from epochs
    epochs: float = 1.0
    lr: float = 2e-4
    grad_accum: int = 8  # examples per optimizer step (batch size 1)
    max_tokens: int = 512
    held_out: float = 0.1
    eval_data: list[str] = []  # evaluate on these pairs (say, other libraries) instead of a held-out split
    eval_limit: int | None = None  # score at most this many evaluation pairs (a fixed, hash-ordered subset)
    balance: float | None = None  # decision stages: keep at most this many of each answer per rarest-answer pair
    seed: int = 0
    save_every: int = 50
    resume: bool = False
    dtype: str = "f32"  # the adapter's tensors: f32 or f16 (never quantized)


class Example(msgspec.Struct, frozen=True):
    key: str  # prompt hash: decides the split
    prompt: list[dict[str, str]]
    answer: str
    choices: list[str] | None  # decision stages: the labels the answer is one of


class Encoded(msgspec.Struct, frozen=True):
    prompt_ids: list[int]
    answers: list[list[int]]  # the answer's tokens; for a decision, every label's tokens
    answer_index: int  # which of `answers` is the logged answer
    is_decision: bool
    truncated: bool


class EvalResult(msgspec.Struct):
    examples: int
    loss: float  # mean over examples of the mean answer-token negative log-likelihood (nats)
    accuracy: float
    # Decision stages: the mean over answers of the share of that answer's pairs picked right. Unlike accuracy it
    # does not reward always giving the most frequent answer.
    balanced_accuracy: float | None = None


class TrainState(msgspec.Struct, kw_only=True):
    step: int
    stage: str
    base_fingerprint: str
    data_digest: str
    rank: int
    alpha: int
    targets: list[str]
    seed: int
    grad_accum: int


class TrainReport(msgspec.Struct, kw_only=True):
    stage: str
    base: str
    adapter: str
    checkpoint: str
    train_examples: int
    held_out_examples: int
    truncated: int
    start_step: int
    steps: int
    seconds: float
    seconds_per_step: float
    before: EvalResult | None
    after: EvalResult | None


# ---- data -------------------------------------------------------------------------------------------------------


def load_examples(paths: Sequence[str], stage: str) -> list[Example]:
    """The stage's pairs from curate-data output (files or export directories), in file order."""
    if stage not in STAGE_SPECS:
        raise TrainError(f"unknown stage {stage!r} (stages: {', '.join(STAGE_SPECS)})")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [f for f in (path / f"{stage}.train.jsonl", path / f"{stage}.valid.jsonl") if f.is_file()]
            if not found:
                raise TrainError(f"{path}: no {stage}.train.jsonl or {stage}.valid.jsonl "
                                 f"(run `cra curate-data --stage {stage}`)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise TrainError(f"{path}: data file not found")
    examples: list[Example] = []
    for file in files:
        examples += _read_pairs(file, stage)
    if not examples:
        raise TrainError(f"{', '.join(map(str, files))}: no training pairs")
    return examples


def _read_pairs(path: Path, stage: str) -> list[Example]:
    out: list[Example] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise TrainError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise TrainError(f"{path}: cannot read: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainError(f"{where}: not JSON ({exc.msg}); expected one `cra curate-data` pair per line") from None
        messages = record.get("messages") if isinstance(record, dict) else None
        if (not isinstance(messages, list) or len(messages) < 2
                or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                           for m in messages)):
            raise TrainError(f"{where}: expected {{\"messages\": [{{\"role\", \"content\"}}, ...]}} with a prompt "
                             f"and an answer")
        if messages[-1]["role"] != "assistant":
            raise TrainError(f"{where}: the last message must be the assistant's answer")
        meta = record.get("meta") or {}
        if meta.get("stage") not in (None, stage):
            raise TrainError(f"{where}: a pair of stage {meta['stage']!r}, not {stage!r}")
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
        choices = meta.get("choices")
        answer = messages[-1]["content"]
        if not (isinstance(choices, list) and answer in choices and all(isinstance(c, str) for c in choices)):
            choices = None
        out.append(Example(key=prompt_digest(stage, prompt), prompt=prompt, answer=answer, choices=choices))
    return out


def split(examples: Sequence[Example], held_out: float) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not in_valid_split(e.key, held_out)]
    return train, [e for e in examples if in_valid_split(e.key, held_out)]


def balanced(examples: Sequence[Example], ratio: float) -> list[Example]:
    """Decision pairs with no answer more than `ratio` times as frequent as the rarest one (a context decision's
    "no" can outnumber "yes" 15 to 1; trained on that as it is, the adapter learns to always say "no"). Which pairs
    stay is decided by their prompt hash, so the subset is fixed; the order of the kept pairs is kept."""
    by_answer: dict[str, list[Example]] = {}
    for e in examples:
        if e.choices is not None:
            by_answer.setdefault(e.answer, []).append(e)
    if len(by_answer) < 2:
        return list(examples)
    cap = math.ceil(ratio * min(len(v) for v in by_answer.values()))
    kept = {id(e) for group in by_answer.values() for e in sorted(group, key=lambda e: e.key)[:cap]}
    return [e for e in examples if e.choices is None or id(e) in kept]


def fixed_subset(examples: Sequence[Example], limit: int | None) -> list[Example]:
    """At most `limit` examples, chosen by prompt hash (the same ones every run)."""
    if limit is None or len(examples) <= limit:
        return list(examples)
    return sorted(examples, key=lambda e: e.key)[:limit]


def data_digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(msgspec.json.encode(e))
    return h.hexdigest()


def encode(tokenizer: Any, example: Example, max_tokens: int) -> Encoded:
    """Token ids of the rendered prompt (ending with the assistant header) and of each answer (its text and the
    end-of-turn marker the template puts after it), the prompt cut from the left to fit `max_tokens`."""
    prompt_text = tokenizer.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True)

    def answer_ids(answer: str) -> list[int]:
        full = tokenizer.apply_chat_template([*example.prompt, {"role": "assistant", "content": answer}],
                                             tokenize=False)
        tail = full[len(prompt_text):] if full.startswith(prompt_text) else answer + (tokenizer.eos_token or "")
        return list(tokenizer(tail.rstrip("\n"), add_special_tokens=False)["input_ids"])

    texts = example.choices or [example.answer]
    answers = [answer_ids(t) for t in texts]
    prompt = list(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    longest = max(len(a) for a in answers)
    truncated = len(prompt) + longest > max_tokens
    if longest > max_tokens - 1:  # keep one prompt token and the answer's head
        answers = [a[: max_tokens - 1] for a in answers]
        longest = max_tokens - 1
    room = max_tokens - longest
    return Encoded(prompt_ids=prompt[-room:], answers=answers, answer_index=texts.index(example.answer),
                   is_decision=example.choices is not None, truncated=truncated)


# ---- model ------------------------------------------------------------------------------------------------------


def answer_logits(model: Any, prompt_ids: list[int], answer_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits predicting each answer token, the answer tokens): the positions whose label is not -100."""
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = torch.tensor([-100] * len(prompt_ids) + answer_ids)
    logits = model(input_ids=ids, logits_to_keep=len(answer_ids) + 1).logits[0, :-1]
    return logits, labels[len(prompt_ids):]


def evaluate(model: Any, items: Sequence[Encoded]) -> EvalResult | None:
    if not items:
        return None
    loss = correct = 0.0
    per_answer: dict[int, list[float]] = {}  # decision stages: answer index -> [right, pairs]
    model.eval()
    with torch.no_grad():
        for item in items:
            scores = []
            greedy_ok = False
            for index, ans in enumerate(item.answers):
                logits, target = answer_logits(model, item.prompt_ids, ans)
                logp = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]
                # A decision is scored as the engine's `decide` picks it: by the label's first token.
                scores.append(float(logp[0] if item.is_decision else logp.sum()))
                if index == item.answer_index:
                    loss += float(-logp.mean())
                    greedy_ok = bool((logits.argmax(-1) == target).all())
            if item.is_decision:
                right = float(max(range(len(scores)), key=scores.__getitem__) == item.answer_index)
                correct += right
                tally = per_answer.setdefault(item.answer_index, [0.0, 0.0])
                tally[0] += right
                tally[1] += 1
            else:
                correct += float(greedy_ok)
    balanced_accuracy = sum(r / n for r, n in per_answer.values()) / len(per_answer) if per_answer else None
    return EvalResult(examples=len(items), loss=loss / len(items), accuracy=correct / len(items),
                      balanced_accuracy=balanced_accuracy)


def describe(result: EvalResult) -> str:
    text = f"loss {result.loss:.4f}, accuracy {result.accuracy:.3f}"
    if result.balanced_accuracy is not None:
        text += f", balanced accuracy {result.balanced_accuracy:.3f}"
    return text


def checkpoint_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".ckpt")


def _example_order(n: int, seed: int, epoch: int, cache: dict[int, list[int]]) -> list[int]:
    if epoch not in cache:
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        cache[epoch] = order
    return cache[epoch]


def train(options: TrainOptions, *, log: Callable[[str], None] = lambda _: None,
          stop_after: int | None = None) -> TrainReport:
    """Train, evaluate before/after, export the GGUF adapter. `stop_after`: leave after that many steps of this
    run with the checkpoint saved (what an interruption does)."""
    _check_options(options)
    examples = load_examples(options.data, options.stage)
    if options.eval_data:
        train_set, held_set = list(examples), load_examples(options.eval_data, options.stage)
    else:
        train_set, held_set = split(examples, options.held_out)
    if options.balance is not None:
        train_set = balanced(train_set, options.balance)
    held_set = fixed_subset(held_set, options.eval_limit)
    if not train_set:
        raise TrainError(f"all {len(examples)} pairs fell in the held-out split: add data or lower --held-out")
    base = resolve_base(options.base)
    ckpt = checkpoint_dir(options.out)
    state = _read_state(ckpt) if options.resume else None
    if not options.resume and (ckpt / STATE_FILE).is_file():
        raise TrainError(f"{ckpt}: a checkpoint of an earlier run is there: pass --resume to continue it, or "
                         f"remove the folder to start over")
    alpha = options.alpha if options.alpha is not None else 2 * options.rank
    targets = [_SHORT_TARGETS.get(t, t) for t in options.targets]
    fresh = TrainState(step=0, stage=options.stage, base_fingerprint=base.fingerprint,
                       data_digest=data_digest(examples), rank=options.rank, alpha=alpha, targets=targets,
                       seed=options.seed, grad_accum=options.grad_accum)
    if state is not None:
        _check_resumable(state, fresh, base)

    model, tokenizer = load_base(base, log=log)
    encoded_train = [encode(tokenizer, e, options.max_tokens) for e in train_set]
    encoded_held = [encode(tokenizer, e, options.max_tokens) for e in held_set]
    truncated = sum(e.truncated for e in encoded_train + encoded_held)
    torch.manual_seed(options.seed)
    if state is not None:
        peft_model = PeftModel.from_pretrained(model, str(ckpt / "adapter"), is_trainable=True)
    else:
        config = LoraConfig(r=options.rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                            bias="none", task_type="CAUSAL_LM")
        try:
            peft_model = get_peft_model(model, config)
        except ValueError as exc:
            raise TrainError(f"--targets: {exc}") from None
        state = fresh
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0)
    if state.step and (ckpt / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        for group in optimizer.param_groups:
            group["lr"] = options.lr

    with peft_model.disable_adapter():
        before = evaluate(peft_model, encoded_held)
    if before:
        log(f"held-out before: {describe(before)} ({before.examples} examples)")
    total = options.steps if options.steps is not None else math.ceil(
        options.epochs * len(encoded_train) / options.grad_accum)
    start_step = state.step
    started = time.perf_counter()
    orders: dict[int, list[int]] = {}
    peft_model.train()
    try:
        while state.step < total and (stop_after is None or state.step - start_step < stop_after):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            tokens = 0
            for micro in range(options.grad_accum):
                position = state.step * options.grad_accum + micro
                epoch, offset = divmod(position, len(encoded_train))
                item = encoded_train[_example_order(len(encoded_train), options.seed, epoch, orders)[offset]]
                answer = item.answers[item.answer_index]
                logits, target = answer_logits(peft_model, item.prompt_ids, answer)
                loss = F.cross_entropy(logits.float(), target, ignore_index=-100)
                (loss / options.grad_accum).backward()
                step_loss += loss.item() / options.grad_accum
                tokens += len(item.prompt_ids) + len(answer)
            optimizer.step()
            state.step += 1
            elapsed = time.perf_counter() - t0
            log(f"step {state.step}/{total} loss {step_loss:.4f} {options.grad_accum / elapsed:.1f} examples/s "
                f"{tokens / elapsed:.0f} tokens/s")
            if state.step % options.save_every == 0:
                _save(ckpt, peft_model, optimizer, state)
    except KeyboardInterrupt:
        _save(ckpt, peft_model, optimizer, state)
        log(f"interrupted at step {state.step}; checkpoint saved in {ckpt}: rerun with --resume to continue")
        raise
    seconds = time.perf_counter() - started
    _save(ckpt, peft_model, optimizer, state)
    steps_done = state.step - start_step
    if state.step < total:
        log(f"stopped at step {state.step}/{total}; checkpoint saved in {ckpt}")
        return TrainReport(stage=options.stage, base=base.path, adapter="", checkpoint=str(ckpt),
                           train_examples=len(encoded_train), held_out_examples=len(encoded_held),
                           truncated=truncated, start_step=start_step, steps=state.step, seconds=seconds,
                           seconds_per_step=seconds / max(steps_done, 1), before=before, after=None)
    after = evaluate(peft_model, encoded_held)
    if after:
        log(f"held-out after: {describe(after)}")
    lora_state = {k: v.detach().cpu().numpy() for k, v in peft_model.state_dict().items() if "lora_" in k}
    cfg: Any = model.config
    export_lora(lora_state, options.out, model_type=cfg.model_type, alpha=alpha,
                n_head=cfg.num_attention_heads, n_head_kv=getattr(cfg, "num_key_value_heads", None)
                or cfg.num_attention_heads, base_gguf=base.path if base.kind == "gguf" else None,
                dtype=options.dtype)
    return TrainReport(stage=options.stage, base=base.path, adapter=str(Path(options.out).resolve()),
                       checkpoint=str(ckpt), train_examples=len(encoded_train), held_out_examples=len(encoded_held),
                       truncated=truncated, start_step=start_step, steps=state.step, seconds=seconds,
                       seconds_per_step=seconds / max(steps_done, 1), before=before, after=after)


def _check_options(o: TrainOptions) -> None:
    checks = [
        (o.rank >= 1, f"--rank {o.rank}: must be at least 1"),
        (o.steps is None or o.steps >= 1, f"--steps {o.steps}: must be at least 1"),
        (o.epochs > 0, f"--epochs {o.epochs}: must be above 0"),
        (o.lr > 0, f"--lr {o.lr}: must be above 0"),
        (o.grad_accum >= 1, f"--grad-accum {o.grad_accum}: must be at least 1"),
        (o.max_tokens >= 8, f"--max-tokens {o.max_tokens}: must be at least 8"),
        (0.0 <= o.held_out < 1.0, f"--held-out {o.held_out}: must be at least 0 and below 1"),
        (o.balance is None or o.balance >= 1, f"--balance {o.balance}: must be at least 1"),
        (o.eval_limit is None or o.eval_limit >= 1, f"--eval-limit {o.eval_limit}: must be at least 1"),
        (o.save_every >= 1, f"--save-every {o.save_every}: must be at least 1"),
        (o.dtype in ("f32", "f16"), f"--dtype {o.dtype!r}: use f32 or f16"),
        (o.out.endswith(".gguf"), f"--out {o.out}: the adapter file must end in .gguf"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainError(message)
    unknown = [t for t in o.targets if _SHORT_TARGETS.get(t, t) not in DEFAULT_TARGETS]
    if unknown:
        raise TrainError(f"--targets {', '.join(unknown)}: use some of {', '.join(DEFAULT_TARGETS)}")


def _read_state(ckpt: Path) -> TrainState:
    try:
        return msgspec.json.decode((ckpt / STATE_FILE).read_bytes(), type=TrainState)
    except FileNotFoundError:
        raise TrainError(f"--resume: no checkpoint in {ckpt}") from None
    except msgspec.DecodeError as exc:
        raise TrainError(f"{ckpt / STATE_FILE}: unreadable checkpoint state: {exc}") from None


def _check_resumable(state: TrainState, now: TrainState, base: BaseSource) -> None:
    if state.base_fingerprint != now.base_fingerprint:
        raise TrainError(f"--resume: the checkpoint's adapter was trained on another base model, not {base.ref} "
                         f"({base.path}); pass that base, or remove the checkpoint to start over")
    for field in ("stage", "data_digest", "rank", "alpha", "targets", "seed", "grad_accum"):
        if getattr(state, field) != getattr(now, field):
            what = "the data" if field == "data_digest" else field
            raise TrainError(f"--resume: {what} differs from the checkpoint's ({getattr(state, field)!r}); "
                             f"resume with the same settings, or remove the checkpoint to start over")


def _save(ckpt: Path, model: Any, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
    """Replace the checkpoint as a whole: a crash while writing leaves the previous one."""
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    staging = ckpt.with_name(ckpt.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_pretrained(str(staging / "adapter"), save_embedding_layers=False)
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    (staging / STATE_FILE).write_bytes(msgspec.json.encode(state))
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(ckpt, old)
    os.replace(staging, ckpt)
    shutil.rmtree(old, ignore_errors=True)
