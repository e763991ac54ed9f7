"""The n-gram rows of ``lmlab demo`` and the Chen & Goodman style method comparison.

:func:`run_demo` builds modified Kneser-Ney 3- and 5-grams (KenLM's estimator) and
two classic baselines (add-one bigram, Katz trigram) on the demo's training
sentences with its closed vocabulary, and reports test perplexity (``</s>``
counted, ``<s>`` not, OOVs scored as ``<unk>``) and the OOV count.

:func:`compare_methods` reproduces the comparison of Chen & Goodman (1998): test
perplexity of every method x order x training size on one corpus, with a fixed
closed vocabulary (words seen at least ``min_count`` times in the full training
split, the rest ``<unk>``), so numbers in one column are comparable.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

from ..data.vocab import closed_vocabulary
from ..ngram import build
from ..ngram.smoothing import METHODS

DEMO_MODELS = [("MKN 3-gram", 3, "mkn"), ("MKN 5-gram", 5, "mkn"),
               ("add-one bigram", 2, "add-one"), ("Katz trigram", 3, "katz")]


def run_demo(data) -> list:
    """Demo rows (``lmlab.report.DemoRow``) for the statistical n-gram models."""
    from ..report import DemoRow
    from ..train.budget import time_up

    vocab = [w for w in data.vocab if w != "<pad>"]  # <pad> is never predicted (nor is <s>)
    rows = []
    for label, order, method in DEMO_MODELS:
        if data.seconds_left() < 5 or time_up():  # lmlab demo's hard limit stops it between models
            rows.append(DemoRow("statistical", label, notes="skipped: its time share was spent"))
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build(data.train_sentences, order, method, vocab=vocab, heldout=data.valid_sentences)
        seconds = time.perf_counter() - start
        ev = model.evaluate(data.test_sentences)
        rows.append(DemoRow(
            family="statistical",
            model=label,
            metrics={"test ppl": ev.perplexity, "test ppl excl. OOV": ev.perplexity_no_oov,
                     "OOVs": float(ev.oovs), "bits/word": ev.bits_per_word,
                     "n-grams": float(sum(model.sizes()))},
            train_seconds=seconds,
            notes=f"lmlab.ngram {METHODS[method]}; {ev.tokens} test tokens incl. </s>",
        ))
    return rows


@dataclass
class ComparisonRow:
    method: str
    order: int
    train_words: int
    perplexity: float
    perplexity_no_oov: float
    oovs: int
    tokens: int
    seconds: float


def compare_methods(train, valid, test, methods=None, orders=(2, 3), fractions=(0.1, 0.3, 1.0),
                    min_count: int = 2, progress=None) -> list[ComparisonRow]:
    """Test perplexity of each method x order x training size (first fraction of the training sentences)."""
    methods = list(methods or [m for m in METHODS if m != "mle"])
    vocab = closed_vocabulary(train, min_count)
    rows = []
    for frac in fractions:
        subset = train[: max(1, round(len(train) * frac))]
        words = sum(len(s) for s in subset)
        for method in methods:
            for order in orders:
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = build(subset, order, method, vocab=vocab, heldout=valid)
                ev = model.evaluate(test)
                row = ComparisonRow(method, order, words, ev.perplexity, ev.perplexity_no_oov,
                                    ev.oovs, ev.tokens, time.perf_counter() - start)
                rows.append(row)
                if progress:
                    progress(row)
    return rows
