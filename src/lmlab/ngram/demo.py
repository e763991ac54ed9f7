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

import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass

from . import build
from .smoothing import METHODS

DEMO_MODELS = [("MKN 3-gram", 3, "mkn"), ("MKN 5-gram", 5, "mkn"),
               ("add-one bigram", 2, "add-one"), ("Katz trigram", 3, "katz")]


def run_demo(data) -> list:
    """Demo rows (``lmlab.report.DemoRow``) for the statistical n-gram models."""
    from ..report import DemoRow

    vocab = [w for w in data.vocab if w != "<pad>"]  # <pad> is never predicted (nor is <s>)
    rows = []
    for label, order, method in DEMO_MODELS:
        if data.seconds_left() < 5:
            break
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


def closed_vocabulary(sentences, min_count: int = 2) -> list[str]:
    counts = Counter(w for s in sentences for w in s)
    return ["<unk>", "<s>", "</s>"] + sorted(w for w, c in counts.items() if c >= min_count)


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


def comparison_markdown(rows: list[ComparisonRow]) -> str:
    """One table: a row per method, a column per (order, training words)."""
    cols = sorted({(r.order, r.train_words) for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    cell = {(r.method, r.order, r.train_words): r.perplexity for r in rows}
    head = "| method | " + " | ".join(f"{o}-gram, {w:,} words" for o, w in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for m in methods:
        vals = []
        for o, w in cols:
            v = cell.get((m, o, w))
            vals.append("-" if v is None else (f"{v:.1f}" if math.isfinite(v) and v < 1e7 else "inf"))
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_comparison(rows: list[ComparisonRow], path) -> bool:
    """Perplexity vs training words, one line per method and order (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len({r.order for r in rows}), figsize=(12, 5), squeeze=False)
    for ax, order in zip(axes[0], sorted({r.order for r in rows})):
        for m in dict.fromkeys(r.method for r in rows):
            pts = sorted((r.train_words, r.perplexity) for r in rows if r.method == m and r.order == order)
            if pts and all(math.isfinite(p) and p < 1e5 for _, p in pts):
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
        ax.set_xscale("log")
        ax.set_xlabel("training words")
        ax.set_ylabel("test perplexity")
        ax.set_title(f"{order}-gram")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
