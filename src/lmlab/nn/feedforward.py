"""Position-wise feed-forward network (Vaswani et al., 2017, §3.3).

    FFN(x) = act(x W_1 + b_1) W_2 + b_2

applied to each position separately and identically; the inner width d_ff is 4·d_model in
the paper (2048 for d_model = 512). The activation is a module passed in: ``nn.ReLU()`` for the
original Transformer, ``nn.GELU()`` for GPT-1/BERT, ``nn.GELU(approximate="tanh")`` for GPT-2
(``gelu_new`` in Hugging Face). The output dropout belongs to the residual wrapper around the
FFN (see :mod:`lmlab.nn.norms`), not to this module; ``hidden_dropout`` is the optional dropout
on the inner activations (tensor2tensor's "relu dropout"; 0 in the paper).
"""

from __future__ import annotations

from torch import Tensor, nn

from .dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: nn.Module, hidden_dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_ff, bias=bias)      # W_1: (C -> d_ff)
        self.activation = activation
        self.hidden_dropout = Dropout(hidden_dropout) if hidden_dropout > 0 else nn.Identity()
        self.fc_out = nn.Linear(d_ff, d_model, bias=bias)     # W_2: (d_ff -> C)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        return self.fc_out(self.hidden_dropout(self.activation(self.fc_in(x))))


def activation_module(name: str) -> nn.Module:
    """The activation named in a config: ``relu``, ``gelu`` (exact erf) or ``gelu_tanh`` (GPT-2)."""
    from ..errors import ConfigError

    table = {"relu": lambda: nn.ReLU(), "gelu": lambda: nn.GELU(),
             "gelu_tanh": lambda: nn.GELU(approximate="tanh")}
    if name not in table:
        raise ConfigError(f"unknown activation {name!r}; known: {', '.join(table)}")
    return table[name]()
