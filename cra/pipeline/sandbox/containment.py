"""Try to escape the sandbox the way generated code could, and count what got out (`cra bench robustness`).

Each attempt is a small C program (or an untrusted build) aimed at something the test sets up outside the
sandbox: a world-readable host file, a world-writable unix socket with a listener, a TCP listener on loopback, a
world-writable directory outside the copy, and a `-wrapper` flag in an untrusted workspace's config. An attempt
escapes when the host side sees the effect (the secret printed, a connection accepted, a file written, the
wrapper's marker printed).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.limits import Limits, SandboxError
from cra.pipeline.sandbox.runner import isolation_plan, make_sandbox_dir, remove_sandbox_dir, run_sandboxed

BUILD_LIMITS = Limits(cpu_seconds=20, wall_seconds=30.0, memory_mb=1024)
RUN_LIMITS = Limits(cpu_seconds=5, wall_seconds=10.0)
SECRET = "cra-containment-secret-7f3a"
WRAPPER_MARKER = "cra-wrapper-ran-5c1d"

READ_FILE = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    char buf[256] = {0};
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror("open"); return 2; }
    fread(buf, 1, sizeof buf - 1, f);
    printf("%s", buf);
    return 0;
}
"""
CONNECT_UNIX = r"""
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return 2; }
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 3; }
    puts("connected");
    return 0;
}
"""
CONNECT_TCP = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return 2; }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 3; }
    puts("connected");
    return 0;
}
"""
WRITE_FILE = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror("open"); return 2; }
    fputs("escaped\n", f);
    return fclose(f) == 0 ? 0 : 3;
}
"""


class Attempt(msgspec.Struct, kw_only=True):
    name: str
    escaped: bool
    detail: str


class ContainmentReport(msgspec.Struct, kw_only=True):
    tried: int
    escaped: int
    isolation: str
    attempts: list[Attempt]


def _build(sandbox: Path, name: str, source: str) -> str:
    (sandbox / f"{name}.c").write_text(source)
    result = run_sandboxed(["gcc", "-O0", "-o", name, f"{name}.c"], sandbox, BUILD_LIMITS)
    if result.returncode != 0:
        raise SandboxError(f"cannot build the {name} probe in the sandbox: {result.stderr.strip()[:300]}")
    return f"./{name}"


def _outside_dir() -> Path:
    """A host directory everyone may read and write (what a careless user might leave around)."""
    path = Path(tempfile.mkdtemp(prefix="cra-outside-"))
    os.chmod(path, 0o777)
    return path


def _read_host_file(sandbox: Path, outside: Path) -> Attempt:
    secret = outside / "secret.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o644)
    result = run_sandboxed([_build(sandbox, "readfile", READ_FILE), str(secret)], sandbox, RUN_LIMITS)
    return Attempt(name="read_host_file", escaped=SECRET in result.stdout,
                   detail=(result.stdout + result.stderr).strip()[:200])


def _connect_unix_socket(sandbox: Path, outside: Path) -> Attempt:
    path = outside / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o777)
        listener.listen(1)
        listener.settimeout(0.2)
        result = run_sandboxed([_build(sandbox, "unix", CONNECT_UNIX), str(path)], sandbox, RUN_LIMITS)
        try:
            listener.accept()[0].close()
            accepted = True
        except (TimeoutError, BlockingIOError):
            accepted = False
    return Attempt(name="connect_unix_socket", escaped=accepted or "connected" in result.stdout,
                   detail=(result.stdout + result.stderr).strip()[:200])


def _connect_network(sandbox: Path, outside: Path) -> Attempt:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        port = str(listener.getsockname()[1])
        result = run_sandboxed([_build(sandbox, "tcp", CONNECT_TCP), port], sandbox, RUN_LIMITS)
        try:
            listener.accept()[0].close()
            accepted = True
        except (TimeoutError, BlockingIOError):
            accepted = False
    return Attempt(name="connect_network", escaped=accepted or "connected" in result.stdout,
                   detail=(result.stdout + result.stderr).strip()[:200])


def _write_outside(sandbox: Path, outside: Path) -> Attempt:
    target = outside / "written.txt"
    result = run_sandboxed([_build(sandbox, "writefile", WRITE_FILE), str(target)], sandbox, RUN_LIMITS)
    return Attempt(name="write_outside_copy", escaped=target.exists(),
                   detail=(result.stdout + result.stderr).strip()[:200])


def _untrusted_wrapper(sandbox: Path, outside: Path) -> Attempt:
    from cra.pipeline.sandbox.validate import compile_unit

    workspace = outside / "workspace"
    workspace.mkdir()
    (workspace / "x.sh").write_text(f'#!/bin/sh\necho {WRAPPER_MARKER} >&2\nexec "$@"\n')
    (workspace / "m.c").write_text("int f(void) { return 0; }\n")
    result = compile_unit(workspace, "m.c", "int f(void) { return 1; }\n", flags=["-wrapper", "sh,x.sh"],
                          compiler="gcc", trusted=False)
    return Attempt(name="untrusted_wrapper_flag", escaped=WRAPPER_MARKER in result.stderr,
                   detail=result.stderr.strip()[:200] or ("compiled" if result.ok else "failed"))


ATTEMPTS: tuple[Callable[[Path, Path], Attempt], ...] = (
    _read_host_file, _connect_unix_socket, _connect_network, _write_outside, _untrusted_wrapper,
)


def containment_probe() -> dict[str, object]:
    """Run every escape attempt once; {"tried", "escaped", "isolation", "attempts": [{name, escaped, detail}]}.

    Raises SandboxError when the sandbox cannot even build the probes."""
    attempts: list[Attempt] = []
    for attempt in ATTEMPTS:
        sandbox = make_sandbox_dir("cra-probe-")
        outside = _outside_dir()
        try:
            attempts.append(attempt(sandbox, outside))
        finally:
            remove_sandbox_dir(sandbox)
            shutil.rmtree(outside, ignore_errors=True)
    report = ContainmentReport(tried=len(attempts), escaped=sum(a.escaped for a in attempts),
                               isolation=isolation_plan().description, attempts=attempts)
    return msgspec.to_builtins(report)
