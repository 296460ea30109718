"""Generated doc comments, keyed by the function's content hash: in memory and under `<root>/.cra/docs/`.

A hover never waits for a model: it reads this cache, and on a miss the server generates the comment in the
background (the document action through the runtime) and stores it here for the next hover. A function whose
text changes gets a new hash, so a stale comment is never shown for it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import msgspec

logger = logging.getLogger(__name__)
DOCS_DIR = Path(".cra") / "docs"
_HASH = re.compile(r"^[0-9a-f]{16,64}$")


class GeneratedDoc(msgspec.Struct, kw_only=True):
    symbol: str
    doc: str  # the `/** ... */` block, without a trailing newline
    task_id: str = ""  # the document task that produced it (its outcome is updated when the doc is inserted)


class DocCache:
    """Thread-safe: the worker thread stores, the event loop reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], GeneratedDoc] = {}
        self._failures: dict[tuple[str, str], str] = {}  # why generation failed, for this session only

    @staticmethod
    def _file(root: str, key: str) -> Path:
        if not _HASH.match(key):
            raise ValueError(f"not a content hash: {key!r}")
        return Path(root) / DOCS_DIR / f"{key}.json"

    def get(self, root: str, key: str) -> GeneratedDoc | None:
        with self._lock:
            found = self._memory.get((root, key))
        if found is not None:
            return found
        try:
            found = msgspec.json.decode(self._file(root, key).read_bytes(), type=GeneratedDoc)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:  # a damaged entry is regenerated, not fatal
            logger.warning("ignoring the cached doc %s: %s", key, exc)
            return None
        with self._lock:
            self._memory[(root, key)] = found
        return found

    def put(self, root: str, key: str, entry: GeneratedDoc) -> None:
        with self._lock:
            self._memory[(root, key)] = entry
            self._failures.pop((root, key), None)
        path = self._file(root, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(msgspec.json.encode(entry))
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError as exc:  # a read-only workspace still gets the in-memory cache
            logger.warning("cannot store the generated doc under %s: %s", path.parent, exc)

    def fail(self, root: str, key: str, reason: str) -> None:
        with self._lock:
            self._failures[(root, key)] = reason

    def failure(self, root: str, key: str) -> str | None:
        with self._lock:
            return self._failures.get((root, key))


def doc_block(new_text: str) -> str:
    """The comment block of a document action's inserted text (which ends with the newline before the function)."""
    text = new_text.rstrip("\n")
    start = text.find("/**")
    return text[start:] if start >= 0 else text
