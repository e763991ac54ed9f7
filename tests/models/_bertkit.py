"""Helpers for the BERT-family tests: a slice of real text, tokenized once per session."""

from __future__ import annotations

import functools

import torch

torch.set_num_threads(1)  # the CI machine is small and shared; these tests are tiny


@functools.cache
def wiki_slice(n_docs: int = 120):
    """(train documents, valid documents) of wiki-vital-small: small slices of real text."""
    from lmlab.data import sources

    splits = sources.load("wiki-vital-small").split()
    return splits.train[:n_docs], splits.valid[:20]


def train_config(steps: int, lr: float = 2e-3, seed: int = 0):
    from lmlab.train import TrainConfig

    return TrainConfig(seed=seed, max_steps=steps, lr=lr, schedule="linear", warmup_steps=max(1, steps // 10),
                       progress="off", tensorboard=False, plot=False, mfu=False, device="cpu", precision="fp32",
                       threads=1, eval_every=0)
