"""Embeddings with meaning: hashed word and character n-grams, L2-normalised.

Texts that share words and word pieces point the same way; unrelated texts are near orthogonal.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> list[tuple[str, float]]:
    words = [w.lower() for w in _WORD.findall(text)]
    features: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
    features += [(f"b:{a}_{b}", 0.5) for a, b in zip(words, words[1:], strict=False)]
    for word in words:
        padded = f"<{word}>"
        features += [("c:" + padded[i : i + 3], 0.25) for i in range(max(1, len(padded) - 2))]
    return features


@lru_cache(maxsize=8192)
def embed(text: str, dimensions: int = 768) -> tuple[float, ...]:
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[index] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        norm = 1.0
    return tuple(round(v / norm, 6) for v in vector)
