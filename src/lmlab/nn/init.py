"""Weight initialisation by a normal distribution, and parameter counting.

    W ~ N(0, std²) for every Linear and Embedding weight,  b = 0,  LayerNorm (γ, β) = (1, 0)

The initialiser of GPT-1 (Radford et al., 2018, §4.1: "a simple weight initialization of
N(0, 0.02) was sufficient"), GPT-2, BERT (Devlin et al., 2019; ``initializer_range = 0.02`` in the
released configs), ALBERT and ELECTRA. An embedding's padding row (``padding_idx``) is zeroed, as
``nn.Embedding`` itself does at construction. What a family adds on top (GPT-2's 1/√(2·n_layers)
residual scaling, ELECTRA's RTD bias prior) stays in its model file.

Not here: the Transformer's Xavier-uniform initialisation (``models/transformer.py``).
"""

from __future__ import annotations

import torch
from torch import nn


def normal_init(module: nn.Module, std: float) -> None:
    """N(0, std) weights, zero biases, LayerNorm (1, 0), in place, for every sub-module of ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters (a tensor shared by several sub-modules, as in ALBERT, counted once)."""
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
