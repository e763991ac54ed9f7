"""lmlab's T5 (or BART, ``--family bart``) side by side with Hugging Face's: same weights, same shapes.

One random T5 (HF builds it; lmlab reads the same weights through :mod:`lmlab.interop.hf_t5`, and
the two agree to 1e-5 in logits, see tests/interop/test_hf_t5.py) -- or a random BART through
:mod:`lmlab.interop.hf_bart` (tests/interop/test_hf_bart.py) -- then, on ``--threads`` torch threads:

- a training step (forward + backward + AdamW) on span-corrupted rows: source 64 tokens
  (``--inputs-length``), targets 14, batch 16; target tokens per second, median of ``--repeats``
  timed windows after a warm-up;
- greedy generation of ``--new-tokens`` tokens with a KV cache, batch 1 and batch 8 (each model's
  own cache: lmlab's preallocated :class:`~lmlab.nn.attention.KVCache`, HF's ``EncoderDecoderCache``),
  min_new_tokens = max_new_tokens so both produce the same number of tokens; new tokens per second.

Usage::

    python benchmarks/t5_bench.py --threads 2 --write benchmarks/results/t5.md
    python benchmarks/t5_bench.py --family bart --threads 2 --write benchmarks/results/bart_speed.md

BART trains on the same rows (inputs 64, targets 14; its decoder input is the target shifted right
behind ``decoder_start_token_id``, as HF's ``labels=`` does) and generates with forced BOS/EOS and
n-gram blocking off on both sides.

The ratios are lmlab / HF (> 1: lmlab is faster). Measured on a shared CPU machine, so the absolute
numbers move with the load; the two sides alternate within each repeat so they see the same load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def build(args):
    if args.family == "bart":
        return build_bart(args)
    import transformers

    from lmlab.interop.hf_t5 import load_t5

    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=args.vocab, d_model=args.d_model, d_kv=args.d_model // args.heads,
                                   d_ff=4 * args.d_model, num_layers=args.layers, num_heads=args.heads,
                                   dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
                                   decoder_start_token_id=0)
    hf = transformers.T5ForConditionalGeneration(config)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = load_t5(tmp)
    return ours, hf


def build_bart(args):
    import transformers

    from lmlab.interop.hf_bart import load_hf

    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=args.vocab, d_model=args.d_model, encoder_layers=args.layers,
                                     decoder_layers=args.layers, encoder_attention_heads=args.heads,
                                     decoder_attention_heads=args.heads, encoder_ffn_dim=4 * args.d_model,
                                     decoder_ffn_dim=4 * args.d_model, max_position_embeddings=256, dropout=0.0,
                                     attention_dropout=0.0, activation_dropout=0.0, pad_token_id=1, bos_token_id=0,
                                     eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=None,
                                     forced_eos_token_id=None)
    hf = transformers.BartForConditionalGeneration(config)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = load_hf(tmp)
    return ours, hf


def bart_step(model, optimizer, inputs, targets):
    import torch.nn.functional as F

    from lmlab.models.bart import shift_tokens_right

    c = model.config
    logits = model(inputs, shift_tokens_right(targets, c.pad_token_id, c.decoder_start_token_id))
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).backward()  # (B*T, V) vs (B*T,)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def batches(args, n: int):
    from lmlab.objectives.span import span_corruption, span_corruption_lengths

    raw, _ = span_corruption_lengths(args.inputs_length)
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        ids = torch.randint(3, args.vocab - 100, (args.batch_size, raw), generator=g)
        out.append(span_corruption(ids, g, args.vocab, 1))
    return out


def train_rate(model, step, data, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for inputs, targets in data[:2]:  # warm-up
        step(model, optimizer, inputs, targets)
    start = time.perf_counter()
    tokens = 0
    for inputs, targets in data[2:2 + steps]:
        step(model, optimizer, inputs, targets)
        tokens += targets.numel()
    return tokens / (time.perf_counter() - start)


def ours_step(model, optimizer, inputs, targets):
    loss, n = model.loss_sum(inputs, targets)
    (loss / n).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def hf_step(model, optimizer, inputs, targets):
    model(input_ids=inputs, labels=targets).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def generate_rate(fn, batch: int, new_tokens: int) -> float:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    assert out.shape[1] >= new_tokens, out.shape
    return batch * new_tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=("t5", "bart"), default="t5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4100)
    parser.add_argument("--inputs-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--record", default="", help="write an lmlab.report record of the printed results into this folder")
    args = parser.parse_args()
    if args.record:  # the printed numbers as one lmlab record
        from lmlab.report.bench import record_at_exit
        record_at_exit(args.record, __file__)
    torch.set_num_threads(args.threads)

    from lmlab.tasks.generation import GenerationConfig, translate

    ours, hf = build(args)
    data = batches(args, args.steps + 2)
    step = bart_step if args.family == "bart" else ours_step
    extra = ({"forced_bos_token_id": None, "forced_eos_token_id": None, "no_repeat_ngram_size": 0,
              "pad_token_id": 1, "eos_token_id": 2} if args.family == "bart" else {})
    rates = {"train": ([], []), "generate b1": ([], []), "generate b8": ([], [])}
    for repeat in range(args.repeats):
        rates["train"][0].append(train_rate(ours, step, data, args.steps))
        rates["train"][1].append(train_rate(hf, hf_step, data, args.steps))
        print(f"repeat {repeat}: train {rates['train'][0][-1]:,.0f} vs {rates['train'][1][-1]:,.0f} tok/s", flush=True)
        ours.eval()
        hf.eval()
        for batch in (1, 8):
            src = data[0][0][:batch]
            config = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
            key = f"generate b{batch}"
            rates[key][0].append(generate_rate(lambda src=src, config=config: translate(ours, src, config=config),
                                               batch, args.new_tokens))
            rates[key][1].append(generate_rate(
                lambda src=src: hf.generate(input_ids=src, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                    do_sample=False, num_beams=1, **extra), batch, args.new_tokens))
    lines = [
        f"## {args.family.upper()} vs Hugging Face transformers (benchmarks/t5_bench.py)",
        "",
        f"Command: `python benchmarks/t5_bench.py {' '.join(sys.argv[1:])}` (d_model {args.d_model}, "
        f"{args.layers}+{args.layers} layers, {args.heads} heads, |V| {args.vocab}; training batch "
        f"{args.batch_size} x {args.inputs_length} inputs; {args.new_tokens} greedy tokens with a KV cache). "
        f"torch {torch.__version__}. Median of {args.repeats} repeats. Measured on a shared 2-core machine "
        "(other jobs running), so absolute rates are noisy; the ratio is the number to read.",
        "",
        "| measurement | lmlab (tok/s) | HF (tok/s) | lmlab / HF |",
        "|---|---:|---:|---:|",
    ]
    for name, (mine, theirs) in rates.items():
        a, b = statistics.median(mine), statistics.median(theirs)
        lines.append(f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)


if __name__ == "__main__":
    main()
