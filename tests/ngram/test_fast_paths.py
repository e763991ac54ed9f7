"""The speed paths give the same numbers as the plain numpy code, bit for bit.

* counting (sorted from the previous order's order; ``count_text`` splitting raw text in one
  pass) vs a plain ``Counter`` of n-gram tuples and ``count_ngrams`` of ``line.split()``;
* the numba scorer (``NgramModel.score_ids(compiled=True)``, used for big models) vs the
  vectorised numpy scorer, on a model built here and on one read back from ARPA.
"""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import DataError
from lmlab.ngram import build, read_arpa, write_arpa
from lmlab.ngram.counts import Vocabulary, count_ngrams, count_text, encode, ngram_suffix, radix_argsort


@pytest.mark.parametrize("high", [1, 3, 70_000, 2**20, 2**35, 2**50])
@pytest.mark.parametrize("size", [0, 1, 2, 5_000])
def test_radix_argsort_matches_stable_argsort(high, size):
    keys = np.random.default_rng(high + size).integers(0, high, size)
    assert np.array_equal(radix_argsort(keys), np.argsort(keys, kind="stable"))


def _naive_counts(sentences, order):
    from collections import Counter

    grams = Counter()
    for s in sentences:
        padded = ["<s>", *s, "</s>"]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                grams[tuple(padded[i:i + n])] += 1
    return grams


@pytest.mark.parametrize("order", [1, 2, 5])
def test_counting_matches_naive_counter(train_sentences, order):
    sentences = train_sentences[:400] + [[], ["<unk>", "x"], ["</s>"]]
    ref = _naive_counts(sentences, order)
    c = count_ngrams(sentences, order)
    got = {}
    for n in range(1, order + 1):
        for ids, k in zip(c.words_of(n, np.arange(c.size(n))), c.counts[n - 1]):
            if k:
                got[tuple(c.vocab.words[i] for i in ids)] = int(k)
    assert got == dict(ref)
    for n in range(2, order + 1):  # the suffix rows cached while counting equal a fresh search
        assert np.array_equal(c.suffix(n), ngram_suffix(c.keys, c.V, n, {}))


@pytest.mark.parametrize("text", [
    "a b\tc\n\n  b a \nc\n",  # tabs, blank and space-only lines, trailing spaces
    "x y\r\nz\rw v\x0bu\n",  # line ends other than \n: the str.splitlines path
    "é 格物\u3000ü\u00a0y\n\u2014 z\u200bq\n",  # unicode spaces (and non-spaces) outside ASCII
    "no final newline",
    "<unk> a </s>\nb <s> a <unk>\n",  # the specials written as words keep their ids
])
def test_count_text_equals_count_ngrams_of_split_lines(text):
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for vocab in (None, Vocabulary(["a", "b", "é", "z"])):
        a, b = count_text(text.encode(), 3, vocab), count_ngrams(lines, 3, vocab)
        assert a.vocab.words == b.vocab.words
        assert (a.n_sentences, a.n_tokens) == (b.n_sentences, b.n_tokens)
        for x, y in zip(a.keys + a.counts, b.keys + b.counts):
            assert np.array_equal(x, y)


def test_count_text_errors():
    with pytest.raises(DataError, match="UTF-8"):
        count_text(b"a \xff b\n", 2, where="f.txt")
    with pytest.raises(DataError, match="no words"):
        count_text(b" \n\t\n", 2)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_compiled_scorer_is_bit_identical(train_sentences, test_sentences, tmp_path, order):
    from lmlab.ngram import model as model_mod

    if model_mod._compiled_scorer() is None:
        pytest.skip("numba not installed: only the numpy scorer exists")
    built = build(train_sentences[:400], order, "mkn")
    write_arpa(built, tmp_path / "m.arpa")
    for m in (built, read_arpa(tmp_path / "m.arpa")):
        ids, pos, _ = encode(test_sentences[:80] + [["zzz-oov", "the"], []], m.vocab)
        lp_c, order_c = m.score_ids(ids, pos, compiled=True)
        lp_n, order_n = m.score_ids(ids, pos, compiled=False)
        assert np.array_equal(lp_c.view(np.int64), lp_n.view(np.int64))
        assert np.array_equal(order_c, order_n)
        assert order_c.max() == order


def test_compiled_score_sentences_is_bit_identical(train_sentences, test_sentences):
    from lmlab.ngram import model as model_mod

    if model_mod._compiled_scorer() is None:
        pytest.skip("numba not installed: only the numpy scorer exists")
    m = build(train_sentences[:400], 3, "kn")
    sentences = [[], ["zzz-oov"], ["<unk>", "the"]] + test_sentences[:60] + [[]]
    a = m.score_sentences(sentences, compiled=True)
    b = m.score_sentences(sentences, compiled=False)
    assert np.array_equal(a[0].view(np.int64), b[0].view(np.int64))
    for x, y in zip(a[1:], b[1:]):
        assert np.array_equal(x, y)


def test_a_short_stream_is_scored_without_building_the_index(train_sentences, test_sentences, tmp_path, monkeypatch):
    """One line against a big model: binary search in the sorted tables, no hash index built (its cost is
    proportional to the model), the same numbers as the indexed and compiled scorers, bit for bit."""
    from lmlab.ngram import model as model_module

    write_arpa(build(train_sentences[:400], 4, "mkn"), tmp_path / "m.arpa")
    short = test_sentences[:2]
    lean = read_arpa(tmp_path / "m.arpa")
    ids, pos, _ = encode(short, lean.vocab)
    monkeypatch.setattr(model_module, "_INDEX_PER_POSITION", 0)  # no stream pays for the index (a model this small)
    assert not lean.index_pays(len(ids)) and not lean.use_compiled(len(ids))
    lp, order = lean.score_ids(ids, pos)
    assert "index" not in lean._cache and "packed" not in lean._cache
    indexed = read_arpa(tmp_path / "m.arpa")
    indexed.index()                                                         # once built, it is used
    assert indexed.index_pays(len(ids))
    for compiled in (False, True):
        lp_i, order_i = indexed.score_ids(ids, pos, compiled=compiled)
        assert np.array_equal(lp.view(np.int64), lp_i.view(np.int64)) and np.array_equal(order, order_i)
    assert lean.evaluate(short).perplexity == indexed.evaluate(short).perplexity


@pytest.mark.parametrize("binary", [False, True])
def test_text_scored_in_threads_piece_by_piece_gives_the_same_evaluation(train_sentences, test_sentences, tmp_path,
                                                                          monkeypatch, binary):
    """evaluate_text scores the pieces after the first in a thread pool (LMLAB_SCORE_THREADS) while it
    encodes the next ones; the totals are added in text order: the same Evaluation as one thread."""
    from lmlab.ngram import load_model, textenc
    from lmlab.ngram.binary import write_binary

    model = build(train_sentences[:400], 3, "mkn")
    path = tmp_path / ("m.lmbin" if binary else "m.arpa")
    write_binary(model, path) if binary else write_arpa(model, path)
    m = load_model(path)
    text = ("\n".join(" ".join(s) for s in test_sentences) + "\n").encode()
    monkeypatch.setattr(textenc, "PIECE", 300)  # many pieces from a small text
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("LMLAB_SCORE_THREADS", threads)
        results[threads] = m.evaluate_text(text)
    assert len(list(textenc.encode_pieces(text, m.vocab))) > 10
    assert results["1"] == results["2"] == results["3"]
    assert results["1"].sentences == len([s for s in test_sentences if s]) and results["1"].tokens > 0
    expected = m.evaluate([s for s in test_sentences if s])
    assert results["2"].tokens == expected.tokens and results["2"].oovs == expected.oovs
    assert results["2"].perplexity == pytest.approx(expected.perplexity, rel=1e-12)
    with pytest.raises(DataError, match="not valid UTF-8"):  # a bad piece after some were sent to the pool
        m.evaluate_text(text + b"caf\xe9\n")


def _sum_cases():
    rng = np.random.default_rng(7)
    yield -rng.random(200_000) * 5  # log10 probabilities
    yield rng.standard_normal(100_000) * 10.0 ** rng.integers(-300, 300, 100_000)  # every magnitude
    yield np.concatenate([[8e307, 8e307, -8e307, -8e307, 1e-308, 3.0, -3.0, 2.0 ** -1074], np.full(70_000, 0.1)])
    yield np.tile([1.0, 1e100, 1.0, -1e100], 20_000)  # cancellation: fsum keeps the 1s, a plain sum loses them
    yield np.array([0.0, -0.0] * 40_000)


@pytest.mark.parametrize("case", list(_sum_cases()), ids=["logprobs", "magnitudes", "extremes", "cancel", "zeros"])
def test_compiled_exact_sum_is_math_fsum(case):
    import math

    from lmlab.ngram.model import _exact_sum, _exact_sum_of, _partials_compiled

    kernel = _partials_compiled()  # (loads numba, so the compiled path is taken)
    buffer = np.empty(128)
    assert kernel(case, buffer) >= 0
    expected = math.fsum(case.tolist())
    assert _exact_sum(case) == expected
    pieces = np.array_split(case, 7)
    assert _exact_sum_of(pieces) == expected  # partials of pieces added together: the same float


def test_compiled_exact_sum_leaves_non_finite_values_to_fsum():
    import math

    from lmlab.ngram.model import _exact_sum, _partials_compiled

    for bad in (np.inf, -np.inf, np.nan):
        values = np.full(70_000, 0.5)
        values[123] = bad
        assert _partials_compiled()(values, np.empty(128)) == -1
        got, want = _exact_sum(values), math.fsum(values.tolist())
        assert got == want or (math.isnan(got) and math.isnan(want))
    overflow = np.full(70_000, 1e308)  # the partials overflow: math.fsum raises, as it would anyway
    assert _partials_compiled()(overflow, np.empty(128)) == -1
    with pytest.raises(OverflowError):
        _exact_sum(overflow)
    assert _partials_compiled()(np.array([1.0, 1e-30, 1e-60]), np.empty(2)) == -1  # too many partials
