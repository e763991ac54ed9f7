"""Learning-rate schedules: constant, linear warm-up + linear decay, cosine, and "Noam".

A schedule here is a pure function of the optimiser step, so its whole state is
the step counter the Trainer already checkpoints; nothing else needs saving.

Step convention: ``lr_at(step)`` is the learning rate used for the ``step``-th
optimiser update, counting from 1 (the Transformer paper's ``step_num`` starts at 1
too; at 0 its formula is undefined).

- ``constant``: ``lr`` (after an optional linear warm-up).
- ``linear``:  ``lr · step / warmup`` while ``step ≤ warmup``, then a straight line
  down to ``min_lr`` at ``total_steps`` (BERT, GPT fine-tuning).
- ``cosine``:  the same warm-up, then ``min_lr + ½ (lr − min_lr) (1 + cos(π p))`` with
  ``p = (step − warmup) / (total_steps − warmup)`` (Loshchilov & Hutter, SGDR, without restarts).
- ``noam``: Vaswani et al. (2017), "Attention is all you need", §5.3, eq. (3)::

      lrate = d_model^-0.5 · min(step_num^-0.5, step_num · warmup_steps^-1.5)

  multiplied by ``lr`` as a scale factor (``lr = 1`` gives the paper's formula; the
  paper uses ``warmup_steps = 4000``). It rises linearly for ``warmup`` steps and then
  decays as the inverse square root of the step.

What this file does not do: restarts (SGDR cycles), per-group schedules (every group
gets the same factor, applied to its own base lr ratio by the Trainer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

SCHEDULES = ("constant", "linear", "cosine", "noam")


@dataclass(frozen=True)
class Schedule:
    """``lr_at(step)`` for one of :data:`SCHEDULES`; see the module docstring for the formulas."""

    name: str
    lr: float
    warmup_steps: int = 0
    total_steps: int = 0
    min_lr: float = 0.0
    d_model: int = 0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.name!r}; known: {', '.join(SCHEDULES)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"schedule: warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.name == "noam":
            if self.d_model <= 0:
                raise ConfigError("schedule 'noam' needs train.d_model > 0 (the model width)")
            if self.warmup_steps <= 0:
                raise ConfigError("schedule 'noam' needs train.warmup_steps > 0")
        if self.name in ("linear", "cosine") and self.total_steps <= self.warmup_steps:
            raise ConfigError(
                f"schedule {self.name!r}: total steps ({self.total_steps}) must exceed "
                f"warmup_steps ({self.warmup_steps})"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser update number ``step`` (1-based)."""
        step = max(int(step), 1)
        if self.name == "noam":
            return self.lr * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup_steps ** -1.5)
        if self.warmup_steps and step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        if self.name == "constant":
            return self.lr
        span = self.total_steps - self.warmup_steps
        progress = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        if self.name == "linear":
            return self.lr + (self.min_lr - self.lr) * progress
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    __call__ = lr_at
