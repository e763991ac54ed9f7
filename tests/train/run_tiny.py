"""Run the Trainer on a tiny real-text LM in a fresh process (for kill/resume and torchrun tests).

    python tests/train/run_tiny.py OUT --steps 30 [--accum 2] [--batch 4] [--resume] [--sleep 0.02]
    torchrun --standalone --nproc_per_node 2 tests/train/run_tiny.py OUT --accum 1 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trainkit import (
    EvalWindows,
    LaneSource,
    MaskedCLM,
    StatefulCLM,
    TinyLM,
    TinyRNN,
    WindowSource,
    token_ids,
)

from lmlab.train import (
    TrainConfig,
    Trainer,
    distributed,
)
from lmlab.train.trainer import TrainingInterrupted


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=12)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--model", choices=["tiny", "rnn"], default="tiny")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args(argv)


def make_trainer(args: argparse.Namespace) -> Trainer:
    torch.set_num_threads(1)
    ids, vocab = token_ids()
    torch.manual_seed(1234)
    if args.model == "tiny":
        model, objective = TinyLM(vocab), MaskedCLM()
        source = WindowSource(ids, args.batch, args.seq, sleep=args.sleep)
    else:
        model, objective = TinyRNN(vocab), StatefulCLM()
        source = LaneSource(ids, args.batch, args.seq, sleep=args.sleep)
    config = TrainConfig(max_steps=args.steps, grad_accum=args.accum, lr=3e-3, schedule="cosine",
                         warmup_steps=3, eval_every=10, checkpoint_every=args.checkpoint_every,
                         keep_last=2, optimizer=args.optimizer, progress="off", mfu=False, plot=False,
                         threads=1)
    return Trainer(model, objective, source, config, args.out, eval_source=EvalWindows(ids, 4, args.seq, 2))


def main() -> None:
    args = parse()
    trainer = make_trainer(args)
    try:
        trainer.fit(resume=args.resume)
    except TrainingInterrupted as err:  # SIGINT / SIGTERM: saved at the step boundary
        if trainer.dist.is_main:
            print(f"run_tiny: {err}", file=sys.stderr, flush=True)
        sys.exit(err.exit_code)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
