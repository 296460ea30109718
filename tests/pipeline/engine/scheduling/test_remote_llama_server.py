"""RemoteEngine in `lora-field` mode against llama.cpp's own `llama-server`, started by the test with two LoRA
adapters (`--lora A --lora B`): adapters are chosen per request by the `lora` field, at per-request scales.

The binary comes from `make llama-server` (built from the llama.cpp that llama-cpp-python 0.3.36 vendors, so the
server and the in-process engine run the same llama.cpp), or from $CRA_LLAMA_SERVER / `llama-server` on PATH.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_process import free_port, serve

from cra.pipeline.engine import AdapterSpec, GenParams, LocalEngine, Message, ModelSpec
from cra.pipeline.engine.remote import RemoteEngine
from cra.training.synthetic import write_lora_for

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
BUILT = CACHE / "cra" / "llama-server" / "0.3.36" / "llama-server"  # where `make llama-server` puts it
PROMPT = [Message(role="system", content="You write C."), Message(role="user", content="the sum of two ints")]
LETTERS = [chr(c) for c in range(0x20, 0x7F)]


def _binary() -> str | None:
    for candidate in (os.environ.get("CRA_LLAMA_SERVER"), shutil.which("llama-server"), str(BUILT)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


BINARY = _binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="no llama-server binary: run `make llama-server`")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> tuple[AdapterSpec, AdapterSpec]:
    folder = tmp_path_factory.mktemp("loras")
    a = write_lora_for(tiny_model_path, folder / "a.gguf", rank=4, targets=("q", "v", "up"), seed=11)
    b = write_lora_for(tiny_model_path, folder / "b.gguf", rank=4, targets=("k", "o", "down"), seed=12)
    return AdapterSpec(name="a", path=str(a)), AdapterSpec(name="b", path=str(b))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path,
           adapters: tuple[AdapterSpec, AdapterSpec]) -> Iterator[str]:
    assert BINARY is not None
    port = free_port()
    argv = [BINARY, "-m", str(tiny_model_path), "--lora", adapters[0].path, "--lora", adapters[1].path,
            "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-t", "1", "-tb", "1", "-np", "1",
            "--no-webui"]
    with serve(argv, f"http://127.0.0.1:{port}", "/health",
               tmp_path_factory.mktemp("llama-server") / "server.log") as url:
        yield url


@pytest.fixture
def remote(server: str) -> RemoteEngine:
    return RemoteEngine(server, adapter_mode="lora-field", read_timeout_s=30)


def test_the_server_lists_both_adapters_by_path(remote: RemoteEngine,
                                                adapters: tuple[AdapterSpec, AdapterSpec]) -> None:
    listed = remote.lora_adapters()
    assert [Path(path).name for _, path in listed] == ["a.gguf", "b.gguf"]
    assert len({server_id for server_id, _ in listed}) == 2


def _log_odds_gap(got: dict[str, float], want: dict[str, float]) -> float:
    """Largest difference in log-odds between two label distributions, over the labels the server returned (it
    sends the top few and cra renormalizes them; odds between them are unchanged by that)."""
    seen = [label for label in LETTERS if got[label] > 0]
    first = seen[0]
    return max(abs(math.log(got[x] / got[first]) - math.log(want[x] / want[first])) for x in seen[1:])


def test_adapter_sets_and_scales_match_the_local_engine(
    remote: RemoteEngine, local: LocalEngine, tiny: ModelSpec, adapters: tuple[AdapterSpec, AdapterSpec]
) -> None:
    a, b = adapters
    sets = [(), (a,), (b,), (a, b), (AdapterSpec(name="a", path=a.path, scale=0.5),)]
    want = [local.decide(tiny, s, PROMPT, LETTERS) for s in sets]
    # The remote calls run in another order than the local ones, base last again: every request sets the server's
    # whole adapter set (unused adapters at scale 0), so nothing leaks from the previous request.
    for i in (1, 3, 0, 4, 2, 0):
        got = remote.decide(tiny, sets[i], PROMPT, LETTERS)
        assert got.label == want[i].label, sets[i]
        gaps = [_log_odds_gap(got.probs, w.probs) for w in want]
        # Same llama.cpp, same adapters, same scales: the same odds up to float rounding (the server is built with
        # its own compiler flags), and much closer to this adapter set than to any other.
        assert gaps[i] < 0.01, (sets[i], gaps)
        assert all(gaps[i] * 5 < gap for j, gap in enumerate(gaps) if j != i), (sets[i], gaps)


def test_generation_per_request_adapter(remote: RemoteEngine, tiny: ModelSpec,
                                        adapters: tuple[AdapterSpec, AdapterSpec]) -> None:
    params = GenParams(max_tokens=24)
    base = remote.generate(tiny, (), PROMPT, params)
    tuned = remote.generate(tiny, (adapters[0],), PROMPT, params)
    assert tuned.text != base.text
    assert remote.generate(tiny, (), PROMPT, params).text == base.text  # scale 0 sent for unused adapters
    assert base.stats.tokens_out > 0 and base.stats.ttft_s > 0
