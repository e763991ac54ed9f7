"""Shared by the NNLM and RNN LM tests: a slice of real text, its vocabulary, the add-one bigram."""

from __future__ import annotations

import collections
import math

import numpy as np

from lmlab.eval.perplexity import encode_sentences


def slice_of_text(splits, n_train: int = 2500, n_test: int = 250, min_count: int = 3):
    from lmlab.data.corpus import word_sentences

    train = word_sentences(splits.train)[:n_train]
    test = word_sentences(splits.test)[:n_test]
    counts = collections.Counter(w for s in train for w in s)
    vocab = ["<unk>", "<s>", "</s>"] + sorted(w for w, n in counts.items() if n >= min_count)
    ids, _ = encode_sentences(train, vocab)
    unigram = np.bincount(np.concatenate(ids), minlength=len(vocab))
    return train, test, vocab, ids, unigram


def add_one_bigram_perplexity(train_ids, test_ids, vocab_size: int, bos: int = 1) -> float:
    """Laplace bigram over the |V|-1 predictable outcomes (every word and </s>; never <s>)."""
    bigram, history = collections.Counter(), collections.Counter()
    for sent in train_ids:
        prev = bos
        for w in sent:
            bigram[prev, w] += 1
            history[prev] += 1
            prev = w
    nats, n = 0.0, 0
    for sent in test_ids:
        prev = bos
        for w in sent:
            nats -= math.log((bigram[prev, w] + 1) / (history[prev] + vocab_size - 1))
            n += 1
            prev = w
    return math.exp(nats / n)
