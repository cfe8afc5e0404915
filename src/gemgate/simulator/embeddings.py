"""Embeddings with meaning: hashed word and character n-grams, L2-normalised.

Texts that share words and word pieces point the same way; unrelated texts are near orthogonal.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)
# Function words carry little meaning; letting them count fully makes every sentence alike.
_LIGHT = frozenset("a an the of on in at to is was were be by for and or with it this that".split())


def _features(text: str) -> list[tuple[str, float]]:
    words = [w.lower() for w in _WORD.findall(text)]
    features: list[tuple[str, float]] = [("w:" + w, 0.2 if w in _LIGHT else 1.0) for w in words]
    features += [(f"b:{a}_{b}", 0.3) for a, b in itertools.pairwise(words)]
    for word in words:
        if word in _LIGHT:
            continue
        if any(ord(c) >= 0x2E80 for c in word):  # CJK runs have no spaces: use characters
            features += [("h:" + c, 0.5) for c in word]
            features += [("h:" + word[i : i + 2], 0.7) for i in range(len(word) - 1)]
            continue
        padded = f"<{word}>"
        features += [("c:" + padded[i : i + 3], 0.5) for i in range(max(1, len(padded) - 2))]
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
