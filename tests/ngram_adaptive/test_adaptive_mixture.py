"""Mixture LMs: EM never lowers held-out likelihood, weights on the simplex, proper distributions,
dynamic (per-document) weights agree with the definition, k-means on TF-IDF finds planted topics."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import UsageError
from lmlab.ngram.adaptive import (
    MixtureLM,
    base_logprobs,
    build_components,
    em_mixture_weights,
    group_documents,
    kmeans_topics,
    perplexity,
    tfidf_matrix,
    tune_mixture,
)


@pytest.fixture(scope="module")
def topic_mixture(small_docs, base_model, wiki_small_splits):
    train, _, _ = small_docs
    labels = kmeans_topics(tfidf_matrix(train), 3, seed=0)
    comps, names = build_components(group_documents(train, labels), base_model.vocab, order=2)
    return [base_model, *comps], ["general", *names]


def test_em_monotone_and_on_simplex(topic_mixture, streams):
    comps, _ = topic_mixture
    _, valid, _ = streams
    L = np.stack([base_logprobs(c, valid) for c in comps], axis=1)
    for start in (None, np.array([0.97, 0.01, 0.01, 0.01])):
        weights, history = em_mixture_weights(L, start, iterations=40, tol=0)
        assert len(history) == 41
        assert np.all(np.diff(history) >= -1e-12), "EM lowered the held-out log-likelihood"
        assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-12)
    # the EM optimum is no worse than any single component or uniform weights
    uniform = np.mean(np.log(np.exp(L).mean(axis=1)))
    assert history[-1] >= max(uniform, L.mean(axis=0).max()) - 1e-9


def test_em_recovers_known_weights():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=3)                              # 3 components over 5 symbols
    true = np.array([0.6, 0.3, 0.1])
    x = rng.choice(5, size=20000, p=true @ P)
    weights, _ = em_mixture_weights(np.log(P[:, x].T), iterations=500, tol=1e-10)
    np.testing.assert_allclose(weights, true, atol=0.05)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_distribution_sums_to_one(topic_mixture, base_model, beta):
    comps, names = topic_mixture
    model = MixtureLM(comps, names, np.full(len(comps), 1 / len(comps)), beta)
    words = [w for w in base_model.vocab.words if w not in ("<s>", "</s>")]
    rng = np.random.default_rng(0)
    long = [words[i] for i in rng.integers(len(words), size=300)]
    for h in ([], ["the"], ["</s>"], long[:40] + ["</s>"] + long[40:50], long + ["</s>", "a"]):
        p = model.next_probs(h)
        assert abs(p.sum() - 1.0) < 1e-6 and p.min() >= 0


def test_dynamic_scores_match_next_probs(topic_mixture, streams):
    comps, names = topic_mixture
    _, valid, _ = streams
    model, _, _ = tune_mixture(comps, names, valid, betas=(0.0, 1.0))
    model.beta = 0.7
    lp = model.token_logprobs(valid)
    words = valid.vocab.words
    rng = np.random.default_rng(2)
    for t in rng.choice(len(valid), size=12, replace=False):
        start = int(np.searchsorted(valid.doc, valid.doc[t]))
        p = model.next_probs([words[i] for i in valid.ids[start:t]])
        assert np.log(p[valid.ids[t]]) == pytest.approx(lp[t], abs=1e-9)


def test_tuned_mixture_no_worse_than_general_on_valid(topic_mixture, streams, base_model):
    comps, names = topic_mixture
    _, valid, _ = streams
    model, _, rows = tune_mixture(comps, names, valid, betas=(0.0, 1.0))
    assert min(r["valid_ppl"] for r in rows) <= perplexity(base_logprobs(base_model, valid)) + 1e-9
    assert model.weights.sum() == pytest.approx(1.0)


def test_kmeans_finds_planted_topics():
    rng = np.random.default_rng(0)
    topics = [["goal", "match", "team", "league", "coach"], ["atom", "energy", "quantum", "electron", "field"],
              ["king", "empire", "war", "dynasty", "throne"]]
    filler = ["the", "a", "of", "and", "is", "in"]
    docs, truth = [], []
    for i in range(60):
        k = i % 3
        words = list(rng.choice(topics[k], size=8)) + list(rng.choice(filler, size=8))
        docs.append([list(rng.permutation(words))])
        truth.append(k)
    labels = kmeans_topics(tfidf_matrix(docs, max_df=0.9), 3, seed=1)
    truth = np.array(truth)
    for k in range(3):                                   # each planted topic is one cluster
        assert len(set(labels[truth == k])) == 1
    assert len(set(labels)) == 3


def test_tfidf_rows_are_unit_length(small_docs):
    X = tfidf_matrix(small_docs[0][:50])
    norms = np.sqrt(np.bincount(X.row, weights=X.val ** 2, minlength=X.shape[0]))
    np.testing.assert_allclose(norms[norms > 0], 1.0)


def test_bad_input(base_model, small_docs):
    with pytest.raises(UsageError):
        MixtureLM([base_model], ["a"], np.array([0.5]))
    with pytest.raises(UsageError):
        kmeans_topics(tfidf_matrix(small_docs[0][:10]), 0)
