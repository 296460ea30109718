"""Label decisions from one forward pass: softmax of the next-token logits restricted to the labels' first tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import InvalidRequestError


def label_first_tokens(labels: Sequence[str], tokenize: Callable[[str], list[int]]) -> list[int]:
    """First token of each label; labels must be non-empty, distinct, and start with distinct tokens.

    Multi-token labels are scored by their first token, so two labels sharing it could not be told apart.
    """
    if len(labels) < 2:
        raise InvalidRequestError(f"a decision needs at least two labels, got {list(labels)!r}")
    if len(set(labels)) != len(labels):
        raise InvalidRequestError(f"decision labels must be distinct, got {list(labels)!r}")
    firsts: list[int] = []
    owner: dict[int, str] = {}
    for label in labels:
        tokens = tokenize(label)
        if not label or not tokens:
            raise InvalidRequestError(f"decision label {label!r} is empty")
        first = tokens[0]
        if first in owner:
            raise InvalidRequestError(
                f"decision labels {owner[first]!r} and {label!r} start with the same token; "
                "choose labels whose first tokens differ"
            )
        owner[first] = label
        firsts.append(first)
    return firsts


def label_probs(logits: np.ndarray, labels: Sequence[str], first_tokens: Sequence[int]) -> dict[str, float]:
    """Softmax over the labels' first-token logits (computed in float64 so probabilities sum to 1)."""
    scores = logits[np.asarray(first_tokens)].astype(np.float64)
    scores -= scores.max()
    weights = np.exp(scores)
    probs = weights / weights.sum()
    return {label: float(p) for label, p in zip(labels, probs)}


def best_label(probs: dict[str, float]) -> tuple[str, float]:
    label = max(probs, key=lambda name: probs[name])
    return label, probs[label]
