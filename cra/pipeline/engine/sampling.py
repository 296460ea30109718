"""Next-token choice: greedy or seeded temperature sampling, optional grammar, and always-valid UTF-8.

Byte-level vocabularies can emit byte sequences that are not UTF-8 (and llama.cpp's grammar accepts stray
continuation bytes as characters). Tokens that would break UTF-8 are skipped, so text and JSON stay valid.
"""

from __future__ import annotations

import codecs
import ctypes
from collections.abc import Callable

import llama_cpp
import numpy as np
from llama_cpp import _internals

from .errors import InvalidRequestError, NoValidTokenError


class TokenSampler:
    def __init__(
        self,
        *,
        vocab: llama_cpp.llama_vocab_p,
        n_vocab: int,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        temperature: float,
        seed: int,
        grammar: str | None,
    ) -> None:
        self._piece = piece
        self._is_eog = is_eog
        self._temperature = temperature
        self._rng = np.random.default_rng(seed)
        self._pending = b""  # bytes of an unfinished UTF-8 character
        self._grammar = None
        self._candidates: _internals.LlamaTokenDataArray | None = None
        if grammar is not None:
            self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not self._grammar:  # llama.cpp returns NULL for a grammar it cannot parse
                raise InvalidRequestError("llama.cpp rejected the output grammar")
            self._candidates = _internals.LlamaTokenDataArray(n_vocab=n_vocab)

    def close(self) -> None:
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None

    def _allowed_logits(self, logits: np.ndarray) -> np.ndarray:
        if self._grammar is None or self._candidates is None:
            return logits.astype(np.float64)
        cands = self._candidates
        cands.copy_logits(logits)
        cands.candidates.selected = -1
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(cands.candidates))
        # The grammar sampler only sets rejected logits to -inf; it keeps the array in token-id order.
        return np.array(cands.candidates_data.logit, dtype=np.float64)

    def _utf8_tail(self, token: int) -> bytes | None:
        """The unfinished-character bytes after appending `token`, or None if it breaks UTF-8."""
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            decoder.decode(self._pending + self._piece(token))
        except UnicodeDecodeError:
            return None
        return decoder.getstate()[0]

    def _choose(self, scores: np.ndarray) -> int:
        if self._temperature <= 0:
            return int(np.argmax(scores))
        finite = np.isfinite(scores)
        weights = np.zeros_like(scores)
        weights[finite] = np.exp((scores[finite] - scores[finite].max()) / self._temperature)
        cumulative = np.cumsum(weights)
        return int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], side="right"))

    def pick(self, logits: np.ndarray) -> int:
        scores = self._allowed_logits(logits)
        while True:
            if not np.isfinite(scores).any():
                raise NoValidTokenError("no token is allowed at this point of the output (grammar/UTF-8)")
            token = min(self._choose(scores), len(scores) - 1)
            if not np.isfinite(scores[token]):
                scores[token] = -np.inf
                continue
            if self._is_eog(token):
                break
            tail = self._utf8_tail(token)
            if tail is not None:
                self._pending = tail
                break
            scores[token] = -np.inf
        if self._grammar is not None:
            llama_cpp.llama_sampler_accept(self._grammar, token)
        return token
