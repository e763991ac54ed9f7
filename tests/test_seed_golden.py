"""Seed 004's worked example: an MLE bigram model with <BOS>/<EOS> on three sentences.

p(BROWN READ A BOOK) = p(BROWN|<BOS>) p(READ|BROWN) p(A|READ) p(BOOK|A) p(<EOS>|BOOK)
                     = 1/3 * 1 * 2/3 * 1/2 * 1/2 = 0.0556 (the seed rounds it to 0.06).
Counted by hand: <BOS> starts 3 sentences, one with BROWN; BROWN is always followed by
READ; READ is followed by HOLY once and A twice; A by TEXT once and BOOK once; BOOK
ends one of its two occurrences ("TEXT BOOK" then <EOS>; "A BOOK BY").
"""

from __future__ import annotations

import math
from collections import Counter

from lmlab.data.tokenizers.word import word_tokenize

CORPUS = ["BROWN READ HOLY BIBLE", "MARK READ A TEXT BOOK", "HE READ A BOOK BY DAVID"]


def mle_bigram(sentences):
    bigrams, histories = Counter(), Counter()
    for s in sentences:
        tokens = ["<BOS>", *word_tokenize(s), "<EOS>"]
        for a, b in zip(tokens, tokens[1:]):
            bigrams[a, b] += 1
            histories[a] += 1
    return lambda a, b: bigrams[a, b] / histories[a]


def test_seed_bigram_example():
    p = mle_bigram(CORPUS)
    tokens = ["<BOS>", "BROWN", "READ", "A", "BOOK", "<EOS>"]
    factors = [p(a, b) for a, b in zip(tokens, tokens[1:])]
    assert factors == [1 / 3, 1.0, 2 / 3, 1 / 2, 1 / 2]
    prob = math.prod(factors)
    assert abs(prob - 1 / 18) < 1e-12
    assert round(prob, 4) == 0.0556 and round(prob, 2) == 0.06
