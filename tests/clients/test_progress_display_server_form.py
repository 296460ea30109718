"""The CLI's progress display fed the values cra's server sends (`cra.server.progress`): a speed report
(`stage: N tok/s` plus `tokensPerSecond`) and a verdict report (`stage: attempt N passed|failed: ...` plus a
`verdict` object), built by the server's own `ActionProgress` on a stand-in for pygls's progress sender."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter

from cra.clients.headless import ProgressEvent
from cra.clients.progress import ProgressView
from cra.pipeline.actions import Verdict
from cra.server.progress import ActionProgress


class Sender:
    """What `ActionProgress` uses of the server: the client's capabilities and `work_done_progress`."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.client_capabilities = types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True))
        self.work_done_progress = self
        self.tokens: dict[str, Any] = {}

    async def create_async(self, token: str) -> None:
        return None

    def begin(self, token: str, value: Any) -> None:
        self.values.append(value)

    def report(self, token: str, value: Any) -> None:
        self.values.append(value)

    def end(self, token: str, value: Any) -> None:
        self.values.append(value)


async def server_values() -> list[dict[str, Any]]:
    """One attempt that fails to compile, an adjustment round, a second that passes, as the server says it."""
    sender = Sender()
    progress = ActionProgress(sender, "cra: Implement function")  # type: ignore[arg-type]
    await progress.begin(on_cancel=lambda: None)
    progress("implement", 35)
    progress.speed("implement", 18.46)
    progress("validate", 75)
    progress.verdict("validate", 1, False, Verdict(compiled=False, message="does not compile: 'c' undeclared"))
    progress("adjust", 85)
    progress("implement", 85)
    progress.speed("implement", 21.0)
    progress("validate", 85)
    progress.verdict("validate", 2, True, Verdict(compiled=True, tests_passed=True, message=""))
    await asyncio.sleep(0.05)  # the reports are queued on the loop (they come from the pipeline's thread)
    progress.end("done")
    converter = get_converter()  # typed values become the JSON objects a client reads, as on the wire
    return [v if isinstance(v, dict) else converter.unstructure(v) for v in sender.values]


def show(values: list[dict[str, Any]], live: bool) -> str:
    stream = io.StringIO()
    with ProgressView(stream, "cra implement", live=live, interval=3600) as view:
        for value in values:
            view(ProgressEvent(kind=value["kind"], message=str(value.get("message") or value.get("title") or ""),
                               percent=value.get("percentage"), value=value))
    return stream.getvalue()


def test_the_server_form_is_what_the_display_reads() -> None:
    values = asyncio.run(server_values())
    reports = [v for v in values if v["kind"] == "report"]
    assert [v["message"] for v in reports] == [
        "implement", "implement: 18.5 tok/s", "validate", "validate: attempt 1 failed: does not compile: 'c' undeclared",
        "adjust", "implement", "implement: 21.0 tok/s", "validate", "validate: attempt 2 passed"]
    assert reports[1]["tokensPerSecond"] == 18.46
    assert reports[3]["verdict"] == {"attempt": 1, "ok": False, "compiled": False, "tests_passed": None,
                                     "message": "does not compile: 'c' undeclared"}
    assert all(v["percentage"] in (35, 75, 85) for v in reports)  # a speed or verdict keeps the stage's percent

    lines = show(values, live=False).splitlines()
    assert lines == [
        "cra implement: implement (35%, 0.0 s)",
        "cra implement: validate (75%, 0.0 s)",
        "cra implement: attempt 1: failed: does not compile: 'c' undeclared",
        "cra implement: adjust (85%, 0.0 s)",
        "cra implement: implement (85%, 0.0 s)",
        "cra implement: validate (85%, 0.0 s)",
        "cra implement: attempt 2: passed (compiled, tests passed)",
        "cra implement: done (0.0 s)",
    ]


def test_the_live_line_shows_the_speed_once_and_drops_it_after_generation() -> None:
    values = asyncio.run(server_values())
    shown = show(values, live=True)
    statuses = [part.split("\n")[0] for part in shown.split("\r\x1b[2K") if part.strip()]
    speed_lines = [s for s in statuses if "tok/s" in s]
    assert speed_lines and all(s.count("tok/s") == 1 for s in speed_lines)  # not in the detail and the facts both
    assert any("implement (35%" in s and "18.5 tok/s)" in s for s in speed_lines)
    after = statuses[[i for i, s in enumerate(statuses) if "18.5 tok/s" in s][-1] + 1]
    assert "validate" in after and "tok/s" not in after  # the next stage's report carries no speed
