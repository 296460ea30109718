"""Synthetic GGUF models and LoRA adapters, deterministic from a seed.

Used by tests and benchmarks: a tiny llama-architecture model (loads in milliseconds, real llama.cpp code paths)
and LoRA adapters for any base GGUF (the tiny one or a real quantized model).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import gguf
import numpy as np

from cra.pipeline.models.gguf_info import read_gguf_info as read_gguf

CONTROL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# ChatML, the same shape Qwen models use, so prompts render like the real default model's.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# A few merges so the BPE tokenizer has real work to do (llama.cpp refuses a gpt2 vocab without merges).
_MERGES: tuple[tuple[str, str], ...] = (
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("e", "s"),
    ("Ġ", "a"),
    ("r", "e"),
    ("o", "n"),
)

LORA_TARGETS: tuple[str, ...] = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
_TARGET_ALIASES = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "attn_o": "attn_output",
                   "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte → printable-unicode mapping, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    mapping: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = 256 + extra
            extra += 1
    return [chr(mapping[b]) for b in range(256)]


def _vocab() -> tuple[list[str], list[int], list[str]]:
    tokens = _bytes_to_unicode()
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    for left, right in _MERGES:
        tokens.append(left + right)
        types.append(int(gguf.TokenType.NORMAL))
    for control in CONTROL_TOKENS:
        tokens.append(control)
        types.append(int(gguf.TokenType.CONTROL))
    merges = [f"{left} {right}" for left, right in _MERGES]
    return tokens, types, merges


def write_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    n_ff: int = 128,
    n_ctx: int = 512,
    n_head: int = 4,
) -> Path:
    """Write a random-weight llama-architecture F32 GGUF with a byte-level GPT-2 vocab and a ChatML template."""
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, types, merges = _vocab()
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama")
    _write_llama_header(writer, name=f"cra-tiny-llama-seed{seed}", n_embd=n_embd, n_layer=n_layer, n_ff=n_ff,
                        n_ctx=n_ctx, n_head=n_head, n_head_kv=n_head)
    _write_vocab(writer, tokens, types, merges)

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    # Weights scaled so logits spread by a few units: greedy output is context dependent, not a constant token.
    proj_std = 1.0 / np.sqrt(n_embd)
    writer.add_tensor("token_embd.weight", normal((n_vocab, n_embd), 1.0))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = normal((n_vocab, n_embd), 2.0 / np.sqrt(n_embd))
    # Control tokens (end of turn/text) get near-zero logits: free generation runs to the token budget, so tests
    # control its length; grammar-constrained output still ends, because the grammar then allows only them.
    output[n_vocab - len(CONTROL_TOKENS) :] *= 0.02
    writer.add_tensor("output.weight", output)
    for block in range(n_layer):
        prefix = f"blk.{block}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", normal((n_embd, n_embd), proj_std))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", normal((n_ff, n_embd), proj_std))
        writer.add_tensor(f"{prefix}.ffn_up.weight", normal((n_ff, n_embd), proj_std))
        writer.add_tensor(f"{prefix}.ffn_down.weight", normal((n_embd, n_ff), 1.0 / np.sqrt(n_ff)))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_llama_header(writer: gguf.GGUFWriter, *, name: str, n_embd: int, n_layer: int, n_ff: int, n_ctx: int,
                        n_head: int, n_head_kv: int, rms_eps: float = 1e-5, rope_theta: float | None = None) -> None:
    writer.add_name(name)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(rms_eps)
    if rope_theta is not None:
        writer.add_rope_freq_base(rope_theta)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)


def _write_vocab(writer: gguf.GGUFWriter, tokens: list[str], types: list[int], merges: list[str]) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)


def vocab_size() -> int:
    """The synthetic byte-level vocabulary's size (256 bytes, the merges, the control tokens)."""
    return len(_vocab()[0])


# Hugging Face Llama/Qwen2 module names → llama.cpp tensor names (per block), for weights and LoRA targets.
HF_BLOCK_TENSORS: dict[str, str] = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def llama_rope_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder a q/k projection's output rows from Hugging Face's rotate-half RoPE layout to llama.cpp's
    interleaved one (what llama.cpp's convert_hf_to_gguf.py does for the llama architecture)."""
    rows = weight.shape[0]
    return np.ascontiguousarray(
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape))


def write_model_from_state_dict(
    path: str | Path,
    state_dict: Mapping[str, np.ndarray],
    *,
    n_head: int,
    n_head_kv: int | None = None,
    n_ctx: int = 512,
    rms_eps: float = 1e-5,
    rope_theta: float = 10000.0,
    name: str = "cra-tiny-llama-from-hf",
    arch: str = "llama",
) -> Path:
    """Write an F32 GGUF holding exactly the weights of a Hugging Face `LlamaForCausalLM` (`arch="llama"`) or
    `Qwen2ForCausalLM` (`arch="qwen2"`: q/k/v biases, NEOX RoPE so no row permutation) state dict (numpy
    arrays), with the synthetic byte-level vocab: the model's vocab size must be `vocab_size()`."""
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"unsupported architecture {arch!r}: llama or qwen2")
    path = Path(path)
    n_head_kv = n_head_kv or n_head
    tokens, types, merges = _vocab()
    embed = state_dict["model.embed_tokens.weight"]
    if embed.shape[0] != len(tokens):
        raise ValueError(f"the model's vocab has {embed.shape[0]} tokens; the synthetic vocab has {len(tokens)}")
    n_layer = 0
    while f"model.layers.{n_layer}.self_attn.q_proj.weight" in state_dict:
        n_layer += 1
    n_ff = state_dict["model.layers.0.mlp.gate_proj.weight"].shape[0]
    writer = gguf.GGUFWriter(str(path), arch)
    _write_llama_header(writer, name=name, n_embd=embed.shape[1], n_layer=n_layer, n_ff=n_ff, n_ctx=n_ctx,
                        n_head=n_head, n_head_kv=n_head_kv, rms_eps=rms_eps, rope_theta=rope_theta)
    _write_vocab(writer, tokens, types, merges)

    def f32(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array, dtype=np.float32)

    writer.add_tensor("token_embd.weight", f32(embed))
    writer.add_tensor("output_norm.weight", f32(state_dict["model.norm.weight"]))
    writer.add_tensor("output.weight", f32(state_dict.get("lm_head.weight", embed)))
    for block in range(n_layer):
        for hf_name, gguf_name in HF_BLOCK_TENSORS.items():
            weight = f32(state_dict[f"model.layers.{block}.{hf_name}.weight"])
            if arch == "llama" and gguf_name in ("attn_q", "attn_k"):
                weight = llama_rope_permute(weight, n_head if gguf_name == "attn_q" else n_head_kv)
            writer.add_tensor(f"blk.{block}.{gguf_name}.weight", weight)
            bias = state_dict.get(f"model.layers.{block}.{hf_name}.bias")
            if bias is not None:
                writer.add_tensor(f"blk.{block}.{gguf_name}.bias", f32(bias))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _normalize_targets(targets: Sequence[str]) -> list[str]:
    names = []
    for target in targets:
        name = _TARGET_ALIASES.get(target, target)
        if name not in LORA_TARGETS:
            raise ValueError(f"unknown LoRA target {target!r}; use one of {', '.join(LORA_TARGETS)}")
        names.append(name)
    return names


_LORA_DTYPES = {"f32": np.float32, "f16": np.float16}


def write_lora_for(
    base_path: str | Path,
    path: str | Path,
    *,
    rank: int = 4,
    targets: Sequence[str] = ("attn_q", "attn_v"),
    alpha: float = 8.0,
    seed: int = 1,
    scale_init: float = 0.5,
    dtype: str = "f32",
) -> Path:
    """Write a random LoRA adapter GGUF whose tensors fit the base model at `base_path`.

    lora_a is (rank, D_in) and lora_b is (D_out, rank), in `dtype` ("f32", or "f16" as llama.cpp's
    convert_lora_to_gguf.py writes by default) whatever the base's quantization.
    """
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if dtype not in _LORA_DTYPES:
        raise ValueError(f"unknown LoRA dtype {dtype!r}; use one of {', '.join(_LORA_DTYPES)}")
    out_type = _LORA_DTYPES[dtype]
    path = Path(path)
    # The project's header reader: fast on real models (gguf.GGUFReader parses the whole vocabulary).
    base = read_gguf(base_path)
    arch = base.architecture
    shapes = base.tensor_shapes  # ggml order: ne[0] = input dim, ne[1] = output dim
    wanted = _normalize_targets(targets)
    rng = np.random.default_rng(seed)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    written = 0
    block = 0
    while any(name.startswith(f"blk.{block}.") for name in shapes):
        for target in wanted:
            name = f"blk.{block}.{target}.weight"
            if name not in shapes:
                continue
            d_in, d_out = shapes[name][0], shapes[name][1]
            lora_a = (rng.standard_normal((rank, d_in)) * (scale_init / np.sqrt(d_in))).astype(out_type)
            lora_b = (rng.standard_normal((d_out, rank)) * (scale_init / np.sqrt(rank))).astype(out_type)
            writer.add_tensor(f"{name}.lora_a", lora_a)
            writer.add_tensor(f"{name}.lora_b", lora_b)
            written += 1
        block += 1
    if written == 0:
        raise ValueError(f"{base_path}: none of the targets {wanted} exist in the base model")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_lora_for_other_base(
    path: str | Path,
    *,
    n_embd: int = 32,
    n_ff: int = 64,
    rank: int = 4,
    targets: Sequence[str] = ("attn_q", "attn_v"),
    seed: int = 3,
) -> Path:
    """Write a LoRA adapter for a tiny model of another width: it does not fit the default tiny model."""
    with tempfile.TemporaryDirectory() as tmp:
        other_base = write_tiny_model(Path(tmp) / "other-base.gguf", seed=seed, n_embd=n_embd, n_ff=n_ff)
        return write_lora_for(other_base, path, rank=rank, targets=targets, seed=seed)
