"""Train a small GPT from the run file configs/gpt.toml, load the saved folder and continue a prompt.

    python examples/gpt_train_and_generate.py            # the run file as it is (~an hour on 2 cores)
    python examples/gpt_train_and_generate.py --small    # tiny sizes, 30 steps (the smoke test)

The same as ``lmlab train configs/gpt.toml --out DIR`` then ``lmlab generate DIR/model "prompt"``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import lmlab
from lmlab.cli.train import run_training
from lmlab.data.tokenizers import load_tokenizer
from lmlab.tasks.generation import GenerationConfig, stream_text

RUN_FILE = Path(__file__).resolve().parents[1] / "configs" / "gpt.toml"
SMALL = ["data.corpus=wiki-vital-small", "data.max_documents=300", "data.seq_len=32", "data.batch_size=8",
         "tokenizer.vocab_size=1000", "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
         "train.max_steps=30", "train.eval_every=30", "train.warmup_steps=5", "train.progress=off",
         "train.plot=false", "train.tensorboard=false", "train.mfu=false"]


def main(small: bool = False, prompt: str = "The history of") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        result, out_dir, _, _ = run_training(RUN_FILE, SMALL if small else [], out=Path(tmp) / "gpt")
        print(f"trained {result.step} steps, final loss {result.loss:.3f}")
        model = lmlab.load(out_dir / "model").eval()
        tokenizer = load_tokenizer(out_dir / "model")
    prompt_ids = tokenizer.encode(prompt)
    config = GenerationConfig(max_new_tokens=min(30, model.config.max_length - len(prompt_ids)), do_sample=True, top_k=40, temperature=0.8, seed=0,
                              stop_token_ids=[model.config.eos_token_id])
    pieces: list[str] = []

    def write(piece: str) -> None:
        pieces.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()

    write(prompt)
    stream_text(model, tokenizer, prompt_ids, config, write)
    print()
    return "".join(pieces)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes and 30 steps, for a quick check")
    parser.add_argument("--prompt", default="The history of")
    args = parser.parse_args()
    main(args.small, args.prompt)
