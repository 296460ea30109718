"""RemoteEngine against a real OpenAI-compatible server (llama-cpp-python's, from the `remote` extra) on localhost.

The server serves the tiny model twice: as `tiny` (base) and as `tiny-lora-a` (with the rank-4 adapter), which is
how model-name adapter selection works on vLLM-style servers. Results are compared with the in-process engine.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from server_process import free_port, serve

from cra.pipeline.engine import (
    AdapterMismatchError,
    AdapterSpec,
    Cancelled,
    CancelToken,
    GenParams,
    InvalidRequestError,
    LocalEngine,
    Message,
    ModelSpec,
    Timeout,
)
from cra.pipeline.engine.remote import RemoteEngine, RemoteError
from cra.pipeline.engine.scheduler import ModelPolicy, Scheduler

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "pydantic_settings", "starlette_context")
_missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"llama-cpp-python's server extra is not installed (missing {', '.join(_missing)}): "
    "pip install 'cra[remote]'",
)

API_KEY = "test-key"
PROMPT = [Message(role="system", content="You write C."), Message(role="user", content="the sum of two ints")]
# Every printable ASCII character: single-byte labels with distinct first tokens, so several are in any top-20.
LETTERS = [chr(c) for c in range(0x20, 0x7F)]


def ascii_only(text: str) -> str:
    """The random-weight tiny model emits stray bytes; servers drop incomplete UTF-8 where the engine shows U+FFFD."""
    return "".join(c for c in text if c.isascii())


class Answer(msgspec.Struct):
    kind: Literal["fn", "var", "type"]
    ok: bool
    # No free-text field: the random-weight model would fill a string with stray control bytes.
    tags: Annotated[list[Literal["io", "math"]], msgspec.Meta(max_length=2)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path, tiny_adapter_path: Path) -> Iterator[str]:
    port = free_port()
    common = {"model": str(tiny_model_path), "n_ctx": 512, "n_threads": 1, "n_threads_batch": 1, "verbose": False}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "api_key": API_KEY,
        "interrupt_requests": False,  # default: a new request cuts the running stream short
        "models": [
            {**common, "model_alias": "tiny"},
            {**common, "model_alias": "tiny-lora-a", "lora_path": str(tiny_adapter_path)},
        ],
    }
    cfg = tmp_path_factory.mktemp("server") / "config.json"
    cfg.write_text(json.dumps(config))
    argv = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)]
    with serve(argv, f"http://127.0.0.1:{port}", "/v1/models", cfg.with_suffix(".log"),
               headers={"Authorization": f"Bearer {API_KEY}"}) as url:
        yield url


@pytest.fixture(scope="module")
def lora(tiny_adapter_path: Path) -> AdapterSpec:
    return AdapterSpec(name="tiny-lora-a", path=str(tiny_adapter_path))


@pytest.fixture
def remote(server: str) -> RemoteEngine:
    return RemoteEngine(server + "/v1", api_key=API_KEY, adapter_mode="model-name", read_timeout_s=30)


def test_generate_applies_the_adapter_and_reports_stats(remote: RemoteEngine, tiny: ModelSpec, lora: AdapterSpec) -> None:
    # Token-level agreement with the local engine is checked through decide (exact logits); generated text can
    # differ by design: the local engine skips tokens that would break UTF-8, servers emit them.
    params = GenParams(max_tokens=24)
    base = remote.generate(tiny, (), PROMPT, params)
    adapted = remote.generate(tiny, (lora,), PROMPT, params)
    assert adapted.text != base.text, "the adapter must be applied by the server"
    assert remote.generate(tiny, (), PROMPT, params).text == base.text, "greedy output is reproducible"
    assert base.stats.tokens_out > 0 and base.stats.ttft_s > 0 and base.stats.decode_s >= 0
    short = remote.generate(tiny, (), PROMPT, GenParams(max_tokens=2))
    assert short.stats.finish_reason == "length" and short.stats.tokens_out <= 2


def test_streaming_and_stop_sequences(remote: RemoteEngine, tiny: ModelSpec) -> None:
    pieces: list[str] = []
    full = remote.generate(tiny, (), PROMPT, GenParams(max_tokens=24), on_text=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == full.text
    # A whole streamed token is contiguous in the model's output; pick one that has not appeared before.
    i = next(i for i in range(2, len(pieces)) if pieces[i].strip() and pieces[i] not in "".join(pieces[: i + 1])[:-1])
    cut = remote.generate(tiny, (), PROMPT, GenParams(max_tokens=24, stop=[pieces[i]]))
    assert cut.text == "".join(pieces[:i])
    assert cut.stats.finish_reason == "stop"


@pytest.mark.parametrize("mode", ["grammar", "json_object"])
def test_structured_output_decodes_into_the_struct(server: str, tiny: ModelSpec, mode: str) -> None:
    engine = RemoteEngine(server, api_key=API_KEY, adapter_mode="model-name", structured_mode=mode)
    obj, gen = engine.structured(tiny, (), PROMPT, Answer, GenParams(max_tokens=200))
    assert isinstance(obj, Answer)
    assert msgspec.json.decode(gen.text.encode(), type=Answer) == obj


def test_decide_agrees_with_the_local_engine(
    remote: RemoteEngine, local: LocalEngine, tiny: ModelSpec, lora: AdapterSpec
) -> None:
    for adapters in ((), (lora,)):
        got = remote.decide(tiny, adapters, PROMPT, LETTERS)
        want = local.decide(tiny, adapters, PROMPT, LETTERS)
        assert got.label == want.label
        assert sum(got.probs.values()) == pytest.approx(1.0)
        # Labels seen in the server's top-k keep the same odds as the engine's exact softmax.
        seen = [label for label in LETTERS if got.probs[label] > 0]
        assert len(seen) >= 2
        a, b = seen[0], seen[1]
        assert got.probs[a] / got.probs[b] == pytest.approx(want.probs[a] / want.probs[b], rel=1e-3)
    batch = remote.decide_batch(tiny, (), PROMPT[:1], ["the sum of two ints", "a linked list"], LETTERS)
    assert batch[0].label == remote.decide(tiny, (), PROMPT, LETTERS).label
    assert len(batch) == 2


def test_count_tokens_matches_the_local_engine(remote: RemoteEngine, local: LocalEngine, tiny: ModelSpec) -> None:
    text = "int add(int a, int b) { return a + b; }"
    assert remote.count_tokens(tiny, text) == local.count_tokens(tiny, text)


def test_cancel_and_timeout_stop_a_stream_quickly_and_the_server_stays_usable(
    remote: RemoteEngine, tiny: ModelSpec
) -> None:
    before = remote.generate(tiny, (), PROMPT, GenParams(max_tokens=16)).text
    # The server produces these 60 tokens in well under a second, but this client reads one piece per 0.1 s, so
    # the stream is still open when the cancel/deadline comes. (Cancelling while llama-cpp-python's server is
    # still generating makes it hold its model lock until its next ping, ~15 s: not what this test is about.)
    slow = lambda _text: time.sleep(0.1)  # noqa: E731
    long = GenParams(max_tokens=60)
    token = CancelToken()
    threading.Timer(0.8, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as info:
        remote.generate(tiny, (), PROMPT, long, cancel=token, on_text=slow)
    assert time.monotonic() - started < 0.8 + 0.2
    assert info.value.stats.finish_reason == "cancelled"  # type: ignore[attr-defined]
    assert info.value.partial_text  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(Timeout):
        remote.generate(tiny, (), PROMPT, GenParams(max_tokens=60, timeout_s=0.8), on_text=slow)
    assert time.monotonic() - started < 0.8 + 0.2
    assert remote.generate(tiny, (), PROMPT, GenParams(max_tokens=16)).text == before


def test_lora_field_mode_needs_a_server_with_lora_adapters(
    server: str, tiny: ModelSpec, lora: AdapterSpec
) -> None:
    engine = RemoteEngine(server, api_key=API_KEY, adapter_mode="lora-field")
    assert engine.lora_adapters() == []  # llama-cpp-python's server has no GET /lora-adapters
    assert engine.generate(tiny, (), PROMPT, GenParams(max_tokens=4)).text
    with pytest.raises(AdapterMismatchError, match="no LoRA adapters"):
        engine.generate(tiny, (lora,), PROMPT, GenParams(max_tokens=4))


def test_bad_requests_are_clear_errors(server: str, tiny: ModelSpec, lora: AdapterSpec) -> None:
    no_key = RemoteEngine(server, adapter_mode="model-name")
    with pytest.raises(RemoteError, match="HTTP 401"):
        no_key.generate(tiny, (), PROMPT, GenParams(max_tokens=4))
    engine = RemoteEngine(server, api_key=API_KEY, adapter_mode="model-name")
    with pytest.raises(InvalidRequestError, match="scale"):
        engine.generate(tiny, (AdapterSpec(name=lora.name, path=lora.path, scale=0.5),), PROMPT)
    with pytest.raises(InvalidRequestError, match="one adapter per request"):
        engine.generate(tiny, (lora, lora), PROMPT)
    with pytest.raises(InvalidRequestError, match="at least two labels"):
        engine.decide(tiny, (), PROMPT, ["yes"])
    with pytest.raises(ValueError, match="http"):
        RemoteEngine("localhost:8080")


def test_unreachable_server_fails_fast() -> None:
    engine = RemoteEngine(f"http://127.0.0.1:{free_port()}", connect_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(RemoteError, match="cannot reach"):
        engine.generate(ModelSpec(name="m", path="m.gguf"), (), PROMPT)
    assert time.monotonic() - started < 2.5


def test_scheduler_admits_max_concurrency_calls_to_a_remote_model(remote: RemoteEngine, tiny: ModelSpec) -> None:
    sched = Scheduler(remote, policies={"tiny": ModelPolicy(max_concurrency=2)})
    params = GenParams(max_tokens=30)
    results: list[str] = []
    slow = lambda _text: time.sleep(0.05)  # noqa: E731 — keeps each call open for about a second

    def call() -> None:
        results.append(sched.generate(tiny, (), PROMPT, params, on_text=slow).text)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    end = time.monotonic() + 10
    while not (sched.running(tiny) == 2 and sched.queued(tiny) == 1):
        assert time.monotonic() < end, "two calls should run and the third wait"
        time.sleep(0.005)
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len(set(results)) == 1
    assert sched.running(tiny) == 0 and sched.queued(tiny) == 0


def test_lora_ids_are_matched_by_path_then_file_name(tmp_path: Path) -> None:
    from cra.pipeline.engine.remote import _label_probs, _match_adapter

    known = [(0, str(tmp_path / "a.gguf")), (1, "/srv/adapters/b.gguf")]
    assert _match_adapter(AdapterSpec(name="a", path=str(tmp_path / "x" / ".." / "a.gguf")), known, "u") == 0
    assert _match_adapter(AdapterSpec(name="b", path=str(tmp_path / "b.gguf")), known, "u") == 1
    with pytest.raises(AdapterMismatchError, match="0: .*a.gguf, 1: /srv/adapters/b.gguf"):
        _match_adapter(AdapterSpec(name="c", path=str(tmp_path / "c.gguf")), known, "u")
    # A token starting two labels ("n" for "no"/"never") says nothing; others add their mass to their label.
    probs = _label_probs([("yes", -0.5), ("n", -0.1), ("no", -1.5), ("maybe", -0.2)], ["yes", "no", "never"])
    assert probs is not None and probs["never"] == 0.0
    assert probs["yes"] / probs["no"] == pytest.approx(2.718281828 ** 1.0)
    assert _label_probs([("maybe", -0.1)], ["yes", "no"]) is None
