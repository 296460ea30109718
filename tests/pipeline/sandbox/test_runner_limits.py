"""The sandbox stops runaway programs: time, CPU, processes, output, memory, files outside, network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from cra.pipeline.sandbox import Limits, SandboxError, isolation_plan, run_sandboxed
from cra.pipeline.sandbox.runner import IsolationPlan

REPO = Path(__file__).resolve().parents[3]


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def test_plain_command_runs_with_output_and_exit_code(sandbox_dir: Path) -> None:
    result = run_sandboxed(["sh", "-c", "echo out; echo err >&2; exit 3"], sandbox_dir, Limits())
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.truncated and not result.timed_out and result.killed_reason is None
    assert "netns" in result.isolation or "ld_preload" in isolation_plan().description


def test_stdin_and_minimal_environment(sandbox_dir: Path) -> None:
    os.environ["CRA_SECRET_FOR_TEST"] = "leak"
    try:
        result = run_sandboxed(["sh", "-c", "cat; echo HOME=$HOME; echo SECRET=$CRA_SECRET_FOR_TEST; env | wc -l"],
                               sandbox_dir, Limits(), stdin="piped\n")
    finally:
        del os.environ["CRA_SECRET_FOR_TEST"]
    lines = result.stdout.splitlines()
    assert lines[0] == "piped"
    assert lines[1] == f"HOME={sandbox_dir / 'home'}"
    assert lines[2] == "SECRET="
    assert int(lines[3]) < 12


def test_infinite_loop_is_stopped_by_wall_clock(sandbox_dir: Path) -> None:
    start = time.monotonic()
    result = run_sandboxed(["sleep", "30"], sandbox_dir, Limits(wall_seconds=0.5))
    assert result.timed_out and result.killed_reason == "timeout"
    assert time.monotonic() - start < 3


def test_busy_loop_is_stopped_by_cpu_limit(sandbox_dir: Path, build_program: Callable[[Path, str, str], str]) -> None:
    prog = build_program(sandbox_dir, "spin", "int main(void){ volatile unsigned long n = 0; for (;;) n++; }")
    result = run_sandboxed([prog], sandbox_dir, Limits(cpu_seconds=1, wall_seconds=10))
    assert result.killed_reason == "cpu_limit"
    assert not result.timed_out
    assert result.wall_s < 4


FORK_BOMB = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    int failed = 0;
    for (int i = 0; i < 200; i++) {
        pid_t p = fork();
        if (p == 0) { pause(); _exit(0); }
        if (p < 0) failed++;
    }
    printf("failed=%d\n", failed);
    fflush(stdout);
    for (;;) fork();
}
"""


def test_fork_bomb_is_contained_and_cleaned_up(sandbox_dir: Path, build_program: Callable[[Path, str, str], str]) -> None:
    marker = f"bomb{uuid.uuid4().hex[:8]}"
    prog = build_program(sandbox_dir, marker, FORK_BOMB)
    start = time.monotonic()
    result = run_sandboxed([prog], sandbox_dir, Limits(max_processes=20, wall_seconds=1.5, cpu_seconds=5))
    assert result.timed_out
    failed = int(result.stdout.split("failed=")[1].split()[0])
    assert failed >= 200 - 20, result.stdout
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_detached_background_process_dies_with_the_sandbox(sandbox_dir: Path) -> None:
    marker = "31.41592"  # a sleep length no other process uses
    result = run_sandboxed(["sh", "-c", f"setsid sleep {marker} & echo started"], sandbox_dir, Limits())
    assert result.stdout == "started\n"
    time.sleep(0.2)
    if "pidns" not in result.isolation:
        pytest.skip(f"no pid namespace on this host ({result.isolation})")
    assert _processes_with(marker) == []


def test_huge_output_is_capped_fast(sandbox_dir: Path) -> None:
    start = time.monotonic()
    # head -c 1G: a gigabyte if nothing stopped it.
    result = run_sandboxed(["sh", "-c", "head -c 1073741824 /dev/zero | tr '\\0' a"], sandbox_dir,
                           Limits(max_output_bytes=64 * 1024, wall_seconds=20))
    assert result.truncated and result.killed_reason == "output_limit"
    assert len(result.stdout) == 64 * 1024 and set(result.stdout) == {"a"}
    assert time.monotonic() - start < 3
    assert sum(f.stat().st_size for f in sandbox_dir.rglob("*") if f.is_file()) < 1024 * 1024


def test_large_file_write_is_stopped(sandbox_dir: Path) -> None:
    result = run_sandboxed(["sh", "-c", "head -c 10000000 /dev/zero > big"], sandbox_dir,
                           Limits(max_file_bytes=1024 * 1024))
    assert result.returncode != 0
    assert (sandbox_dir / "big").stat().st_size <= 1024 * 1024


def test_memory_hog_is_refused(sandbox_dir: Path, build_program: Callable[[Path, str, str], str]) -> None:
    prog = build_program(sandbox_dir, "hog", r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    size_t n = (size_t)1 << 30;
    char *p = malloc(n);
    if (!p) { puts("malloc failed"); return 3; }
    memset(p, 1, n);
    puts("allocated");
    return 0;
}
""")
    result = run_sandboxed([prog], sandbox_dir, Limits(memory_mb=64))
    assert (result.returncode, result.stdout) == (3, "malloc failed\n")


def test_write_outside_the_sandbox_lands_nowhere(sandbox_dir: Path, tmp_path: Path) -> None:
    outside = Path("/tmp") / f"cra-escape-{uuid.uuid4().hex}"
    user_file = tmp_path / "user.c"
    user_file.write_text("original\n")
    script = f"echo x > {outside}; echo y > {user_file}; echo z > {sandbox_dir}/inside; echo done"
    result = run_sandboxed(["sh", "-c", script], sandbox_dir, Limits())
    assert result.stdout == "done\n"
    assert not outside.exists()
    assert user_file.read_text() == "original\n"
    assert (sandbox_dir / "inside").read_text() == "z\n"


CONNECT = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { printf("socket: %s\n", strerror(errno)); return 2; }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { printf("connect: %s\n", strerror(errno)); return 3; }
    puts("connected");
    return 0;
}
"""


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    return srv


def _assert_no_connection(srv: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        srv.accept()


def test_network_connect_fails(sandbox_dir: Path, build_program: Callable[[Path, str, str], str]) -> None:
    prog = build_program(sandbox_dir, "net", CONNECT)
    with _listener() as srv:
        # The same program reaches the listener outside the sandbox, so a refusal inside is the sandbox's doing.
        outside = subprocess.run([str(sandbox_dir / "net"), str(srv.getsockname()[1])], capture_output=True, text=True)
        assert outside.stdout == "connected\n"
        srv.accept()[0].close()
        result = run_sandboxed([prog, str(srv.getsockname()[1])], sandbox_dir, Limits())
        assert result.returncode in (2, 3) and "connected\n" != result.stdout
        _assert_no_connection(srv)


def test_socket_shim_fallback_blocks_network(sandbox_dir: Path, build_program: Callable[[Path, str, str], str]) -> None:
    from cra.pipeline.sandbox.network_shim import build_socket_shim

    prog = build_program(sandbox_dir, "net", CONNECT)
    shim = build_socket_shim(sandbox_dir / "shim-cache")
    os.chmod(sandbox_dir / "shim-cache", 0o755)
    plan = IsolationPlan(namespaces=False, drop_uid=isolation_plan().drop_uid, preload_shim=str(shim),
                         description="test: shim only")
    with _listener() as srv:
        result = run_sandboxed([prog, str(srv.getsockname()[1])], sandbox_dir, Limits(), plan=plan)
        assert "netns" not in result.isolation
        assert (result.returncode, result.stdout) == (2, "socket: Operation not permitted\n")
        _assert_no_connection(srv)


def test_bad_arguments_give_clear_errors(sandbox_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="non-empty list"):
        run_sandboxed([], sandbox_dir, Limits())
    with pytest.raises(SandboxError, match="does not exist"):
        run_sandboxed(["true"], sandbox_dir / "missing", Limits())
    with pytest.raises(SandboxError, match="outside the sandbox"):
        run_sandboxed(["true"], tmp_path, Limits(), sandbox_root=sandbox_dir)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=0)
    result = run_sandboxed(["no-such-program-cra"], sandbox_dir, Limits())
    assert result.returncode == 127 and "cannot run no-such-program-cra" in result.stderr


def _nobody_python() -> list[str] | None:
    """An interpreter (and import path) the unprivileged user can use, or None."""
    exe = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    site = Path(msgspec.__file__).resolve().parent.parent
    for path in (exe, site, REPO):
        if not path.exists() or any(not os.stat(p).st_mode & 0o005 for p in [path, *path.parents]):
            return None
    return [str(exe), str(site)]


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as a normal user already")
def test_fork_bomb_is_contained_for_a_normal_user_too() -> None:
    found = _nobody_python()
    if found is None:
        pytest.skip("no interpreter/msgspec readable by the unprivileged user")
    exe, site = found
    script = r"""
import json, sys
from pathlib import Path
from cra.pipeline.sandbox import Limits, make_sandbox_dir, remove_sandbox_dir, run_sandboxed, isolation_plan
d = make_sandbox_dir()
try:
    (d / "bomb.c").write_text(sys.argv[1])
    build = run_sandboxed(["gcc", "-o", "bomb", "bomb.c"], d, Limits(wall_seconds=30))
    assert build.returncode == 0, build.stderr
    r = run_sandboxed(["./bomb"], d, Limits(max_processes=20, wall_seconds=1.5))
    print(json.dumps({"plan": isolation_plan().description, "out": r.stdout, "timed_out": r.timed_out}))
finally:
    remove_sandbox_dir(d)
"""
    proc = subprocess.run(
        [exe, "-c", script, FORK_BOMB], capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}", "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp"},
        preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "uid=own:65534" in report["plan"].split()  # it really ran unprivileged: nothing to drop
    assert "userns" in report["plan"].split()
    assert report["timed_out"]
    assert int(report["out"].split("failed=")[1]) >= 200 - 20, report
