"""Golden numbers: each method on a toy corpus small enough to check by hand.

Toy corpus (3 sentences):  <s> a b </s>  |  <s> a c </s>  |  <s> b a b </s>
vocabulary <unk> <s> </s> a b c  ->  |V| = 5 predictable words (no <s>).
unigram counts (no <s>): a 3, b 3, c 1, </s> 3, <unk> 0;  N = 10
bigram counts: <s> a 2, <s> b 1, a b 2, a c 1, b </s> 2, b a 1, c </s> 1
history totals c(h): <s> 3, a 3, b 3, c 1;  N1+(h .): <s> 2, a 2, b 2, c 1
bigram count-of-counts: n1 = 4, n2 = 3, n3 = 0
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lmlab.ngram import build
from lmlab.ngram.counts import adjusted_counts, count_ngrams
from lmlab.ngram.smoothing import (
    Dirichlet,
    JelinekMercer,
    SmoothingWarning,
    katz_discounts,
    simple_good_turing,
)

TOY = [["a", "b"], ["a", "c"], ["b", "a", "b"]]


def p(model, history, word):
    return 10.0 ** model.next_logprobs(history)[model.vocab.index[word]]


def toy(method, order=2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(TOY, order, method)


def test_counts_and_adjusted_counts():
    c = count_ngrams(TOY, 2)
    assert c.vocab.words == ["<unk>", "<s>", "</s>", "a", "b", "c"]
    assert c.counts[0].tolist() == [0, 3, 3, 3, 3, 1]  # <s> raw count = 3 sentences
    bigrams = {tuple(c.vocab.words[i] for i in row): int(n)
               for row, n in zip(c.words_of(2, np.arange(c.size(2))).tolist(), c.counts[1])}
    assert bigrams == {("<s>", "a"): 2, ("<s>", "b"): 1, ("a", "b"): 2, ("a", "c"): 1,
                       ("b", "</s>"): 2, ("b", "a"): 1, ("c", "</s>"): 1}
    # continuation counts N1+(. w): a <- {<s>, b}, b <- {<s>, a}, c <- {a}, </s> <- {b, c}; <s> gets 0
    assert adjusted_counts(c)[0].tolist() == [0, 0, 2, 2, 2, 1]


def test_mle():
    m = toy("mle")
    assert p(m, ["a"], "b") == pytest.approx(2 / 3, abs=1e-9)
    assert p(m, ["a"], "a") < 1e-90
    assert p(m, [], "a") == pytest.approx(3 / 10, abs=1e-9)
    assert p(m, [], "<unk>") < 1e-90


def test_add_one():
    m = toy("add-one")
    # unigram: (c + 1) / (N + |V|) = (3 + 1) / 15; <unk>: 1 / 15
    assert p(m, [], "a") == pytest.approx(4 / 15, abs=1e-9)
    assert p(m, [], "<unk>") == pytest.approx(1 / 15, abs=1e-9)
    # seen bigram: (2 + 1) / (3 + 5)
    assert p(m, ["a"], "b") == pytest.approx(3 / 8, abs=1e-9)
    # unseen after a: mass 1 - 3/8 - 2/8 = 3/8, shared by {a, </s>, <unk>} in unigram proportion 4:4:1
    assert p(m, ["a"], "a") == pytest.approx(3 / 8 * 4 / 9, abs=1e-9)


def test_witten_bell_interpolated():
    m = toy("witten-bell")
    # unigram: (c + T * 1/|V|) / (N + T), T = 4 word types seen
    pb = (3 + 4 / 5) / 14
    assert p(m, [], "b") == pytest.approx(pb, abs=1e-9)
    assert p(m, [], "<unk>") == pytest.approx((4 / 5) / 14, abs=1e-9)
    # P(b|a) = (c(a b) + N1+(a .) P(b)) / (c(a) + N1+(a .)) = (2 + 2 pb) / 5
    assert p(m, ["a"], "b") == pytest.approx((2 + 2 * pb) / 5, abs=1e-9)


def test_witten_bell_backoff():
    m = toy("witten-bell-backoff")
    # unigram p*(w) = c / (N + T): a 3/14; the unseen word <unk> gets T/(N+T) = 4/14
    assert p(m, [], "<unk>") == pytest.approx(4 / 14, abs=1e-9)
    # p*(b|a) = 2/5; alpha(a) = (1 - 3/5) / (1 - P(b) - P(c)) = 0.4 / (1 - 4/14)
    assert p(m, ["a"], "b") == pytest.approx(0.4, abs=1e-9)
    assert p(m, ["a"], "a") == pytest.approx(0.4 / (10 / 14) * 3 / 14, abs=1e-9)


def test_absolute_discounting():
    with pytest.warns(SmoothingWarning, match="D = 0.5"):
        m = build(TOY, 2, "absolute")  # unigram n1=1, n2=0: D = n1/(n1+2 n2) = 1 degenerate -> 0.5
    pa = (3 - 0.5) / 10 + (4 * 0.5 / 10) / 5  # = 0.29
    assert p(m, [], "a") == pytest.approx(pa, abs=1e-9)
    D = 4 / (4 + 2 * 3)  # bigram D = n1 / (n1 + 2 n2) = 0.4
    assert p(m, ["a"], "b") == pytest.approx((2 - D) / 3 + (2 * D / 3) * pa, abs=1e-9)


def test_kneser_ney():
    m = toy("kn")
    # continuation counts a 2, b 2, c 1, </s> 2 (sum 7); n1 = 1, n2 = 3 -> D1 = 1/7
    d1 = 1 / 7
    pb = (2 - d1) / 7 + (4 * d1 / 7) / 5
    assert p(m, [], "b") == pytest.approx(pb, abs=1e-9)
    D = 0.4  # top order: raw counts
    assert p(m, ["a"], "b") == pytest.approx((2 - D) / 3 + (2 * D / 3) * pb, abs=1e-9)


def test_modified_kneser_ney_with_fallback():
    with pytest.warns(SmoothingWarning, match="lmplz aborts"):
        m = build(TOY, 2, "mkn")  # n3 = 0 at both orders: lmplz's --discount_fallback 0.5 1 1.5
    # unigram: a has continuation count 2 -> D2 = 1; gamma = (D1 * 1 + D2 * 3) / 7 = 0.5
    pb = (2 - 1) / 7 + 0.5 / 5
    assert p(m, [], "b") == pytest.approx(pb, abs=1e-9)
    # after a: b (2) -> D2 = 1, c (1) -> D1 = 0.5; gamma(a) = 1.5 / 3
    assert p(m, ["a"], "b") == pytest.approx((2 - 1) / 3 + 0.5 * pb, abs=1e-9)
    assert m.info["discounts"] == [[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]]


def test_jelinek_mercer_with_given_lambdas():
    jm = JelinekMercer(n_buckets=1)
    jm.lambdas = [[0.8], [0.6]]
    m = jm.estimate(count_ngrams(TOY, 2))
    pb = 0.8 * 3 / 10 + 0.2 / 5  # = 0.28
    assert p(m, [], "b") == pytest.approx(pb, abs=1e-9)
    assert p(m, ["a"], "b") == pytest.approx(0.6 * 2 / 3 + 0.4 * pb, abs=1e-9)
    assert p(m, ["c"], "a") == pytest.approx(0.4 * pb, abs=1e-9)  # c(c a) = 0


def test_jelinek_mercer_em_maximises_heldout_likelihood(train_sentences):
    train, heldout = train_sentences[:400], train_sentences[400:500]
    cnts = count_ngrams(train, 2)
    jm = JelinekMercer(n_buckets=1)
    jm.fit_params(cnts, heldout)

    def loglik(lam2):
        jm2 = JelinekMercer(n_buckets=1)
        jm2.lambdas = [jm.lambdas[0], [lam2]]
        return float(jm2.estimate(cnts).sentence_scores(heldout).sum())

    best = jm.lambdas[1][0]
    assert 0 < best < 1
    assert loglik(best) >= loglik(best - 0.05) and loglik(best) >= loglik(best + 0.05)


def test_dirichlet_with_given_prior():
    d = Dirichlet()
    d.mu = [2.0, 3.0]
    m = d.estimate(count_ngrams(TOY, 2))
    pb = (3 + 2 / 5) / (10 + 2)
    assert p(m, [], "b") == pytest.approx(pb, abs=1e-9)
    assert p(m, ["a"], "b") == pytest.approx((2 + 3 * pb) / (3 + 3), abs=1e-9)


def test_dirichlet_fit_maximises_heldout_likelihood(train_sentences):
    train, heldout = train_sentences[:400], train_sentences[400:500]
    cnts = count_ngrams(train, 2)
    d = Dirichlet()
    d.fit_params(cnts, heldout)

    def loglik(mu2):
        d2 = Dirichlet()
        d2.mu = [d.mu[0], mu2]
        return float(d2.estimate(cnts).sentence_scores(heldout).sum())

    best = d.mu[1]
    assert loglik(best) >= loglik(best * 1.2) and loglik(best) >= loglik(best / 1.2)


def test_katz_discounts_by_hand():
    # n1 = 10, n2 = 4, n3 = 2, k = 2: common = (k+1) n3 / n1 = 0.6
    # r=1: r* = 2 * 4/10 = 0.8, d1 = (0.8 - 0.6) / 0.4 = 0.5; r=2: r* = 3 * 2/4 = 1.5, d2 = (0.75 - 0.6)/0.4 = 0.375
    counts = np.array([1] * 10 + [2] * 4 + [3] * 2 + [7], dtype=float)
    d, k = katz_discounts(counts, k=2)
    assert k == 2
    assert d.tolist() == pytest.approx([1.0, 0.5, 0.375])


def test_katz_model_uses_discounts(train_sentences):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = build(train_sentences[:600], 2, "katz")
    cnts = count_ngrams(train_sentences[:600], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this slice needs k = 4 (said by a SmoothingWarning)
        d, k = katz_discounts(cnts.counts[1].astype(float), 5)
    rows = np.arange(cnts.size(2))
    words = cnts.words_of(2, rows)
    total = np.bincount(cnts.prefix(2), weights=cnts.counts[1], minlength=cnts.size(1))
    for r in (1, 2, 6):  # r <= k discounted by d_r, r > k kept
        i = int(np.nonzero(cnts.counts[1] == r)[0][0])
        h, w = (cnts.vocab.words[j] for j in words[i])
        expected = (d[r] if r <= k else 1.0) * r / total[words[i][0]]
        assert p(m, [h], w) == pytest.approx(expected, rel=1e-8)


def test_katz_falls_back_to_simple_good_turing_on_toy_data():
    with pytest.warns(SmoothingWarning, match="Katz: no k <= 5"):
        m = build(TOY, 2, "katz")
    # bigram n_r {1: 4, 2: 3}: common = 2 n2/n1 = 1.5 >= 1 for k = 1 (and n3 = 0 for k >= 2), so no Katz k;
    # SGT (see test_good_turing_model_by_hand): r*(1) = 1.5 -> d1 = min(1.5, 1) = 1; r*(2) = 3 (3/2)^b -> d2 = r*(2)/2
    b = math.log(3 / 4) / math.log(2)
    d2 = min(3 * 1.5**b / 2, 1.0)
    assert p(m, ["a"], "b") == pytest.approx(d2 * 2 / 3, abs=1e-9)


def test_simple_good_turing_by_hand():
    # r = 1, 2, 3 with n_r = 4, 2, 1; N = 11; P0 = n1/N = 4/11
    # Z_r = n_r / (0.5 (t - q)): Z1 = 4/(0.5*2) = 4, Z2 = 2/(0.5*2) = 2, Z3 = 1/(0.5*(4-2)) = 1
    x, y = np.log([1.0, 2.0, 3.0]), np.log([4.0, 2.0, 1.0])
    b = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    # r=1: Turing 2 * 2/4 = 1.0 vs LGT 2 * 2^b; sd = sqrt(4 * 2/16 * 1.5) = 0.866 -> close: LGT from here on
    lgt = [(r + 1) * ((r + 1) / r) ** b for r in (1, 2, 3)]
    assert abs(1.0 - lgt[0]) < 1.96 * math.sqrt(4 * 2 / 16 * 1.5)
    rstar, p0 = simple_good_turing(np.array([1, 2, 3]), np.array([4, 2, 1]))
    assert p0 == pytest.approx(4 / 11)
    assert rstar.tolist() == pytest.approx(lgt)


def test_simple_good_turing_all_singletons():
    with pytest.warns(SmoothingWarning, match="every event has count 1"):
        rstar, p0 = simple_good_turing(np.array([1]), np.array([5]))
    assert rstar.tolist() == [0.5] and p0 == pytest.approx(0.5)


def test_good_turing_model_by_hand():
    # bigram n_r: {1: 4, 2: 3}: Z1 = 4/(0.5*2) = 4, Z2 = 3/(0.5*(3-1)) = 3, slope b = log(3/4)/log 2
    # r=1: Turing 2 * 3/4 = 1.5 = LGT 2 * 2^b -> LGT: r*(1) = 1.5, r*(2) = 3 * (3/2)^b
    b = math.log(3 / 4) / math.log(2)
    r1, r2 = 1.5, 3 * 1.5**b
    m = toy("good-turing")
    # after a: p* = r*(2)/3 + r*(1)/3 > 1, so p* is renormalised and nothing is left for unseen words
    assert p(m, ["a"], "b") == pytest.approx(r2 / (r1 + r2), abs=1e-9)
    assert p(m, ["a"], "a") < 1e-90


def test_church_gale_buckets_by_hand():
    # c(h) c(w): <s> a 9, <s> b 9, a b 9, b </s> 9, b a 9 -> bucket 3 (n1 = 2, n2 = 3); a c 3, c </s> 3 -> bucket 1.
    # bucket 3, r = 1: 2 * 3/2 = 3 is no discount -> unbucketed 2 * 3/4 = 1.5 neither -> r* = 1 (kept);
    # r = 2: n3 = 0 -> kept. Undiscounted: every seen history is full, p = MLE.
    m = toy("church-gale")
    assert p(m, ["a"], "b") == pytest.approx(2 / 3, abs=1e-9)
    assert p(m, ["<s>"], "b") == pytest.approx(1 / 3, abs=1e-9)
