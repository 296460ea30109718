"""`cra fuse` on tiny Llama and Qwen2 models: the merged model computes what llama.cpp computes with the adapter
applied at run time, and the quantized deployments load, stay close and are smaller."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
from train_toy import write_tiny_base

from cra.clients import cli
from cra.training.synthetic import write_lora_for

PROMPT = (b"<|im_start|>system\nAnswer yes or no.<|im_end|>\n<|im_start|>user\n"
          b"is the header needed for the task?<|im_end|>\n<|im_start|>assistant\n")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def logprobs(model: Path, lora: Path | None = None) -> np.ndarray:
    """llama.cpp's log-probabilities at every position of PROMPT (the adapter, if any, applied at run time)."""
    llm = llama_cpp.Llama(str(model), n_ctx=256, logits_all=True, verbose=False, n_threads=1,
                          lora_path=str(lora) if lora else None)
    ids = llm.tokenize(PROMPT, add_bos=False, special=True)
    llm.eval(ids)
    x = np.array(llm.scores[: len(ids)], dtype=np.float64)
    x -= x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def fused(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp(f"fuse-{request.param}")
    _, base = write_tiny_base(tmp / "base.gguf", arch=request.param)
    # All seven projections, alpha != rank: the merge must use llama.cpp's alpha / rank scale.
    adapter = write_lora_for(base, tmp / "adapter.gguf", rank=4, alpha=6.0, scale_init=0.8,
                             targets=("q", "k", "v", "o", "gate", "up", "down"))
    reports = {}
    for type_ in ("f16", "q8_0", "q4_k"):
        rc, out, err = run_cli(["fuse", "--base", str(base), "--adapter", str(adapter), "--out",
                                str(tmp / f"fused-{type_}.gguf"), "--type", type_, "--json"])
        assert rc == 0, err
        reports[type_] = json.loads(out)
    return {"base": base, "adapter": adapter, "reports": reports, "tmp": tmp}


def test_fused_f16_matches_the_runtime_adapter(fused: dict[str, Any]) -> None:
    report = fused["reports"]["f16"]
    assert report["merged_tensors"] == 2 * 7 and report["scale"] == pytest.approx(6.0 / 4)
    runtime = logprobs(fused["base"], fused["adapter"])
    merged = logprobs(Path(report["out"]))
    base_only = logprobs(fused["base"])
    diff = float(np.abs(merged - runtime).max())
    print(f"max |fused f16 - runtime adapter| log-prob: {diff:.5f}; adapter effect "
          f"{float(np.abs(runtime - base_only).max()):.3f}")
    assert diff < 0.03
    assert float(np.abs(runtime - base_only).max()) > 0.5  # the adapter really changes the model
    assert (merged.argmax(-1) == runtime.argmax(-1)).all()


def test_quantized_fusions_load_stay_close_and_are_smaller(fused: dict[str, Any]) -> None:
    reports = fused["reports"]
    runtime = logprobs(fused["base"], fused["adapter"])
    q8 = logprobs(Path(reports["q8_0"]["out"]))
    diff = float(np.abs(q8 - runtime).max())
    agree = float((q8.argmax(-1) == runtime.argmax(-1)).mean())
    print(f"q8_0: max |diff| {diff:.4f}, argmax agreement {agree:.3f}")
    assert diff < 0.5 and agree >= 0.9
    sizes = {t: Path(r["out"]).stat().st_size for t, r in reports.items()}
    assert sizes["q8_0"] < sizes["f16"] and sizes["q4_k"] < sizes["q8_0"]
    assert all(r["bytes"] == sizes[t] for t, r in reports.items())
    file_types = {t: int(gguf.GGUFReader(r["out"]).fields["general.file_type"].contents()) for t, r in reports.items()}
    assert file_types == {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
                          "q4_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    assert not list(fused["tmp"].glob("*.partial"))  # no intermediate file left behind


def test_fused_model_keeps_the_vocabulary_and_template(fused: dict[str, Any]) -> None:
    base, merged = gguf.GGUFReader(fused["base"]), gguf.GGUFReader(fused["reports"]["f16"]["out"])
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template",
                f"{merged.fields['general.architecture'].contents()}.attention.head_count"):
        assert merged.fields[key].contents() == base.fields[key].contents(), key
    # Matrices at F16, vectors (norms, biases) at F32, as llama.cpp's own converter writes an F16 model.
    types = {t.name: gguf.GGMLQuantizationType(t.tensor_type) for t in merged.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
