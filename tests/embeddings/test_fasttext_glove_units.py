"""fastText hashing and n-grams, GloVe counting and weighting."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings.fasttext import FastText, FastTextConfig, char_ngrams, fnv1a, fnv1a_hashes
from lmlab.embeddings.glove import GloVe, GloVeConfig, cooccurrence, weighting


def test_fnv1a_reference_values():
    # the published FNV-1a 32-bit test vectors (ASCII, where fastText's sign extension is a no-op)
    assert fnv1a("") == 0x811C9DC5
    assert fnv1a("a") == 0xE40C292C
    assert fnv1a("foobar") == 0xBF9CF968
    # non-ASCII: fastText XORs int8-sign-extended bytes; "é" is c3 a9 -> 0xffffffc3, 0xffffffa9
    h = 0x811C9DC5
    for byte in "é".encode():
        h = ((h ^ (byte | 0xFFFFFF00)) * 16777619) & 0xFFFFFFFF
    assert fnv1a("é") == h
    assert list(fnv1a_hashes(["a", "foobar"])) == [0xE40C292C, 0xBF9CF968]


def test_fnv1a_matches_gensim_fasttext_hash():
    inner = pytest.importorskip("gensim.models.fasttext_inner")
    for word in ["<wh", "where>", "héllo", "日本語", "naïve", "z"]:
        assert fnv1a(word) == inner.ft_hash_bytes(word.encode("utf-8"))


def test_char_ngrams_follow_fasttext():
    assert char_ngrams("where", 3, 6) == [
        "<wh", "<whe", "<wher", "<where", "whe", "wher", "where", "where>",
        "her", "here", "here>", "ere", "ere>", "re>"]
    assert char_ngrams("a", 3, 6) == ["<a>"]
    assert len(char_ngrams("日本", 3, 3)) == 2  # characters, not bytes: "<日本", "日本>"
    gensim_utils = pytest.importorskip("gensim.models.fasttext")
    for word in ["where", "naïve", "x"]:
        assert sorted(char_ngrams(word, 3, 6)) == sorted(gensim_utils.compute_ngrams(word, 3, 6))


def test_fasttext_oov_words_get_vectors_from_ngrams():
    sents = [["the", "walking", "talking", "dog", "walked", "talked"]] * 20
    model = FastText(FastTextConfig(min_count=1, vector_size=16, bucket=1000, epochs=1, workers=1)).fit(sents)
    oov = model.word_vector("walks")
    grams = char_ngrams("walks", 3, 6)
    rows = len(model.vocab) + fnv1a_hashes(grams).astype(np.int64) % 1000
    np.testing.assert_allclose(oov, model.wi[rows].mean(axis=0), rtol=1e-6)
    # in-vocabulary: own row + n-gram rows, and .wv agrees with word_vector
    np.testing.assert_allclose(model.wv["walking"], model.word_vector("walking"), rtol=1e-5, atol=1e-7)
    assert model.subword_rows("walking")[0] == model.vocab.index["walking"]


def test_glove_weighting_function():
    x = np.array([0.5, 1.0, 50.0, 100.0, 250.0])
    np.testing.assert_allclose(weighting(x), [(0.5 / 100) ** 0.75, 0.01**0.75, 0.5**0.75, 1.0, 1.0])
    assert weighting(np.array([10.0]), x_max=10, alpha=0.5)[0] == 1.0


def test_glove_cooccurrence_counts_by_hand():
    # sentence a b c (ids 0 1 2), window 2: X_ab = X_bc = 1, X_ac = 1/2, symmetric
    ids = np.array([0, 1, 2], dtype=np.int32)
    rows, cols, vals = cooccurrence(ids, np.array([0, 3]), 3, window=2)
    X = np.zeros((3, 3))
    X[rows, cols] = vals
    np.testing.assert_allclose(X, [[0, 1, 0.5], [1, 0, 1], [0.5, 1, 0]])
    # window 1 drops the distance-2 pair; a repeated word counts both ways on the diagonal
    rows, cols, vals = cooccurrence(np.array([0, 0, 1], dtype=np.int32), np.array([0, 3]), 2, window=1)
    X = np.zeros((2, 2))
    X[rows, cols] = vals
    np.testing.assert_allclose(X, [[2, 1], [1, 0]])


def test_glove_has_no_nans_on_a_tiny_vocabulary():
    sents = [["x", "y"] * 50, ["y", "z", "x"] * 30]
    model = GloVe(GloVeConfig(min_count=1, vector_size=10, epochs=50, eta=0.5, workers=1)).fit(sents)
    assert np.all(np.isfinite(model.W)) and np.all(np.isfinite(model.C))
    assert np.all(np.isfinite(model.history))
    assert model.history[-1] < model.history[0]
    np.testing.assert_allclose(model.wv.vectors, model.W + model.C)


def test_glove_kernel_skips_non_finite_cells():
    from lmlab.embeddings import _kernels as K

    rng = np.random.default_rng(0)
    W, C = rng.normal(size=(2, 3, 4)).astype(np.float32)
    bw, bc = np.zeros(3, np.float32), np.zeros(3, np.float32)
    gW, gC = np.ones((3, 4), np.float32), np.ones((3, 4), np.float32)
    gbw, gbc = np.ones(3, np.float32), np.ones(3, np.float32)
    rows, cols = np.array([0, 1], np.int32), np.array([1, 2], np.int32)
    logx = np.array([-np.inf, np.log(3.0)], np.float32)  # a zero count: log 0 = -inf, f(0) * inf = nan
    fx = np.array([0.0, 0.5], np.float32)
    before = W.copy()
    cost = K.glove_epoch(rows, cols, logx, fx, 0, 2, W, C, bw, bc, gW, gC, gbw, gbc, 0.05, np.float32(100))
    assert np.isfinite(cost) and np.all(np.isfinite(W)) and np.all(np.isfinite(bw))
    np.testing.assert_array_equal(W[0], before[0])  # the bad cell (row 0) was skipped
    assert not np.array_equal(W[1], before[1])     # the good cell was trained
