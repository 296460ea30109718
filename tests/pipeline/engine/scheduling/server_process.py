"""Start a real HTTP model server for a test module, wait until it answers, and always stop it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(argv: list[str], url: str, ready_path: str, log_path: Path, *, headers: dict[str, str] | None = None,
          start_timeout_s: float = 60) -> Iterator[str]:
    """Run `argv` (logging to `log_path`) until `url + ready_path` answers 200; yields `url`. A server that exits
    or does not answer in time fails the test with the end of its log."""
    with log_path.open("w+") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout_s
        try:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"{Path(argv[0]).name} exited with {proc.returncode}: {log.read()[-2000:]}")
                try:
                    request = urllib.request.Request(url + ready_path, headers=headers or {})
                    with urllib.request.urlopen(request, timeout=2) as reply:
                        if reply.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"the test server did not start within {start_timeout_s:.0f} s"
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
