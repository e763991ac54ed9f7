"""Seed 004's worked example: an MLE bigram model with <BOS>/<EOS> on three sentences.

p(BROWN READ A BOOK) = p(BROWN|<BOS>) p(READ|BROWN) p(A|READ) p(BOOK|A) p(<EOS>|BOOK)
                     = 1/3 * 1 * 2/3 * 1/2 * 1/2 = 0.0556 (the seed rounds it to 0.06).
Counted by hand: <BOS> starts 3 sentences, one with BROWN; BROWN is always followed by
READ; READ is followed by HOLY once and A twice; A by TEXT once and BOOK once; BOOK
ends one of its two occurrences ("TEXT BOOK" then <EOS>; "A BOOK BY").
"""

from __future__ import annotations

import math

import numpy as np

from lmlab.data.tokenizers.word import word_tokenize
from lmlab.ngram import build

CORPUS = ["BROWN READ HOLY BIBLE", "MARK READ A TEXT BOOK", "HE READ A BOOK BY DAVID"]


def test_seed_bigram_example():
    """lmlab's MLE bigram model gives the seed's factors and product (<s>/</s> play <BOS>/<EOS>)."""
    model = build([word_tokenize(s) for s in CORPUS], order=2, smoothing="mle")
    logp, is_oov, _, matched = model.score_sentences([["BROWN", "READ", "A", "BOOK"]])
    factors = (10.0 ** logp).tolist()  # P(BROWN|<s>) P(READ|BROWN) P(A|READ) P(BOOK|A) P(</s>|BOOK)
    assert np.allclose(factors, [1 / 3, 1.0, 2 / 3, 1 / 2, 1 / 2], rtol=0, atol=1e-6)
    assert not is_oov.any() and (matched == 2).all()  # every factor is a seen bigram, no back-off
    prob = 10.0 ** float(model.sentence_scores([["BROWN", "READ", "A", "BOOK"]])[0])
    assert math.isclose(prob, 1 / 18, rel_tol=1e-5)
    assert round(prob, 4) == 0.0556 and round(prob, 2) == 0.06


def test_seed_bigram_distributions_sum_to_one():
    """Every MLE history's distribution over the vocabulary sums to 1 (READ -> HOLY 1/3, A 2/3)."""
    model = build([word_tokenize(s) for s in CORPUS], order=2, smoothing="mle")
    for history in (["<s>"], ["READ"], ["A"], ["BOOK"]):
        probs = 10.0 ** model.next_logprobs(history)
        assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5), history
    read = 10.0 ** model.next_logprobs(["READ"])
    assert math.isclose(float(read[model.vocab.index["A"]]), 2 / 3, rel_tol=1e-5)
    assert math.isclose(float(read[model.vocab.index["HOLY"]]), 1 / 3, rel_tol=1e-5)
