"""Bookkeeping of what sequence 0 of a context's KV cache holds, for safe prefix reuse.

KV entries depend on the weights they were computed with: a cached prefix is reusable only under the same
adapter set and scales. The key is part of the state, and any mismatch means "nothing reusable".
"""

from __future__ import annotations

from collections.abc import Sequence

AdapterKey = tuple[tuple[str, float], ...]


def adapter_key(adapters: Sequence[tuple[str, float]]) -> AdapterKey:
    """Canonical key of an adapter set: (resolved path, scale) pairs in application order."""
    return tuple((path, float(scale)) for path, scale in adapters)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVState:
    """Tokens evaluated into sequence 0 (positions 0..n-1) and the adapter key they were evaluated under."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.key: AdapterKey = ()

    def reusable(self, tokens: Sequence[int], key: AdapterKey) -> int:
        """How many leading tokens of `tokens` are already in the cache and valid under `key`.

        At least one token is always left to evaluate, because the caller needs fresh logits for the last one.
        """
        if key != self.key:
            return 0
        return min(common_prefix_len(self.tokens, tokens), max(len(tokens) - 1, 0))

    def truncate(self, n: int) -> None:
        del self.tokens[n:]

    def extend(self, tokens: Sequence[int]) -> None:
        self.tokens.extend(tokens)

    def reset(self, key: AdapterKey) -> None:
        self.tokens = []
        self.key = key
