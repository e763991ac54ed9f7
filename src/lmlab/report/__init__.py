"""The lineage comparison: every family's demo rows in one table (and plots).

A family takes part in ``lmlab demo`` through its registry row's ``demo`` (a recipe's
``run_demo(data: DemoData) -> list[DemoRow]``); :mod:`lmlab.report.tables` and
:mod:`lmlab.report.plots` turn the rows into the report.
All perplexities are per word on the same word-level test stream
(``data.test_sentences``: sentence-split, word-tokenized, lowercased; ``</s>``
predicted and counted once per sentence, ``<s>`` context only, OOVs mapped to
``<unk>`` of the closed training vocabulary ``data.vocab``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoData:
    """What every family gets in the demo: one corpus, one split, one vocabulary."""

    corpus_name: str
    train_documents: list          # list[lmlab.data.corpus.Document]
    valid_documents: list
    test_documents: list
    train_sentences: list[list[str]]   # lowercased word tokens, one list per sentence
    valid_sentences: list[list[str]]
    test_sentences: list[list[str]]
    vocab: list[str]               # closed vocabulary (includes <unk>, <s>, </s>)
    out_dir: Path
    seed: int = 0
    deadline: float = float("inf")  # time.monotonic() value the demo must end by

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class DemoRow:
    """One row of the lineage table."""

    family: str                    # "statistical", "neural LM", "embeddings", "transformer", ...
    model: str                     # e.g. "MKN 5-gram"
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"test ppl": 231.4}
    train_seconds: float | None = None
    notes: str = ""                # what the model is (the report's card says it)
    year: int | None = None        # year of the paper; else placed by name (lmlab.report.records.LINEAGE)
    verified: str = ""             # how the number was checked (parity, sums to 1, ...)
    config: dict = field(default_factory=dict)
    parameters: int | None = None
    log: str | None = None         # a metrics.jsonl with the run's loss curve
