"""ELMo's LSTM step (lmlab.models.elmo.ProjectedLSTMCell: projection + cell/projection clipping, a
Python loop over time) against PyTorch's fused CPU ``nn.LSTM(proj_size=...)`` (no clipping, so it
cannot run bilm-tf's cell; it is the speed bar), forward + backward on the same shapes.

    .venv/bin/python benchmarks/elmo_bench.py --threads 2 --rounds 7 --shapes 32x20x128x512x128,16x20x64x256x64

lmlab and torch alternate round by round (ABAB), median of the rounds.

Prints a markdown table (ms per forward+backward step, tokens/s, ratio); results go to
benchmarks/results/elmo.md by hand with the machine's load noted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from lmlab.models.elmo import ProjectedLSTMCell


def _abab(fn_a, fn_b, rounds: int) -> tuple[float, float]:
    """Median seconds of ``fn_a`` and ``fn_b``, run alternately (A B A B ...) after one warm-up each,
    so that a change in the machine's load hits both alike."""
    fn_a()
    fn_b()
    times_a, times_b = [], []
    for _ in range(rounds):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shapes", default="32x20x128x512x128,64x20x512x4096x512")  # B x T x I x cell x P
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={args.threads}, median of {args.rounds} alternating (ABAB) rounds; ms per forward+backward "
          f"of one layer; load average {load:.1f}\n")
    print("| B x T, input -> cell -> proj | lmlab ProjectedLSTMCell (clip 3) | torch nn.LSTM(proj_size) | ratio (lmlab / torch time) |")
    print("|---|---|---|---|")
    for shape in args.shapes.split(","):
        B, T, I, C, P = map(int, shape.split("x"))
        ours = ProjectedLSTMCell(I, C, P, cell_clip=3.0, proj_clip=3.0)
        ref = torch.nn.LSTM(I, C, proj_size=P, batch_first=True)
        x = torch.randn(B, T, I, requires_grad=True)
        mask = torch.ones(B, T, dtype=torch.bool)
        state = (torch.zeros(B, P), torch.zeros(B, C))

        def step_ours(ours=ours, x=x, mask=mask, state=state):
            out, _ = ours(x, mask, state)
            out.sum().backward()

        def step_ref(ref=ref, x=x):
            out, _ = ref(x)
            out.sum().backward()

        a, b = _abab(step_ours, step_ref, args.rounds)
        print(f"| {B} x {T}, {I} -> {C} -> {P} | {a * 1e3:.1f} ms ({B * T / a:,.0f} tok/s) | "
              f"{b * 1e3:.1f} ms ({B * T / b:,.0f} tok/s) | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
