"""Persisted per-file index results (`.cra/index/`), keyed by content sha256: unchanged files are not re-parsed."""

from __future__ import annotations

import os

import msgspec

from cra.pipeline.context.symbols import FileIndex

# Bump when the extracted data changes shape or meaning, so stale entries are never read back.
CACHE_FORMAT = 2


class IndexCache:
    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, ".cra", "index", f"v{CACHE_FORMAT}")
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(FileIndex)
        self.writable = True

    def _path(self, digest: str) -> str:
        return os.path.join(self.directory, digest[:2], digest + ".msgpack")

    def get(self, digest: str, path: str) -> FileIndex | None:
        """The cached index of content `digest`; None on a miss, a damaged entry, or one stored for another path."""
        try:
            with open(self._path(digest), "rb") as handle:
                entry = self._decoder.decode(handle.read())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        # Same bytes at another path (a copied header) would carry the wrong file name in every symbol.
        return entry if entry.path == path else None

    def put(self, entry: FileIndex) -> None:
        if not self.writable:
            return
        target = self._path(entry.sha256)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = f"{target}.{os.getpid()}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(self._encoder.encode(entry))
            os.replace(temporary, target)  # atomic: a concurrent reader never sees half an entry
        except OSError:
            self.writable = False  # read-only workspace: keep working without persisting
