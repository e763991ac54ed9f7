"""word2vec / fastText / GloVe never diverge silently (issue 20).

The σ table is read inside its bounds (word2vec.c's off-by-one slot at f == MAX_EXP is clamped),
and every epoch checks the loss and the weights: NaN/inf or an exploding loss stops the run with
one line instead of saving garbage vectors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmlab.embeddings import _kernels as K
from lmlab.embeddings.fasttext import FastText, FastTextConfig
from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig, check_finite, untrained_loss
from lmlab.errors import DivergenceError


def test_sigmoid_table_index_stays_inside_the_table():
    assert K._table_index(-K.MAX_EXP) == 0
    assert K._table_index(K.MAX_EXP) == K.EXP_TABLE_SIZE - 1  # one past the end before the clamp
    assert K._table_index(K.MAX_EXP * 10) == K.EXP_TABLE_SIZE - 1
    assert K._table_index(-K.MAX_EXP * 10) == 0
    sig, _ = K.make_sigmoid_tables()
    assert sig.shape == (K.EXP_TABLE_SIZE,)
    assert 0 <= K._table_index(5.9999) < K.EXP_TABLE_SIZE


def test_untrained_loss_is_ln2_per_binary_decision():
    assert untrained_loss(5, None) == pytest.approx(6 * math.log(2))
    assert untrained_loss(0, np.array([3, 5])) == pytest.approx(4 * math.log(2))


@pytest.mark.parametrize("loss, weight, message", [
    (float("nan"), 0.0, "loss is nan"),
    (1e9, 0.0, "over"),
    (2.0, float("inf"), "1 vectors hold NaN/inf"),
])
def test_check_finite_names_what_diverged(loss, weight, message):
    w = np.zeros((4, 3), np.float32)
    w[2, 1] = weight
    with pytest.raises(DivergenceError, match=message) as err:
        check_finite("word2vec sg", 3, loss, (w,), loss_bound=100.0)
    assert "epoch 3" in str(err.value) and "\n" not in str(err.value)


def test_a_healthy_run_passes_the_check():
    check_finite("word2vec sg", 1, 3.5, (np.ones((3, 2), np.float32),), loss_bound=100.0)


SENTENCES = [("the cat sat on the mat while the dog slept on the rug " * 3).split()] * 60


@pytest.mark.parametrize("make", [
    lambda: Word2Vec(Word2VecConfig(vector_size=16, min_count=1, sg=True, alpha=1e6, epochs=2, workers=1)),
    lambda: FastText(FastTextConfig(vector_size=16, min_count=1, sg=True, alpha=1e6, epochs=2, workers=1,
                                    bucket=1000)),
])
def test_an_exploding_run_stops_with_one_line(make):
    model = make()
    with pytest.raises(DivergenceError, match="diverged in epoch"):
        model.fit(SENTENCES)


def test_fasttext_saves_only_the_rows_training_touched_and_loads_them_exactly(tmp_path):
    model = FastText(FastTextConfig(vector_size=8, min_count=1, epochs=1, workers=1, bucket=50_000))
    model.fit(SENTENCES)
    folder = model.save(tmp_path / "ft")
    size = (folder / "model.safetensors").stat().st_size
    full = (len(model.vocab) + 50_000) * 8 * 4
    assert size < full / 20  # the bucket table is not written out
    loaded = FastText.load(folder)
    assert np.array_equal(loaded.wi, model.wi)  # untouched buckets regenerated from the seed
    assert np.array_equal(loaded.word_vector("cattle"), model.word_vector("cattle"))  # an OOV word
