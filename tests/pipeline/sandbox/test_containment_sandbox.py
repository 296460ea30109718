"""Generated code in the sandbox sees no host filesystem, reaches no unix socket, and (run as a normal user)
cannot write the user's files: real gcc, real programs, real host files and sockets set up by the test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from cra.pipeline.sandbox import Limits, run_sandboxed
from cra.pipeline.sandbox.containment import CONNECT_UNIX, READ_FILE, WRITE_FILE, containment_probe

REPO = Path(__file__).resolve().parents[3]
SECRET = "host-secret-for-the-containment-test"


def _private_root(isolation: str) -> None:
    """Where the host allows user namespaces, the private root must be active; elsewhere there is none to test."""
    if "userns" not in isolation.split():
        pytest.skip(f"no user namespaces on this host ({isolation})")
    assert "mountns=private-root" in isolation.split(), isolation


@pytest.fixture
def outside() -> Iterator[Path]:
    """A world-readable, world-writable host directory outside the sandbox (not under the 0700 pytest tmp)."""
    path = Path(tempfile.mkdtemp(prefix="cra-outside-test-"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_host_files_are_invisible_but_builds_still_work(
    sandbox_dir: Path, build_program: Callable[[Path, str, str], str], outside: Path
) -> None:
    secret = outside / "secret.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o644)
    prog = build_program(sandbox_dir, "readfile", READ_FILE)
    result = run_sandboxed([prog, str(secret)], sandbox_dir, Limits())
    _private_root(result.isolation)
    assert SECRET not in result.stdout
    assert result.returncode == 2 and "No such file or directory" in result.stderr, result

    home_dir = Path(tempfile.mkdtemp(prefix="cra-home-test-", dir=Path.home()))
    try:
        in_home = home_dir / "secret.txt"
        in_home.write_text(SECRET)
        os.chmod(in_home, 0o644)
        result = run_sandboxed([prog, str(in_home)], sandbox_dir, Limits())
        # ENOENT, not EACCES: the path does not exist in the sandbox at all.
        assert result.returncode == 2 and "No such file or directory" in result.stderr, result
    finally:
        shutil.rmtree(home_dir, ignore_errors=True)

    listing = run_sandboxed(["sh", "-c", "ls /; ls /tmp; ls /proc | grep -c '^[0-9]'"], sandbox_dir, Limits())
    top = set(listing.stdout.split())
    assert {"usr", "tmp", "proc", "dev"} <= top and not top & {"root", "home", "work", "var", "opt"}, listing.stdout
    assert outside.name not in listing.stdout  # a fresh /tmp: only the sandbox directory is there
    assert sandbox_dir.name in listing.stdout
    # A fresh /proc of the sandbox's own pid namespace: a handful of processes, not the host's.
    assert int(listing.stdout.split()[-1]) < 10

    # Normal code still compiles, links against libc and runs, writing only inside the copy and /tmp.
    hello = build_program(sandbox_dir, "hello", '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    ran = run_sandboxed(["sh", "-c", f"{hello} && echo x > /tmp/t && cat /tmp/t && ! touch /escape"],
                        sandbox_dir, Limits())
    assert (ran.returncode, ran.stdout) == (0, "hi\nx\n"), ran


def test_writes_outside_the_copy_fail(
    sandbox_dir: Path, build_program: Callable[[Path, str, str], str], outside: Path
) -> None:
    prog = build_program(sandbox_dir, "writefile", WRITE_FILE)
    target = outside / "written.txt"
    result = run_sandboxed([prog, str(target)], sandbox_dir, Limits())
    _private_root(result.isolation)
    assert result.returncode == 2 and not target.exists(), result
    inside = run_sandboxed([prog, "inside.txt"], sandbox_dir, Limits())
    assert inside.returncode == 0 and (sandbox_dir / "inside.txt").read_text() == "escaped\n"


def test_world_writable_host_unix_socket_is_unreachable(
    sandbox_dir: Path, build_program: Callable[[Path, str, str], str], outside: Path
) -> None:
    prog = build_program(sandbox_dir, "unix", CONNECT_UNIX)
    path = outside / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o777)
        listener.listen(1)
        # The same program outside the sandbox does connect: the socket is really reachable from the host.
        outside_run = subprocess.run([str(sandbox_dir / "unix"), str(path)], capture_output=True, text=True)
        assert outside_run.stdout == "connected\n"
        listener.accept()[0].close()
        result = run_sandboxed([prog, str(path)], sandbox_dir, Limits())
        listener.settimeout(0.2)
        with pytest.raises((TimeoutError, BlockingIOError)):
            listener.accept()
    assert "connected" not in result.stdout and result.returncode in (2, 3), result
    if "seccomp=sockets" in result.isolation.split():
        assert (result.returncode, result.stderr) == (2, "socket: Permission denied\n")


def _nobody_python() -> list[str] | None:
    exe = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    site = Path(msgspec.__file__).resolve().parent.parent
    for path in (exe, site, REPO):
        if not path.exists() or any(not os.stat(p).st_mode & 0o005 for p in [path, *path.parents]):
            return None
    return [str(exe), str(site)]


NOBODY_SCRIPT = r"""
import json, sys
from cra.pipeline.sandbox import Limits, make_sandbox_dir, remove_sandbox_dir, run_sandboxed
d = make_sandbox_dir()
try:
    (d / "w.c").write_text(sys.argv[1])
    build = run_sandboxed(["gcc", "-o", "w", "w.c"], d, Limits(wall_seconds=30))
    assert build.returncode == 0, build.stderr
    r = run_sandboxed(["./w", sys.argv[2]], d, Limits())
    print(json.dumps({"isolation": r.isolation, "code": r.returncode, "err": r.stderr}))
finally:
    remove_sandbox_dir(d)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user for the test")
def test_a_normal_user_cannot_write_its_own_files_from_the_sandbox(outside: Path) -> None:
    found = _nobody_python()
    if found is None:
        pytest.skip("no interpreter/msgspec readable by the unprivileged user")
    exe, site = found
    # A file the unprivileged user owns and may write, outside the sandbox: its "own files".
    own = outside / "own.txt"
    own.write_text("original\n")
    os.chown(own, 65534, 65534)
    proc = subprocess.run(
        [exe, "-c", NOBODY_SCRIPT, WRITE_FILE, str(own)], capture_output=True, text=True, timeout=90, cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}", "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp"},
        preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    _private_root(report["isolation"])
    assert "uid=own:65534" in report["isolation"].split()
    assert report["code"] == 2 and "No such file or directory" in report["err"], report
    assert own.read_text() == "original\n"


@pytest.mark.timeout(120)
def test_containment_probe_counts_no_escape() -> None:
    report = containment_probe()
    _private_root(str(report["isolation"]))
    names = [a["name"] for a in report["attempts"]]  # type: ignore[union-attr]
    assert names == ["read_host_file", "connect_unix_socket", "connect_network", "write_outside_copy",
                     "untrusted_wrapper_flag"]
    assert report["tried"] == 5 and report["escaped"] == 0, report


def test_without_namespaces_the_report_says_so_and_seccomp_still_refuses_sockets(
    sandbox_dir: Path, build_program: Callable[[Path, str, str], str], outside: Path
) -> None:
    from cra.pipeline.sandbox.runner import IsolationPlan, isolation_plan

    prog = build_program(sandbox_dir, "unix", CONNECT_UNIX)
    plan = IsolationPlan(namespaces=False, drop_uid=isolation_plan().drop_uid, preload_shim=None,
                         description="test: no namespaces")
    path = outside / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o777)
        listener.listen(1)
        result = run_sandboxed([prog, str(path)], sandbox_dir, Limits(), plan=plan)
        listener.settimeout(0.2)
        with pytest.raises((TimeoutError, BlockingIOError)):
            listener.accept()
    layers = result.isolation.split()
    assert "namespaces=off" in layers and "mountns=private-root" not in layers
    if "seccomp=sockets" not in layers:
        pytest.skip(f"no seccomp socket filter on this host ({result.isolation})")
    assert (result.returncode, result.stderr) == (2, "socket: Permission denied\n")
