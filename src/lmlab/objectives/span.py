"""SpanBERT's span boundary objective (Joshi et al., 2020, §3.2).

Each token x_i of a masked span (x_s, ..., x_e) is predicted a second time, from the encoder
outputs at the two boundary tokens and the token's relative position inside the span only:

    y_i = f(x_{s-1}, x_{e+1}, p_{i-s+1})                    (the head: ``models.bert.SpanBoundaryHead``)
    L(x_i) = L_MLM(x_i) + L_SBO(x_i) = -log P(x_i | x_i) - log P(x_i | y_i)

The spans come from ``masking.select_spans`` (geometric lengths over whole words); their
boundary positions from ``masking.span_boundaries``. This file holds the loss; the masking and
the head live where they belong. Not here: T5-style span corruption.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from .masking import span_boundaries

__all__ = ["sbo_loss_sum", "span_boundaries"]


def sbo_loss_sum(sbo_logits: Tensor | None, labels: Tensor) -> Tensor:
    """Σ_i -log P(x_i | y_i) over the span tokens; ``sbo_logits`` (N, V), labels (N,)."""
    if sbo_logits is None:
        raise UsageError("the model returned no SBO logits: build it with span_boundary_head=True "
                         "(preset spanbert-*) and pass span boundaries")
    return F.cross_entropy(sbo_logits.float(), labels, reduction="sum")
