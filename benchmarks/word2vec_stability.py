"""Does Hogwild word2vec ever diverge? N seeds x 2 worker threads on a few million words (issue 20).

Skip-gram, negative 5, window 5, min-count 5, sample 1e-3, the given epochs, 2 workers: the
setting in which 2 of 6 runs once diverged (NaN loss, or vector norms of 1e8) before the
sigma-table index was clamped. For each seed the script reports the loss per epoch, the
largest vector norm and whether any vector holds NaN/inf; a run that diverges stops with
lmlab's DivergenceError, which is counted. Not a timing benchmark: the machine may be shared.

    .venv/bin/python benchmarks/word2vec_stability.py [--corpus wiki-vital] [--seeds 10] [--epochs 1] \
        [--max-words 3000000] [--out benchmarks/results/word2vec_stability.md]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-words", type=int, default=3_000_000)
    ap.add_argument("--out", default="benchmarks/results/word2vec_stability.md")
    args = ap.parse_args()

    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences
    from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig
    from lmlab.errors import DivergenceError

    sentences, n = [], 0
    for s in word_sentences(sources.load(args.corpus).documents):
        sentences.append(s)
        n += len(s)
        if n >= args.max_words:
            break
    rows, diverged = [], 0
    for seed in range(1, args.seeds + 1):
        cfg = Word2VecConfig(sg=True, negative=5, window=5, min_count=5, sample=1e-3, epochs=args.epochs,
                             workers=args.workers, seed=seed)
        t0 = time.perf_counter()
        try:
            model = Word2Vec(cfg).fit(sentences)
            norms = np.linalg.norm(model.syn0, axis=1)
            losses = " -> ".join(f"{h.loss:.4f}" for h in model.history)
            rows.append(f"| {seed} | {losses} | {norms.max():.2f} | {int((~np.isfinite(model.syn0)).any(1).sum())} "
                        f"| no | {time.perf_counter() - t0:.0f} |")
        except DivergenceError as err:
            diverged += 1
            rows.append(f"| {seed} | {err} | - | - | **yes** | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# word2vec stability under Hogwild (benchmarks/word2vec_stability.py)", "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/word2vec_stability.py', '--corpus', args.corpus, '--seeds', str(args.seeds), '--epochs', str(args.epochs), '--max-words', str(args.max_words)])}`",
        "", f"{n:,} words of {args.corpus}, skip-gram, negative 5, window 5, min-count 5, sample 1e-3, "
        f"{args.epochs} epoch(s), {args.workers} worker threads; {diverged} of {args.seeds} runs diverged.", "",
        "| seed | loss per epoch | max vector norm | NaN/inf vectors | diverged | seconds |",
        "|---|---|---|---|---|---|", *rows, ""])
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{diverged} of {args.seeds} runs diverged; wrote {args.out}")


if __name__ == "__main__":
    main()
