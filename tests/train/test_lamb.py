"""LAMB (You et al. 2020, Algorithm 2): one step by hand, the trust ratio, Trainer use and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from _trainkit import EvalWindows, MaskedCLM, TinyLM, WindowSource, token_ids

from lmlab.errors import ConfigError
from lmlab.train import TrainConfig, Trainer
from lmlab.train.log import read_metrics
from lmlab.train.optim import Lamb

torch.set_num_threads(1)


def test_two_steps_by_hand():
    x0 = torch.tensor([3.0, -4.0], dtype=torch.float64)          # ‖x0‖ = 5
    x = torch.nn.Parameter(x0.clone())
    opt = Lamb([x], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    grads = [torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([-1.0, 0.5], dtype=torch.float64)]
    m = torch.zeros(2, dtype=torch.float64)
    v = torch.zeros(2, dtype=torch.float64)
    expected = x0.clone()
    for t, g in enumerate(grads, start=1):
        x.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        r = (m / (1 - 0.9 ** t)) / ((v / (1 - 0.99 ** t)).sqrt() + 1e-8) + 0.5 * expected
        expected = expected - 0.1 * (expected.norm() / r.norm()) * r
        assert torch.allclose(x.detach(), expected, atol=1e-12)
    # the first step moves the tensor by exactly lr * ‖x‖ (the layer-wise adaptation)
    y = torch.nn.Parameter(x0.clone())
    y.grad = torch.tensor([1e-3, 5e3], dtype=torch.float64)
    Lamb([y], lr=0.1, weight_decay=0.0).step()
    assert math.isclose((y.detach() - x0).norm().item(), 0.1 * 5.0, rel_tol=1e-9)


def test_trust_ratio_is_one_for_zero_tensors_and_bad_settings_are_refused():
    assert Lamb.trust_ratio(torch.tensor(0.0), torch.tensor(2.0)).item() == 1.0
    assert Lamb.trust_ratio(torch.tensor(2.0), torch.tensor(0.0)).item() == 1.0
    assert Lamb.trust_ratio(torch.tensor(2.0), torch.tensor(4.0)).item() == 0.5
    bias = torch.nn.Parameter(torch.zeros(3))          # zero-initialised: plain Adam-sized first step
    bias.grad = torch.ones(3)
    Lamb([bias], lr=0.01, weight_decay=0.0).step()
    assert torch.allclose(bias.detach(), torch.full((3,), -0.01), atol=1e-6)
    with pytest.raises(ConfigError, match="betas"):
        Lamb([bias], betas=(1.0, 0.9))


def _trainer(out, steps):
    torch.manual_seed(3)
    ids, vocab = token_ids()
    config = TrainConfig(seed=3, max_steps=steps, lr=1e-2, optimizer="lamb", checkpoint_every=2, progress="off",
                         mfu=False, plot=False, tensorboard=False)
    return Trainer(TinyLM(vocab), MaskedCLM(), WindowSource(ids, 4, 12), config, out,
                   eval_source=EvalWindows(ids, 4, 12, 2))


def test_trainer_with_lamb_learns_and_resumes_exactly(tmp_path):
    straight = _trainer(tmp_path / "straight", 6)
    straight.fit()
    losses = [r["loss"] for r in read_metrics(tmp_path / "straight" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0]
    _trainer(tmp_path / "cut", 4).fit()
    resumed = _trainer(tmp_path / "cut", 6)
    resumed.fit(resume=True)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
