"""Tiny real-text pieces for the Trainer's tests: token ids, sources, models, objectives.

Token ids come from ``sentences.txt`` (the first 300 lines of the KenLM fixture's
train.txt: wiki-vital sentences, CC BY-SA, lowercased and tokenized), encoded with a closed vocabulary of the most frequent words plus <unk>; each line ends
with </s>. Nothing here is a stand-in for a family: these are the smallest real models
that exercise every path of the loop (dropout, tied weights, biases and norms, carried
state, a variable number of targets per micro-batch).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FIXTURE = Path(__file__).resolve().parent / "sentences.txt"


def token_ids(vocab_size: int = 300, max_lines: int = 300) -> tuple[np.ndarray, int]:
    """Real token ids (int64) and the vocabulary size (top words + <unk> + </s>)."""
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()[:max_lines]
    counts = collections.Counter(w for line in lines for w in line.split())
    words = [w for w, _ in counts.most_common(vocab_size - 2)]
    index = {w: i + 2 for i, w in enumerate(words)}  # 0 = <unk>, 1 = </s>
    out = []
    for line in lines:
        out.extend(index.get(w, 0) for w in line.split())
        out.append(1)
    return np.asarray(out, dtype=np.int64), len(words) + 2


class WindowSource:
    """Random-access LM windows: row ``r`` of the run is tokens [r·T, r·T + T + 1) (wrapping)."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, sleep: float = 0.0):
        self.ids = torch.from_numpy(ids)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.sleep = sleep
        self.starts = len(ids) - seq_len - 1

    def batch(self, step: int, shard: int, shards: int) -> torch.Tensor:
        if self.sleep:
            time.sleep(self.sleep)
        first = (step * shards + shard) * self.batch_size
        rows = []
        for r in range(first, first + self.batch_size):
            start = (r * self.seq_len) % self.starts
            rows.append(self.ids[start : start + self.seq_len + 1])
        return torch.stack(rows)  # [B, T + 1]


class LaneSource:
    """Truncated-BPTT layout: the stream is cut into shards·B lanes; step s reads chunk s of each."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, sleep: float = 0.0):
        self.ids = torch.from_numpy(ids)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.sleep = sleep

    def batch(self, step: int, shard: int, shards: int) -> torch.Tensor:
        if self.sleep:
            time.sleep(self.sleep)
        lanes = shards * self.batch_size
        lane_len = (len(self.ids) - 1) // lanes
        chunks = max(lane_len // self.seq_len, 1)
        offset = (step % chunks) * self.seq_len
        rows = []
        for lane in range(shard * self.batch_size, (shard + 1) * self.batch_size):
            start = lane * lane_len + offset
            rows.append(self.ids[start : start + self.seq_len + 1])
        return torch.stack(rows)  # [B, T + 1]


class EvalWindows:
    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, batches: int):
        self.source = WindowSource(ids, batch_size, seq_len)
        self.batches = batches

    def eval_batches(self, rank: int, world: int):
        for i in range(rank, self.batches, world):
            yield self.source.batch(i, 0, 1)


class TinyLM(nn.Module):
    """Embedding -> LayerNorm -> tanh MLP with dropout -> tied output layer with a bias."""

    def __init__(self, vocab: int, dim: int = 16, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.out_bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.tanh(self.hidden(self.norm(self.embed(ids)))))  # [B, T, C]
        return x @ self.embed.weight.T + self.out_bias  # [B, T, V]


class TinyRNN(nn.Module):
    """A one-layer LSTM LM whose (h, c) is carried across steps."""

    def __init__(self, vocab: int, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, ids, state=None):
        x, state = self.lstm(self.embed(ids), state)  # [B, T, C]
        return self.out(x), state


class MaskedCLM:
    """Next-token prediction where some targets are dropped, so the count varies by batch.

    Random (half of them, drawn from the generator) or, with ``odd_ids=True``, every target
    whose id is odd (a rule that does not depend on how the batch is split).
    """

    is_language_model = True

    def __init__(self, keep: float = 0.5, odd_ids: bool = False):
        self.keep = keep
        self.odd_ids = odd_ids

    def prepare(self, ids: torch.Tensor, generator: torch.Generator):
        targets = ids[:, 1:].clone()
        if self.odd_ids:
            drop = targets % 2 == 1
        else:
            drop = torch.rand(targets.shape, generator=generator) >= self.keep
        targets[drop] = -100
        return {"inputs": ids[:, :-1], "targets": targets}

    def loss(self, model, batch):
        logits = model(batch["inputs"])  # [B, T, V]
        targets = batch["targets"]
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                ignore_index=-100, reduction="sum")
        return total, (targets != -100).sum()


class StatefulCLM:

    is_language_model = True
    stateful = True

    def prepare(self, ids: torch.Tensor, generator: torch.Generator):
        return {"inputs": ids[:, :-1], "targets": ids[:, 1:]}

    def loss(self, model, batch, state):
        logits, state = model(batch["inputs"], state)  # [B, T, V]
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1),
                                reduction="sum")
        return total, batch["targets"].numel(), state


# --------------------------------------------------------------------------- a builder, as a family writes one

from dataclasses import dataclass as _dataclass  # noqa: E402 (the builder section reads top to bottom)


@_dataclass
class TinyModelConfig:
    dim: int = 16
    dropout: float = 0.1


@_dataclass
class TinyDataConfig:
    batch_size: int = 4
    seq_len: int = 12
    eval_batches: int = 2
    sleep: float = 0.0  # seconds per batch (so a test can signal a run mid-way)


@_dataclass
class TinyObjectiveConfig:
    keep: float = 0.5


def build_tiny(run):
    """``build(run) -> TrainingJob`` for the tiny LM: what a family's registry row names as its ``recipe``."""
    from lmlab import config as config_io
    from lmlab.pretrained import save_model_folder
    from lmlab.train import TrainingJob

    model_cfg = config_io.from_dict(TinyModelConfig, run.model, where="model")
    data_cfg = config_io.from_dict(TinyDataConfig, run.data, where="data")
    objective_cfg = config_io.from_dict(TinyObjectiveConfig, run.objective, where="objective")
    ids, vocab = token_ids()
    split = int(len(ids) * 0.9)
    model = TinyLM(vocab, model_cfg.dim, model_cfg.dropout)

    def export(folder):
        save_model_folder(folder, "tiny", {"vocab": vocab, **config_io.to_dict(model_cfg)}, model.state_dict())

    return TrainingJob(
        model=model,
        objective=MaskedCLM(objective_cfg.keep),
        train_source=WindowSource(ids[:split], data_cfg.batch_size, data_cfg.seq_len, sleep=data_cfg.sleep),
        eval_source=EvalWindows(ids[split:], data_cfg.batch_size, data_cfg.seq_len, data_cfg.eval_batches),
        export=export,
        describe=f"tiny LM (dim {model_cfg.dim}, vocab {vocab})",
    )
