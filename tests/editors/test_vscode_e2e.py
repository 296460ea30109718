"""The VS Code extension in a real VS Code: code-server (VS Code 1.100) serving the workbench to Debian's chromium,
driven by playwright like a user would — the packaged .vsix installed, the bundled example opened, cra's code
actions in the Ctrl+. menu, Implement and Document run from it and from the palette, the edit on disk, the
progress notification and its Cancel button. The language server is this checkout's `cra lsp`, with tiny generated
models so the outcome is fast and fixed.

Needs chromium (apt), playwright (the test extra) and code-server (scripts/install-vscode-e2e.sh); skips without
them. Screenshots of every step go to $CRA_E2E_ARTIFACTS/<test> when that is set, else into the test's tmp_path;
the path is printed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cra.pipeline.config import ROLES
from cra.training.synthetic import write_tiny_model

from vscode_e2e_support import (CHROMIUM, REPO, CodeServer, Workbench, code_server_entry, missing_pieces,
                                package_vsix, toml_text, wait_for)

EXAMPLE = REPO / "examples" / "ringbuf"
CRA = Path(sys.executable).with_name("cra")  # this environment's `cra` console script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def vscode_ready() -> Path:
    missing = missing_pieces()
    if missing:
        pytest.skip("no real VS Code here: " + "; ".join(missing))
    entry = code_server_entry()
    assert entry is not None
    return entry


@pytest.fixture(scope="module")
def vsix(vscode_ready: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_vsix(tmp_path_factory.mktemp("vsix"))


@pytest.fixture(scope="session")
def slow_model(gguf_dir: Path) -> Path:
    """A wider random model (D=512): greedy decoding of its gibberish runs into the token limit, so a job on it
    stays busy for seconds — long enough to press Cancel (the same model as the server tests' `slow_model_path`)."""
    return write_tiny_model(gguf_dir / "slow-vscode.gguf", seed=0, n_embd=512, n_ff=2048, n_ctx=4096)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("CRA_E2E_ARTIFACTS")
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    path = Path(root).resolve() / name if root else tmp_path / "screenshots"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    print(f"vscode e2e: screenshots and logs in {path}")
    return path


def tiny_config(model: Path, **stages: int) -> dict[str, Any]:
    """A cra.toml with `model` in every role; `stages` caps a stage's generated tokens."""
    return {
        "models": {role: {"model": str(model), "context_length": 8192} for role in ROLES},
        "context": {"budget_tokens": 300},
        "engine": {"threads": 2},
        "validation": {"max_rounds": 1},
        "stages": {stage: {"max_tokens": tokens, "temperature": 0.0} for stage, tokens in stages.items()},
    }


def single_model_config(model: Path, max_tokens: int) -> dict[str, Any]:
    """`model` in every role with a 4096-token context, greedy stages capped at `max_tokens`, one attempt."""
    return {
        "models": {role: {"model": str(model), "context_length": 4096} for role in ROLES},
        "stages": {stage: {"max_tokens": max_tokens, "temperature": 0.0} for stage in ("implement", "documentation")},
        "validation": {"max_rounds": 0},
    }


@dataclass
class Session:
    workbench: Workbench
    server: CodeServer
    workspace: Path
    artifacts: Path

    @property
    def source(self) -> Path:
        return self.workspace / "ringbuf.c"

    def logs(self) -> str:
        return self.server.output_logs()

    def count_in_logs(self, needle: str) -> int:
        return self.logs().count(needle)

    def wait_server_ready(self, line: int, timeout: float = 120) -> list[str]:
        """Ctrl+. on `line` until cra's actions are offered (the server is up and answered); the menu is left open."""
        wb = self.workbench
        wb.go_to_line(line)

        def offered() -> list[str]:
            rows = wb.code_actions()
            if any(row.startswith("cra:") for row in rows):
                return rows
            if rows:
                wb.close_menu()
            else:
                wb.page.keyboard.press("Escape")
            time.sleep(1)
            return []

        try:
            return wait_for(offered, timeout, "cra's code actions in the Ctrl+. menu", interval=0)
        except AssertionError:
            wb.screenshot("no-code-actions")
            raise AssertionError(f"cra offered no code actions within {timeout}s; the extension's output:\n"
                                 f"{self.logs()[-6000:]}") from None


@pytest.fixture
def open_vscode(vsix: Path, vscode_ready: Path, tmp_path: Path, artifacts: Path) -> Iterator[Callable[..., Session]]:
    from playwright.sync_api import sync_playwright

    servers: list[CodeServer] = []
    sessions: list[Session] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))  # Debian's; never a download

        def start(config: dict[str, Any], trust: bool = True) -> Session:
            home = tmp_path / "vscode"
            workspace = tmp_path / "ringbuf"
            shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns(".cra", "*.bin", "*.o"))
            config_file = tmp_path / "cra.toml"
            config_file.write_text(toml_text(config))
            server = CodeServer(entry=vscode_ready, home=home)
            servers.append(server)
            installed = server.cli("--install-extension", str(vsix))
            assert "successfully installed" in installed, installed
            server.write_settings({
                "cra.serverCommand": [str(CRA), "lsp"],
                "cra.configPath": str(config_file),
                "cra.trust": trust,
                "cra.trace.server": "verbose",  # every request and response in the extension's output log
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "security.workspace.trust.enabled": False,
                "telemetry.telemetryLevel": "off",
                "extensions.autoCheckUpdates": False,
                "extensions.autoUpdate": False,
                "editor.lightbulb.enabled": "on",
                "files.autoSave": "off",
            })
            server.start(workspace)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            session = Session(Workbench(page, artifacts), server, workspace, artifacts)
            sessions.append(session)
            session.workbench.load(server.url(workspace))
            return session

        try:
            yield start
        finally:
            for session in sessions:
                with contextlib.suppress(Exception):  # the page may be gone; the logs matter more
                    session.workbench.screenshot("last")
            browser.close()
            for server in servers:
                server.stop()
                logs = server.output_logs()
                (artifacts / "extension-output.log").write_text(logs)
                if server.log.is_file():
                    shutil.copy(server.log, artifacts / "code-server.log")
            print(f"vscode e2e: {len(list(artifacts.glob('*.png')))} screenshots in {artifacts}")


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of `path` containing `needle`."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def compiles(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gcc", "-fsyntax-only", "-std=c11", "-I", str(path.parent), str(path)],
                          check=False, capture_output=True, text=True)


def test_code_actions_implement_and_document_in_real_vscode(open_vscode: Callable[..., Session],
                                                            long_tiny_model: Path) -> None:
    session = open_vscode(tiny_config(long_tiny_model, implement=64))
    wb, source = session.workbench, session.source
    original = source.read_text()
    wb.screenshot("workbench")

    # The lightbulb menu on the stub `ringbuf_pop`: implement (not tests), document and the whole-file actions.
    wb.open_file("ringbuf.c")
    rows = session.wait_server_ready(line_of(source, "TODO: implement"))
    wb.screenshot("code-actions-on-stub")
    cra_rows = [row for row in rows if row.startswith("cra:")]
    assert cra_rows == ["cra: Implement function `ringbuf_pop`", "cra: Document function `ringbuf_pop`",
                        "cra: Plan this change", "cra: Scaffold declarations and contracts"], rows

    # Implement from the menu: the tiny random model cannot write a valid body, so the server reports the failure
    # and the file stays as it was; should it ever succeed, the body was validated and the file compiles.
    answered = session.count_in_logs("Received response 'workspace/executeCommand")
    wb.choose_code_action("cra: Implement function `ringbuf_pop`")
    wait_for(lambda: session.count_in_logs("Received response 'workspace/executeCommand") > answered, 240,
             "the server's answer to cra.implement")
    wb.screenshot("implement-from-menu")
    if wb.dirty():
        check_implemented(wb, source)
    else:
        failure = wait_for(lambda: [t for t in wb.toasts_seen() if t.startswith("cra: ringbuf_pop:")], 10,
                           "the server's failure message")
        assert source.read_text() == original, failure
    baseline = source.read_text()

    # Implement from the palette: it runs under a progress notification with a Cancel button, then tells the
    # outcome in a notification of its own.
    wb.run_command("cra: Implement the function at the cursor")
    outcome = wait_for(lambda: [t for t in wb.toasts() if re.search(r"cra implement ringbuf_pop(: done| failed: )", t)],
                       240, "the palette command's outcome")[0]
    wb.screenshot("implement-from-palette")
    seen = wb.toasts_seen()
    progress = [t for t in seen if "cra implement ringbuf_pop" in t and "Cancel" in t and outcome not in t]
    assert progress, f"no progress notification with a Cancel button among {seen}"
    assert seen.index(progress[0]) < seen.index(outcome), seen
    if ": done" in outcome:
        check_implemented(wb, source)
    else:
        assert not wb.dirty() and source.read_text() == baseline, outcome
    baseline = source.read_text()

    # Document from the menu, on a function without a comment: the server's edit (workspace/applyEdit) lands in
    # the editor, and saving puts it on disk.
    rows = session.wait_server_ready(line_of(source, "return rb->count;"))
    assert "cra: Document function `ringbuf_count`" in rows, rows
    assert "cra: Generate tests for function `ringbuf_count`" in rows, rows
    wb.choose_code_action("cra: Document function `ringbuf_count`")
    wait_for(wb.dirty, 120, "the doc comment of ringbuf_count in the editor")
    wb.screenshot("document-from-menu")
    wb.save()
    documented = source.read_text()
    head = documented.index("size_t ringbuf_count(const ringbuf_t *rb)")
    block = documented[documented.rindex("/**", 0, head):head]
    assert "@return the value of `rb->count`" in block and "@param rb" in block, block
    assert documented.replace(block, "") == baseline
    result = compiles(source)
    assert result.returncode == 0, result.stderr + documented


def check_implemented(wb: Workbench, source: Path) -> None:
    """A successful implement: the validated body replaced the stub and the saved file compiles."""
    wb.save()
    implemented = source.read_text()
    assert "TODO: implement" not in implemented
    result = compiles(source)
    assert result.returncode == 0, result.stderr + implemented


def test_cancel_from_the_progress_notification_leaves_the_file_unchanged(open_vscode: Callable[..., Session],
                                                                        slow_model: Path) -> None:
    session = open_vscode(single_model_config(slow_model, max_tokens=3000))
    wb, source = session.workbench, session.source
    original = source.read_text()
    wb.open_file("ringbuf.c")
    session.wait_server_ready(line_of(source, "TODO: implement"))
    wb.close_menu()

    wb.run_command("cra: Implement the function at the cursor")
    progress = wb.toast("cra implement ringbuf_pop")
    progress.wait_for(timeout=30000)
    # Cancel once the job is generating the body (the slow model keeps it there for many seconds).
    wait_for(lambda: '"message": "implement"' in session.logs(), 60, "the job to reach its implement stage")
    time.sleep(1)
    wb.screenshot("implement-in-progress")
    cancel = progress.locator(".monaco-button", has_text="Cancel")
    assert cancel.is_visible(), wb.toasts()
    cancel.click()
    cancelled = wait_for(lambda: [t for t in wb.toasts() if "cra implement ringbuf_pop: cancelled" in t], 60,
                         "the cancelled notice")
    wb.screenshot("implement-cancelled")
    # The click reached the server as $/cancelRequest, and the server stopped the job: it answered the request
    # with RequestCancelled (-32800) and ended its progress as cancelled.
    logs = wait_for(lambda: re.search(r"Received response 'workspace/executeCommand - \(\d+\)'.*\(-32800\)",
                                      session.logs()) and session.logs(), 30, "the server's cancelled answer")
    assert "Sending notification '$/cancelRequest'" in logs
    wait_for(lambda: re.search(r'"kind": "end",\s*"message": "cancelled"', session.logs()), 30,
             "the job's progress to end as cancelled")
    # No edit arrives later, and the editor and the file stay as they were.
    time.sleep(3)
    assert "Received request 'workspace/applyEdit" not in session.logs()
    assert not wb.dirty() and source.read_text() == original
    assert not [t for t in wb.toasts_seen() if "failed" in t], (cancelled, wb.toasts_seen())


@pytest.mark.real_model
def test_implement_with_the_real_model_from_the_lightbulb(open_vscode: Callable[..., Session],
                                                         real_model_0_5b: Path) -> None:
    # Untrusted: the body is validated by a direct gcc build and test run, not by the workspace's Makefile.
    session = open_vscode(single_model_config(real_model_0_5b, max_tokens=256), trust=False)
    wb, source = session.workbench, session.source
    wb.open_file("ringbuf.c")
    session.wait_server_ready(line_of(source, "TODO: implement"))
    wb.choose_code_action("cra: Implement function `ringbuf_pop`")
    wait_for(lambda: '"message": "implement"' in session.logs(), 120, "the job to reach its implement stage")
    wb.screenshot("implement-running")
    wait_for(lambda: session.count_in_logs("Received response 'workspace/executeCommand"), 480,
             "the server's answer to cra.implement")
    wb.screenshot("implement-answered")
    answer = session.logs().split("Received response 'workspace/executeCommand")[-1]
    assert '"ok": true' in answer and '"tests_passed": true' in answer, answer[:3000]
    assert wb.dirty(), "the server answered ok but the editor shows no edit"
    check_implemented(wb, source)
