"""A tiny Hugging Face Llama (built from a config, no download), a GGUF of the same weights, and a toy decision
dataset in the `cra curate-data` format whose answer is determined by the prompt. Shared by the `cra train` tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from cra.training.synthetic import vocab_size, write_model_from_state_dict

N_HEAD = 4
STAGE = "scope"
# The answer is "yes" exactly when the prompt names a fruit: learnable in a few steps, and a base model
# with random weights is at chance.
YES_WORDS = ("apple", "pear", "plum", "fig", "grape", "lime")
NO_WORDS = ("rock", "iron", "sand", "clay", "salt", "coal")


def tiny_model(seed: int = 0, arch: str = "llama") -> PreTrainedModel:
    """A 2-block model with the synthetic vocab: `LlamaForCausalLM`, or `Qwen2ForCausalLM` (q/k/v biases; the
    default models' architecture)."""
    shape = {"vocab_size": vocab_size(), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": N_HEAD, "num_key_value_heads": N_HEAD, "max_position_embeddings": 512,
             "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "initializer_range": 0.1}
    torch.manual_seed(seed)
    if arch == "qwen2":
        model: PreTrainedModel = Qwen2ForCausalLM(Qwen2Config(**shape))
        with torch.no_grad():  # the biases start at zero; give them values so they are really carried over
            for name, param in model.named_parameters():
                if name.endswith(".bias"):
                    param.normal_(0.0, 0.1)
        return model.eval()
    return LlamaForCausalLM(LlamaConfig(**shape)).eval()


def write_tiny_base(path: Path, seed: int = 0, arch: str = "llama") -> tuple[PreTrainedModel, Path]:
    """The model and a GGUF (F32, the synthetic byte-level vocab) holding exactly its weights."""
    model = tiny_model(seed, arch)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return model, write_model_from_state_dict(path, state, n_head=N_HEAD, arch=arch)


def toy_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        word = rng.choice(YES_WORDS if i % 2 == 0 else NO_WORDS)
        answer = "yes" if word in YES_WORDS else "no"
        messages = [{"role": "system", "content": "Answer yes or no."},
                    {"role": "user", "content": f"{i}: {word} {word} {word}"},
                    {"role": "assistant", "content": answer}]
        pairs.append({"messages": messages, "meta": {"stage": STAGE, "choices": ["yes", "no"], "label": "positive"}})
    return pairs


def write_pairs(path: Path, pairs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path
