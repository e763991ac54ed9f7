"""Every method, every order: sum_w P(w | h) over the vocabulary plus </s> is 1 within 1e-9.

Histories: seen ones drawn from the model's own tables, unseen random word
sequences, the empty history, an all-OOV history and <s>-initial ones.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lmlab.ngram import METHODS, build


def _histories(model, rng, order):
    words = model.vocab.words
    hs = [[], ["<s>"], ["qqq-oov"] * (order - 1), ["<s>", "qqq-oov"]]
    if order > 1:
        top = model.ngram_words(order - 1)
        for row in rng.choice(len(top), size=min(6, len(top)), replace=False):
            hs.append([words[i] for i in top[row]])
        for _ in range(4):
            hs.append([words[i] for i in rng.integers(3, len(words), size=order - 1)])
    return hs


@pytest.mark.parametrize("method", list(METHODS))
def test_distributions_sum_to_one(method, train_sentences):
    rng = np.random.default_rng(0)
    train = train_sentences[:300]
    heldout = train_sentences[300:360]
    for order in (1, 2, 3, 4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build(train, order, method, heldout=heldout)
        for h in _histories(model, rng, order):
            lp = model.next_logprobs(h)
            assert lp[1] == -np.inf  # <s> is never predicted
            total = math.fsum((10.0 ** lp[np.isfinite(lp)]).tolist())
            assert abs(total - 1.0) < 1e-9, (method, order, h, total)


@pytest.mark.parametrize("method", ["mkn", "katz", "jelinek-mercer", "witten-bell-backoff"])
def test_next_logprobs_agrees_with_stream_scoring(method, train_sentences, test_sentences):
    model = build(train_sentences[:400], 3, method, heldout=train_sentences[400:450])
    sent = test_sentences[0]
    logp, _, _, _ = model.score_sentences([sent])
    history = ["<s>"]
    for word, expected in zip(sent + ["</s>"], logp):
        wid = model.vocab.index.get(word, 0)
        assert abs(model.next_logprobs(history)[wid] - expected) < 1e-12
        history.append(word)
