"""The benchmark corpus: C/H sources of the llama-cpp-python 0.3.36 sdist, downloaded once into a cache dir."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile

SDIST = "llama-cpp-python==0.3.36"


def corpus_dir(path: str | None, cache_dir: str) -> str:
    """`path` if given, else the extracted sdist under `cache_dir` (downloaded with pip on first use)."""
    if path:
        return path
    extracted = os.path.join(cache_dir, "llama_cpp_python-0.3.36")
    if os.path.isdir(extracted):
        return extracted
    os.makedirs(cache_dir, exist_ok=True)
    archives = glob.glob(os.path.join(cache_dir, "llama_cpp_python-0.3.36.tar.gz"))
    if not archives:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             SDIST, "-d", cache_dir],
            check=True,
        )
        archives = glob.glob(os.path.join(cache_dir, "llama_cpp_python-0.3.36.tar.gz"))
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache_dir, filter="data")
    return extracted


def default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "cra", "bench")
