"""A real VS Code for the end-to-end test: code-server (installed by scripts/install-vscode-e2e.sh) serving the
workbench to Debian's chromium, driven by playwright. Finding the pieces, packaging the extension, starting and
stopping code-server, and the few workbench gestures the test needs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
CODE_SERVER_VERSION = "4.100.3"
INSTALL_SCRIPT = "scripts/install-vscode-e2e.sh"
CHROMIUM = Path("/usr/bin/chromium")
NPM_ENV = {"npm_config_audit": "false", "npm_config_fund": "false", "npm_config_update_notifier": "false"}


def code_server_entry() -> Path | None:
    """code-server's node entry point in the cache the install script fills, or None when it is not installed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "cra" / "code-server" / CODE_SERVER_VERSION
    entry = root / "node_modules" / "code-server" / "out" / "node" / "entry.js"
    return entry if (root / ".installed").is_file() and entry.is_file() else None


def missing_pieces() -> list[str]:
    """Why the test cannot run here (empty: it can)."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing.append("node/npm are not installed")
    elif code_server_entry() is None:
        missing.append(f"code-server {CODE_SERVER_VERSION} is not installed (run {INSTALL_SCRIPT})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright is not installed (pip install -e '.[test]')")
    return missing


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, check=False, cwd=cwd, env=env or {**os.environ, **NPM_ENV}, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def package_vsix(out: Path) -> Path:
    """The extension packaged as a .vsix (esbuild bundle + vsce), written to `out`."""
    installed = EXTENSION / "node_modules" / ".package-lock.json"
    vsce = EXTENSION / "node_modules" / ".bin" / "vsce"
    lock = EXTENSION / "package-lock.json"
    if not (vsce.exists() and installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime):
        _run(["npm", "ci"], cwd=EXTENSION)
    vsix = out / "cra.vsix"
    # `vsce package` runs the vscode:prepublish script (the esbuild bundle) first.
    _run([str(vsce), "package", "--no-dependencies", "--allow-missing-repository", "--out", str(vsix)], cwd=EXTENSION)
    return vsix


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_text(table: dict[str, Any], prefix: str = "") -> str:
    """A nested dict of scalars as TOML (enough for a cra.toml)."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{key} = {json.dumps(value)}" for key, value in scalars.items()]
    text = "\n".join(lines) + ("\n\n" if lines else "")
    for key, value in table.items():
        if isinstance(value, dict):
            text += toml_text(value, f"{prefix}.{key}" if prefix else key)
    return text


@dataclass
class CodeServer:
    """One code-server process in its own session (process group) with every directory under `home`."""

    entry: Path
    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def user_data(self) -> Path:
        return self.home / "user-data"

    @property
    def extensions(self) -> Path:
        return self.home / "extensions"

    @property
    def log(self) -> Path:
        return self.home / "code-server.log"

    def env(self) -> dict[str, str]:
        xdg = {name: str(self.home / "xdg" / name.lower()) for name in
               ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")}
        for path in xdg.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        return {**os.environ, **xdg}

    def cli(self, *args: str) -> str:
        return _run(["node", str(self.entry), "--user-data-dir", str(self.user_data), "--extensions-dir",
                     str(self.extensions), *args], env=self.env(), timeout=120).stdout

    def write_settings(self, settings: dict[str, Any]) -> None:
        user = self.user_data / "User"
        user.mkdir(parents=True, exist_ok=True)
        (user / "settings.json").write_text(json.dumps(settings, indent=2))

    def start(self, folder: Path, timeout: float = 60) -> None:
        argv = ["node", str(self.entry), "--bind-addr", f"127.0.0.1:{self.port}", "--auth", "none",
                "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
                "--disable-getting-started-override", "--user-data-dir", str(self.user_data),
                "--extensions-dir", str(self.extensions), str(folder)]
        with self.log.open("wb") as log:
            # A session of its own: the extension host and the language server outlive a closed page for a while,
            # so teardown kills the whole group.
            self.process = subprocess.Popen(argv, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"code-server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        raise AssertionError(f"code-server did not answer /healthz within {timeout}s:\n{self.log.read_text()}")

    def url(self, folder: Path) -> str:
        return f"http://127.0.0.1:{self.port}/?folder={folder}"

    def stop(self) -> None:
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The group may outlive its leader (extension host, language server): make sure it is gone.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        self.process = None

    def output_logs(self) -> str:
        """The extension host's output channels (the cra channel, with the LSP trace when it is on)."""
        parts = []
        for path in sorted(self.user_data.glob("logs/*/*/exthost*/output_logging_*/*.log")) + sorted(
                self.user_data.glob("logs/*/exthost*/output_logging_*/*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Workbench:
    """The gestures of a user at VS Code's workbench in a playwright page, each waiting for what it expects, and
    screenshots numbered in the order taken."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.taken: list[Path] = []

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.taken.append(path)
        return path

    def load(self, url: str, timeout: float = 90) -> None:
        self.page.add_init_script(TOAST_RECORDER)
        self.page.goto(url)
        self.page.locator(".monaco-workbench .part.editor").wait_for(state="visible", timeout=timeout * 1000)
        # The explorer lists the folder once the workbench talks to its server.
        self.page.locator(".explorer-folders-view .monaco-list-row").first.wait_for(timeout=timeout * 1000)

    def _quick_input(self, key: str, text: str, expect: Callable[[str], bool] | None, what: str,
                     timeout: float = 30) -> None:
        """Open a quick input with `key`, type `text`, wait until the focused choice passes `expect` (given its
        label), accept it."""
        widget = self.page.locator(".quick-input-widget")

        def opened() -> bool:
            if not widget.is_visible():
                self.page.keyboard.press(key)
                try:
                    widget.wait_for(state="visible", timeout=2000)
                except Exception:  # noqa: BLE001 - the workbench was not listening yet: press again
                    return False
            return True

        wait_for(opened, timeout, f"the quick input after {key}")
        self.page.keyboard.type(text)
        if expect is not None:
            focused = widget.locator(".monaco-list-row.focused .label-name")

            def chosen() -> bool:
                return focused.count() > 0 and expect(focused.first.inner_text().strip())

            wait_for(chosen, timeout, f"{what} to be the first choice")
        self.page.keyboard.press("Enter")
        widget.wait_for(state="hidden", timeout=timeout * 1000)

    def open_file(self, name: str) -> None:
        self._quick_input("Control+P", name, lambda label: label == name, name)
        active = self.page.locator(".tabs-container .tab.active .label-name")
        wait_for(lambda: active.count() > 0 and active.first.inner_text().strip() == name, 30, f"{name} to open")
        self.page.locator(".monaco-editor.focused").wait_for(timeout=30000)

    def go_to_line(self, line: int) -> None:
        self._quick_input("Control+G", str(line), None, f"line {line}")
        wait_for(lambda: f"Ln {line}," in self.status_bar(), 10, f"the cursor on line {line}")

    def dirty(self) -> bool:
        """Whether the active editor has unsaved changes."""
        return self.page.locator(".tabs-container .tab.active.dirty").count() > 0

    def save(self) -> None:
        self.page.keyboard.press("Control+S")
        wait_for(lambda: not self.dirty(), 15, "the active editor to be saved")

    def status_bar(self) -> str:
        return self.page.locator(".part.statusbar").inner_text()

    def run_command(self, title: str) -> None:
        """Run a palette command by its full title ("category: title")."""
        self._quick_input("F1", title, lambda label: title in label, title)

    def code_actions(self, timeout: float = 3) -> list[str]:
        """Open the code-action menu (Ctrl+.) and return its rows' texts; empty when nothing is offered yet."""
        self.page.keyboard.press("Control+.")
        rows = self.page.locator(".action-widget .monaco-list-row")
        try:
            rows.first.wait_for(state="visible", timeout=timeout * 1000)
        except Exception:  # noqa: BLE001 - "No code actions available" or not open yet
            return []
        return [text.strip() for text in rows.all_inner_texts()]

    def close_menu(self) -> None:
        self.page.keyboard.press("Escape")
        self.page.locator(".action-widget").wait_for(state="hidden", timeout=5000)

    def choose_code_action(self, title: str) -> None:
        """Move the open code-action menu's focus to the row with `title` (clicks are blocked by an overlay) and
        run it."""
        focused = self.page.locator(".action-widget .monaco-list-row.focused")
        for _ in range(30):
            if focused.count() and title in focused.first.inner_text():
                self.page.keyboard.press("Enter")
                self.page.locator(".action-widget").wait_for(state="hidden", timeout=5000)
                return
            self.page.keyboard.press("ArrowDown")
        raise AssertionError(f"no code action {title!r} in the menu")

    def toasts(self) -> list[str]:
        """The texts of the notification toasts on screen."""
        return [" ".join(text.split()) for text in
                self.page.locator(".notifications-toasts .monaco-list-row").all_inner_texts()]

    def toasts_seen(self) -> list[str]:
        """Every notification text shown since the page loaded, in order (recorded in the page)."""
        return self.page.evaluate("window.__toasts || []")

    def toast(self, text: str) -> Any:
        return self.page.locator(".notifications-toasts .monaco-list-row", has_text=text).first


# Every notification text shown, recorded in the page as it appears: a progress notification of a quick job lives
# for less than a second, too short to be sure of catching by polling.
TOAST_RECORDER = """
window.__toasts = [];
new MutationObserver(() => {
  for (const row of document.querySelectorAll('.notifications-toasts .monaco-list-row')) {
    const text = (row.textContent || '').replace(/\\s+/g, ' ').trim();
    if (text && !window.__toasts.includes(text)) window.__toasts.push(text);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""

