"""Sandbox launcher: sets up isolation in a fresh single-threaded interpreter, then runs the untrusted program.

Run as ``python -I -S launcher.py STATUS_FD CONFIG_JSON -- ARGV...``. Standard library only (it is started with
``-S``), and it never imports the rest of the package: doing the namespace work here instead of in a
``preexec_fn`` keeps it out of the (multi-threaded) language-server process, where forking helpers is unsafe.

Layers, each tried and reported on STATUS_FD as ``layer name=value`` lines:
  uid       root drops to an unprivileged uid first (root ignores RLIMIT_NPROC and may write anywhere)
  userns    a new user namespace: RLIMIT_NPROC then counts only this sandbox's processes, and it lets an
            unprivileged user create the namespaces below
  netns     a new network namespace with no interfaces up: nothing can connect anywhere
  pidns     the program runs under a tiny init; when that init dies the kernel kills every process left
  mountns   a new mount namespace. `private-root`: the init pivots into a fresh root that holds only the sandbox
            directory (read-write), the read-only paths the runner names (toolchain, /usr, the /etc pieces the
            loader needs), a few /dev nodes, a fresh /tmp and a fresh /proc; nothing else of the host exists
            there. `read-only` (fallback when the private root cannot be built): every mount is read-only except
            the sandbox directory
  seccomp   the program cannot create AF_UNIX/AF_INET/AF_INET6 sockets (EACCES), on x86_64 and aarch64
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
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MNT_DETACH = 0x2
# pivot_root has no libc wrapper; its number differs per architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# (AUDIT_ARCH_*, __NR_socket) for the seccomp filter.
SECCOMP_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
BLOCKED_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6
EACCES = 13
X32_SYSCALL_BIT = 0x40000000
DEV_NODES = ("null", "zero", "full", "random", "urandom")


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


def _mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool = True) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    res = _libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE if recursive else 0, ctypes.byref(attr),
        ctypes.sizeof(attr),
    )
    _check(res, f"mount_setattr {path}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    res = _libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      flags, data.encode() if data else None)
    _check(res, f"mount {target}")


def _pivot_root(new_root: str, put_old: str) -> None:
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    _check(_libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")


def _bind(host: str, target: str, read_only: bool) -> None:
    """Bind `host` (a path under the old root) at `target`, creating the mount point like the source."""
    if os.path.isdir(host):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    _mount(host, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount_setattr(target, MOUNT_ATTR_RDONLY, 0)


def _build_private_root(cfg: dict, status_fd: int) -> None:
    """Pivot into a root that holds only what the build needs (see the module doc); run in the pid namespace's
    init, since a fresh /proc shows the pid namespace of the process that mounts it.

    Like bubblewrap: a tmpfs over /tmp becomes a scratch root with the host under /old; the new root is built
    from /old, then entered with pivot_root(".", ".") and the host root is detached.
    """
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    try:
        os.mkdir("/tmp/new")
        os.mkdir("/tmp/old")
        _pivot_root("/tmp", "/tmp/old")
    except OSError:
        _libc.umount2(b"/tmp", MNT_DETACH)  # uncover the host /tmp (the sandbox directory) for the fallback
        raise
    os.chdir("/")
    try:
        _mount("tmpfs", "/new", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        tmp_size = max(16 << 20, int(cfg["max_file_bytes"]))
        os.mkdir("/new/tmp")
        _mount("tmpfs", "/new/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_size}")
        for path in cfg["readonly_paths"]:
            host = "/old" + path
            if os.path.islink(host):  # merged /usr: /bin -> usr/bin and the like stay symlinks
                os.makedirs(os.path.dirname("/new" + path), exist_ok=True)
                if not os.path.lexists("/new" + path):
                    os.symlink(os.readlink(host), "/new" + path)
            elif os.path.exists(host):
                _bind(host, "/new" + path, read_only=True)
        writable = cfg["writable_dir"]
        _bind("/old" + writable, "/new" + writable, read_only=False)
        os.makedirs("/new/dev", exist_ok=True)
        for node in DEV_NODES:
            if os.path.exists("/old/dev/" + node):
                _bind("/old/dev/" + node, "/new/dev/" + node, read_only=False)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, "/new/dev/" + name)
        os.mkdir("/new/proc")
        try:  # needs the host's /proc still visible (the kernel refuses a proc mount that reveals more)
            _mount("proc", "/new/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _report(status_fd, "layer proc=yes")
        except OSError as exc:
            _report(status_fd, f"layer proc=failed:{exc.strerror}")
        _mount_setattr("/new", MOUNT_ATTR_RDONLY, 0, recursive=False)
        os.chdir("/new")
        _pivot_root(".", ".")
        _check(_libc.umount2(b".", MNT_DETACH), "detach the host root")
        os.chdir("/")
    except OSError as exc:
        # Half-way between roots: running the program here would be neither isolated nor working.
        raise RuntimeError(f"cannot build the sandbox's private root: {exc}") from exc


def _install_socket_filter() -> str:
    """A seccomp filter: socket(AF_UNIX | AF_INET | AF_INET6, ...) fails with EACCES; other arches are killed."""
    arch = SECCOMP_ARCH.get(os.uname().machine)
    if arch is None:
        return f"unsupported:{os.uname().machine}"
    audit_arch, nr_socket = arch
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, kill, deny = 0x7FFF0000, 0x80000000, 0x00050000 | EACCES
    # seccomp_data: nr at 0, arch at 4, args[0] (low word, little-endian) at 16.
    prog = [
        (ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill),
        (ld, 0, 0, 0), (jge, 0, 1, X32_SYSCALL_BIT), (ret, 0, 0, kill),
        (jeq, 0, 4, nr_socket), (ld, 0, 0, 16),
        (jeq, 3, 0, BLOCKED_FAMILIES[0]), (jeq, 2, 0, BLOCKED_FAMILIES[1]), (jeq, 1, 0, BLOCKED_FAMILIES[2]),
        (ret, 0, 0, allow), (ret, 0, 0, deny),
    ]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*f) for f in prog])
    program = Program(len(prog), filters)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")
    return "sockets"


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
    try:
        _report(status_fd, f"layer seccomp={_install_socket_filter()}")
    except OSError as exc:
        _report(status_fd, f"layer seccomp=failed:{exc.strerror}")
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


def _isolate_filesystem(cfg: dict, status_fd: int) -> None:
    """The private root when possible, else every mount read-only except the sandbox directory."""
    reason = "not requested"
    if cfg.get("private_root"):
        try:
            _build_private_root(cfg, status_fd)
            _report(status_fd, "layer mountns=private-root")
            return
        except OSError as exc:  # failed before leaving the host root: the fallback below still applies
            reason = exc.strerror or str(exc)
    try:
        _make_rest_read_only(cfg["writable_dir"])
        _report(status_fd, "layer mountns=read-only")
        if cfg.get("private_root"):
            _report(status_fd, f"layer private_root=failed:{reason}")
    except OSError as exc:
        _report(status_fd, f"layer mountns=failed:{exc.strerror}")


def _run_as_init(argv: list[str], cfg: dict, status_fd: int) -> None:
    """pid 1 of the new pid namespace: start the program, reap orphans, report the program's status."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        _isolate_filesystem(cfg, status_fd)
    except Exception as exc:  # never run the program half-isolated
        _report(status_fd, f"error message=sandbox setup failed: {exc}")
        os._exit(126)
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
        elif os.geteuid() != 0:
            # No uid of our own to drop to without privilege: the program keeps the user's uid (never root in
            # its namespace), and the private root leaves none of the user's files within its reach.
            _report(status_fd, f"layer uid=own:{os.geteuid()}")
        if want:
            try:
                _enter_user_namespace(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID)
                _report(status_fd, "layer userns=yes")
                _report(status_fd, "layer netns=yes")
                have_pidns = True
                _report(status_fd, "layer pidns=yes")
            except OSError as exc:
                _report(status_fd, f"layer userns=failed:{exc.strerror}")
                # Both need the user namespace: say so instead of leaving them out.
                _report(status_fd, "layer pidns=unavailable")
                _report(status_fd, "layer mountns=unavailable")
                # Root that could not drop its uid may still isolate the network without a user namespace.
                try:
                    _check(_libc.unshare(CLONE_NEWNET), "unshare net")
                    _report(status_fd, "layer netns=yes")
                except OSError as exc2:
                    _report(status_fd, f"layer netns=failed:{exc2.strerror}")
        else:
            _report(status_fd, "layer namespaces=off")
    except Exception as exc:  # anything unexpected: report instead of running half-isolated
        _report(status_fd, f"error message=sandbox setup failed: {exc}")
        os._exit(126)
    # Die with the runner (even on kill -9): set only now, since changing credentials clears it; a runner that
    # is already gone has left us to init, so stop at once.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if cfg.get("parent_pid") and os.getppid() != cfg["parent_pid"]:
        os._exit(125)

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
