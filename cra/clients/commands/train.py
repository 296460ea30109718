"""`cra train STAGE`: train a stage's LoRA adapter from `cra curate-data` pairs, export it as a GGUF adapter and
register its route. Needs the `train` extra (torch, transformers, peft), imported only when the command runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cra.pipeline.stages.registry import STAGE_SPECS

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a stage's LoRA adapter from curated pairs and register it",
        description="Train a LoRA adapter (PEFT, the 7 projections by default) for one pipeline stage on "
                    "`cra curate-data` pairs: answer-only loss, a held-out split by prompt hash evaluated before "
                    "and after, checkpoints next to --out (--resume continues). Exports a GGUF LoRA llama.cpp "
                    "loads and adds the route (base model, stage) -> adapter to the user config.")
    p.add_argument("stage", metavar="STAGE", help=f"the pipeline stage: {', '.join(STAGE_SPECS)}")
    p.add_argument("--data", required=True, action="append", metavar="PAIRS",
                   help="curate-data output: a .jsonl file or the export directory (repeatable)")
    p.add_argument("--base", required=True, metavar="MODEL",
                   help="base model: a registered name, a GGUF file, or a Hugging Face model directory")
    p.add_argument("--out", metavar="ADAPTER.gguf",
                   help="adapter file (default: ~/.local/share/cra/adapters/<base>/<stage adapter>.gguf)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (16)")
    p.add_argument("--alpha", type=int, help="LoRA alpha (default: 2 x rank)")
    p.add_argument("--targets", help="comma-separated projections (default: q,k,v,o,gate,up,down)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps in total")
    length.add_argument("--epochs", type=float, default=1.0, help="passes over the training split (1)")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (2e-4)")
    p.add_argument("--grad-accum", type=int, default=8, help="examples per optimizer step; batch size is 1 (8)")
    p.add_argument("--max-tokens", type=int, default=512,
                   help="longest example; longer prompts are cut from the left (512)")
    p.add_argument("--held-out", type=float, default=0.1, help="share of prompts held out for evaluation (0.1)")
    p.add_argument("--eval-data", action="append", default=[], metavar="PAIRS",
                   help="evaluate on these pairs (say, held-out libraries) instead of a held-out split; all of "
                        "--data is then trained on (repeatable)")
    p.add_argument("--eval-limit", type=int, help="score at most this many evaluation pairs (a fixed subset)")
    p.add_argument("--balance", type=float, metavar="RATIO",
                   help="decision stages: train on at most RATIO pairs of each answer per pair of the rarest one")
    p.add_argument("--seed", type=int, default=0, help="LoRA init and example order (0)")
    p.add_argument("--save-every", type=int, default=50, help="checkpoint every N steps (50)")
    p.add_argument("--dtype", choices=("f32", "f16"), default="f32", help="adapter tensor type (f32)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint next to --out")
    p.add_argument("--no-register", action="store_true", help="do not add the route to the user config")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_train)


def default_out(base: str, stage: str) -> Path:
    data = Path(os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share"))
    return data / "cra" / "adapters" / Path(base).stem / STAGE_SPECS[stage].default_file


def _train(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"cra train: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.stage not in STAGE_SPECS:
        return fail(f"unknown stage {args.stage!r} (stages: {', '.join(STAGE_SPECS)})")
    try:
        import msgspec

        from cra.training.adapter_routes import RouteError, register_adapter
        from cra.training.hf_base import BaseModelError
        from cra.training.lora_export import ExportError
        from cra.training.train import DEFAULT_TARGETS, TrainError, TrainOptions, describe, train
    except ImportError as exc:
        return fail(f"training needs torch, transformers and peft: pip install 'cra[train]' ({exc})")
    out = Path(args.out) if args.out else default_out(args.base, args.stage)
    options = TrainOptions(
        stage=args.stage, data=args.data, base=args.base, out=str(out), rank=args.rank, alpha=args.alpha,
        targets=[t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else list(DEFAULT_TARGETS),
        steps=args.steps, epochs=args.epochs, lr=args.lr, grad_accum=args.grad_accum, max_tokens=args.max_tokens,
        held_out=args.held_out, eval_data=args.eval_data, eval_limit=args.eval_limit, balance=args.balance,
        seed=args.seed, save_every=args.save_every, resume=args.resume, dtype=args.dtype)
    try:
        report = train(options, log=lambda line: print(line, file=sys.stderr, flush=True))
        registered = None
        if not args.no_register:
            from cra.training.hf_base import resolve_base

            key = resolve_base(args.base).route_key
            if key is None:
                print("cra train: not registered: the base is a Hugging Face directory, not a model cra serves; "
                      "add the route under [adapters] by hand", file=sys.stderr)
            else:
                config = register_adapter(key, args.stage, report.adapter)
                registered = {"base_model": key, "stage": args.stage, "adapter": report.adapter,
                              "config": str(config)}
    except (TrainError, BaseModelError, ExportError, RouteError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps({**msgspec.to_builtins(report), "registered": registered}, indent=2))
        return 0
    print(f"adapter: {report.adapter} ({report.steps} steps, {report.seconds_per_step:.3f} s/step, "
          f"{report.train_examples} train / {report.held_out_examples} held-out examples, "
          f"{report.truncated} truncated)")
    for name, result in (("before", report.before), ("after", report.after)):
        if result is not None:
            print(f"held-out {name}: {describe(result)}")
    if registered:
        print(f"registered: [adapters.{json.dumps(registered['base_model'])}] {args.stage} = "
              f"{json.dumps(report.adapter)} in {registered['config']}")
    return 0
