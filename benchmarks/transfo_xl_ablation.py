"""Why does a GPT beat Transformer-XL of the same size? One-factor-at-a-time ablations, trained, not guessed.

Same data, seed, batches, optimiser and steps as :mod:`transfo_xl_context` (whose functions it reuses); each
variant changes one thing of Transformer-XL (``M = 0`` unless said, so the comparison with the GPT of context
``L`` is like for like) or of the GPT, and the test stream is scored segment by segment (memory as trained).

Usage::

    python benchmarks/transfo_xl_ablation.py --steps 300 --d-model 64 --layers 2 --heads 2 --vocab 2000 \
        --max-test-tokens 16000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transfo_xl_context as ctx  # noqa: E402

# name -> (family, overrides of the model config, train with document resets)
VARIANTS = {
    "gpt": ("gpt", {}, True),
    "gpt-post-ln": ("gpt", {"norm_position": "post", "final_norm": False}, True),
    "txl": ("txl", {}, True),
    "txl-pre-ln": ("txl", {"pre_lnorm": True}, True),
    "txl-no-doc-mask": ("txl", {}, False),
    "txl-pre-ln-emb-scale-1": ("txl", {"pre_lnorm": True, "_emb_scale_1": True}, True),
    "txl-pre-ln-final-ln": ("txl", {"pre_lnorm": True, "_final_ln": True}, True),
    "txl-M=L": ("txl", {"mem_len": -1}, True),
    "txl-M=L-pre-ln": ("txl", {"mem_len": -1, "pre_lnorm": True}, True),
}


def build(name: str, V: int, vocab, L: int, args):
    from lmlab.models import gpt, transfo_xl

    family, overrides, resets = VARIANTS[name]
    overrides = dict(overrides)
    torch.manual_seed(args.seed)
    if family == "gpt":
        config = gpt.GPTConfig(vocab_size=V, max_length=L, d_model=args.d_model, n_layers=args.layers,
                               n_heads=args.heads, d_ff=4 * args.d_model, dropout=args.dropout, attn_dropout=0.0,
                               **overrides)
        return gpt.GPTLanguageModel(config), None, resets
    emb_scale_1 = overrides.pop("_emb_scale_1", False)
    final_ln = overrides.pop("_final_ln", False)
    M = L if overrides.pop("mem_len", 0) == -1 else 0
    config = transfo_xl.TransfoXLConfig(
        cutoffs=[], div_val=1, d_model=args.d_model, d_embed=args.d_model, n_head=args.heads,
        d_head=args.d_model // args.heads, d_inner=4 * args.d_model, n_layer=args.layers, mem_len=M,
        dropout=args.dropout, dropatt=0.0, **overrides)
    model = transfo_xl.build(config, vocab)
    if emb_scale_1:
        model.transformer.word_emb.emb_scale = 1.0
    if final_ln:   # a LayerNorm on the last layer's output, as GPT-2's pre-LN stack has
        model.final_ln = torch.nn.LayerNorm(args.d_model)
        model.transformer.register_forward_hook(lambda _m, _i, out: (model.final_ln(out[0]), out[1]))
    return model, M, resets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--L", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-test-tokens", type=int, default=16000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lmlab.data.stream import BPTTStream

    L = args.L
    vocab, bos, train_ids, train_starts, test_ids = ctx.word_data(args.vocab)
    V = len(vocab)
    test_ids = test_ids[:args.max_test_tokens] if args.max_test_tokens else test_ids
    lane = len(test_ids) // args.lanes
    test = torch.from_numpy(test_ids[:lane * args.lanes].reshape(args.lanes, lane))   # (lanes, N)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    for name in args.variants.split(","):
        model, M, resets = build(name, V, vocab, L, args)
        stream = BPTTStream(train_ids, train_starts if resets else 0 * train_starts, V, args.batch, L)
        _, losses = ctx.train(model, M, stream, V, args)
        lp = ctx.gpt_stream_log_probs(model, test, L) if M is None else model.stream_log_probs(test, L, M)
        ppl, buckets, _ = ctx.summarise(lp, test, bos, L)
        rows.append(f"| {name} | {statistics.mean(losses[-50:]):.3f} | {ppl:.2f} | "
                    + " | ".join(f"{b:.3f}" for b in buckets) + " |")
        print(rows[-1], flush=True)
    text = "\n".join([
        f"`python benchmarks/transfo_xl_ablation.py --steps {args.steps} --d-model {args.d_model} --layers "
        f"{args.layers} --heads {args.heads} --vocab {args.vocab} --L {L} --lr {args.lr} "
        f"--max-test-tokens {args.max_test_tokens} --threads {args.threads}`  ",
        f"load average at start {load}\n",
        "| variant | train loss, last 50 steps | test ppl per word | loss pos. 0-q | q-2q | 2q-3q | 3q-L |",
        "|---|---|---|---|---|---|---|", *rows]) + "\n"
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
