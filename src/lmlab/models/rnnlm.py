"""Recurrent language models: the Elman RNN LM (Mikolov et al. 2010) and the stacked LSTM LM
(Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization").

``e_t = C(w_{t-1})``; ``h_t = RNN(e_t, h_{t-1})`` through ``layers`` stacked cells (LSTM, or the
plain ``tanh`` Elman cell), dropout on the non-recurrent connections (Zaremba et al.), and an
output layer from :mod:`lmlab.nn.softmax` on ``h_t``. With ``tie_embeddings`` the output word
vectors are the input embeddings (Press & Wolf 2017; Inan et al. 2017), which needs
``hidden_dim == embed_dim`` and an output layer with word vectors (full, class, IS, NCE).
``softmax.kind = "adaptive"`` (with ``softmax.cutoffs``, ``softmax.div_val``) is Grave et al.'s
adaptive softmax, the output layer Transformer-XL uses; it is not tied to the input.

Training is truncated back-propagation through time over the token stream of each split: the
documents' sentences back to back, each as ``<s> w_1 .. w_n </s>``. Consecutive blocks of a lane
continue each other, so the hidden state is carried from one block to the next (the Trainer
detaches it: that is the truncation) and reset to zero where a document starts. ``<s>`` is only
ever an input: targets equal to ``<s>`` are masked out, so exactly the events the n-gram models
predict (the words and ``</s>``) are trained and scored.

Scoring for perplexity (:meth:`RNNLM.score_sentences`) starts every sentence from a zero state,
as an n-gram does, so every word-level LM in lmlab is compared on the same conditioning.

What this file does not do: variational (locked) dropout, weight-dropped LSTMs (AWD-LSTM),
dynamic evaluation, or a projection layer for tying unequal sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..nn.softmax import (
    OutputLayer,
    SoftmaxConfig,
    build_output_layer,
    output_layer_from_state,
    supports_tying,
)
from ..pretrained import PretrainedMixin, load_state_strict, load_word_lm, save_word_lm

FAMILY = "rnnlm"


@dataclass
class RNNLMConfig:
    vocab_size: int = 0
    cell: Literal["lstm", "rnn"] = "lstm"
    embed_dim: int = 128
    hidden_dim: int = 128
    layers: int = 2
    dropout: float = 0.2
    tie_embeddings: bool = False
    bos_id: int = 1             # <s>: the first input of every sentence, never a target
    softmax: SoftmaxConfig = field(default_factory=SoftmaxConfig)

    def validate(self) -> None:
        if self.vocab_size == 1 or self.vocab_size < 0:  # 0: set from the data's vocabulary
            raise ConfigError(f"model.vocab_size must be >= 2, got {self.vocab_size}")
        for name in ("embed_dim", "hidden_dim", "layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.tie_embeddings:
            if self.hidden_dim != self.embed_dim:
                raise ConfigError(f"model.tie_embeddings needs hidden_dim == embed_dim "
                                  f"(got {self.hidden_dim} and {self.embed_dim})")
            if not supports_tying(self.softmax.kind):
                raise ConfigError(f"model.tie_embeddings: softmax.kind={self.softmax.kind!r} has no word vectors")


State = tuple[Tensor, ...]  # LSTM: (h, c); RNN: (h,); each (layers, B, hidden_dim)


class RNNLM(PretrainedMixin, nn.Module):
    """Embedding -> dropout -> stacked LSTM / Elman RNN -> dropout -> output layer."""

    family = FAMILY
    config_class = RNNLMConfig

    def _state_for_saving(self) -> dict:
        state = self.state_dict()
        if self.config.tie_embeddings:
            state.pop("embed.weight")  # the same matrix is saved once, as output.word_weight
        return state

    @classmethod
    def _from_state(cls, config: RNNLMConfig, tensors: dict, where: str) -> RNNLM:
        """The output layer's structure (classes, tree, noise) is rebuilt from its saved buffers."""
        output = output_layer_from_state(config.softmax, config.hidden_dim, config.vocab_size, tensors, "output.")
        model = cls(config, output)
        if config.tie_embeddings:
            if "output.word_weight" not in tensors:
                raise CheckpointError(f"{where}: tied model without output.word_weight")
            tensors = {**tensors, "embed.weight": tensors["output.word_weight"]}
        load_state_strict(model, tensors, where)
        return model

    def __init__(self, config: RNNLMConfig, output: OutputLayer):
        super().__init__()
        config.validate()
        if config.vocab_size < 2:
            raise ConfigError("model.vocab_size is not set (build the model with its vocabulary)")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        rnn_cls = nn.LSTM if config.cell == "lstm" else nn.RNN
        self.rnn = rnn_cls(config.embed_dim, config.hidden_dim, num_layers=config.layers, batch_first=True,
                           dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.output = output
        if config.tie_embeddings:
            self.embed.weight = output.word_weight  # one matrix: input and output word vectors

    def initial_state(self, batch_size: int) -> State:
        zeros = torch.zeros(self.config.layers, batch_size, self.config.hidden_dim,
                            device=self.embed.weight.device, dtype=self.embed.weight.dtype)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else (zeros,)

    def _run(self, e: Tensor, state: State) -> tuple[Tensor, State]:
        if self.config.cell == "lstm":
            out, (h, c) = self.rnn(e, state)
            return out, (h, c)
        out, h = self.rnn(e, state[0])
        return out, (h,)

    def forward(self, x: Tensor, state: State | None = None, reset: Tensor | None = None
                ) -> tuple[Tensor, State]:
        """``x`` (B, T) ids -> hidden states (B, T, H) and the state after the last step.

        ``reset`` (B, T) bool zeroes a row's state just before position t (a document starts).
        The block is cut at the columns where some row resets; between them the cuDNN-style
        fused RNN runs on the whole segment.
        """
        B, T = x.shape
        e = self.drop(self.embed(x))  # (B, T, E)
        state = self.initial_state(B) if state is None else state
        cuts = [0] if reset is None else sorted({0, *reset.any(0).nonzero().flatten().tolist()})
        outs = []
        for i, a in enumerate(cuts):
            b = cuts[i + 1] if i + 1 < len(cuts) else T
            if reset is not None and bool(reset[:, a].any()):
                keep = (~reset[:, a]).to(e.dtype)[None, :, None]  # (1, B, 1)
                state = tuple(s * keep for s in state)
            out, state = self._run(e[:, a:b], state)
            outs.append(out)
        h = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        return self.drop(h), state

    @torch.no_grad()
    def score_sentences(self, sentences: list[list[int]], batch_size: int = 64) -> list[Tensor]:
        """Per-token natural-log probabilities of ``w_1 .. w_n </s>`` (ids incl. </s>), each sentence
        from a zero state with ``<s>`` as its first input."""
        was_training = self.training
        self.eval()
        device = self.embed.weight.device
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        result: list[Tensor | None] = [None] * len(sentences)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            T = max(len(sentences[i]) for i in idx)
            x = torch.full((len(idx), T), self.config.bos_id, dtype=torch.long)
            y = torch.full((len(idx), T), self.config.bos_id, dtype=torch.long)
            mask = torch.zeros(len(idx), T, dtype=torch.bool)
            for row, i in enumerate(idx):
                s = torch.as_tensor(sentences[i], dtype=torch.long)
                x[row, 1:len(s)] = s[:-1]  # inputs: <s> w_1 .. w_n
                y[row, :len(s)] = s        # targets: w_1 .. w_n </s>
                mask[row, :len(s)] = True
            h, _ = self(x.to(device))
            lp = self.output.log_prob(h[mask.to(device)], y[mask].to(device)).float().cpu()
            for row, piece in zip(idx, torch.split(lp, mask.sum(1).tolist())):
                result[row] = piece
        self.train(was_training)
        return result  # type: ignore[return-value]


# ----------------------------------------------------------------------------- the token stream and BPTT


# ----------------------------------------------------------------------------- building, saving, loading


def build(config: RNNLMConfig, vocab: list[str], counts) -> RNNLM:
    """An RNN LM whose output layer is built from the training counts (trees, classes, noise)."""
    config.vocab_size = len(vocab)
    if "<s>" not in vocab:
        raise ConfigError("the vocabulary has no <s> token")
    config.bos_id = list(vocab).index("<s>")
    config.validate()
    output = build_output_layer(config.softmax, config.hidden_dim, vocab, counts)
    return RNNLM(config, output)


def save(model: RNNLM, folder: str | Path, vocab: list[str], data: dict | None = None) -> Path:
    """See :func:`lmlab.pretrained.save_word_lm` (config, weights, the vocabulary as a word tokenizer's files)."""
    return save_word_lm(model, folder, vocab, data)


def load(folder: str | Path) -> tuple[RNNLM, list[str]]:
    """(model, vocabulary) of a saved folder; see :func:`lmlab.pretrained.load_word_lm`."""
    return load_word_lm(RNNLM, folder)
