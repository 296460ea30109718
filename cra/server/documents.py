"""Checks on the documents the server is asked to work on: C sources only, bounded size, valid UTF-8."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

C_SUFFIXES = frozenset({".c", ".h"})
C_LANGUAGE_IDS = frozenset({"c"})
# A C file larger than this is generated code or data, not something to edit with a small model.
DEFAULT_MAX_DOCUMENT_BYTES = 1_000_000


class DocumentError(Exception):
    """A document the server refuses to work on; the message tells the user why."""


def uri_to_path(uri: str) -> str:
    """The file-system path of a `file:` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise DocumentError(f"cra works on files on disk only, not on {parsed.scheme or 'scheme-less'} URIs: {uri}")
    return unquote(parsed.path)


def is_c_document(uri: str, language_id: str | None = None) -> bool:
    if language_id and language_id.lower() in C_LANGUAGE_IDS:
        return True
    return PurePosixPath(urlparse(uri).path).suffix.lower() in C_SUFFIXES


def check_document(uri: str, text: str, *, language_id: str | None = None,
                   max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> bytes:
    """Return the document's UTF-8 bytes, or raise `DocumentError` saying why cra will not touch it."""
    name = PurePosixPath(urlparse(uri).path).name or uri
    if not is_c_document(uri, language_id):
        raise DocumentError(f"{name} is not a C source or header (.c/.h): cra only works on C files")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise DocumentError(f"{name} is not valid UTF-8 text (undecodable character on line {line})") from None
    if len(data) > max_bytes:
        raise DocumentError(f"{name} is {len(data):,} bytes, over cra's limit of {max_bytes:,} bytes per document")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DocumentError(f"{name} contains a NUL byte on line {line}: it looks like a binary file, not C source")
    return data
