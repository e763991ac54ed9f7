"""Permutation-LM training step: lmlab XLNet vs Hugging Face XLNetLMHeadModel, side by side in one process.

Same config for both (d_model 256, 4 layers, 4 heads, d_inner 1024, vocab 8192, seq 128, batch 8,
fp32, dropout 0.1, no memory), same weights (lmlab's exported through the HF key map), the same PLM
batches (``lmlab.objectives.plm``: K = 6, spans ≤ 5, one factorisation order per row; HF gets the
permutation mask and the one-hot ``target_mapping`` built from it), AdamW, mean cross-entropy over
the predicted tokens. lmlab runs the query stream only at the P ≈ T/6 predicted positions and
builds the relative-position table once per batch; HF runs it at all T positions (scattering
through ``target_mapping``) and expands the table to the batch. The two alternate step by step
(lmlab, HF, lmlab, HF, ...: ABAB over ``rounds x steps`` pairs) so that a change in machine load hits
both; the rates are medians of the per-step times and the ratio is the median of the per-pair ratios. Before timing, the first step's losses are compared
(equal weights, dropout off: they must agree to 1e-5).

    .venv/bin/python benchmarks/xlnet_bench.py [--steps 8] [--rounds 3] [--threads 2] [--out benchmarks/results/xlnet.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

H, L, A, FF, V, T, B = 256, 4, 4, 1024, 8192, 128, 8
SEP, CLS, PAD = 3, 4, 5


def batches(n: int, seed: int = 0):
    from lmlab.objectives.plm import PLMConfig, PLMObjective

    objective = PLMObjective(PLMConfig(K=6), SEP, CLS, PAD)
    gen = torch.Generator().manual_seed(seed)
    return [objective.prepare(torch.randint(10, V, (B, T - 2), generator=gen), gen) for _ in range(n)]


def ours_loss(model, batch):
    logits = model.plm_logits(batch.input_ids, batch.perm_mask, batch.target_positions, batch.segment_ids,
                              batch.attention_mask)
    return F.cross_entropy(logits.reshape(-1, V), batch.labels.reshape(-1), ignore_index=-100)


def hf_loss(model, batch):
    mapping = F.one_hot(batch.target_positions, T).float()                       # (B, P, T)
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, token_type_ids=batch.segment_ids,
                 perm_mask=batch.perm_mask.float(), target_mapping=mapping, labels=batch.labels).loss


def timed(model, loss_fn, data, optimizer) -> float:
    model.train()
    start = time.perf_counter()
    for batch in data:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    import transformers

    from lmlab.interop.hf_xlnet import save_hf
    from lmlab.models.xlnet import XLNetConfig, XLNetLMHeadModel

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--record", default="", help="write an lmlab.report record of the printed results into this folder")
    args = parser.parse_args()
    if args.record:  # the printed numbers as one lmlab record
        from lmlab.report.bench import record_at_exit
        record_at_exit(args.record, __file__)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = XLNetLMHeadModel(XLNetConfig(vocab_size=V, d_model=H, n_layers=L, n_heads=A, d_ff=FF, dropout=0.1,
                                        pad_token_id=PAD))
    with tempfile.TemporaryDirectory() as tmp:
        save_hf(ours, Path(tmp) / "hf")
        hf = transformers.XLNetLMHeadModel.from_pretrained(Path(tmp) / "hf")
    data = batches(args.steps)
    ours.eval()
    hf.eval()
    with torch.no_grad():
        gap = abs(ours_loss(ours, data[0]).item() - hf_loss(hf, data[0]).item())
    assert gap < 1e-5, f"the two models disagree before training: {gap}"
    optimizers = {"lmlab": torch.optim.AdamW(ours.parameters(), lr=1e-4),
                  "hf": torch.optim.AdamW(hf.parameters(), lr=1e-4)}
    timed(ours, ours_loss, data[:1], optimizers["lmlab"])     # warm-up
    timed(hf, hf_loss, data[:1], optimizers["hf"])
    seconds = {"lmlab": [], "hf": []}
    for _ in range(args.rounds):                               # ABAB: one lmlab step, one HF step, ...
        for batch in data:
            seconds["lmlab"].append(timed(ours, ours_loss, [batch], optimizers["lmlab"]))
            seconds["hf"].append(timed(hf, hf_loss, [batch], optimizers["hf"]))
    tokens = B * T
    rate = {k: tokens / statistics.median(v) for k, v in seconds.items()}
    pair_ratio = statistics.median(b / a for a, b in zip(seconds["lmlab"], seconds["hf"]))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    predicted = int((data[0].labels != -100).sum()) // B
    lines = [
        "# XLNet: permutation-LM training step, lmlab vs Hugging Face XLNetLMHeadModel",
        "",
        f"Command: `.venv/bin/python benchmarks/xlnet_bench.py --steps {args.steps} --rounds {args.rounds} "
        f"--threads {args.threads}`",
        "",
        f"Shape: d_model {H}, {L} layers, {A} heads, d_inner {FF}, vocab {V}, seq {T} ({predicted} predicted per "
        f"row, K = 6), batch {B}, fp32, dropout 0.1, AdamW, {args.threads} threads; the same weights and "
        f"batches; losses before training agree to {gap:.1e}. {args.rounds} x {args.steps} steps of each, "
        f"alternating step by step (ABAB); medians. Load average at the end {load} (1 / 5 / 15 min): on a "
        "shared machine absolute rates are noisy; the paired ratio is what the steps share.",
        "",
        "| model | tokens/s (median step) | fastest step s | slowest step s |",
        "|---|---|---|---|",
        *(f"| {k} | {rate[k]:,.0f} | {min(seconds[k]):.3f} | {max(seconds[k]):.3f} |" for k in ("lmlab", "hf")),
        "",
        f"lmlab / HF: **{pair_ratio:.2f}x** tokens/s (median of the {len(seconds['hf'])} paired steps; "
        f"ratio of the median rates {rate['lmlab'] / rate['hf']:.2f}x; target >= 1.2x).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
