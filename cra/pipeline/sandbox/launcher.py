"""Sandbox launcher: sets up isolation in a fresh single-threaded interpreter, then runs the untrusted program.

Run as ``python -I -S launcher.py STATUS_FD CONFIG_JSON -- ARGV...``. Standard library only (it is started with
``-S``), and it never imports the rest of the package: doing the namespace work here instead of in a
``preexec_fn`` keeps it out of the (multi-threaded) language-server process, where forking helpers is unsafe.

Layers, each tried and reported on STATUS_FD as ``layer name=value`` lines:
  uid       root drops to an unprivileged uid first (root ignores RLIMIT_NPROC and may write anywhere)
  userns    a new user namespace: RLIMIT_NPROC then counts only this sandbox's processes, and it lets an
            unprivileged user create the namespaces below
  netns     a new network namespace with no interfaces up: nothing can connect anywhere
  mountns   a new mount namespace where every mount is read-only except the sandbox directory
  pidns     the program runs under a tiny init; when that init dies the kernel kills every process left
The last line is ``exit code=N`` or ``exit signal=N`` (or ``error message=...`` when the program never started).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # same number on every architecture (unified syscall table since 5.x)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _report(fd: int, line: str) -> None:
    os.write(fd, (line.replace("\n", " ") + "\n").encode())


def _drop_root(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    # Changing uid makes the process non-dumpable, which leaves /proc/self/uid_map owned by root and
    # unwritable for us; the namespace setup below needs it.
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_user_namespace(extra_flags: int) -> None:
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER | extra_flags), "unshare")
    # Map our own ids onto themselves: a non-zero uid inside means exec drops every capability, so the
    # program cannot undo the read-only mounts set up below.
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def _mount_setattr(path: str, attr_set: int, attr_clr: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    res = _libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    _check(res, f"mount_setattr {path}")


def _make_rest_read_only(writable_dir: str) -> None:
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    _mount_setattr("/", MOUNT_ATTR_RDONLY, 0)
    _check(_libc.mount(writable_dir.encode(), writable_dir.encode(), None, MS_BIND | MS_REC, None), "bind sandbox")
    _mount_setattr(writable_dir, 0, MOUNT_ATTR_RDONLY)


def _set_limits(cfg: dict) -> None:
    def both(kind: int, value: int) -> None:
        resource.setrlimit(kind, (value, value))

    both(resource.RLIMIT_CORE, 0)
    # Soft below hard: the kernel sends SIGXCPU at the soft limit, so the runner can name the reason.
    cpu = int(cfg["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    both(resource.RLIMIT_FSIZE, int(cfg["max_file_bytes"]))
    both(resource.RLIMIT_NPROC, int(cfg["max_processes"]))
    both(resource.RLIMIT_AS, int(cfg["memory_bytes"]))


def _exec_program(argv: list[str], cfg: dict, status_fd: int) -> None:
    os.close(status_fd)
    try:
        _set_limits(cfg)
        os.chdir(cfg["cwd"])
        os.execvpe(argv[0], argv, cfg["env"])
    except OSError as exc:
        os.write(2, f"sandbox: cannot run {argv[0]}: {exc.strerror}\n".encode())
    os._exit(127)


def _wait_status_line(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"exit signal={os.WTERMSIG(status)}"
    return f"exit code={os.waitstatus_to_exitcode(status)}"


def _run_as_init(argv: list[str], cfg: dict, status_fd: int) -> None:
    """pid 1 of the new pid namespace: start the program, reap orphans, report the program's status."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    program = os.fork()
    if program == 0:
        _exec_program(argv, cfg, status_fd)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == program:
            _report(status_fd, _wait_status_line(status))
            # Exiting as pid 1 makes the kernel kill whatever the program left running.
            os._exit(0)


def main() -> None:
    status_fd = int(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    argv = sys.argv[4:]
    want = cfg["namespaces"]
    have_pidns = False
    try:
        if os.geteuid() == 0 and cfg.get("drop_uid") is not None:
            try:
                _drop_root(cfg["drop_uid"], cfg["drop_gid"])
                _report(status_fd, f"layer uid={cfg['drop_uid']}")
            except OSError as exc:
                _report(status_fd, f"layer uid=failed:{exc.strerror}")
        if want:
            try:
                _enter_user_namespace(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID)
                _report(status_fd, "layer userns=yes")
                _report(status_fd, "layer netns=yes")
                have_pidns = True
                _report(status_fd, "layer pidns=yes")
                try:
                    _make_rest_read_only(cfg["writable_dir"])
                    _report(status_fd, "layer mountns=read-only")
                except OSError as exc:
                    _report(status_fd, f"layer mountns=failed:{exc.strerror}")
            except OSError as exc:
                _report(status_fd, f"layer userns=failed:{exc.strerror}")
                # Root that could not drop its uid may still isolate the network without a user namespace.
                try:
                    _check(_libc.unshare(CLONE_NEWNET), "unshare net")
                    _report(status_fd, "layer netns=yes")
                except OSError as exc2:
                    _report(status_fd, f"layer netns=failed:{exc2.strerror}")
    except Exception as exc:  # anything unexpected: report instead of running half-isolated
        _report(status_fd, f"error message=sandbox setup failed: {exc}")
        os._exit(126)

    if have_pidns:
        init = os.fork()
        if init == 0:
            _run_as_init(argv, cfg, status_fd)
        _, status = os.waitpid(init, 0)
        os._exit(0 if os.WIFEXITED(status) else 125)
    # No pid namespace: become the program ourselves (the runner kills our process group on timeout).
    program = os.fork()
    if program == 0:
        _exec_program(argv, cfg, status_fd)
    _, status = os.waitpid(program, 0)
    _report(status_fd, _wait_status_line(status))
    os._exit(0)


if __name__ == "__main__":
    main()
