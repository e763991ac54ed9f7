"""word2vec's building blocks: noise distribution, Huffman tree, HS normalisation, sub-sampling."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings import _kernels as K
from lmlab.embeddings.word2vec import (
    Word2Vec,
    Word2VecConfig,
    alias_table,
    huffman_tree,
    keep_probabilities,
    noise_distribution,
    noise_table,
)
from lmlab.errors import DataError, UsageError

COUNTS = np.array([5000, 1200, 800, 300, 300, 120, 50, 20, 9, 5, 5, 1], dtype=np.int64)


def test_noise_distribution_is_unigram_to_the_075():
    p = noise_distribution(COUNTS, 0.75)
    expected = COUNTS**0.75 / (COUNTS**0.75).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_alias_table_encodes_the_distribution_exactly():
    p = noise_distribution(COUNTS, 0.75)
    prob, alias = alias_table(p)
    V = len(p)
    implied = prob.copy()
    np.add.at(implied, alias, 1.0 - prob)  # mass each column hands to its alias
    np.testing.assert_allclose(implied / V, p, atol=1e-12)


def test_noise_samples_follow_unigram_075_chi_square():
    prob, alias = noise_table(COUNTS, 0.75)
    n = 400_000
    draws = K.sample_noise(prob, alias, n, np.uint64(12345))
    observed = np.bincount(draws, minlength=len(COUNTS))
    expected = noise_distribution(COUNTS, 0.75) * n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # 11 degrees of freedom: the 99.9% quantile of chi-square(11) is 31.26
    assert chi2 < 31.26, (chi2, observed, expected.round())
    # and it is not the plain unigram distribution
    uni = COUNTS / COUNTS.sum() * n
    assert float(((observed - uni) ** 2 / uni).sum()) > 1000


def _is_prefix(a, b):
    return len(a) <= len(b) and list(b[: len(a)]) == list(a)


def test_huffman_codes_are_prefix_free_and_frequent_words_are_shorter():
    codes, points, lengths = huffman_tree(COUNTS)
    V = len(COUNTS)
    words = [tuple(codes[w, : lengths[w]]) for w in range(V)]
    assert len(set(words)) == V
    for a in range(V):
        for b in range(V):
            if a != b:
                assert not _is_prefix(words[a], words[b]), (a, b)
    assert np.isclose(sum(2.0 ** -lengths), 1.0)  # Kraft equality: a full binary tree
    for a in range(V):
        for b in range(V):
            if COUNTS[a] > COUNTS[b]:
                assert lengths[a] <= lengths[b]
    # inner nodes 0..V-2, every path starts at the root V-2
    assert set(points[:, 0]) == {V - 2}
    used = {int(points[w, d]) for w in range(V) for d in range(lengths[w])}
    assert used == set(range(V - 1))


def test_huffman_expected_length_is_optimal_on_a_textbook_case():
    counts = np.array([45, 16, 13, 12, 9, 5])  # CLRS's example: optimal cost 224
    _, _, lengths = huffman_tree(counts)
    assert int((counts * lengths).sum()) == 224


def test_hierarchical_softmax_sums_to_one():
    sents = [["a", "b", "c", "a", "d", "e", "a", "b", "f", "g", "a", "c"]] * 3
    model = Word2Vec(Word2VecConfig(hs=True, negative=0, min_count=1, vector_size=8, workers=1)).build_vocab(sents)
    rng = np.random.default_rng(0)
    model.syn1[:] = rng.normal(size=model.syn1.shape)
    for _ in range(5):
        probs = model.hs_probabilities(rng.normal(size=8))
        assert probs.shape == (7,)
        assert np.isclose(probs.sum(), 1.0, atol=1e-9)


def test_keep_probability_formula_and_rates():
    counts = np.array([100_000, 10_000, 1_000, 100, 10], dtype=np.int64)
    t = 1e-3
    keep = keep_probabilities(counts, t)
    f = counts / counts.sum()
    np.testing.assert_allclose(keep, np.minimum(1, np.sqrt(t / f) + t / f))
    assert keep[-1] == 1.0 and keep[0] < 0.2
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)
    # the kernel keeps each word at that rate
    word = 0
    ids = np.full(200_000, word, dtype=np.int32)
    buf = np.empty(len(ids), dtype=np.int32)
    kept, _ = K._subsample(ids, 0, len(ids), keep, buf, np.uint64(7))
    rate = kept / len(ids)
    sigma = np.sqrt(keep[word] * (1 - keep[word]) / len(ids))
    assert abs(rate - keep[word]) < 5 * sigma


def test_config_errors_are_lmlab_errors():
    with pytest.raises(UsageError):
        Word2Vec(Word2VecConfig(hs=False, negative=0))
    with pytest.raises(DataError):
        Word2Vec(Word2VecConfig(min_count=50)).fit([["a", "b"]])
    with pytest.raises(DataError):
        Word2Vec(Word2VecConfig()).fit([])


def test_sentences_must_be_reiterable_token_lists():
    with pytest.raises(UsageError, match="one-shot"):
        Word2Vec(Word2VecConfig(min_count=1)).fit(iter([["a", "b"]]))
    with pytest.raises(UsageError, match="not strings"):
        Word2Vec(Word2VecConfig(min_count=1)).fit(["a b c", "b c d"])
