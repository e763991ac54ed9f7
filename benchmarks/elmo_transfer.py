"""ELMo vs static word vectors (vs a fine-tuned BERT) as features for rotten-tomatoes and NER,
through the same code paths as ``lmlab finetune`` (so the numbers are those of the CLI).

    PYTHONPATH=src .venv/bin/python benchmarks/elmo_transfer.py --elmo runs/elmo/model --corpus wiki-vital \\
        --seeds 3 --cache /work/cache/r3-elmo --out benchmarks/results/elmo_transfer.md

Rows (each for seeds 0 .. N-1; the seed is the head's initialisation and the batch order):

- ELMo (frozen) features with ``--layers`` all (the learned scalar mix), top, and each single
  layer: rotten-tomatoes through :func:`lmlab.recipes.elmo.finetune_classifier` (linear head on the
  mean of the mix), NER (``--ner``, default wnut16) through :func:`lmlab.recipes.elmo.finetune_tagger`
  (linear per-token head);
- word2vec (CBOW), fastText (skip-gram with subwords) and GloVe, trained by lmlab on the corpus's
  training split with the ELMo's feature width (cached as word2vec text under ``--cache``), frozen,
  under the same heads (``lmlab finetune --vectors``'s code path, and the tagger on the table);
- ``--bert DIR``: a pretrained BERT folder fine-tuned end to end (``lmlab finetune DIR``'s path).

Prints a markdown table (mean, min–max over the seeds) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elmo_compare import show, table_lines  # noqa: E402

from lmlab.recipes import elmo as elmo_recipe  # noqa: E402
from lmlab.tasks import tagging  # noqa: E402
from lmlab.tasks.classification import FinetuneSpec  # noqa: E402


def static_vectors(kind: str, corpus: str, dim: int, cache: Path) -> Path:
    """A word2vec-text file of ``kind`` vectors trained on ``corpus``'s training split (cached)."""
    path = cache / f"{kind}-{corpus}-{dim}.txt"
    if path.is_file():
        return path
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences

    sentences = word_sentences(sources.load(corpus).split().train)
    if kind == "word2vec":
        from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig

        model = Word2Vec(Word2VecConfig(vector_size=dim, min_count=2, epochs=5, workers=1, seed=1))
    elif kind == "fasttext":
        from lmlab.embeddings.fasttext import FastText, FastTextConfig

        model = FastText(FastTextConfig(vector_size=dim, min_count=2, epochs=5, workers=1, seed=1))
    else:
        from lmlab.embeddings.glove import GloVe, GloVeConfig

        model = GloVe(GloVeConfig(vector_size=dim, min_count=2, epochs=15, workers=1, seed=1))
    model.fit(sentences)
    cache.mkdir(parents=True, exist_ok=True)
    model.wv.save(path)
    return path


def classify(source, kind: str, spec: FinetuneSpec, out: Path, layers: str = "") -> float:
    if kind == "elmo":
        return elmo_recipe.finetune_classifier(source, spec, out, layers=layers)["accuracy"]
    if kind == "vectors":
        from lmlab.recipes.finetune import finetune_on_vectors

        return finetune_on_vectors(source, spec, out)["accuracy"]
    from lmlab.tasks.classification import finetune

    return finetune(source, spec, out)["accuracy"]


def tag(source, kind: str, data, spec: tagging.TaggingSpec, out: Path, layers: str = "") -> float:
    if kind == "elmo":
        return elmo_recipe.finetune_tagger(source, data, spec, out, layers=layers)["entity_f1"]
    if kind == "vectors":
        from lmlab.tasks.features import from_vector_file

        model, tokenizer = from_vector_file(source)
        return tagging.finetune_tagger(model, tokenizer, data, spec, out / "train")[1]["entity_f1"]
    return tagging.finetune_tagging(source, data, spec, out)["entity_f1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elmo", required=True)
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--bert", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ner", default="wnut16")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ner-steps", type=int, default=300)
    ap.add_argument("--max-train", type=int, default=0)
    ap.add_argument("--vectors", default="word2vec,fasttext,glove")
    ap.add_argument("--elmo-layers", default="all,top,0,1")
    ap.add_argument("--tasks", default="rotten-tomatoes,ner")
    ap.add_argument("--cache", default="/work/cache/r3-elmo")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache, work = Path(args.cache), Path(args.cache) / "runs"
    elmo_model, _ = elmo_recipe.load_any(args.elmo)
    dim = elmo_model.config.d_model
    systems = [(f"ELMo, --layers {lay}" + (" (scalar mix)" if lay == "all" else ""), "elmo", args.elmo, lay)
               for lay in args.elmo_layers.split(",") if lay]
    for kind in filter(None, args.vectors.split(",")):
        t0 = time.perf_counter()
        systems.append((f"{kind} (dim {dim}, frozen)", "vectors", static_vectors(kind, args.corpus, dim, cache), ""))
        print(f"{kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.bert:
        systems.append(("BERT, fine-tuned", "bert", args.bert, ""))
    tasks = args.tasks.split(",")
    ner = tagging.builtin_data(args.ner) if "ner" in tasks else None
    results: dict[tuple[str, str], list[float]] = {}
    for name, kind, source, layers in systems:
        for seed in range(args.seeds):
            if "rotten-tomatoes" in tasks:
                spec = FinetuneSpec(task="rotten-tomatoes", steps=args.steps, lr=1e-3 if kind != "bert" else 1e-4,
                                    max_train=args.max_train, eval_every=0, seed=seed, threads=1,
                                    pooling="mean")
                t0 = time.perf_counter()
                acc = classify(source, kind, spec, work / f"rt-{kind}-{layers}-{seed}-{int(t0)}", layers)
                results.setdefault((name, "rt"), []).append(acc)
                print(f"{name} seed {seed} rotten-tomatoes accuracy {acc:.3f} ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
            if ner is not None:
                spec = tagging.TaggingSpec(steps=args.ner_steps, lr=1e-3 if kind != "bert" else 1e-4,
                                           max_train=args.max_train, seed=seed, threads=1)
                t0 = time.perf_counter()
                f1 = tag(source, kind, ner, spec, work / f"ner-{kind}-{layers}-{seed}-{int(t0)}", layers)
                results.setdefault((name, "ner"), []).append(f1)
                print(f"{name} seed {seed} {args.ner} entity F1 {f1:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    lines = table_lines(results, [name for name, *_ in systems], args.ner)
    text = (f"ELMo `{args.elmo}`; {args.seeds} seeds, mean (min–max); classification {args.steps} steps, "
            f"NER {args.ner_steps} steps, batch 32, max_train {args.max_train or 'all'}\n\n" + "\n".join(lines) + "\n")
    show(text, args.out)


if __name__ == "__main__":
    main()
