"""``[data] stream = DIR``: a run trains on what ``lmlab corpus prepare`` wrote, with its tokenizer.

Training on a prepared stream must equal training on the corpus it was prepared from (same
tokenizer, same ids, same batches), so ``corpus prepare -> train`` is a real first stage.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.data import sources
from lmlab.data.prepare import prepare
from lmlab.errors import ConfigError
from lmlab.recipes.run import RunFile


@pytest.fixture(scope="module")
def small_corpus():
    corpus = sources.load("wiki-vital-small")
    splits = corpus.split()
    return corpus, type(splits)(train=splits.train[:40], valid=splits.valid[:8], test=splits.test[:8])


def _gpt_run(data: dict, tokenizer: dict | None = None) -> RunFile:
    table = {"family": "gpt", "data": {"seq_len": 16, "batch_size": 2, **data},
             "model": {"d_model": 16, "n_layers": 1, "n_heads": 2}}
    if tokenizer is not None:
        table["tokenizer"] = tokenizer
    return RunFile(table, name="gpt")


def test_gpt_on_a_prepared_stream_equals_gpt_on_its_corpus(small_corpus, tmp_path, monkeypatch):
    from lmlab.recipes import gpt

    corpus, splits = small_corpus
    prepare(corpus, "bytebpe", tmp_path / "wv", vocab_size=400, splits=splits)
    original = sources.load

    class Sliced:  # the corpus path sees the same 40 / 8 / 8 documents the stream was prepared from
        def __init__(self, corpus):
            self.corpus = corpus

        def split(self, *args, **kwargs):
            return splits

        def __getattr__(self, name):
            return getattr(self.corpus, name)

    monkeypatch.setattr(sources, "load", lambda name, *a, **k: Sliced(original(name, *a, **k)))
    from_corpus = gpt.build(_gpt_run({"corpus": "wiki-vital-small"}, {"kind": "bytebpe", "vocab_size": 400}))
    from_stream = gpt.build(_gpt_run({"stream": str(tmp_path / "wv")}))
    for step in range(3):
        assert np.array_equal(from_corpus.train_source.batch(step), from_stream.train_source.batch(step))
    assert from_corpus.model.config == from_stream.model.config
    assert "wv" in from_stream.describe


def test_gpt_stream_refuses_a_second_tokenizer_and_word_streams(small_corpus, tmp_path):
    from lmlab.recipes import gpt

    corpus, splits = small_corpus
    prepare(corpus, "bytebpe", tmp_path / "sub", vocab_size=400, splits=splits)
    with pytest.raises(ConfigError, match="the stream's own tokenizer is used"):
        gpt.build(_gpt_run({"stream": str(tmp_path / "sub")}, {"vocab_size": 100}))
    agreeing = gpt.build(_gpt_run({"stream": str(tmp_path / "sub")}, {"kind": "bytebpe", "vocab_size": 400}))
    assert agreeing.model.config.vocab_size == 400
    prepare(corpus, "word", tmp_path / "word", vocab_size=400, splits=splits)
    with pytest.raises(ConfigError, match="subword stream"):
        gpt.build(_gpt_run({"stream": str(tmp_path / "word")}))


def test_word_lm_trains_on_a_prepared_word_stream(small_corpus, tmp_path):
    from lmlab.recipes.word_lm import rnnlm_job
    from lmlab.train import TrainConfig, Trainer

    corpus, splits = small_corpus
    tokenizer, _ = prepare(corpus, "word", tmp_path / "wv", vocab_size=300, splits=splits)
    job = rnnlm_job(RunFile({"family": "rnnlm", "data": {"stream": str(tmp_path / "wv"), "batch_size": 2, "bptt": 8},
                             "model": {"embed_dim": 8, "hidden_dim": 8, "layers": 1}}, name="lstm"))
    assert job.model.config.vocab_size == tokenizer.vocab_size == 300
    torch.manual_seed(0)
    result = Trainer(job.model, job.objective, job.train_source, TrainConfig.quiet(max_steps=2, threads=1),
                     tmp_path / "run", eval_source=job.eval_source).fit()
    assert result.step == 2 and np.isfinite(result.eval["eval_loss"])


def test_old_word_lm_tables_say_where_the_keys_went():
    from lmlab.recipes.word_lm import nnlm_job

    with pytest.raises(ConfigError, match=r"\[batch\] table is now part of \[data\]"):
        nnlm_job(RunFile({"family": "nnlm", "batch": {"batch_size": 4}}, name="n"))
    with pytest.raises(ConfigError, match="data.vocab_size is now tokenizer.vocab_size"):
        nnlm_job(RunFile({"family": "nnlm", "data": {"vocab_size": 4}}, name="n"))
