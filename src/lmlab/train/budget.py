"""A hard time limit for one ``lmlab demo`` family, checked between optimiser steps, epochs, chunks or models.

Each family's recipe plans its own training time from ``data.deadline``; a recipe that plans badly
(or a machine that is slower than it assumed) would overrun ``--budget``. :func:`stop_training_at`
sets a wall-clock limit for the duration of a ``with`` block, enforced in two ways:

- every :meth:`lmlab.train.trainer.Trainer.train_step` started after the limit raises
  :class:`OverBudget` instead of stepping (the last resort: the family's rows are replaced by a
  "stopped" row). The check runs before a step begins, so nothing is stopped halfway through an
  update or a file write; the Trainer itself is not changed (the guard wraps ``train_step`` on the
  class while the block runs and restores the original method on the way out, also when it raises);
- loops outside the Trainer (the n-gram and adaptive models of a family, the embedding trainers'
  epochs and chunks) ask :func:`time_up` between units of work and stop there, keeping what is done:
  the row then says it was cut. :func:`seconds_left` gives a recipe the time to its hard limit, to
  split it between the models it trains.

Outside a block there is no limit: :func:`time_up` is False and :func:`seconds_left` infinite.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

from ..errors import LmlabError

_limits: list[float] = []  # the deadlines of the active blocks (time.monotonic() values), innermost last


class OverBudget(LmlabError):
    """A family's training went past its hard time limit."""


def seconds_left() -> float:
    """Seconds to the innermost active hard limit (``inf`` when none is set)."""
    return _limits[-1] - time.monotonic() if _limits else math.inf


def time_up() -> bool:
    """True once the innermost active hard limit has passed (never outside :func:`stop_training_at`)."""
    return seconds_left() <= 0


def stop_after(seconds: float):
    """A ``stop()`` callback for a loop that may take ``seconds`` (or to the active hard limit, if sooner)."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline or time_up()


@contextmanager
def stop_training_at(deadline: float, what: str):
    """Within the block, ``Trainer.train_step`` raises :class:`OverBudget` once ``time.monotonic() >= deadline``,
    and :func:`time_up` turns True."""
    from .trainer import Trainer

    original = Trainer.train_step

    def guarded(self) -> dict[str, float]:
        if time.monotonic() >= deadline:
            raise OverBudget(f"{what}: stopped at its hard time limit, before optimiser step {self.step + 1}")
        return original(self)

    Trainer.train_step = guarded
    _limits.append(deadline)
    try:
        yield
    finally:
        _limits.pop()
        Trainer.train_step = original
