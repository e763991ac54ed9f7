"""A hard time limit for one ``lmlab demo`` family, checked between optimiser steps.

Each family's recipe plans its own training time from ``data.deadline``; a recipe that plans badly
(or a machine that is slower than it assumed) would overrun ``--budget``. :func:`stop_training_at`
makes every :meth:`lmlab.train.trainer.Trainer.train_step` started after a wall-clock limit raise
:class:`OverBudget` instead of stepping, for the duration of a ``with`` block. The check runs
before a step begins, so nothing is stopped halfway through an update or a file write (the
Trainer writes checkpoints inside a step that has already passed the check, atomically); the demo
catches the exception and reports the family as stopped, with the reason.

The Trainer itself is not changed: the guard wraps ``train_step`` on the class while the block
runs and restores the original method on the way out (also when the block raises).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ..errors import LmlabError


class OverBudget(LmlabError):
    """A family's training went past its hard time limit."""


@contextmanager
def stop_training_at(deadline: float, what: str):
    """Within the block, ``Trainer.train_step`` raises :class:`OverBudget` once ``time.monotonic() >= deadline``."""
    from .trainer import Trainer

    original = Trainer.train_step

    def guarded(self) -> dict[str, float]:
        if time.monotonic() >= deadline:
            raise OverBudget(f"{what}: stopped at its hard time limit, before optimiser step {self.step + 1}")
        return original(self)

    Trainer.train_step = guarded
    try:
        yield
    finally:
        Trainer.train_step = original
