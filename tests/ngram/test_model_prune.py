"""Pruning (renormalised), sampling, evaluation details, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmlab.errors import DataError, UsageError
from lmlab.ngram import build, count_ngrams
from lmlab.ngram.prune import prune_counts, prune_entropy
from lmlab.ngram.smoothing import SmoothingWarning


def _sums(model, histories):
    out = []
    for h in histories:
        lp = model.next_logprobs(h)
        out.append(math.fsum((10.0 ** lp[np.isfinite(lp)]).tolist()))
    return out


@pytest.fixture(scope="module")
def mkn3(train_sentences):
    return build(train_sentences[:800], 3, "mkn"), count_ngrams(train_sentences[:800], 3)


def test_count_cutoffs_prune_and_renormalise(mkn3, test_sentences):
    model, counts = mkn3
    pruned = prune_counts(model, counts, [0, 0, 1])
    assert pruned.sizes()[:2] == model.sizes()[:2]
    kept = counts.counts[2] > 1
    assert pruned.sizes()[2] == int(kept.sum())
    hist = [[], ["of", "the"], ["the"], ["in", "the"], ["zzz", "of"]]
    assert _sums(pruned, hist) == pytest.approx([1.0] * len(hist), abs=1e-9)
    assert pruned.perplexity(test_sentences) > model.perplexity(test_sentences) * 0.99


def test_entropy_pruning_threshold_and_target(mkn3, test_sentences):
    model, _ = mkn3
    light = prune_entropy(model, threshold=1e-7)
    heavy = prune_entropy(model, threshold=1e-5)
    assert sum(heavy.sizes()) < sum(light.sizes()) < sum(model.sizes())
    hist = [["of", "the"], ["the"], ["<s>"], []]
    assert _sums(heavy, hist) == pytest.approx([1.0] * len(hist), abs=1e-9)
    ppl = [m.perplexity(test_sentences) for m in (model, light, heavy)]
    assert ppl[0] <= ppl[1] * 1.001 and ppl[1] < ppl[2]
    target = sum(model.sizes()) - 5000
    sized = prune_entropy(model, target_size=target)
    assert sum(sized.sizes()) <= target
    assert sum(sized.sizes()) > target - 1500
    assert prune_entropy(model, threshold=0.0).sizes() == model.sizes()


def test_pruning_refuses_bad_arguments(mkn3):
    model, counts = mkn3
    with pytest.raises(UsageError):
        prune_counts(model, counts, [1, 0, 0])
    with pytest.raises(UsageError):
        prune_entropy(model)


def test_sampling_is_deterministic_and_in_vocabulary(mkn3):
    model, _ = mkn3
    a = model.sample(3, seed=7)
    assert a == model.sample(3, seed=7)
    assert a != model.sample(3, seed=8)
    assert all(w in model.vocab.index for s in a for w in s)


def test_closed_vocabulary_and_oov_reporting(train_sentences, test_sentences):
    vocab = ["<unk>", "<s>", "</s>", "the", "of", ",", "."]
    m = build(train_sentences[:300], 2, "mkn", vocab=vocab)
    assert m.V == 7
    ev = m.evaluate(test_sentences[:20])
    n_words = sum(len(s) for s in test_sentences[:20])
    assert ev.tokens == n_words + 20
    assert ev.oovs == sum(w not in vocab for s in test_sentences[:20] for w in s)
    assert ev.perplexity_no_oov != ev.perplexity
    assert ev.bits_per_word == pytest.approx(math.log2(ev.perplexity))


def test_bad_input():
    with pytest.raises(DataError):
        build([], 3)
    with pytest.raises(DataError):
        build([[], []], 3)
    with pytest.raises(UsageError):
        build([["a"]], 0)
    with pytest.raises(UsageError):
        count_ngrams("a b c", 2)
    with pytest.raises(UsageError):
        count_ngrams(["a b", "c"], 2)


def test_high_order_and_short_sentences():
    sents = [["x"], ["x", "y"], ["y", "x", "y", "x"]] * 3
    with pytest.warns(SmoothingWarning, match="fallback"):
        m = build(sents, 6, "mkn")
    assert m.order == 6
    lp = m.next_logprobs(["y", "x", "y", "x", "y"])
    assert math.fsum((10.0 ** lp[np.isfinite(lp)]).tolist()) == pytest.approx(1.0, abs=1e-9)
