"""Pretrain a small BERT (configs/bert.toml), fine-tune it on movie-review sentiment, reload the
classifier folder and label new sentences.

    python examples/bert_finetune_and_predict.py            # the run file as it is, then 300 fine-tuning steps
    python examples/bert_finetune_and_predict.py --small    # tiny sizes and few steps (the smoke test)

The same as ``lmlab train configs/bert.toml --out DIR``, ``lmlab finetune DIR/model rotten-tomatoes``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lmlab
from lmlab.cli.train import run_training
from lmlab.data.tokenizers import load_tokenizer
from lmlab.tasks.classification import FinetuneSpec, finetune, predict

RUN_FILE = Path(__file__).resolve().parents[1] / "configs" / "bert.toml"
SMALL = ["data.max_documents=200", "data.seq_len=32", "data.batch_size=8", "data.eval_documents=8",
         "tokenizer.vocab_size=1500", "model.d_model=32", "model.n_layers=1", "model.d_ff=64",
         "train.max_steps=20", "train.eval_every=20", "train.warmup_steps=2", "train.progress=off",
         "train.plot=false", "train.tensorboard=false", "train.mfu=false", "train.threads=1"]
REVIEWS = ["a moving, beautifully acted film that stays with you",
           "a dull, lifeless mess with nothing to say"]


def main(small: bool = False) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        result, out_dir, _, _ = run_training(RUN_FILE, SMALL if small else [], out=Path(tmp) / "bert")
        print(f"pretrained {result.step} steps, final loss {result.loss:.3f}")
        spec = FinetuneSpec(task="rotten-tomatoes", steps=120 if small else 300, batch_size=32,
                            max_len=32 if small else 128, lr=3e-3 if small else 1e-4, pooling="mean",
                            max_train=1280 if small else 0, threads=1 if small else 0)
        scores = finetune(out_dir / "model", spec, Path(tmp) / "finetuned")
        print(f"test accuracy {scores['accuracy']:.3f} (majority class {scores['majority_baseline']:.3f}), "
              f"macro-F1 {scores['macro_f1']:.3f}")
        classifier = lmlab.load(Path(tmp) / "finetuned" / "model")   # a folder of family "classifier"
        tokenizer = load_tokenizer(Path(tmp) / "finetuned" / "model")
    labelled = predict(classifier, tokenizer, REVIEWS)
    for text, (label, probability) in zip(REVIEWS, labelled):
        print(f"predicted {label:6s} ({probability:.2f}): {text}")
    return labelled


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes and few steps, for a quick check")
    main(parser.parse_args().small)
