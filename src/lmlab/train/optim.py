"""LAMB: layer-wise adaptive moments for large-batch training (You et al., 2020, "Large Batch
Optimization for Deep Learning: Training BERT in 76 minutes", Algorithm 2), the optimiser of the
ALBERT paper (Lan et al., 2020, §4.1).

For every parameter tensor x (a "layer" in the paper) with gradient g, at step t:

    m_t = β1 m_{t-1} + (1 - β1) g            v_t = β2 v_{t-1} + (1 - β2) g²
    m̂_t = m_t / (1 - β1^t)                   v̂_t = v_t / (1 - β2^t)
    r_t = m̂_t / (√v̂_t + ε) + λ x             (the Adam direction plus decoupled weight decay)
    x  ← x - η · (‖x‖ / ‖r_t‖) · r_t           (the trust ratio; 1 when either norm is 0)

so each tensor moves by η·‖x‖ whatever the scale of its gradient — the property that lets the
paper raise BERT's batch to 32k. φ is the identity (the paper allows clipping it); the trust ratio
is applied to every tensor, biases and LayerNorm gains included, and weight decay follows the
Trainer's parameter groups (none on biases and norms). Selected in a run file with
``[train] optimizer = "lamb"``; its state (m, v, step) checkpoints like AdamW's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01) -> None:
        if lr < 0.0:
            raise ConfigError(f"lamb: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ConfigError(f"lamb: betas must be in [0, 1), got {tuple(betas)}")
        if eps <= 0.0:
            raise ConfigError(f"lamb: eps must be > 0, got {eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @staticmethod
    def trust_ratio(weight_norm: Tensor, update_norm: Tensor) -> Tensor:
        """‖x‖ / ‖r‖, or 1 when either is zero (a fresh zero-initialised bias, a zero update)."""
        ok = (weight_norm > 0) & (update_norm > 0)
        return torch.where(ok, weight_norm / update_norm.clamp(min=torch.finfo(update_norm.dtype).tiny),
                           torch.ones_like(weight_norm))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for x in group["params"]:
                if x.grad is None:
                    continue
                if x.grad.is_sparse:
                    raise ConfigError("lamb does not support sparse gradients")
                state = self.state[x]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(x, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(x, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(x.grad, 1.0 - beta1)                                 # m_t
                v.mul_(beta2).addcmul_(x.grad, x.grad, value=1.0 - beta2)    # v_t
                m_hat = m / (1.0 - beta1 ** t)
                v_hat = v / (1.0 - beta2 ** t)
                r = m_hat.div_(v_hat.sqrt_().add_(group["eps"]))             # Adam direction
                if group["weight_decay"] != 0.0:
                    r.add_(x, alpha=group["weight_decay"])                  # + λ x
                ratio = self.trust_ratio(x.norm(), r.norm())
                x.sub_(r.mul_(ratio * group["lr"]))
        return loss
