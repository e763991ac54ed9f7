"""Learning on a slice of real text (wiki-vital-small): losses fall, co-occurring words get closer."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lmlab.embeddings._kernels import HAVE_NUMBA
from lmlab.embeddings.fasttext import (
    ClassifierConfig,
    FastText,
    FastTextClassifier,
    FastTextConfig,
    labelled_documents,
)
from lmlab.embeddings.glove import GloVe, GloVeConfig
from lmlab.embeddings.vectors import Vectors
from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig

# ~100k words x 10 epochs: seconds with numba, far longer with the pure-Python kernels (the small
# tests below still run those kernels without numba)
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="needs the fast extra (numba): the pure-Python "
                                 "kernels are far too slow for this learning test")


@pytest.fixture(scope="module")
def sentences(wiki_small_splits):
    from lmlab.data.corpus import word_sentences

    sents = word_sentences(wiki_small_splits.train)
    return sents[:4000]  # ~100k words


@pytest.fixture(scope="module")
def pair_sets(sentences):
    """(strongly associated pairs by PMI, pairs never seen together) of mid-frequency words."""
    counts = Counter(w for s in sentences for w in s)
    mid = {w for w, c in counts.items() if 30 <= c <= 400 and w.isalpha()}
    co = Counter()
    for s in sentences:
        for i, w in enumerate(s):
            for v in s[max(0, i - 2) : i]:
                if w in mid and v in mid and v != w:
                    co[tuple(sorted((w, v)))] += 1
    total = sum(counts.values())
    pmi = {p: np.log(n * total / (counts[p[0]] * counts[p[1]])) for p, n in co.items() if n >= 5}
    together = sorted(pmi, key=pmi.get, reverse=True)[:60]  # e.g. ('prime', 'minister')
    rng = np.random.default_rng(0)
    pool = sorted(mid)
    apart = []
    while len(apart) < 60:
        a, b = rng.choice(pool, 2, replace=False)
        if co[tuple(sorted((a, b)))] == 0:
            apart.append((a, b))
    return together, apart


def _gap(wv: Vectors, pair_sets) -> float:
    together, apart = pair_sets
    sim = lambda pairs: np.mean([wv.similarity(a, b) for a, b in pairs])
    return float(sim(together) - sim(apart))


@needs_numba
@pytest.mark.parametrize("sg,hs,negative", [(True, False, 5), (False, False, 5), (True, True, 0), (False, True, 0),
                                            (False, True, 5)])  # both output layers at once
def test_word2vec_learns(sentences, pair_sets, sg, hs, negative):
    cfg = Word2VecConfig(sg=sg, hs=hs, negative=negative, vector_size=50, epochs=10, min_count=5, workers=2,
                         alpha=0.025 if sg else 0.05)
    model = Word2Vec(cfg).fit(sentences)
    losses = [h.loss for h in model.history]
    assert losses[-1] < losses[0], losses
    assert all(np.isfinite(losses))
    gap = _gap(model.wv, pair_sets)
    assert gap > 0.1, gap


def test_word2vec_is_deterministic_with_one_worker(sentences):
    cfg = Word2VecConfig(sg=True, vector_size=20, epochs=1, workers=1, seed=7)
    a = Word2Vec(cfg).fit(sentences[:800])
    b = Word2Vec(cfg).fit(sentences[:800])
    np.testing.assert_array_equal(a.syn0, b.syn0)
    np.testing.assert_array_equal(a.syn1neg, b.syn1neg)
    c = Word2Vec(Word2VecConfig(sg=True, vector_size=20, epochs=1, workers=1, seed=8)).fit(sentences[:800])
    assert not np.array_equal(a.syn0, c.syn0)


def test_word2vec_save_load_round_trip(sentences, tmp_path):
    model = Word2Vec(Word2VecConfig(vector_size=16, epochs=1, workers=1, hs=True)).fit(sentences[:500])
    model.save(tmp_path / "w2v")
    back = Word2Vec.load(tmp_path / "w2v")
    assert back.config == model.config and back.vocab.words == model.vocab.words
    np.testing.assert_array_equal(back.syn0, model.syn0)
    np.testing.assert_array_equal(back.syn1, model.syn1)


@needs_numba
def test_fasttext_learns_and_handles_oov(sentences, pair_sets, tmp_path):
    model = FastText(FastTextConfig(sg=True, vector_size=50, epochs=10, bucket=50_000, workers=2)).fit(sentences)
    losses = [h.loss for h in model.history]
    assert losses[-1] < losses[0]
    gap = _gap(model.wv, pair_sets)
    assert gap > 0.1, gap
    # an unseen inflection lands near its stem (shared n-grams)
    word = next(w for w in ("countries", "languages", "centuries", "animals") if w in model.vocab.index)
    oov = word + "ish"
    assert oov not in model.vocab.index
    v = model.word_vector(oov)
    sims = model.wv.unit @ (v / np.linalg.norm(v))
    assert sims[model.vocab.index[word]] > np.quantile(sims, 0.99)
    model.save(tmp_path / "ft")
    back = FastText.load(tmp_path / "ft")
    np.testing.assert_allclose(back.word_vector(oov), v)


@needs_numba
def test_glove_learns(sentences, pair_sets):
    model = GloVe(GloVeConfig(vector_size=50, epochs=30, window=5, workers=2)).fit(sentences)
    assert model.history[-1] < model.history[0]
    assert np.all(np.isfinite(model.W))
    gap = _gap(model.wv, pair_sets)
    assert gap > 0.05, gap


def test_fasttext_classifier_learns_sentiment(tmp_path):
    from lmlab.data import sources

    splits = sources.load("rotten-tomatoes").split()
    train_docs, train_labels = labelled_documents(splits.train)
    test_docs, test_labels = labelled_documents(splits.test)
    clf = FastTextClassifier(ClassifierConfig(vector_size=16, bucket=20_000, epochs=5)).fit(train_docs, train_labels)
    assert clf.history[-1] < clf.history[0]
    accuracy = clf.accuracy(test_docs, test_labels)
    assert accuracy > 0.65  # chance is ~0.5
    clf.save(tmp_path / "clf")
    back = FastTextClassifier.load(tmp_path / "clf")
    assert back.labels == clf.labels
    assert back.accuracy(test_docs, test_labels) == accuracy


def test_word2vec_learns_as_much_as_gensim(sentences, pair_sets):
    models = pytest.importorskip("gensim.models")
    settings = {"vector_size": 50, "window": 5, "negative": 5, "min_count": 5, "sample": 1e-3, "epochs": 10,
                "alpha": 0.05}
    ours = Word2Vec(Word2VecConfig(sg=False, workers=1, seed=3, **settings)).fit(sentences)
    theirs = models.Word2Vec(sentences, sg=0, workers=1, seed=3, **settings)
    assert set(ours.vocab.words) == set(theirs.wv.index_to_key)  # same vocabulary (tie order differs)
    gap_ours = _gap(ours.wv, pair_sets)
    gap_theirs = _gap(Vectors(theirs.wv.index_to_key, theirs.wv.vectors), pair_sets)
    assert gap_ours > 0.7 * gap_theirs, (gap_ours, gap_theirs)
