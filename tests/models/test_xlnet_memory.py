"""XLNet pretraining with segment memory (``model.mem_len`` > 0): contiguous lanes whose rows advance by
``reuse_len``, the memory carried by the Trainer and used by the model, and exact resume with it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.errors import ConfigError
from lmlab.models.xlnet import XLNetLMHeadModel
from lmlab.recipes.run import RunFile
from lmlab.recipes.xlnet import LaneSegments, build
from lmlab.train.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _resume import assert_same_end, rewind_to_step_3  # noqa: E402


def test_lane_rows_start_where_the_cached_part_of_the_previous_row_ends():
    ids = np.arange(1000)
    source = LaneSegments(ids, vocab_size=5000, batch_size=4, length=10, stride=6)
    first, second = source.batch(0), source.batch(1)
    assert first.shape == (4, 10)
    assert bool((first[:, 0] >= 5000).all()) and bool((second < 5000).all())   # a new pass is flagged
    first = first % 5000
    # row s+1 begins right after the first `stride` tokens of row s (what the model caches)
    assert torch.equal(second[:, :4], first[:, 6:])
    assert torch.equal(second[:, 0], first[:, 0] + 6)
    lane_len = 1000 // 4
    assert first[:, 0].tolist() == [0, lane_len, 2 * lane_len, 3 * lane_len]
    steps = (lane_len - 10) // 6 + 1
    assert torch.equal(source.batch(steps), source.batch(0))                    # the next pass starts over
    assert len(list(source.eval_batches())) == steps


def _run(**model) -> RunFile:
    return RunFile({"family": "xlnet", "data": {"corpus": "wiki-vital-small", "max_documents": 40, "seq_len": 18,
                                               "batch_size": 4, "eval_documents": 10},
                    "tokenizer": {"vocab_size": 300},
                    "model": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "dropout": 0.1, **model},
                    "objective": {"reuse_len": 8}})


def _trainer(out, steps: int, job) -> Trainer:
    """A fresh model on ``job``'s data and objective (one build: its WordPiece training is not
    reproducible from build to build, see the docs; the resumed model's weights come from the checkpoint)."""
    model = XLNetLMHeadModel(job.model.config)
    config = TrainConfig(max_steps=steps, lr=3e-3, weight_decay=0.0, progress="off", tensorboard=False, plot=False,
                         mfu=False, threads=1, seed=0, checkpoint_every=3, keep_last=3, warmup_steps=2)
    return Trainer(model, job.objective, job.train_source, config, out)


def test_the_memory_is_carried_used_and_resumed_exactly(tmp_path):
    job = build(_run(mem_len=12, reuse_len=8))
    reference = _trainer(tmp_path / "ref", 6, job)
    reference.fit()
    memory = reference.carried[0]
    assert len(memory) == 2 and memory[0].shape == (4, 12, 16)                  # 2 layers, last mem_len kept
    # the memory changes what the model predicts: the same batch with and without it
    objective, model = reference.objective, reference.model.eval()
    batch = objective.prepare(reference.train_source.batch(6), torch.Generator().manual_seed(0))
    with torch.no_grad():
        with_memory = objective.loss(model, batch, memory).loss_sum
        without = objective.loss(model, batch, None).loss_sum
    assert abs(float(with_memory - without)) > 1e-6, (float(with_memory), float(without))
    rewind_to_step_3(tmp_path / "ref", tmp_path / "resumed")
    resumed = _trainer(tmp_path / "resumed", 6, job)
    resumed.fit(resume=True)
    assert resumed.step == 6
    assert_same_end(reference, resumed)


def test_memory_needs_a_matching_reuse_len():
    with pytest.raises(ConfigError, match="reuse_len"):
        build(_run(mem_len=12))                                                  # model.reuse_len missing
    with pytest.raises(ConfigError, match="reuse_len"):
        build(_run(mem_len=12, reuse_len=6))                                     # != objective.reuse_len
