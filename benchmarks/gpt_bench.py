"""lmlab GPT vs Hugging Face GPT-2, side by side in one process: training step and KV-cache generation.

Both models have the same shape and the *same weights* (lmlab's GPT is saved as a GPT-2 folder
with :func:`lmlab.interop.hf.save_gpt2` and loaded by ``transformers``), fp32, the same thread count.

- training: one AdamW step (forward, cross-entropy over every position, backward, update) on a
  (batch, seq) block; tokens/s and MFU = achieved model FLOP/s / the matmul peak measured here (an
  n x n fp32 matmul with the same threads). Model FLOPs per token: 6 x (non-embedding matmul
  weights + output matrix) + 12 x layers x seq x d (attention). Each library trains through its
  own loss API -- lmlab ``model.loss(inputs, targets)`` (output layer and softmax fused), HF
  ``model(input_ids, labels=...)`` -- and both also run the same two-step loss code
  (``F.cross_entropy(logits, targets)``); the headline ratio is lmlab's own path against the
  faster of HF's two.
- generation: greedy, ``--new-tokens`` new tokens after a 16-token prompt, KV cache on, at batch 1
  and 8; lmlab's ``generate`` vs ``transformers``' ``generate`` (no stop token, so both produce
  exactly the same number of tokens — the tokens themselves are checked equal).

Runs alternate between the two libraries (A B A B ...) and the median is reported, so a noisy,
shared machine affects both alike. Usage::

    python benchmarks/gpt_bench.py                 # the issue's shape: d=256, 4 layers, 4 heads, V=8192
    python benchmarks/gpt_bench.py --write benchmarks/results/gpt.md

The encoder-decoder Transformer's sequence-to-sequence tasks are in ``benchmarks/seq2seq_bench.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def median_time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (each: a few steps of each library)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per library per round")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--gen-rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="write the markdown results here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    import transformers

    from lmlab.interop.hf import save_gpt2
    from lmlab.models.gpt import GPTConfig, GPTLanguageModel
    from lmlab.tasks.generation import GenerationConfig, generate
    from lmlab.train.log import measure_matmul_flops

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=args.vocab, max_length=max(args.seq, 16 + args.new_tokens), d_model=args.d_model,
                       n_layers=args.layers, n_heads=args.heads, dropout=args.dropout, attn_dropout=args.dropout)
    ours = GPTLanguageModel(config)
    with tempfile.TemporaryDirectory() as tmp:
        save_gpt2(ours, Path(tmp) / "gpt2")
        theirs = transformers.GPT2LMHeadModel.from_pretrained(Path(tmp) / "gpt2")
    attn_impl = getattr(theirs.config, "_attn_implementation", "?")
    # the peak is the best of several measurements spread over the run (the machine may be shared)
    peaks = [measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=1.0)]
    flops_per_token = ours.flops_per_token(args.seq)

    # ------------------------------------------------------------------ training step
    g = torch.Generator().manual_seed(1)
    block = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
    inputs, targets = block[:, :-1], block[:, 1:]

    def step_fn(model, loss_of):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()

        def step():
            loss = loss_of(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    def two_step_loss(logits):
        return F.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1))

    steps = {  # (library, loss path) -> one training step
        ("lmlab", "own"): step_fn(ours, lambda m: m.loss(inputs, targets)),
        ("lmlab", "two-step"): step_fn(ours, lambda m: two_step_loss(m(inputs))),
        ("transformers", "own"): step_fn(theirs, lambda m: m(input_ids=inputs, labels=inputs).loss),
        ("transformers", "two-step"): step_fn(theirs, lambda m: two_step_loss(m(input_ids=inputs).logits)),
    }
    for step in steps.values():  # warm-up
        step()
        step()
    train_times = {key: [] for key in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            train_times[key] += median_time(step, args.steps)
        peaks.append(measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=0.5))
    peaks.append(measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=1.0))
    peak = max(peaks)
    tokens = args.batch * args.seq
    train_rows = {}
    for key, times in train_times.items():
        tps = tokens / statistics.median(times)
        train_rows[key] = (tps, tps * flops_per_token / peak)

    # ------------------------------------------------------------------ generation
    with tempfile.TemporaryDirectory() as tmp:  # same weights again after the training steps
        ours.eval()
        save_gpt2(ours, Path(tmp) / "gpt2")
        theirs = transformers.GPT2LMHeadModel.from_pretrained(Path(tmp) / "gpt2").eval()
    gen_rows = {}
    for batch in (1, 8):
        prompt = torch.randint(0, args.vocab, (batch, 16), generator=g)
        mask = torch.ones_like(prompt)
        settings = GenerationConfig(max_new_tokens=args.new_tokens)

        def run_ours(prompt=prompt, settings=settings):
            return generate(ours, prompt, config=settings)

        def run_theirs(prompt=prompt, mask=mask):
            with torch.no_grad():
                return theirs.generate(prompt, attention_mask=mask, max_new_tokens=args.new_tokens,
                                       min_new_tokens=args.new_tokens, do_sample=False, num_beams=1,
                                       pad_token_id=0, eos_token_id=None, use_cache=True)
        same = torch.equal(run_ours(), run_theirs())  # also the warm-up
        times = {"lmlab": [], "transformers": []}
        for _ in range(args.gen_rounds):
            times["lmlab"] += median_time(run_ours, 1)
            times["transformers"] += median_time(run_theirs, 1)
        gen_rows[batch] = ({k: batch * args.new_tokens / statistics.median(v) for k, v in times.items()}, same)

    # ------------------------------------------------------------------ report
    shape = (f"d={args.d_model}, {args.layers} layers, {args.heads} heads, vocab {args.vocab}, seq {args.seq}, "
             f"batch {args.batch}, dropout {args.dropout}, fp32, {args.threads} threads")
    lines = [
        "## GPT (lmlab) vs GPT-2 (Hugging Face transformers)", "",
        f"Command: `python benchmarks/gpt_bench.py{' ' + ' '.join(argv) if argv else ''}`  ",
        f"Shape: {shape}.  ",
        (f"Machine: {platform.machine()}, torch {torch.__version__}, transformers {transformers.__version__} "
        f"(attention: {attn_impl}); measured fp32 matmul peak {peak / 1e9:.0f} GFLOP/s with {args.threads} threads.  "),
        (f"Model FLOPs per training token: {flops_per_token / 1e6:.1f} MFLOP. Medians of {args.rounds * args.steps} "
        f"training steps and {args.gen_rounds} generation runs per library, alternating."), "",
        "| measure | lmlab | transformers | lmlab / transformers |", "|---|---|---|---|",
    ]
    hf_best = max(("own", "two-step"), key=lambda path: train_rows[("transformers", path)][0])
    (a_tps, a_mfu), (b_tps, b_mfu) = train_rows[("lmlab", "own")], train_rows[("transformers", hf_best)]
    lines.append(f"| training step, tokens/s (each library's own loss; HF: its faster path, {hf_best}) | "
                 f"{a_tps:,.0f} | {b_tps:,.0f} | {a_tps / b_tps:.2f}x |")
    lines.append(f"| training step, MFU | {a_mfu:.2f} | {b_mfu:.2f} | {a_mfu / b_mfu:.2f}x |")
    for path, label in (("own", "own loss API (lmlab fused `model.loss`, HF `labels=`)"),
                        ("two-step", "same two-step loss code (`F.cross_entropy(logits)`)")):
        a, b = train_rows[("lmlab", path)][0], train_rows[("transformers", path)][0]
        lines.append(f"| training step, tokens/s, {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    for batch, (row, same) in gen_rows.items():
        note = "" if same else " (tokens differ!)"
        lines.append(f"| greedy generation, KV cache, batch {batch}, {args.new_tokens} new tokens, tokens/s{note} | "
                     f"{row['lmlab']:,.0f} | {row['transformers']:,.0f} | {row['lmlab'] / row['transformers']:.2f}x |")
    lines += ["", "Identical greedy tokens: " + ", ".join(f"batch {b}: {'yes' if s else 'NO'}"
                                                       for b, (_, s) in gen_rows.items()) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
