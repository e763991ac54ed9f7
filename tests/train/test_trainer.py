"""The loop itself: metrics, learning, evaluation and early stopping, optimiser groups, MFU, bf16."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _trainkit import EvalWindows, MaskedCLM, TinyLM, WindowSource, token_ids

from lmlab.errors import LmlabError, UsageError
from lmlab.train import LossOutput, TrainConfig, Trainer
from lmlab.train.log import read_metrics
from lmlab.train.trainer import build_optimizer, mix_seed


def _config(**overrides):
    settings = {"max_steps": 40, "lr": 1e-2, "progress": "off", "mfu": False, "plot": False, "tensorboard": False,
                    "checkpoint_every": 0}
    return TrainConfig(**{**settings, **overrides})


def test_learns_real_text_and_logs_every_metric(tmp_path):
    ids, vocab = token_ids()
    torch.manual_seed(0)
    trainer = Trainer(TinyLM(vocab, dim=32), MaskedCLM(keep=1.0), WindowSource(ids, 8, 16),
                      _config(eval_every=20, schedule="cosine", warmup_steps=5, plot=True), tmp_path,
                      eval_source=EvalWindows(ids, 8, 16, 2))
    result = trainer.fit()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 41))
    first = rows[0]
    for key in ("loss", "lr", "grad_norm", "targets", "tokens", "tokens_per_s"):
        assert key in first
    assert result.loss < first["loss"] - 1.0  # learns
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [20, 40]
    assert evals[-1]["eval_ppl"] == pytest.approx(math.exp(evals[-1]["eval_loss"]))
    assert result.eval["eval_loss"] == evals[-1]["eval_loss"] < math.log(vocab)
    assert rows[0]["lr"] == pytest.approx(1e-2 / 5) and rows[4]["lr"] == pytest.approx(1e-2)
    try:  # the loss plot needs the plot extra; the rest of the run must not
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "loss.png").exists()
    else:
        assert (tmp_path / "loss.png").stat().st_size > 1000
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["eval_loss"] == result.best_eval_loss


class _Probe:
    """An objective whose loss is a fixed function of the weights: eval loss rises as it trains."""

    def prepare(self, ids, generator):
        return ids

    def loss(self, model, batch):
        w = model.hidden.weight
        return (w - 1.0).pow(2).sum() * batch.shape[0], batch.shape[0]


class _Fixed:
    def __init__(self, model):
        self.model = model

    def eval_batches(self, rank, world):
        yield torch.zeros(2, 3, dtype=torch.long)


def test_early_stopping_after_patience(tmp_path):
    ids, vocab = token_ids()
    model = TinyLM(vocab)

    class Opposite(_Probe):  # eval: distance from -1, which training increases
        def loss(self, model, batch):
            if not model.training:
                return (model.hidden.weight + 1.0).pow(2).sum() * batch.shape[0], batch.shape[0]
            return super().loss(model, batch)

    trainer = Trainer(model, Opposite(), WindowSource(ids, 2, 4), _config(eval_every=2, patience=3), tmp_path,
                      eval_source=_Fixed(model))
    result = trainer.fit()
    assert result.stopped_early and result.step == 8  # evals at 2 (best), 4, 6, 8: three bad in a row
    assert (tmp_path / "checkpoints" / "step-00000008").is_dir()
    assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 2


def test_no_weight_decay_on_biases_and_norms():
    _ids, vocab = token_ids()
    model = TinyLM(vocab)
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.1))
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    assert by_decay[0.1] == {id(model.embed.weight), id(model.hidden.weight)}
    assert by_decay[0.0] == {id(model.norm.weight), id(model.norm.bias), id(model.hidden.bias),
                             id(model.out_bias)}
    assert isinstance(optimizer, torch.optim.AdamW)
    model.no_weight_decay = lambda: {"embed.weight"}
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.1, optimizer="sgd", momentum=0.9))
    assert isinstance(optimizer, torch.optim.SGD)
    assert [len(g["params"]) for g in optimizer.param_groups] == [1, 5]


def test_mfu_uses_a_measured_cached_peak_and_model_hook(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "cache"))
    from lmlab.train import log

    calls = []
    monkeypatch.setattr(log, "measure_matmul_flops", lambda device, dtype: calls.append(dtype) or 2.0e9)
    ids, vocab = token_ids()
    model = TinyLM(vocab)
    model.flops_per_token = lambda seq_len: 1000.0 * seq_len
    Trainer(model, MaskedCLM(), WindowSource(ids, 2, 8), _config(max_steps=2, mfu=True), tmp_path / "a").fit()
    Trainer(model, MaskedCLM(), WindowSource(ids, 2, 8), _config(max_steps=2, mfu=True), tmp_path / "b").fit()
    assert calls == [torch.float32]  # measured once, then read from $LMLAB_CACHE
    cached = json.loads((tmp_path / "cache" / "peak_flops.json").read_text())
    assert list(cached.values()) == [2.0e9]
    row = read_metrics(tmp_path / "b" / "metrics.jsonl")[-1]
    assert row["mfu"] == pytest.approx(1000.0 * 9 * row["tokens_per_s"] / 2.0e9)


def test_real_peak_measurement_is_positive():
    from lmlab.train.log import measure_matmul_flops

    assert measure_matmul_flops(torch.device("cpu"), torch.float32, n=128, seconds=0.01) > 1e6


def test_bf16_autocast_on_request_and_loss_output(tmp_path):
    ids, vocab = token_ids()

    class WithMetrics(MaskedCLM):
        def loss(self, model, batch):
            total, n = super().loss(model, batch)
            return LossOutput(total, n, metrics={"double": 2 * n})

    trainer = Trainer(TinyLM(vocab), WithMetrics(), WindowSource(ids, 2, 8), _config(max_steps=3, precision="bf16"),
                      tmp_path)
    assert trainer.fit().step == 3
    assert trainer.bf16
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert all(r["double"] == pytest.approx(2.0) for r in rows)  # summed, then divided by the targets
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_bad_objects_and_diverging_loss(tmp_path):
    ids, vocab = token_ids()
    with pytest.raises(UsageError, match="batch"):
        Trainer(TinyLM(vocab), MaskedCLM(), object(), _config(), tmp_path)

    class Bad(MaskedCLM):
        def loss(self, model, batch):
            return super().loss(model, batch)[0]

    with pytest.raises(UsageError, match="expected"):
        Trainer(TinyLM(vocab), Bad(), WindowSource(ids, 2, 8), _config(), tmp_path / "a").fit()

    class Diverges(MaskedCLM):
        def loss(self, model, batch):
            total, n = super().loss(model, batch)
            return total * float("nan"), n

    with pytest.raises(LmlabError, match="step 1: the loss is nan"):
        Trainer(TinyLM(vocab), Diverges(), WindowSource(ids, 2, 8), _config(), tmp_path / "b").fit()


def test_mix_seed_is_stable():
    assert mix_seed(0, 1, 2) == mix_seed(0, 1, 2) != mix_seed(0, 2, 1)
    assert 0 <= mix_seed(2**70, -1) < 2**63


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    ids, vocab = token_ids()
    Trainer(TinyLM(vocab), MaskedCLM(), WindowSource(ids, 2, 8), _config(max_steps=3, tensorboard=True),
            tmp_path).fit()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_fit_puts_the_thread_count_back(tmp_path):
    ids, vocab = token_ids()
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    config = _config(max_steps=1, threads=wanted)
    Trainer(TinyLM(vocab), MaskedCLM(), WindowSource(ids, 2, 8), config, tmp_path / "t").fit()
    assert torch.get_num_threads() == before
