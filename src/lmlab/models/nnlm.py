"""Bengio et al. (2003), "A Neural Probabilistic Language Model": the feed-forward NNLM.

The ``n-1`` previous words are looked up in the embedding matrix ``C`` and concatenated,
``x_t = [C(w_{t-1}); ...; C(w_{t-n+1})]`` (``(n-1) m``); one tanh hidden layer follows,
``h_t = tanh(W x_t + c)``. With direct (skip) connections the output layer sees
``x_t ⊕ tanh(W x_t + c)`` (seed 004), which is Bengio's ``y = b + W' x + U tanh(d + H x)`` with the
two output matrices stacked. The output layer is any :mod:`lmlab.nn.softmax` layer (full,
class-based, Huffman or WordNet tree, importance sampling, NCE); evaluation is always exact.

Like an n-gram model, each sentence is scored on its own: the context of the first word is
``<s>`` repeated ``n-1`` times, and ``</s>`` is predicted at the end (``<s>`` never is).

What this file does not do: the paper's asynchronous parallel training, weight-decay-free
embeddings, or mixing with an interpolated trigram (see docs/neural_lm.md for MKN mixing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError
from ..nn.softmax import OutputLayer, SoftmaxConfig, build_output_layer, output_layer_from_state
from ..pretrained import PretrainedMixin, load_state_strict, load_word_lm, save_word_lm

FAMILY = "nnlm"


@dataclass
class NNLMConfig:
    vocab_size: int = 0
    order: int = 5              # n: the model sees the n-1 previous words
    embed_dim: int = 64         # m
    hidden_dim: int = 128       # h
    direct: bool = False        # direct connections x_t -> output
    dropout: float = 0.0
    bos_id: int = 1             # <s>, pads the context at a sentence start
    softmax: SoftmaxConfig = field(default_factory=SoftmaxConfig)

    def validate(self) -> None:
        if self.vocab_size == 1 or self.vocab_size < 0:  # 0: set from the data's vocabulary
            raise ConfigError(f"model.vocab_size must be >= 2, got {self.vocab_size}")
        if self.order < 2:
            raise ConfigError(f"model.order must be >= 2 (a bigram at least), got {self.order}")
        for name in ("embed_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")

    @property
    def output_dim(self) -> int:
        return self.hidden_dim + ((self.order - 1) * self.embed_dim if self.direct else 0)


class NNLM(PretrainedMixin, nn.Module):
    """Embeddings -> concatenation -> tanh layer (-> ⊕ input) -> output layer."""

    family = FAMILY
    config_class = NNLMConfig

    @classmethod
    def _from_state(cls, config: NNLMConfig, tensors: dict, where: str) -> NNLM:
        """The output layer's structure (classes, tree, noise) is rebuilt from its saved buffers."""
        output = output_layer_from_state(config.softmax, config.output_dim, config.vocab_size, tensors, "output.")
        model = cls(config, output)
        load_state_strict(model, tensors, where)
        return model

    def __init__(self, config: NNLMConfig, output: OutputLayer):
        super().__init__()
        config.validate()
        if config.vocab_size < 2:
            raise ConfigError("model.vocab_size is not set (build the model with its vocabulary)")
        self.config = config
        n1, m = config.order - 1, config.embed_dim
        self.embed = nn.Embedding(config.vocab_size, m)
        self.hidden = nn.Linear(n1 * m, config.hidden_dim)  # W, c
        self.drop = nn.Dropout(config.dropout)
        self.output = output

    def features(self, context: Tensor) -> Tensor:
        """``context`` (N, n-1) word ids, oldest first -> the output layer's input (N, output_dim)."""
        N = context.shape[0]
        x = self.embed(context).reshape(N, -1)  # (N, n-1, m) -> (N, (n-1) m)
        h = torch.tanh(self.hidden(self.drop(x)))
        if self.config.direct:
            h = torch.cat([x, h], dim=-1)  # x_t ⊕ tanh(W x_t + c)
        return self.drop(h)

    def loss(self, context: Tensor, target: Tensor) -> Tensor:
        """Mean training loss (the output layer's, approximate for IS / NCE in train mode)."""
        return self.output.loss(self.features(context), target)

    def log_prob(self, context: Tensor, target: Tensor) -> Tensor:
        """Exact ``log P(target | context)`` (N,)."""
        return self.output.log_prob(self.features(context), target)

    @torch.no_grad()
    def score_sentences(self, sentences: list[list[int]], batch_tokens: int = 8192) -> list[Tensor]:
        """Per-token natural-log probabilities of ``w_1 .. w_n </s>`` for each sentence (ids incl. </s>)."""
        was_training = self.training
        self.eval()
        windows = ngram_windows(sentences, self.config.order, self.config.bos_id)
        device = self.embed.weight.device
        out = []
        for start in range(0, len(windows), batch_tokens):
            chunk = torch.as_tensor(windows[start:start + batch_tokens], device=device)
            out.append(self.log_prob(chunk[:, :-1], chunk[:, -1]).float().cpu())
        flat = torch.cat(out) if out else torch.zeros(0)
        self.train(was_training)
        return list(torch.split(flat, [len(s) for s in sentences]))


def ngram_windows(sentences: list[list[int]], order: int, bos_id: int) -> np.ndarray:
    """Every (n-1 context ids, target id) row of the sentences, context padded with ``<s>``.

    Each sentence is its ids ``w_1 .. w_n </s>``; returns an int64 array (tokens, n).
    """
    rows = []
    for sent in sentences:
        padded = np.concatenate([np.full(order - 1, bos_id, dtype=np.int64), np.asarray(sent, dtype=np.int64)])
        # sliding windows of length n: (len(sent), n)
        rows.append(np.lib.stride_tricks.sliding_window_view(padded, order))
    if not rows:
        raise DataError("no sentences to make n-gram windows from")
    return np.ascontiguousarray(np.concatenate(rows))


# ----------------------------------------------------------------------------- building, saving, loading


def build(config: NNLMConfig, vocab: list[str], counts) -> NNLM:
    """An NNLM whose output layer is built from the training counts (trees, classes, noise)."""
    config.vocab_size = len(vocab)
    if "<s>" not in vocab:
        raise ConfigError("the vocabulary has no <s> token")
    config.bos_id = list(vocab).index("<s>")
    config.validate()
    output = build_output_layer(config.softmax, config.output_dim, vocab, counts)
    return NNLM(config, output)


def save(model: NNLM, folder: str | Path, vocab: list[str], data: dict | None = None) -> Path:
    """See :func:`lmlab.pretrained.save_word_lm` (config, weights, the vocabulary as a word tokenizer's files)."""
    return save_word_lm(model, folder, vocab, data)


def load(folder: str | Path) -> tuple[NNLM, list[str]]:
    """(model, vocabulary) of a saved folder; see :func:`lmlab.pretrained.load_word_lm`."""
    return load_word_lm(NNLM, folder)
