"""`cra train` on bad inputs: a clear message, exit status 2, no traceback; and curate-data's real output is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from curation_data import LogFacts
from train_toy import STAGE, toy_pairs, write_pairs, write_tiny_base

from cra.clients import cli
from cra.training.curate import CurateOptions, curate, open_log
from cra.training.synthetic import write_lora_for, write_tiny_model
from cra.training.train import load_examples


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def run_train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = cli.main(["train", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_bad_data_files_are_named_with_what_is_wrong(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_tiny_model(isolated / "base.gguf")
    empty = isolated / "empty.jsonl"
    empty.write_text("\n")
    broken = isolated / "broken.jsonl"
    broken.write_text(json.dumps(toy_pairs(1)[0]) + "\n{not json\n")
    no_answer = isolated / "no_answer.jsonl"
    no_answer.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]})
                         + "\n")
    shape = isolated / "shape.jsonl"
    shape.write_text(json.dumps({"messages": "hello"}) + "\n")
    other_stage = isolated / "other.jsonl"
    pair = toy_pairs(1)[0]
    pair["meta"]["stage"] = "routing"
    other_stage.write_text(json.dumps(pair) + "\n")
    cases = [
        (isolated / "missing.jsonl", "data file not found"),
        (empty, "no training pairs"),
        (broken, "broken.jsonl:2: not JSON"),
        (no_answer, "the last message must be the assistant's answer"),
        (shape, "expected {\"messages\""),
        (other_stage, "a pair of stage 'routing', not 'scope'"),
        (isolated, "no scope.train.jsonl or scope.valid.jsonl"),
    ]
    for data, message in cases:
        rc, err = run_train(capsys, STAGE, "--data", str(data), "--base", str(base), "--out",
                            str(isolated / "a.gguf"))
        assert rc == 2 and message in err, (data, err)


def test_unknown_stage_and_bad_bases(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_pairs(isolated / "pairs.jsonl", toy_pairs(8))
    model = write_tiny_model(isolated / "base.gguf")
    adapter = write_lora_for(model, isolated / "adapter.gguf")
    text = isolated / "notes.gguf"
    text.write_text("this is not a model, just some text that is long enough " * 4)
    common = ["--data", str(data), "--out", str(isolated / "a.gguf")]
    rc, err = run_train(capsys, "no_such_stage", "--base", str(model), *common)
    assert rc == 2 and "unknown stage 'no_such_stage'" in err
    cases = [
        (adapter, "expected a base model GGUF, found a LoRA adapter"),
        (text, "not a GGUF file"),
        (isolated / "nowhere.gguf", "no such file, directory or registered model"),
        (isolated, "without config.json is not a Hugging Face model"),
    ]
    for base, message in cases:
        rc, err = run_train(capsys, STAGE, "--base", str(base), *common)
        assert rc == 2 and message in err, (base, err)


def test_bad_options_and_resume_without_checkpoint(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_pairs(isolated / "pairs.jsonl", toy_pairs(8))
    _, base = write_tiny_base(isolated / "base.gguf")
    common = [STAGE, "--data", str(data), "--base", str(base)]
    for extra, message in [
        (["--out", str(isolated / "a.bin")], "must end in .gguf"),
        (["--out", str(isolated / "a.gguf"), "--held-out", "1.5"], "--held-out 1.5"),
        (["--out", str(isolated / "a.gguf"), "--rank", "0"], "--rank 0"),
        (["--out", str(isolated / "a.gguf"), "--targets", "q,lm_head"], "--targets lm_head"),
        (["--out", str(isolated / "a.gguf"), "--resume"], "--resume: no checkpoint"),
        (["--out", str(isolated / "a.gguf"), "--balance", "0.5"], "--balance 0.5: must be at least 1"),
        (["--out", str(isolated / "a.gguf"), "--eval-limit", "0"], "--eval-limit 0: must be at least 1"),
        (["--out", str(isolated / "a.gguf"), "--eval-data", str(isolated / "none.jsonl")],
         "none.jsonl: data file not found"),
    ]:
        rc, err = run_train(capsys, *common, *extra)
        assert rc == 2 and message in err, (extra, err)


def test_curate_data_output_is_what_train_reads(call_log: LogFacts, tmp_path: Path) -> None:
    log = open_log(call_log.root)
    try:
        manifest = curate(log, tmp_path / "export", CurateOptions(valid_fraction=0.5))
    finally:
        log.close()
    assert manifest.stages
    for stage, counts in manifest.stages.items():
        examples = load_examples([str(tmp_path / "export")], stage)
        assert len(examples) == counts.train + counts.valid
        lines = [json.loads(line) for name in (f"{stage}.train.jsonl", f"{stage}.valid.jsonl")
                 for line in (tmp_path / "export" / name).read_text().splitlines()]
        for example, record in zip(examples, lines, strict=True):
            assert example.prompt == record["messages"][:-1]
            assert example.answer == record["messages"][-1]["content"]
            assert example.choices == record["meta"].get("choices")
