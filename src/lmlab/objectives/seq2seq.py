"""Teacher-forced sequence-to-sequence cross-entropy as a Trainer objective (Vaswani et al., 2017).

An encoder-decoder reads a source x = (x_1..x_m) and, at target position t, the target prefix
<s> y_1..y_{t-1}; it is trained to maximise

    Σ_t log P(y_t | y_<t, x)        over t = 1..n+1, with y_{n+1} = </s>

("teacher forcing": the decoder sees the true prefix, not its own predictions). A row of
:func:`lmlab.data.stream.pair_rows` holds all three parts, ``[source (S) | target-in (T + 1) |
target-out (T + 1)]``; :meth:`Seq2SeqObjective.prepare` cuts a batch of rows into
(source, target-in, target-out) and trims the trailing columns that are padding in every row.
Padding targets are ignored (``ignore_index`` = the pad id).

Label smoothing (§5.4, ε_ls = 0.1) trains against q = (1 − ε)·onehot(y) + ε/V instead of the
one-hot target. That training loss is not −log P(y), so exp of it is no perplexity. Hence:

- in training (``model.training``) the loss is the label-smoothed sum, and the unsmoothed
  −Σ log P(y_t | y_<t, x) is logged beside it as the metric ``nll``;
- in evaluation (``model.eval()``, as the Trainer's ``evaluate`` sets it) the loss is the
  **unsmoothed** sum. The eval loss per target is then the decoder's cross-entropy per target
  token (``</s>`` included), and exp(eval loss) its per-token perplexity: the objective is
  marked ``is_language_model = True``.

:func:`seq2seq_loss_sum` is the sum itself, with the smoothing given explicitly (for callers that
want the smoothed loss in evaluation too).

Not here: the model (any module with ``model(src (B, S), tgt_in (B, T)) -> logits (B, T, V)``), the
rows (:mod:`lmlab.data.stream`), decoding (:func:`lmlab.tasks.generation.translate`), sequence-level
objectives (minimum risk training, scheduled sampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from ..protocols import LossOutput


def trim_padding(ids: Tensor, pad_id: int) -> Tensor:
    """Drop the trailing columns that are padding in every row: (B, L) -> (B, L' <= L), L' >= 1."""
    used = (ids != pad_id).any(dim=0).nonzero()
    return ids[:, : int(used.max()) + 1 if len(used) else 1]


def split_rows(ids: Tensor, src_len: int, tgt_len: int, pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rows (B, S + 2 (T + 1)) -> (source (B, S'), target-in (B, T'), target-out (B, T')), trimmed.

    The source is trimmed on its own; target-in is cut to the width of the trimmed target-out
    (its last column then holds the last real target's predecessor, never a lost target).
    """
    S, T = src_len, tgt_len + 1
    if ids.ndim != 2 or ids.shape[1] != S + 2 * T:
        raise UsageError(f"seq2seq rows must be (batch, {S} + 2 x {T}) ids for src_len={src_len}, "
                         f"tgt_len={tgt_len}; got shape {tuple(ids.shape)}")
    tgt_in, tgt_out = ids[:, S:S + T], ids[:, S + T:]
    width = trim_padding(tgt_out, pad_id).shape[1]
    return trim_padding(ids[:, :S], pad_id), tgt_in[:, :width], tgt_out[:, :width]


def seq2seq_loss_sum(logits: Tensor, tgt_out: Tensor, pad_id: int,
                     label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """(Σ cross-entropy over the non-pad targets, their number): logits (B, T, V), targets (B, T).

    With ``label_smoothing`` = ε each term is −Σ_v q_v log p_v, q = (1 − ε)·onehot + ε/V
    (PyTorch's ``cross_entropy(label_smoothing=ε)``); with ε = 0 it is −log p_y.
    """
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt_out.reshape(-1),
                           ignore_index=pad_id, reduction="sum",
                           label_smoothing=label_smoothing)  # (B*T, V) against (B*T,)
    return loss, (tgt_out != pad_id).sum()


class Seq2SeqObjective:
    """Rows of ``pair_rows(..., src_len, tgt_len)`` in; Σ teacher-forced cross-entropy over targets out.

    ``prepare(ids)`` -> (source, target-in, target-out); ``loss(model, batch)`` -> a
    :class:`~lmlab.protocols.LossOutput`: label-smoothed (ε = ``label_smoothing``) in training,
    with the unsmoothed sum as the metric ``nll``; unsmoothed in evaluation (see the module
    docstring), so exp(eval loss) is a per-target-token perplexity.
    """

    is_language_model = True  # the eval loss is -log P(y_t | y_<t, x) per target token, never smoothed

    def __init__(self, src_len: int, tgt_len: int, pad_id: int = 0, label_smoothing: float = 0.0) -> None:
        if src_len < 1 or tgt_len < 1:
            raise UsageError(f"src_len and tgt_len must be >= 1, got {src_len} and {tgt_len}")
        if not 0.0 <= label_smoothing < 1.0:
            raise UsageError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.src_len = src_len
        self.tgt_len = tgt_len
        self.pad_id = pad_id
        self.label_smoothing = label_smoothing

    def prepare(self, ids: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        return split_rows(ids, self.src_len, self.tgt_len, self.pad_id)

    def loss(self, model, batch: tuple[Tensor, Tensor, Tensor]) -> LossOutput:
        src, tgt_in, tgt_out = batch
        logits = model(src, tgt_in)  # (B, T, V)
        if not model.training:
            nll, count = seq2seq_loss_sum(logits, tgt_out, self.pad_id)
            return LossOutput(nll, count)
        loss, count = seq2seq_loss_sum(logits, tgt_out, self.pad_id, self.label_smoothing)
        if self.label_smoothing:
            with torch.no_grad():
                nll, _ = seq2seq_loss_sum(logits, tgt_out, self.pad_id)
        else:
            nll = loss.detach()
        return LossOutput(loss, count, metrics={"nll": nll})
