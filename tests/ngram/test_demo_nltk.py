"""The demo rows, and the cross-check against nltk.lm where nltk's estimators agree with the maths."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lmlab.data.vocab import closed_vocabulary
from lmlab.ngram import build
from lmlab.recipes.ngram import run_demo
from lmlab.report import DemoData


def test_run_demo_rows(train_sentences, test_sentences, tmp_path):
    train, valid = train_sentences[:500], train_sentences[500:560]
    data = DemoData("kenlm-fixture", [], [], [], train, valid, test_sentences[:60],
                    closed_vocabulary(train, 2), Path(tmp_path), deadline=time.monotonic() + 120)
    rows = run_demo(data)
    names = [r.model for r in rows]
    assert names == ["MKN 3-gram", "MKN 5-gram", "add-one bigram", "Katz trigram"]
    ppl = {r.model: r.metrics["test ppl"] for r in rows}
    assert ppl["MKN 3-gram"] < ppl["add-one bigram"]
    assert all(r.metrics["OOVs"] > 0 for r in rows)


def _nltk_model(cls, train, order, **kw):
    from nltk.lm.preprocessing import padded_everygram_pipeline

    grams, vocab = padded_everygram_pipeline(order, train)
    lm = cls(order=order, **kw) if kw else cls(order)
    lm.fit(grams, vocab)
    return lm


def test_mle_and_lidstone_agree_with_nltk(train_sentences):
    pytest.importorskip("nltk")
    from nltk.lm import MLE, Lidstone

    train = train_sentences[:200]
    ours = build(train, 2, "mle")
    theirs = _nltk_model(MLE, train, 2)
    pairs = [(s[i - 1] if i else "<s>", s[i]) for s in train[:30] for i in range(len(s))]
    for h, w in pairs:
        assert 10 ** ours.next_logprobs([h])[ours.vocab.index[w]] == pytest.approx(theirs.score(w, [h]), rel=1e-8)
    # nltk's Lidstone counts <s> and <UNK> in |V| (it is pure add-delta, no back-off): on seen bigrams
    # (c + d) / (c(h) + d |V|) is the same formula, with nltk's |V| = ours + 1 (<s>)
    lid = _nltk_model(Lidstone, train, 2, gamma=0.5)
    ours = build(train, 2, "add-delta")
    nltk_v = len(lid.vocab)
    assert nltk_v == ours.V  # <unk>, <s>, </s> + words
    for h, w in pairs[:200]:
        c_hw = lid.counts[[h]][w]
        c_h = lid.counts[[h]].N()
        ours_p = 10 ** ours.next_logprobs([h])[ours.vocab.index[w]]
        assert ours_p == pytest.approx((c_hw + 0.5) / (c_h + 0.5 * (ours.V - 1)), rel=1e-8)
        assert lid.score(w, [h]) == pytest.approx((c_hw + 0.5) / (c_h + 0.5 * nltk_v), rel=1e-8)


def test_witten_bell_interpolated_agrees_with_nltk_on_seen_bigrams(train_sentences):
    pytest.importorskip("nltk")
    from nltk.lm import WittenBellInterpolated

    train = train_sentences[:200]
    theirs = _nltk_model(WittenBellInterpolated, train, 2)
    ours = build(train, 2, "witten-bell")
    # nltk's unigram level is the plain MLE unigram (no interpolation with a uniform), ours interpolates
    # with 1/|V|; so compare the bigram step: P(w|h) = (c(h w) + N1+(h .) P(w)) / (c(h) + N1+(h .))
    pairs = [(s[i - 1], s[i]) for s in train[:30] for i in range(1, len(s))]
    for h, w in pairs:
        c_hw, c_h = theirs.counts[[h]][w], theirs.counts[[h]].N()
        n1p = len(theirs.counts[[h]])
        p_uni_theirs = theirs.counts.unigrams[w] / theirs.counts.unigrams.N()
        expected_theirs = (c_hw + n1p * p_uni_theirs) / (c_h + n1p)
        assert theirs.score(w, [h]) == pytest.approx(expected_theirs, rel=1e-8)
        p_uni = 10 ** ours.next_logprobs([])[ours.vocab.index[w]]
        assert 10 ** ours.next_logprobs([h])[ours.vocab.index[w]] == pytest.approx(
            (c_hw + n1p * p_uni) / (c_h + n1p), rel=1e-8)
