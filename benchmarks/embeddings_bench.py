"""lmlab's word2vec / fastText / GloVe side by side with gensim, in one process, on the same corpus.

Same settings for both (issue 5): vector size 100, window 5, negative 5, min-count 5, sample 1e-3,
5 epochs, 2 worker threads; fastText with char 3..6-grams in 2,000,000 buckets. Runs alternate
lmlab / gensim for each seed so that machine load hits both alike. Wall time includes building
the vocabulary (gensim: ``build_vocab`` + ``train``; lmlab: ``fit``). "Effective words/s" counts the
words trained after sub-sampling, as gensim's log line does. Quality is measured by the same
evaluator (lmlab.embeddings.evaluate) for both: WS353 and SimLex-999 Spearman, Google analogies
(3CosAdd, questions fully in the vocabulary).

GloVe: there is no GloVe in gensim, and the Stanford GloVe C tool is not available from a package
registry here (no Debian/PyPI package builds it), so GloVe is timed and scored on its own.

    .venv/bin/python benchmarks/embeddings_bench.py [--corpus wiki-vital] [--seeds 3] \
        [--models sg,cbow,ft-sg,glove] [--out benchmarks/results/embeddings.md]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np

SETTINGS = {"vector_size": 100, "window": 5, "negative": 5, "min_count": 5, "sample": 1e-3, "epochs": 5, "workers": 2}


def quality(words, vectors) -> dict[str, float]:
    from lmlab.embeddings.evaluate import evaluate_all
    from lmlab.embeddings.vectors import Vectors

    return evaluate_all(Vectors(words, vectors)).summary()


def run_lmlab(kind: str, sentences, seed: int):
    from lmlab.embeddings.fasttext import FastText, FastTextConfig
    from lmlab.embeddings.glove import GloVe, GloVeConfig
    from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig

    t0 = time.perf_counter()
    if kind == "glove":
        model = GloVe(GloVeConfig(vector_size=100, window=10, min_count=5, epochs=25, workers=2, seed=seed))
        model.fit(sentences)
        wall = time.perf_counter() - t0
        wv = model.wv
        return wall, float("nan"), wv.words, wv.vectors
    if kind == "ft-sg":
        model = FastText(FastTextConfig(sg=True, seed=seed, bucket=2_000_000, **SETTINGS))
    else:
        model = Word2Vec(Word2VecConfig(sg=kind == "sg", seed=seed, **SETTINGS))
    model.fit(sentences)
    wall = time.perf_counter() - t0
    effective = sum(h.words for h in model.history)
    wv = model.wv
    return wall, effective / wall, wv.words, wv.vectors


def run_gensim(kind: str, sentences, seed: int):
    from gensim.models import FastText as GFastText
    from gensim.models import Word2Vec as GWord2Vec

    t0 = time.perf_counter()
    s = dict(SETTINGS)
    epochs = s.pop("epochs")
    if kind == "ft-sg":
        model = GFastText(sg=1, seed=seed, min_n=3, max_n=6, bucket=2_000_000, **s)
    else:
        model = GWord2Vec(sg=int(kind == "sg"), seed=seed, **s)
    model.build_vocab(sentences)
    effective, _raw = model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    wall = time.perf_counter() - t0
    return wall, effective / wall, list(model.wv.index_to_key), np.asarray(model.wv.vectors)


def mean_sd(values) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="wiki-vital")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default="sg,cbow,ft-sg,glove")
    parser.add_argument("--out", default=None, help="Also write the markdown section here.")
    args = parser.parse_args()

    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences

    sentences = word_sentences(sources.load(args.corpus).split().train)
    n_words = sum(len(s) for s in sentences)
    try:
        import gensim

        gensim_version = gensim.__version__
    except ImportError:
        gensim_version = None
    load_before = os.getloadavg()
    # compile (or load from cache) the kernels before timing anything
    from lmlab.embeddings.fasttext import FastText, FastTextConfig
    from lmlab.embeddings.glove import GloVe, GloVeConfig
    from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig

    warm = sentences[:200]
    for sg in (True, False):
        Word2Vec(Word2VecConfig(sg=sg, min_count=1, epochs=1)).fit(warm)
        FastText(FastTextConfig(sg=sg, min_count=1, epochs=1, bucket=1000)).fit(warm)
    GloVe(GloVeConfig(min_count=1, epochs=1)).fit(warm)

    results: dict[tuple[str, str], list] = {}
    for kind in args.models.split(","):
        for seed in range(1, args.seeds + 1):
            tools = ["lmlab"] + (["gensim"] if gensim_version and kind != "glove" else [])
            if seed % 2 == 0:
                tools.reverse()  # alternate who runs first
            for tool in tools:
                wall, wps, words, vectors = (run_lmlab if tool == "lmlab" else run_gensim)(kind, sentences, seed)
                q = quality(words, vectors)
                results.setdefault((kind, tool), []).append((wall, wps, q))
                print(f"{kind:6s} {tool:6s} seed {seed}: {wall:6.2f} s, {wps:,.0f} eff. words/s, "
                      + ", ".join(f"{k} {v:.3f}" for k, v in q.items()), flush=True)
    load_after = os.getloadavg()

    names = {"sg": "word2vec SG", "cbow": "word2vec CBOW", "ft-sg": "fastText SG", "glove": "GloVe (window 10, 25 epochs)"}
    intro = (
        f"Corpus `{args.corpus}` train split: {len(sentences):,} sentences, {n_words:,} tokens. "
        f"gensim {gensim_version}. Settings: size 100, window 5, negative 5, min-count 5, sample 1e-3, "
        f"5 epochs, 2 workers; {args.seeds} seeds each, lmlab and gensim alternating. "
        f"Machine: 2 cores shared with other jobs (load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after), so wall times are noisy; the ratio is taken per seed pair."
    )
    lines = [
        intro,
        "",
        "| model | tool | wall s (median) | eff. words/s (median) | lmlab/gensim wall | WS353 ρ | SimLex ρ | analogy acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in args.models.split(","):
        for tool in ("lmlab", "gensim"):
            runs = results.get((kind, tool))
            if not runs:
                continue
            walls = [r[0] for r in runs]
            ratio = "-"
            if tool == "lmlab" and (kind, "gensim") in results:
                pairs = [a[0] / b[0] for a, b in zip(runs, results[(kind, "gensim")])]
                ratio = f"{statistics.median(pairs):.2f}x (per seed: {', '.join(f'{p:.2f}' for p in pairs)})"
            wps = [r[1] for r in runs if r[1] == r[1]]
            lines.append(
                f"| {names[kind]} | {tool} | {statistics.median(walls):.2f} | "
                f"{f'{statistics.median(wps):,.0f}' if wps else '-'} | {ratio} | "
                f"{mean_sd([r[2]['ws353 spearman'] for r in runs])} | {mean_sd([r[2]['simlex spearman'] for r in runs])} | "
                f"{mean_sd([r[2]['analogy acc'] for r in runs])} |")
    coverage = next(iter(results.values()))[0][2]["analogy coverage"]
    lines.append("")
    lines.append(f"Analogy accuracy is over the {100 * coverage:.1f}% of the 19,544 questions whose words are all in "
                 "the vocabulary (the same questions for both tools); ± is the standard deviation over seeds.")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("## Static embeddings (issue 5)\n\n")
            f.write("Command: `.venv/bin/python benchmarks/embeddings_bench.py "
                    f"--corpus {args.corpus} --seeds {args.seeds} --models {args.models} --out {args.out}`\n\n")
            f.write(text)


if __name__ == "__main__":
    main()
