"""The speed paths give the same numbers as the plain numpy code, bit for bit.

* ``unique_counts`` (radix sort) vs ``np.unique`` -- what counting uses to sort n-gram keys;
* the numba scorer (``NgramModel.score_ids(compiled=True)``, used for big models) vs the
  vectorised numpy scorer, on a model built here and on one read back from ARPA.
"""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.ngram import build, read_arpa, write_arpa
from lmlab.ngram.counts import encode, radix_argsort, unique_counts


@pytest.mark.parametrize("high", [1, 3, 70_000, 2**20, 2**35, 2**50])
@pytest.mark.parametrize("size", [0, 1, 2, 5_000])
def test_unique_counts_matches_np_unique(high, size):
    keys = np.random.default_rng(high + size).integers(0, high, size)
    uniq, inverse, counts = unique_counts(keys)
    ref_uniq, ref_inverse, ref_counts = np.unique(keys, return_inverse=True, return_counts=True)
    assert np.array_equal(uniq, ref_uniq)
    assert np.array_equal(inverse, ref_inverse.ravel())
    assert np.array_equal(counts, ref_counts)
    perm = radix_argsort(keys)
    assert np.array_equal(perm, np.argsort(keys, kind="stable"))


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
