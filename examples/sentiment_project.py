"""Seed 003's sentiment project, end to end, on rotten-tomatoes (the IMDB-style set available offline).

    python examples/sentiment_project.py            # the full-size run (tens of minutes on a laptop CPU)
    python examples/sentiment_project.py --small    # tiny sizes and few steps (the smoke test, about a minute)

The steps of the article's project, in order:

1. load the labelled reviews and split them (by movie: no film has reviews in two splits);
2. a Transformer classifier trained from random weights with Adam (the article: ``lr = 0.001``),
   then its test accuracy — ``lmlab finetune --from-scratch configs/classifier_scratch.toml rotten-tomatoes``;
3. ELECTRA pretrained on Wikipedia text (``configs/electra.toml``, a tiny model here), fine-tuned on the
   same reviews, then its test accuracy — ``lmlab train`` + ``lmlab finetune``;
4. the saved classifier folder reloaded to label new reviews — ``lmlab.pipeline`` / ``lmlab predict``.

Every number printed is measured by this run; the majority-class accuracy is printed beside them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lmlab
from lmlab.cli.train import run_training
from lmlab.recipes.finetune import finetune_from_scratch
from lmlab.tasks.classification import FinetuneSpec, finetune, task_data

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "configs" / "classifier_scratch.toml"
ELECTRA = ROOT / "configs" / "electra.toml"
SMALL_SCRATCH = ('family = "bert"\n[tokenizer]\nkind = "wordpiece"\nvocab_size = 2000\n'
                 '[model]\nd_model = 32\nn_layers = 1\nn_heads = 2\nd_ff = 64\n')
SMALL_ELECTRA = ["data.max_documents=200", "data.seq_len=32", "data.batch_size=8", "data.eval_documents=8",
                 "tokenizer.vocab_size=1500", "model.d_embedding=32", "model.d_model=32", "model.n_layers=1",
                 "model.n_heads=2", "model.d_ff=64", "train.max_steps=20", "train.eval_every=20",
                 "train.warmup_steps=2", "train.progress=off", "train.plot=false", "train.tensorboard=false",
                 "train.mfu=false", "train.threads=1", "train.checkpoint_every=0"]
FULL_ELECTRA = ["data.corpus=wiki-vital", "model.d_embedding=128", "model.d_model=128", "model.n_layers=4",
                "model.n_heads=4", "model.d_ff=512"]
NEW_REVIEWS = ["a moving, beautifully acted film that stays with you long after the credits",
               "a dull, lifeless mess with nothing to say and two hours to say it in",
               "uneven, but the final act is worth the wait"]


def main(small: bool = False) -> list[dict]:
    # 1. load and split
    data = task_data(FinetuneSpec(task="rotten-tomatoes"))
    print(f"rotten-tomatoes: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test reviews, "
          f"labels {data.labels}")
    budget = dict(steps=120, batch_size=32, max_len=32, max_train=1920, threads=1) if small else \
        dict(epochs=3.0, batch_size=32, max_len=64)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 2. a Transformer classifier from scratch, trained with Adam
        scratch_config = SCRATCH
        if small:
            scratch_config = tmp / "scratch.toml"
            scratch_config.write_text(SMALL_SCRATCH)
        spec = FinetuneSpec(task="rotten-tomatoes", optimizer="adam", lr=3e-3 if small else 1e-3, pooling="mean",
                            **budget)
        scratch = finetune_from_scratch(scratch_config, spec, tmp / "scratch")
        print(f"Transformer from scratch (Adam): test accuracy {scratch['accuracy']:.3f} "
              f"(majority class {scratch['majority_baseline']:.3f}), macro-F1 {scratch['macro_f1']:.3f}")
        # 3. ELECTRA: pretrain (replaced-token detection) on Wikipedia, then fine-tune
        result, out_dir, _, _ = run_training(ELECTRA, SMALL_ELECTRA if small else FULL_ELECTRA, out=tmp / "electra")
        print(f"ELECTRA pretrained {result.step} steps, final loss {result.loss:.3f}")
        spec = FinetuneSpec(task="rotten-tomatoes", lr=3e-3 if small else 1e-4, pooling="mean", **budget)
        electra = finetune(out_dir / "model", spec, tmp / "electra-ft")
        print(f"ELECTRA fine-tuned: test accuracy {electra['accuracy']:.3f} "
              f"(majority class {electra['majority_baseline']:.3f}), macro-F1 {electra['macro_f1']:.3f}")
        # 4. the saved folder labels new reviews
        classify = lmlab.pipeline("text-classification", tmp / "electra-ft" / "model")
        labelled = classify(NEW_REVIEWS)
    for text, result in zip(NEW_REVIEWS, labelled):
        print(f"predicted {result['label']:6s} ({result['score']:.2f}): {text}")
    return labelled


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes and few steps, for a quick check")
    main(parser.parse_args().small)
