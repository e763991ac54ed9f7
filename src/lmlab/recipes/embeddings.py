"""The embeddings rows of ``lmlab demo``: word2vec SG and CBOW, GloVe and fastText on the demo's train sentences.

Each row reports WordSim-353 and SimLex-999 Spearman, Google-analogy accuracy (3CosAdd) on the
questions whose words are all in the vocabulary (with that coverage), and training seconds.
All use vector size 100, window 5 (GloVe 10), min-count 5, 2 threads; word2vec and fastText 5
negatives and sample 1e-3. Epoch counts are kept small so the four rows take about a minute on
two cores; a row is skipped (and says so) when the demo's time budget runs out.
"""

from __future__ import annotations

import time

from ..report import DemoData, DemoRow


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

    sentences = data.train_sentences
    seed = data.seed + 1
    plans = [
        ("word2vec SG (NS)", 12.0, lambda: Word2Vec(Word2VecConfig(sg=True, epochs=3, seed=seed)),
         "3 epochs"),
        ("word2vec CBOW (NS)", 6.0, lambda: Word2Vec(Word2VecConfig(sg=False, epochs=5, seed=seed)),
         "5 epochs"),
        ("GloVe", 15.0, lambda: GloVe(GloVeConfig(epochs=15, x_max=10.0, seed=seed)),
         "window 10, x_max 10 (small corpus), 15 epochs"),
        ("fastText SG", 15.0, lambda: FastText(FastTextConfig(sg=True, epochs=2, bucket=200_000, seed=seed)),
         "3..6-grams, 200k buckets, 2 epochs"),
    ]
    rows = []
    for name, needs, build, notes in plans:
        if data.seconds_left() < needs:
            rows.append(DemoRow("embeddings", name, {}, None, f"skipped: {data.seconds_left():.0f} s left"))
            continue
        start = time.monotonic()
        model = build().fit(sentences)
        seconds = time.monotonic() - start
        rows.append(_row(name, model.wv, seconds, notes))
    return rows
