"""The embeddings rows of ``lmlab demo``: word2vec SG and CBOW, GloVe and fastText on the demo's train sentences.

Each row reports WordSim-353 and SimLex-999 Spearman, Google-analogy accuracy (3CosAdd) on the
questions whose words are all in the vocabulary (with that coverage), and training seconds.
All use vector size 100, window 5 (GloVe 10), min-count 5, 2 threads; word2vec and fastText 5
negatives and sample 1e-3. Epoch counts are kept small so the four rows take about a minute on
two cores. The family's hard time limit (:mod:`lmlab.train.budget`) is split evenly between the
models still to train: one that reaches its part stops between chunks or epochs, its row saying how
far it got (so a small share, as ``lmlab demo --small`` gives, still yields all four rows, each cut
short); a row is skipped (and says so) only when less than :data:`MIN_SECONDS` are left.
"""

from __future__ import annotations

import time

from ..report import DemoData, DemoRow

MIN_SECONDS = 2.0  # below this a model is not started (its row says it was skipped)


def _row(name: str, wv, seconds: float, notes: str) -> DemoRow:
    from ..embeddings.evaluate import evaluate_all

    report = evaluate_all(wv)
    total = report.analogy.total
    return DemoRow(
        family="embeddings", model=name,
        metrics={"WS353 ρ": report.ws353.spearman, "SimLex ρ": report.simlex.spearman,
                 "analogy acc": total.accuracy, "analogy coverage": total.total / max(total.total + total.oov, 1)},
        train_seconds=seconds, notes=notes)


def run_demo(data: DemoData) -> list[DemoRow]:
    from ..embeddings.fasttext import FastText, FastTextConfig
    from ..embeddings.glove import GloVe, GloVeConfig
    from ..embeddings.word2vec import Word2Vec, Word2VecConfig
    from ..train import budget

    sentences = data.train_sentences
    seed = data.seed + 1
    plans = [
        ("word2vec SG (NS)", lambda: Word2Vec(Word2VecConfig(sg=True, epochs=3, seed=seed)),
         "3 epochs"),
        ("word2vec CBOW (NS)", lambda: Word2Vec(Word2VecConfig(sg=False, epochs=5, seed=seed)),
         "5 epochs"),
        ("GloVe", lambda: GloVe(GloVeConfig(epochs=15, x_max=10.0, seed=seed)),
         "window 10, x_max 10 (small corpus), 15 epochs"),
        ("fastText SG", lambda: FastText(FastTextConfig(sg=True, epochs=2, bucket=200_000, seed=seed)),
         "3..6-grams, 200k buckets, 2 epochs"),
    ]
    rows = []
    for i, (name, build, notes) in enumerate(plans):
        if data.seconds_left() < MIN_SECONDS or budget.time_up():
            rows.append(DemoRow("embeddings", name, {}, None, f"skipped: {data.seconds_left():.0f} s left"))
            continue
        # the family's hard limit (lmlab demo) is split evenly between the models still to train;
        # a model that reaches its part stops between chunks (GloVe: epochs) and its row says so
        stop = budget.stop_after(budget.seconds_left() / (len(plans) - i))
        start = time.monotonic()
        model = build().fit(sentences, stop=stop)
        seconds = time.monotonic() - start
        done = sum(getattr(h, "fraction", 1.0) for h in model.history)  # GloVe's history: one cost per epoch
        if done == 0:
            rows.append(DemoRow("embeddings", name, {}, None, "skipped: its time share was spent"))
            continue
        row = _row(name, model.wv, seconds, notes)
        if done < model.config.epochs:
            row.notes += f"; cut at its time limit after {done:.2f} of {model.config.epochs} epochs"
        rows.append(row)
    return rows
