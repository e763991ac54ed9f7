"""Modified Kneser-Ney parity with KenLM's lmplz/query on real text (tests/fixtures/kenlm/README.md).

Every n-gram's log10 probability and back-off agree within 1e-4 (KenLM stores
float32, so the real gap is ~1e-6), the discounts D1, D2, D3+ per order agree
with lmplz's log, and test perplexity including and excluding OOVs agrees with
``query`` within 0.01%. ``<s>``'s unigram probability is excluded from the
comparison: it is never used (KenLM writes 0, lmlab -99 as SRILM does).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from _ngramkit import KENLM, read_sentences

from lmlab.ngram import build, read_arpa, write_arpa
from lmlab.ngram.counts import adjusted_counts, count_ngrams
from lmlab.ngram.smoothing import mkn_discounts


def _table(model, n):
    words = model.ngram_words(n)
    names = np.array(model.vocab.words, dtype=object)[words]  # (M, n) strings
    keys = [" ".join(r) for r in names.tolist()]
    return dict(zip(keys, zip(model.logprob[n - 1].tolist(), model.backoff[n - 1].tolist())))


def _lmplz_discounts(order):
    text = (KENLM / f"lmplz{order}.log").read_text()
    rows = re.findall(r"^(\d+) (\d+) D1=(\S+) D2=(\S+) D3\+=(\S+)$", text, flags=re.MULTILINE)
    return {int(r[0]): (int(r[1]), [float(x) for x in r[2:]]) for r in rows}


def _query_summary(order):
    text = (KENLM / f"query{order}.txt").read_text()
    get = lambda key: float(re.search("^" + key + r":\s+(\S+)", text, flags=re.MULTILINE).group(1))
    return get("Perplexity including OOVs"), get("Perplexity excluding OOVs"), int(get("OOVs")), int(get("Tokens"))


@pytest.fixture(scope="module", params=[3, 5])
def pair(request, train_sentences):
    order = request.param
    ours = build(train_sentences, order, "mkn")
    ref = read_arpa(KENLM / f"mkn{order}.arpa.gz")
    return order, ours, ref


def test_every_ngram_matches_lmplz(pair):
    order, ours, ref = pair
    assert ours.sizes() == ref.sizes()
    for n in range(1, order + 1):
        a, b = _table(ours, n), _table(ref, n)
        assert a.keys() == b.keys(), f"order {n}: n-gram sets differ"
        keys = [k for k in a if k != "<s>"]
        pa = np.array([a[k][0] for k in keys])
        pb = np.array([b[k][0] for k in keys])
        ba = np.array([a[k][1] for k in a])
        bb = np.array([b[k][1] for k in a])
        assert np.abs(pa - pb).max() < 1e-4, f"order {n}: log10 prob differs by {np.abs(pa - pb).max()}"
        assert np.abs(ba - bb).max() < 1e-4, f"order {n}: back-off differs by {np.abs(ba - bb).max()}"


def test_discounts_match_lmplz_log(pair, train_sentences):
    order, ours, _ = pair
    logged = _lmplz_discounts(order)
    cnts = count_ngrams(train_sentences, order)
    ours_d = mkn_discounts(adjusted_counts(cnts))
    for n in range(1, order + 1):
        size, ref_d = logged[n]
        assert cnts.size(n) == size
        assert np.allclose(ours_d[n - 1], ref_d, atol=1e-5, rtol=0), (n, ours_d[n - 1], ref_d)
    assert [list(d) for d in ours_d] == ours.info["discounts"]


def test_perplexity_matches_query(pair, test_sentences):
    order, ours, ref = pair
    ppl, ppl_no_oov, oovs, tokens = _query_summary(order)
    ev = ours.evaluate(test_sentences)
    assert ev.oovs == oovs and ev.tokens == tokens
    assert abs(ev.perplexity / ppl - 1) < 1e-4
    assert abs(ev.perplexity_no_oov / ppl_no_oov - 1) < 1e-4
    ev_ref = ref.evaluate(test_sentences)  # KenLM's own file through lmlab's query
    assert abs(ev_ref.perplexity / ppl - 1) < 1e-6
    assert abs(ev_ref.perplexity_no_oov / ppl_no_oov - 1) < 1e-6


def test_per_word_scores_match_query():
    ref = read_arpa(KENLM / "mkn3.arpa.gz")
    sentences = read_sentences("test20.txt")
    logp, is_oov, _, matched = ref.score_sentences(sentences)
    tokens = re.findall(r"(\S+)=(\d+) (\d+) (\S+)", (KENLM / "query3.words.txt").read_text())
    assert len(tokens) == len(logp)
    assert np.allclose(logp, [float(t[3]) for t in tokens], atol=2e-6)
    assert matched.tolist() == [int(t[2]) for t in tokens]
    assert is_oov.tolist() == [t[1] == "0" for t in tokens]


def test_arpa_round_trip_is_exact(pair, tmp_path, test_sentences):
    order, ours, _ = pair
    path = tmp_path / f"ours{order}.arpa"
    write_arpa(ours, path)
    back = read_arpa(path)
    for n in range(order):
        assert np.array_equal(ours.keys[n], back.keys[n])
        assert np.array_equal(ours.logprob[n], back.logprob[n])
        assert np.array_equal(ours.backoff[n], back.backoff[n])
    a, b = ours.sentence_scores(test_sentences), back.sentence_scores(test_sentences)
    assert np.array_equal(a, b)


def test_kenlm_module_reads_our_arpa(pair, tmp_path, test_sentences):
    kenlm = pytest.importorskip("kenlm")
    order, ours, _ = pair
    path = tmp_path / f"ours{order}.arpa"
    write_arpa(ours, path)
    km = kenlm.Model(str(path))
    theirs = np.array([km.score(" ".join(s), bos=True, eos=True) for s in test_sentences])
    assert np.allclose(ours.sentence_scores(test_sentences), theirs, atol=1e-4)
