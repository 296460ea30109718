"""Fetch a Debian source package (upstream tree with Debian's patches applied) into the benchmark cache.

`apt-get source PKG=VERSION` does the download and the extraction (dpkg-source); it needs a `deb-src` entry in
the APT sources for the suite the machine uses, and `apt-get update` run after adding it. The extracted tree is
moved into `<cache>/<pkg>-<version>` in one rename, so a fetch is either complete or absent: fetching again is a
no-op. Nothing is ever built inside the cache; the verifier and the benchmark copy the tree to a temp dir first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

APT_TIMEOUT_S = 600.0
DEB_SRC_HINT = (
    "APT has no source entries. Add a deb-src entry for the suite this machine uses, e.g. in "
    "/etc/apt/sources.list.d/debian-src.sources:\n"
    "    Types: deb-src\n    URIs: http://deb.debian.org/debian\n    Suites: bookworm bookworm-updates\n"
    "    Components: main\n    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    "(or a `deb-src http://deb.debian.org/debian bookworm main` line in /etc/apt/sources.list), "
    "then run `apt-get update`.")


class FetchError(Exception):
    """The source package cannot be fetched (no deb-src entry, apt failed, version not in the archive)."""


def cache_root() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/cra/repos`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cra" / "repos"


def tree_name(package: str, version: str) -> str:
    """`<pkg>-<version>` as a folder name (an epoch's `:` becomes `_`)."""
    return f"{package}-{version}".replace(":", "_").replace("/", "_")


def cached_tree(package: str, version: str, cache: str | Path | None = None) -> Path | None:
    """The tree when it was fetched before, else None (never touches the network)."""
    dest = Path(cache).expanduser() if cache is not None else cache_root()
    dest = dest / tree_name(package, version)
    return dest if dest.is_dir() else None


def deb_src_configured(root: str | Path = "/etc/apt") -> bool:
    """Whether any APT source file under `root` names deb-src (one-line or deb822 format)."""
    root = Path(root)
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list")),
             *sorted((root / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("deb-src ") or line.startswith("deb-src\t"):
                return True
            if line.lower().startswith("types:") and "deb-src" in line.split(":", 1)[1].split():
                if not _disabled_stanza(text, line):
                    return True
    return False


def _disabled_stanza(text: str, types_line: str) -> bool:
    for stanza in text.split("\n\n"):
        if types_line in stanza:
            return any(s.strip().lower() in ("enabled: no", "enabled: false") for s in stanza.splitlines())
    return False


def fetch(package: str, version: str, cache: str | Path | None = None, *, timeout: float = APT_TIMEOUT_S) -> Path:
    """The extracted source tree of Debian source package `package` at `version` (fetched on first use)."""
    found = cached_tree(package, version, cache)
    if found is not None:
        return found
    root = Path(cache).expanduser() if cache is not None else cache_root()
    dest = root / tree_name(package, version)
    for tool in ("apt-get", "dpkg-source"):
        if shutil.which(tool) is None:
            raise FetchError(f"{tool} is not installed: fetching Debian source packages needs APT and dpkg-dev")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".fetch-{package}-", dir=root) as staging:
        try:
            done = subprocess.run(["apt-get", "source", "--only-source", "-q", f"{package}={version}"],
                                  cwd=staging, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"apt-get source {package}={version} took more than {timeout:.0f}s") from exc
        output = (done.stderr or "") + (done.stdout or "")
        if done.returncode != 0:
            raise FetchError(_explain(package, version, output))
        trees = [p for p in Path(staging).iterdir() if p.is_dir()]
        if len(trees) != 1:
            raise FetchError(f"apt-get source {package}={version} left {len(trees)} folders, expected one: "
                             f"{[p.name for p in trees]}\n{output[-800:]}")
        try:
            trees[0].rename(dest)
        except OSError:
            if not dest.is_dir():  # a concurrent fetch that won the rename is fine
                raise
    return dest


def _explain(package: str, version: str, output: str) -> str:
    if "deb-src" in output or "You must put some 'source' URIs" in output:
        return f"cannot fetch {package}={version}: {DEB_SRC_HINT}"
    if "Unable to find a source package" in output or "Can not find version" in output:
        have = available_versions(package)
        now = f" (the archive has: {', '.join(have)})" if have else " (the archive has no such source package)"
        return (f"cannot fetch {package}={version}: APT does not know this version{now}. Run `apt-get update`, "
                "or update the version pinned in the manifest.")
    return f"apt-get source {package}={version} failed:\n{output[-1200:]}"


def available_versions(package: str) -> list[str]:
    """Versions of source package `package` that APT knows (empty when none, or when apt-cache fails)."""
    try:
        done = subprocess.run(["apt-cache", "showsrc", "--only-source", package], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("Version:")]
