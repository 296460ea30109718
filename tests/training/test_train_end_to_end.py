"""`cra train` end to end on a tiny Llama: train a LoRA on a toy decision set, export it as a GGUF adapter, load it
in llama.cpp next to a GGUF of the same base weights, and compare llama.cpp's log-probs with torch's (PEFT)."""

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
import torch
from peft import PeftModel
from train_toy import STAGE, tiny_model, toy_pairs, write_pairs, write_tiny_base

from cra.clients import cli
from cra.pipeline.config import load_config
from cra.training.hf_base import cache_path, load_base, resolve_base
from cra.training.train import TrainOptions, checkpoint_dir, train

torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared machine


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `cra train` run per architecture: llama (q/k rows permuted for llama.cpp's RoPE layout) and qwen2
    (the default models' architecture: q/k/v biases, no permutation)."""
    arch = request.param
    tmp = tmp_path_factory.mktemp(f"train-{arch}")
    _, base = write_tiny_base(tmp / "base.gguf", arch=arch)
    data = write_pairs(tmp / "scope.train.jsonl", toy_pairs(64))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))
        rc, out, err = run_cli(["train", STAGE, "--data", str(data), "--base", str(base), "--out",
                                str(tmp / "scope.gguf"), "--rank", "8", "--steps", "60", "--lr", "5e-3",
                                "--grad-accum", "4", "--held-out", "0.25", "--json"])
    assert rc == 0, err
    return {"arch": arch, "tmp": tmp, "base": base, "report": json.loads(out), "stderr": err}


def test_training_beats_the_base_on_held_out_pairs(trained: dict[str, Any]) -> None:
    report = trained["report"]
    before, after = report["before"], report["after"]
    assert report["steps"] == 60 and report["held_out_examples"] > 5 and report["train_examples"] > 30
    assert after["accuracy"] > before["accuracy"]
    assert after["accuracy"] >= 0.8  # scored by each label's first token, as the engine's `decide` picks
    assert after["loss"] < before["loss"] / 2
    progress = [line for line in trained["stderr"].splitlines() if line.startswith("step ")]
    assert progress[0].startswith("step 1/60 loss ") and "examples/s" in progress[0]
    assert len(progress) == 60
    print(f"tiny {trained['arch']}: {report['seconds_per_step']:.4f} s/step (4 examples per step); held-out "
          f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}, loss {before['loss']:.3f} -> "
          f"{after['loss']:.3f}")


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_llama_cpp_applies_the_adapter_as_torch_does(trained: dict[str, Any]) -> None:
    adapter = Path(trained["report"]["adapter"])
    reader = gguf.GGUFReader(adapter)
    assert bytes(reader.fields["general.type"].parts[-1]).decode() == "adapter"
    lora = [t for t in reader.tensors if t.name.endswith((".lora_a", ".lora_b"))]
    assert len(lora) == 2 * 7 * 2  # 2 blocks x 7 projections x (a, b)
    assert {t.tensor_type for t in lora} == {gguf.GGMLQuantizationType.F32}

    text = (b"<|im_start|>system\nAnswer yes or no.<|im_end|>\n<|im_start|>user\n"
            b"7: plum plum plum<|im_end|>\n<|im_start|>assistant\n")

    def llama_cpp_logprobs(lora_path: str | None) -> tuple[list[int], np.ndarray]:
        llm = llama_cpp.Llama(str(trained["base"]), n_ctx=256, logits_all=True, verbose=False, n_threads=1,
                              lora_path=lora_path)
        ids = llm.tokenize(text, add_bos=False, special=True)
        llm.eval(ids)
        return ids, _log_softmax(np.array(llm.scores[: len(ids)]))

    ids, with_adapter = llama_cpp_logprobs(str(adapter))
    _, base_only = llama_cpp_logprobs(None)
    peft = PeftModel.from_pretrained(tiny_model(arch=trained["arch"]), str(checkpoint_dir(adapter) / "adapter")).eval()
    with torch.no_grad():
        torch_logprobs = _log_softmax(peft(torch.tensor([ids])).logits[0].numpy())
    agreement = float(np.abs(with_adapter - torch_logprobs).max())
    print(f"{trained['arch']}: max |llama.cpp - torch| log-prob with the adapter: {agreement:.5f}")
    assert agreement < 0.05
    assert float(np.abs(with_adapter - base_only).max()) > 0.5  # the adapter is really applied


def test_the_route_is_registered_in_the_user_config(trained: dict[str, Any]) -> None:
    registered = trained["report"]["registered"]
    base = str(Path(trained["base"]).resolve())
    assert registered["base_model"] == base and registered["stage"] == STAGE
    config = load_config(None, path=registered["config"], user=False)
    assert config.adapters[base][STAGE] == trained["report"]["adapter"]


def test_the_dequantized_base_is_cached_and_loads_the_same_weights(trained: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(trained["tmp"] / "cache"))
    source = resolve_base(str(trained["base"]))
    assert (cache_path(source) / ".complete").is_file()
    model, tokenizer = load_base(source)
    expected = tiny_model(arch=trained["arch"]).state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True).endswith("<|im_start|>assistant\n")


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    _, base = write_tiny_base(tmp_path / "base.gguf")
    data = write_pairs(tmp_path / "pairs.jsonl", toy_pairs(16))

    def options(out: str, **kw: Any) -> TrainOptions:
        return TrainOptions(stage=STAGE, data=[str(data)], base=str(base), out=str(tmp_path / out), rank=4,
                            steps=6, lr=5e-3, grad_accum=2, held_out=0.25, save_every=100, **kw)

    stopped = train(options("resumed.gguf"), stop_after=3)
    assert stopped.steps == 3 and stopped.adapter == ""
    assert json.loads((tmp_path / "resumed.ckpt" / "state.json").read_text())["step"] == 3
    rc, _, err = run_cli(["train", STAGE, "--data", str(data), "--base", str(base), "--out",
                          str(tmp_path / "resumed.gguf"), "--rank", "4", "--steps", "6", "--lr", "5e-3",
                          "--grad-accum", "2", "--held-out", "0.25", "--resume", "--no-register"])
    assert rc == 0, err
    steps = [line.split()[1] for line in err.splitlines() if line.startswith("step ")]
    assert steps == ["4/6", "5/6", "6/6"]
    assert not (tmp_path / "config").exists()  # --no-register

    straight = train(options("straight.gguf"))
    assert straight.steps == 6
    resumed_t = {t.name: np.array(t.data) for t in gguf.GGUFReader(tmp_path / "resumed.gguf").tensors}
    straight_t = {t.name: np.array(t.data) for t in gguf.GGUFReader(tmp_path / "straight.gguf").tensors}
    assert resumed_t.keys() == straight_t.keys()
    for name, value in straight_t.items():
        np.testing.assert_allclose(resumed_t[name], value, atol=1e-5, err_msg=name)

    other_base = tmp_path / "other.gguf"
    write_tiny_base(other_base, seed=1)
    rc, _, err = run_cli(["train", STAGE, "--data", str(data), "--base", str(other_base), "--out",
                          str(tmp_path / "resumed.gguf"), "--rank", "4", "--steps", "8", "--grad-accum", "2",
                          "--held-out", "0.25", "--resume", "--no-register"])
    assert rc == 2 and "trained on another base model" in err and "Traceback" not in err
