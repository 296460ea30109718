"""`cra bench engine`: argument errors are clear; on the real model it prints one JSON object with the agreed keys."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cra.bench import engine as bench_engine

KEYS = {
    "engine_overhead", "lora_decode_ratio", "switch_ms", "reloads", "prefix_reuse_ttft_ratio", "decisions_per_s",
    "batched_speedup", "cancel_ms", "rss_mb", "model", "threads", "n_ctx", "adapter_type", "adapter_layout",
    "lora_rank",
}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_engine.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_engine.main(parse("--model", str(tmp_path / "none.gguf"), "--json")) == 2
    err = capsys.readouterr().err
    assert "none.gguf" in err and "cra models install" in err


def test_too_small_context_is_rejected(tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_engine.main(parse("--model", str(tiny_model_path), "--n-ctx", "512")) == 2
    assert "--n-ctx must be at least 1200" in capsys.readouterr().err


def test_markdown_table_lists_every_metric_with_its_target() -> None:
    table = bench_engine.markdown_table({"engine_overhead": 0.97, "reloads": 0, "model": "m.gguf"})
    assert table.splitlines()[2] == "| engine_overhead | 0.970 | >= 0.95 |"
    assert "| reloads | 0 | 0 |" in table and "| model | m.gguf |  |" in table


@pytest.mark.real_model
@pytest.mark.slow
def test_full_run_on_the_real_model(real_model_0_5b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_engine.main(parse("--model", str(real_model_0_5b), "--json", "--threads", "1")) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS
    assert result["reloads"] == 0
    assert result["prefix_reuse_ttft_ratio"] < 0.5
    assert result["cancel_ms"] <= 200
    assert result["lora_rank"] == 16


def test_unknown_adapter_type_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--adapter-type", "q4_0")
    assert "invalid choice: 'q4_0'" in capsys.readouterr().err
    assert parse().adapter_type == "f16" and parse("--adapter-type", "f32").adapter_type == "f32"


def test_adapter_layout_defaults_to_the_engine_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse().adapter_layout == "cpu" and parse("--adapter-layout", "as-is").adapter_layout == "as-is"
    with pytest.raises(SystemExit):
        parse("--adapter-layout", "q4")
    assert "invalid choice: 'q4'" in capsys.readouterr().err


def test_lora_rank_below_one_is_rejected(tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse().lora_rank == 16
    assert bench_engine.main(parse("--model", str(tiny_model_path), "--lora-rank", "0")) == 2
    assert "--lora-rank must be >= 1, got 0" in capsys.readouterr().err
