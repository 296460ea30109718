"""Fallback network block for hosts where no network namespace can be created.

An LD_PRELOAD library whose socket() refuses every family except AF_UNIX with EPERM. It is weaker
than a namespace (a statically linked program or a raw syscall bypasses it), so it is only used when the
namespace probe fails; the active protection is reported in every RunResult.isolation.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from cra.pipeline.models.registry import cra_cache_root
from cra.pipeline.sandbox.limits import SandboxError

SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Local (AF_UNIX) sockets stay usable: test harnesses use them; everything else is refused. */
int socket(int domain, int type, int protocol) {
    if (domain == AF_UNIX) return (int)syscall(SYS_socket, domain, type, protocol);
    errno = EPERM;
    return -1;
}
"""


def default_cache_dir() -> Path:
    return cra_cache_root() / "sandbox"


def build_socket_shim(cache_dir: Path | None = None, compiler: str = "gcc") -> Path:
    """Compile the shim once into cache_dir and return its path (reused when already built)."""
    cache = cache_dir or default_cache_dir()
    target = cache / "no_socket.so"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "no_socket.c"
        src.write_text(SHIM_SOURCE)
        built = Path(tmp) / "no_socket.so"
        proc = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(src)],
            capture_output=True, text=True, timeout=60,
        )
        if proc.returncode != 0:
            raise SandboxError(f"cannot build the network-blocking shim with {compiler}: {proc.stderr.strip()}")
        built.chmod(0o755)
        os.replace(built, target)  # atomic: concurrent builders never see a half-written library
    return target
