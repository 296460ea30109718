"""`cra bench adapters` end to end on a tiny Llama with a LoRA trained by `cra train` on a toy decision set: every
row and column is measured, the adapter's gain is real, and the fused F16 model keeps it."""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from cra.clients import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from train_toy import STAGE, toy_pairs, write_pairs, write_tiny_base  # noqa: E402

torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared machine

ROWS = ["base", "base+adapter", "fused-f16", "fused-q8_0"]
COLUMNS = {"name", "file_mib", "peak_rss_mib", "decode_tok_s", "decode_tokens", "prefill_tok_s", "prefill_tokens",
           "accuracy", "balanced_accuracy", "items", "gain_kept", "speed_vs_base"}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench-adapters")
    _, base = write_tiny_base(tmp / "base.gguf")
    data = write_pairs(tmp / "scope.jsonl", toy_pairs(48))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        rc, _, err = run_cli(["train", STAGE, "--data", str(data), "--base", str(base), "--out",
                              str(tmp / "scope.gguf"), "--rank", "8", "--steps", "30", "--lr", "5e-3",
                              "--grad-accum", "4", "--held-out", "0.25", "--no-register"])
        assert rc == 0, err
    rc, out, err = run_cli(["bench", "adapters", "--base", str(base), "--adapter", str(tmp / "scope.gguf"),
                            "--data", str(data), "--types", "f16,q8_0", "--held-out", "0.25", "--limit", "20",
                            "--decode-tokens", "8", "--threads", "1", "--json"])
    assert rc == 0, err
    return {"report": json.loads(out), "base": base, "data": data, "tmp": tmp}


def test_every_row_and_column_is_measured(bench: dict[str, Any]) -> None:
    report = bench["report"]
    assert report["stage"] == STAGE
    assert [r["name"] for r in report["rows"]] == ROWS
    for row in report["rows"]:
        assert set(row) == COLUMNS, row["name"]
        assert row["file_mib"] > 0 and row["peak_rss_mib"] > 0, row
        assert row["decode_tok_s"] > 0 and row["prefill_tok_s"] > 0 and row["prefill_tokens"] > 50, row
        assert row["decode_tokens"] == 8, row  # the tiny model never ends early: the same budget on every row
        assert 0 <= row["accuracy"] <= 1 and 5 <= row["items"] <= 20, row
        assert 0 <= row["balanced_accuracy"] <= 1, row  # decision items: a recall per answer, averaged
    # Each row's own peak, not the peak it would inherit across exec from this (torch-laden) process.
    own_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert all(r["peak_rss_mib"] < own_peak_mib / 2 for r in report["rows"]), (own_peak_mib, report["rows"])
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["fused-q8_0"]["file_mib"] < rows["fused-f16"]["file_mib"]
    assert rows["base+adapter"]["file_mib"] > rows["base"]["file_mib"]  # the adapter's file counts


def test_the_gain_and_who_keeps_it(bench: dict[str, Any]) -> None:
    rows = {r["name"]: r for r in bench["report"]["rows"]}
    base, adapter, f16 = rows["base"], rows["base+adapter"], rows["fused-f16"]
    assert adapter["accuracy"] > base["accuracy"]  # trained on the toy rule: the base is at chance
    gain = adapter["accuracy"] - base["accuracy"]
    for row in rows.values():
        if row["name"] != "base":
            assert row["gain_kept"] == pytest.approx((row["accuracy"] - base["accuracy"]) / gain, abs=1e-3)
        assert row["speed_vs_base"] == pytest.approx(row["decode_tok_s"] / base["decode_tok_s"], abs=1e-3)
    assert base["gain_kept"] is None and adapter["gain_kept"] == 1.0
    assert f16["gain_kept"] >= 0.99  # merged at F16: the same decisions as the runtime adapter
    keeping = [r for r in rows.values() if r["gain_kept"] is not None and r["gain_kept"] >= 0.99]
    best = max(keeping, key=lambda r: r["decode_tok_s"])
    assert bench["report"]["best"] == best["name"]
    assert best["name"] in bench["report"]["summary"] and "x base" in bench["report"]["summary"]


def test_markdown_table_and_bad_inputs(bench: dict[str, Any]) -> None:
    base, data, tmp = str(bench["base"]), str(bench["data"]), bench["tmp"]
    rc, out, err = run_cli(["bench", "adapters", "--base", base, "--adapter", str(tmp / "scope.gguf"), "--data", data,
                            "--types", "", "--held-out", "0.25", "--limit", "4", "--decode-tokens", "4"])
    assert rc == 0, err
    lines = out.splitlines()
    assert any(line.startswith("| row | file MiB | peak RSS MiB | decode tok/s |") for line in lines)
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| base")] == ["base", "base+adapter"]
    for argv, message in (
        (["--types", "q3_k"], "unknown type(s) q3_k"),
        (["--data", str(tmp / "missing.jsonl")], "data file not found"),
        (["--adapter", str(tmp / "missing.gguf")], "does not exist"),
    ):
        args = {"--base": base, "--adapter": str(tmp / "scope.gguf"), "--data": data, "--types": "f16"}
        args.update(dict(zip(argv[::2], argv[1::2], strict=True)))
        rc, out, err = run_cli(["bench", "adapters", *[x for kv in args.items() for x in kv]])
        assert rc == 2 and message in err and "Traceback" not in err, err
