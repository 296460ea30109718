"""End to end on the real engine: StageLLM logs calls of a tiny generated model with a routed LoRA, the task gets
an outcome, and curation/audit read exactly what the pipeline wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cra.pipeline.calllog import CallLog
from cra.pipeline.config import load_config
from cra.pipeline.engine import Cancelled, CancelToken, LocalEngine, Message
from cra.pipeline.llm import StageLLM
from cra.pipeline.router import ModelRouter
from cra.training.audit import audit
from cra.training.curate import CurateOptions, curate, open_log


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    eng = LocalEngine()
    yield eng
    eng.close()


def test_logged_engine_calls_become_labelled_pairs(tmp_path: Path, tiny_model_path: Path, tiny_adapter_path: Path,
                                                   engine: LocalEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "ws"
    root.mkdir()
    roles = "".join(f'[models.{r}]\nmodel = "{tiny_model_path}"\ncontext_length = 512\n'
                    for r in ("router", "reasoning", "coding", "summarization", "validation"))
    (root / "cra.toml").write_text(
        roles + f'[adapters."{tiny_model_path}"]\nimplement = "{tiny_adapter_path}"\n'
        "[stages.implement]\nmax_tokens = 6\n", encoding="utf-8")
    config = load_config(root)
    log = CallLog.for_workspace(root)
    task = log.start_task("implement", "a.c", "clamp")
    router = ModelRouter(config, root=root, threads=2)
    llm = StageLLM(router, engine, log, task_id=task)
    prefill = "```c\nint clamp(int x)\n{\n"
    gen = llm.generate("implement", [Message("system", "You write C."), Message("user", "Implement clamp."),
                                     Message("assistant", prefill)])
    decision = llm.decide("scope", [Message("system", "You judge files."), Message("user", "Is util.h relevant?")],
                          ["yes", "no"])
    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        StageLLM(router, engine, log, task_id=task, cancel=cancelled).generate(
            "documentation", [Message("user", "Document clamp.")])
    log.record_outcome(task, "implement", "a.c", "clamp", compiled=True, tests_passed=True, edit_status="applied")
    log.close()

    log = open_log(root)
    manifest = curate(log, tmp_path / "out", CurateOptions(valid_fraction=0.0))
    report = {r.stage: r for r in audit(log).stages}
    log.close()
    assert set(manifest.stages) == {"implement", "scope"}  # the cancelled documentation call is no pair
    assert manifest.skipped.failed == 1
    impl = (tmp_path / "out" / "implement.train.jsonl").read_text().splitlines()
    scope = (tmp_path / "out" / "scope.train.jsonl").read_text().splitlines()
    impl_pair, scope_pair = json.loads(impl[0]), json.loads(scope[0])
    assert impl_pair["messages"][-1] == {"role": "assistant", "content": prefill + gen.text}
    assert impl_pair["meta"]["served_adapter"] == f"implement:{tiny_adapter_path.stem}"
    assert impl_pair["meta"]["label"] == "positive"
    assert scope_pair["messages"][-1] == {"role": "assistant", "content": decision.label}
    assert scope_pair["meta"]["choices"] == ["yes", "no"]
    assert report["documentation"].failed_call_rate == 1.0
    assert report["implement"].mean_tokens_out == gen.stats.tokens_out
