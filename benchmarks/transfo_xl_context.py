"""Does Transformer-XL use a longer context than a GPT of the same size? Trained, not only evaluated.

Dai et al. (2019), §4.1 and Table 8: a Transformer-XL with segment ``L`` and memory ``M`` conditions on up to
``L + M`` tokens (``n_layer · (L + M)`` through the layers), a vanilla Transformer on at most ``L``. This script
trains, on the same wiki-vital word stream (documents contiguous, ``--batch`` parallel lanes read segment
after segment: the paper's ``LMOrderedIterator`` layout, :class:`lmlab.data.stream.BPTTStream`) with the same
seed, batches, optimiser and number of steps (so equal training tokens):

- (a) a GPT (``lmlab.models.gpt``, learned positions, pre-LN) with context ``L``: each segment on its own;
- (b) Transformer-XL with segment ``L`` trained with memory ``M`` for each ``M`` in ``--mems`` (multiples of
  ``L``; ``M = 0`` is Transformer-XL without recurrence), the memory carried from one segment of a lane to
  the next and hidden across document starts, as ``lmlab train configs/transfo_xl.toml`` does.

Both use the same width, depth, heads, FFN and a full, tied softmax over the same 10k-word vocabulary (no
adaptive softmax, so the parameter counts differ only by GPT's ``L`` position vectors vs Transformer-XL's
relative projection and biases; both counts are printed). Then, on the test split as one stream in
``--lanes`` lanes (no resets, as the paper evaluates), words and ``</s>`` counted (``<s>`` is context only,
the counting rule of the other word-level rows; the conditioning is the stream, not the sentence):

- test perplexity per word of each model; for Transformer-XL at every evaluation memory in ``--eval-mems``;
- the loss by position inside the segment (4 buckets of ``L/4``): a model that uses the memory predicts the
  first positions of a segment about as well as the last ones; without memory they have little context;
- training tokens/s and MFU (achieved model FLOP/s over the fp32 matmul peak measured here, the Trainer's
  ``measure_matmul_flops``) per model, medians over the steps after the first 10.

Usage (a few minutes per model on 2 cores)::

    python benchmarks/transfo_xl_context.py --steps 1000 --write benchmarks/results/transfo_xl_context.md
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def word_data(vocab_size: int):
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences
    from lmlab.data.stream import bptt_documents
    from lmlab.eval.perplexity import encode_sentences
    from lmlab.recipes.word_lm import WordDataConfig, WordTokenizerSpec, load_word_data

    data = load_word_data(WordDataConfig(corpus="wiki-vital"), WordTokenizerSpec(vocab_size=vocab_size))
    bos = data.vocab.index("<s>")
    index = {w: i for i, w in enumerate(data.vocab)}
    test_docs = [encode_sentences(word_sentences([d]), index)[0] for d in sources.load("wiki-vital").split().test]
    test_ids, _ = bptt_documents([doc for doc in test_docs if doc], bos)
    train_ids, train_starts = bptt_documents(data.train, bos)
    return data.vocab, bos, train_ids, train_starts, test_ids


def build_models(V: int, vocab: list[str], L: int, mems: list[int], args) -> dict:
    from lmlab.models import gpt, transfo_xl

    models = {}
    torch.manual_seed(args.seed)
    if not args.no_gpt:
        models["GPT (context L)"] = (gpt.GPTLanguageModel(gpt.GPTConfig(
            vocab_size=V, max_length=L, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
            d_ff=4 * args.d_model, dropout=args.dropout, attn_dropout=0.0)), None)
    for M in mems:
        torch.manual_seed(args.seed)
        config = transfo_xl.TransfoXLConfig(
            cutoffs=[], div_val=1, d_model=args.d_model, d_embed=args.d_model, n_head=args.heads,
            d_head=args.d_model // args.heads, d_inner=4 * args.d_model, n_layer=args.layers, mem_len=M,
            dropout=args.dropout, dropatt=0.0, pre_lnorm=args.pre_lnorm)
        models[f"Transformer-XL, train memory {M}"] = (transfo_xl.build(config, vocab), M)
    return models


def txl_flops_per_token(model, L: int, M: int) -> float:
    """Training FLOPs per token: 6 × (per-token matmul weights: q, k, v, o, FFN, the tied output matrix) plus
    the relative projection of the L + M distances amortised over the L tokens of a segment, plus
    attention: AC, BD and the weighted sum over K = L + M keys (2 · 3 · d_head · H · K multiply-adds forward)."""
    c = model.config
    hd = c.n_head * c.d_head
    per_layer = 4 * c.d_model * hd + 2 * c.d_model * c.d_inner + (L + M) / L * c.d_model * hd
    n = c.n_layer * per_layer + c.vocab_size * c.d_model
    return 6.0 * n + 6.0 * 3 * c.n_layer * (L + M) * hd


def train(model, M, stream, V: int, args) -> tuple[list[float], list[float]]:
    from lmlab.train.schedules import Schedule

    schedule = Schedule("cosine", args.lr, args.warmup, args.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    model.train()
    state, times, losses = None, [], []
    torch.manual_seed(args.seed + 1)      # the same dropout stream for every model
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = schedule.lr_at(step + 1)
        start = time.perf_counter()
        batch = stream.batch(step)                            # (B, L+1), a document start flagged as id + V
        reset = batch >= V
        ids = batch % V
        x, y = ids[:, :-1], ids[:, 1:]
        if M is None:
            logits = model(x)                                 # (B, L, V)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        else:
            if step % (stream._lanes(args.batch)[1]) == 0:
                state = None                                  # a new pass over the data
            h, state = model(x, state, reset[:, :-1], M)      # (B, L, d), the memory for the next segment
            loss = -model.crit.log_prob(h.reshape(-1, h.shape[-1]), y.reshape(-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
        if step % 100 == 0:
            print(f"  step {step} loss {losses[-1]:.3f} {args.batch * args.L / times[-1]:,.0f} tok/s", flush=True)
    return times, losses


@torch.no_grad()
def gpt_stream_log_probs(model, ids: torch.Tensor, L: int) -> torch.Tensor:
    """log P(ids[t] | the tokens before t in its segment of L): (B, N-1), as stream_log_probs with M = 0."""
    model.eval()
    x, y = ids[:, :-1], ids[:, 1:]
    out = []
    for start in range(0, x.shape[1], L):
        logits = model(x[:, start:start + L])                 # (B, T, V)
        out.append(torch.log_softmax(logits.float(), -1).gather(-1, y[:, start:start + L, None])[..., 0])
    return torch.cat(out, dim=1)


def summarise(lp: torch.Tensor, stream: torch.Tensor, bos: int, L: int) -> tuple[float, list[float], int]:
    counted = stream[:, 1:] != bos                            # words and </s>
    n = int(counted.sum())
    ppl = math.exp(-float(lp[counted].double().sum()) / n)
    position = torch.arange(lp.shape[1]) % L                  # position inside the evaluation segment
    buckets = []
    for b in range(4):
        inside = counted & (position >= b * L // 4)[None] & (position < (b + 1) * L // 4)[None]
        buckets.append(-float(lp[inside].double().sum()) / int(inside.sum()))
    return ppl, buckets, n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--L", type=int, default=32, help="segment length = GPT context")
    parser.add_argument("--mems", default="0,1,2,4", help="training memories, multiples of L")
    parser.add_argument("--eval-mems", default="0,1,2,4,8", help="evaluation memories, multiples of L")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-test-tokens", type=int, default=0, help="first N test tokens (0: all)")
    parser.add_argument("--no-gpt", action="store_true", help="Transformer-XL rows only (to run them in parallel)")
    parser.add_argument("--pre-lnorm", action="store_true",
                        help="pre-LN Transformer-XL (the GPT is pre-LN; see benchmarks/transfo_xl_ablation.py)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lmlab.data.stream import BPTTStream
    from lmlab.train.log import measure_matmul_flops

    L = args.L
    mems = [int(m) * L for m in args.mems.split(",") if m.strip()]
    eval_mems = [int(m) * L for m in args.eval_mems.split(",")]
    vocab, bos, train_ids, train_starts, test_ids = word_data(args.vocab)
    V = len(vocab)
    stream = BPTTStream(train_ids, train_starts, V, args.batch, L)
    test_ids = test_ids[:args.max_test_tokens] if args.max_test_tokens else test_ids
    lane = len(test_ids) // args.lanes
    test = torch.from_numpy(test_ids[:lane * args.lanes].reshape(args.lanes, lane))   # (lanes, N)
    peak = measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=1.0)
    load = " / ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    lines = ["# Transformer-XL vs GPT at equal size and training tokens: context use on wiki-vital\n",
             f"`python benchmarks/transfo_xl_context.py --L {L} --mems {args.mems} --eval-mems {args.eval_mems} "
             f"--steps {args.steps} --batch {args.batch} --lanes {args.lanes} --d-model {args.d_model} "
             f"--layers {args.layers} --heads {args.heads} --threads {args.threads}"
             f"{f' --max-test-tokens {args.max_test_tokens}' if args.max_test_tokens else ''}"
             f" --vocab {args.vocab} --lr {args.lr}{' --pre-lnorm' if args.pre_lnorm else ''}"
             f"{' --no-gpt' if args.no_gpt else ''}`  ",
             f"{args.layers} layers x d {args.d_model}, {args.heads} heads, FFN {4 * args.d_model}, full tied softmax "
             f"over |V| = {V}; segment L = {L}, {args.batch} lanes, {args.steps} steps = "
             f"{args.steps * args.batch * L:,} training tokens ({args.steps * args.batch * L / len(train_ids):.2f} "
             f"epochs of {len(train_ids):,}), AdamW lr {args.lr} cosine, warm-up {args.warmup}, clip {args.clip}, "
             f"dropout {args.dropout}, seed {args.seed}, Transformer-XL {'pre' if args.pre_lnorm else 'post'}-LN. Test stream: {test.numel():,} tokens in {args.lanes} lanes. "
             f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads, fp32 matmul peak "
             f"{peak / 1e9:.0f} GFLOP/s; load average at start {load} (a shared machine: times are indicative).\n"]
    ppl_rows, bucket_rows, speed_rows = [], [], []
    for name, (model, M) in build_models(V, vocab, L, mems, args).items():
        n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        print(f"{name}: {n_params:,} parameters", flush=True)
        times, losses = train(model, M, stream, V, args)
        tps = args.batch * L / statistics.median(times[10:] or times)
        fpt = model.flops_per_token(L) if M is None else txl_flops_per_token(model, L, M)
        speed_rows.append(f"| {name} | {n_params:,} | {statistics.mean(losses[-50:]):.3f} | {tps:,.0f} | "
                          f"{tps * fpt / peak:.3f} |")
        print(speed_rows[-1], flush=True)
        for E in ([0] if M is None else eval_mems):
            start = time.perf_counter()
            lp = gpt_stream_log_probs(model, test, L) if M is None else model.stream_log_probs(test, L, E)
            took = time.perf_counter() - start
            ppl, buckets, n = summarise(lp, test, bos, L)
            label = "-" if M is None else str(E)
            ppl_rows.append(f"| {name} | {label} | {ppl:.2f} | {n:,} | {took:.1f} |")
            bucket_rows.append(f"| {name} | {label} | " + " | ".join(f"{b:.3f}" for b in buckets) + " |")
            print(ppl_rows[-1], bucket_rows[-1], flush=True)
    q = L // 4
    lines += ["| model | eval memory | test ppl per word (words + </s>) | predicted | eval seconds |",
              "|---|---|---|---|---|", *ppl_rows, "",
              "Loss (nats per word) by position inside the evaluation segment:\n",
              f"| model | eval memory | positions 0-{q - 1} | {q}-{2 * q - 1} | {2 * q}-{3 * q - 1} | {3 * q}-{L - 1} |",
              "|---|---|---|---|---|---|", *bucket_rows, "",
              "Training (medians over steps 10 onwards; MFU = model FLOP/s / the measured matmul peak):\n",
              "| model | parameters | mean loss, last 50 steps | tokens/s | MFU |", "|---|---|---|---|---|",
              *speed_rows]
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    sys.stdout.write(text)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
