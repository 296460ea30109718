"""`cra fuse`: merge a LoRA adapter into its base model and write the merged model as a GGUF (F16, or quantized
as a whole by llama.cpp). Imports the merge code only when the command runs."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_BAD_INPUT = 2
TYPES = ("f16", "q8_0", "q6_k", "q4_k")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "fuse", help="merge a LoRA adapter into its base model (F16, Q8_0, Q6_K or Q4_K GGUF)",
        description="Merge a GGUF LoRA adapter into its base model's weights (W + alpha/rank * B*A, as llama.cpp "
                    "applies it at run time) on the dequantized base, write the merged model at F16, then quantize "
                    "the merged model as a whole with llama.cpp's quantizer. The adapter is never quantized on its "
                    "own.")
    p.add_argument("--base", required=True, metavar="MODEL", help="base model: a registered name or a GGUF file")
    p.add_argument("--adapter", required=True, metavar="ADAPTER.gguf", help="the LoRA adapter (GGUF)")
    p.add_argument("--out", required=True, metavar="FUSED.gguf", help="the merged model to write")
    # No argparse `choices`: an unknown type gets cra's own message and exit code 2 like every other bad input.
    p.add_argument("--type", default="f16", metavar="TYPE", help=f"output type: {', '.join(TYPES)} (f16)")
    p.add_argument("--threads", type=int, help="quantizer threads (default: the CPU count, at most 8)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_fuse)


def _fuse(args: argparse.Namespace) -> int:
    from cra.training.fuse import FuseError, fuse

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = fuse(args.base, args.adapter, args.out, args.type, log=log, threads=args.threads)
    except FuseError as exc:
        print(f"cra fuse: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"cra fuse: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        import msgspec

        print(json.dumps(msgspec.to_builtins(report), indent=2))
        return 0
    print(f"{report.out}: {report.type}, {report.bytes / 2**20:.1f} MiB; {report.merged_tensors} tensors merged "
          f"(scale {report.scale:g}); merge {report.seconds_merge:.1f} s, quantize {report.seconds_quantize:.1f} s")
    return 0
