"""How a demo row pays for scoring the test stream before it trains (:func:`plan_scoring`).

Shared by the rows of :mod:`lmlab.recipes.demos` and the GPT row (:mod:`lmlab.recipes.gpt`): the
time spent scoring the whole test stream is measured up front on a twentieth of it; when it would
take more than 30% of the share, every k-th test sentence is scored instead (the same counting
rule on a systematic sample of the stream; the row's notes say so, :func:`scored_note`).
"""

from __future__ import annotations

import math
import time

from ..report import DemoData

TRAIN_SHARE = 0.6  # at most this part of the family's time trains; scoring the whole test stream follows
SCORE_SHARE = 0.3  # scoring may take this part of the share; beyond it a systematic sample of the test sentences
PROBE = 20         # the scoring time is estimated up front from 1/PROBE of the test sentences


def plan_scoring(data: DemoData, budget: float, model, score, train_share: float = TRAIN_SHARE) -> tuple[float, int]:
    """(seconds left for training, stride of the scored test sentences) once the scoring is paid for.

    ``score(sentences)`` is timed on every PROBE-th test sentence (with the untrained model: the
    same cost) and scaled up, with a quarter to spare. When scoring the whole test stream would
    take more than ``SCORE_SHARE`` of the share, every ``stride``-th test sentence is scored instead
    (same counting rule, a systematic sample of the same stream; the row says so). Training gets
    the share's rest, at most ``train_share`` of it."""
    began = time.monotonic()
    sample = data.test_sentences[::PROBE] or data.test_sentences
    model.eval()
    score(sample)
    model.train()
    per_sentence = (time.monotonic() - began) / max(len(sample), 1) * 1.25
    stride = max(1, math.ceil(per_sentence * len(data.test_sentences) / (SCORE_SHARE * budget)))
    scoring = per_sentence * len(data.test_sentences[::stride])
    return min(train_share * budget, data.seconds_left() - scoring - 0.1 * budget), stride


def scored_note(data: DemoData, stride: int) -> str:
    """What a row adds to its notes when it scored every ``stride``-th test sentence ("" for all of them)."""
    if stride == 1:
        return ""
    return (f"; scored on every {stride}th test sentence ({len(data.test_sentences[::stride]):,} of "
            f"{len(data.test_sentences):,}: the whole stream would not fit its time share)")
