"""Next-word prediction from fixed windows (Bengio et al., 2003): the NNLM's objective.

A batch row is ``n`` word ids (``lmlab.models.nnlm.ngram_windows``, served by
:class:`lmlab.data.stream.WindowBatches`): the first ``n - 1`` are the context, the last the
target; the loss is the model's output-layer loss (full softmax or one of its speed-ups), summed.
"""

from __future__ import annotations

import torch
from torch import Tensor


class WindowObjective:
    """Next-word prediction from a window row: context = row[:-1], target = row[-1]."""

    is_language_model = True  # the loss is next-token cross-entropy: exp(eval loss) is a perplexity

    stateful = False

    def prepare(self, ids: Tensor, generator: torch.Generator) -> Tensor:
        return ids

    def loss(self, model, batch: Tensor):
        n = batch.shape[0]
        return model.loss(batch[:, :-1], batch[:, -1]) * n, n
