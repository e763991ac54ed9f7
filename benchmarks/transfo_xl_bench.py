"""Transformer-XL: test perplexity vs evaluation memory length, and cached evaluation vs recomputing the context.

Takes a model folder ``lmlab train configs/transfo_xl.toml`` wrote and the test split of its corpus
as one word-level stream (``<s> w_1 .. w_n </s>`` sentences back to back, documents in order,
no resets: as the paper evaluates). Only words and ``</s>`` are counted (``<s>`` is context only):
the counting rule of every word-level LM row; the conditioning here is the stream, not the sentence.

- perplexity per word with segment ``L`` (the training segment) and evaluation memory
  ``M in {0, L, 2L, 4L}`` (``stream_log_probs``; the model was trained with ``mem_len`` = L);
- speed at context ``C = L + M``: Transformer-XL (segments of L on top of the memory, every position
  predicted once) against the same network as a vanilla Transformer that recomputes a window of
  ``C`` tokens for every predicted token (the paper's baseline, windows batched 64 at a time);
  both on the first ``--speed-tokens`` predictions, tokens/s and the ratio.

Usage::

    python benchmarks/transfo_xl_bench.py runs/transfo_xl/model --write benchmarks/results/transfo_xl.md
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


def test_stream(folder: Path, lanes: int, max_tokens: int):
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences
    from lmlab.data.stream import bptt_documents
    from lmlab.eval.perplexity import encode_sentences
    from lmlab.pretrained import read_model_config, read_word_vocabulary, split_config

    _, fields, meta = split_config(read_model_config(folder), str(folder))
    vocab = read_word_vocabulary(folder, fields["vocab_size"])
    corpus = (meta.get("data") or {}).get("corpus", "wiki-vital")
    docs = sources.load(corpus).split().test
    encoded = [encode_sentences(word_sentences([d]), vocab)[0] for d in docs]
    ids, _ = bptt_documents([doc for doc in encoded if doc], vocab.index("<s>"))
    ids = ids[:max_tokens] if max_tokens else ids
    lane = len(ids) // lanes
    return torch.from_numpy(ids[:lane * lanes].reshape(lanes, lane)), vocab.index("<s>"), corpus


def perplexity(model, stream: torch.Tensor, bos: int, segment: int, memory: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    lp = model.stream_log_probs(stream, segment, memory)          # (B, N-1)
    took = time.perf_counter() - start
    counted = stream[:, 1:] != bos
    n = int(counted.sum())
    return math.exp(-float(lp[counted].double().sum()) / n), took, n


@torch.no_grad()
def recompute(model, row: torch.Tensor, context: int, predictions: int, batch: int = 64) -> float:
    """Seconds to predict ``predictions`` tokens of ``row``, each from a fresh window of ``context`` tokens."""
    model.eval()
    start = time.perf_counter()
    ends = list(range(context, context + predictions))
    for i in range(0, len(ends), batch):
        windows = torch.stack([row[e - context:e] for e in ends[i:i + batch]])   # (b, C)
        h, _ = model(windows, None, None, 0)
        model.crit.log_prob(h[:, -1], row[torch.tensor(ends[i:i + batch])])
    return time.perf_counter() - start


@torch.no_grad()
def cached(model, row: torch.Tensor, segment: int, memory: int, context: int, predictions: int) -> float:
    """Seconds for Transformer-XL to predict the same ``predictions`` tokens (after warming the memory)."""
    model.eval()
    _, state = model(row[None, :context - 1], None, None, memory)   # the memory of the context before
    start = time.perf_counter()
    x = row[None, context - 1:context - 1 + predictions]
    for i in range(0, predictions, segment):
        h, state = model(x[:, i:i + segment], state, None, memory)
        model.crit.log_prob(h[0], row[context + i:context + i + h.shape[1]])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=0, help="first N test tokens (0: all)")
    parser.add_argument("--speed-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import lmlab

    model = lmlab.load(args.model).eval()
    c = model.config
    L = c.mem_len
    stream, bos, corpus = test_stream(args.model, args.lanes, args.max_tokens)
    lines = ["# Transformer-XL: perplexity vs evaluation memory, cached vs recomputed evaluation\n",
             f"`python benchmarks/transfo_xl_bench.py {args.model} --lanes {args.lanes} --max-tokens {args.max_tokens} "
             f"--speed-tokens {args.speed_tokens} --threads {args.threads}`  ",
             f"model: {c.n_layer} layers x d {c.d_model}, {c.n_head} heads, |V| {c.vocab_size}, cutoffs {c.cutoffs}, "
             f"div_val {c.div_val}, trained with segment = memory = {L}; {corpus} test stream, {stream.numel():,} tokens "
             f"in {args.lanes} lanes. {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{args.threads} threads, on a machine shared with other jobs (times are noisy).\n",
             "| eval memory M | context L+M | test ppl per word (words + </s>) | predicted | seconds |",
             "|---|---|---|---|---|"]
    for M in (0, L, 2 * L, 4 * L):
        ppl, took, n = perplexity(model, stream, bos, L, M)
        lines.append(f"| {M} | {L + M} | {ppl:.2f} | {n:,} | {took:.1f} |")
        print(lines[-1], flush=True)
    lines += ["", "| context C = L+M | Transformer-XL tokens/s | recompute-the-window tokens/s | speed-up |",
              "|---|---|---|---|"]
    row = stream.reshape(-1)
    for M in (L, 4 * L):
        C = L + M
        xl = cached(model, row, L, M, C, args.speed_tokens)
        vanilla = recompute(model, row, C, args.speed_tokens)
        lines.append(f"| {C} | {args.speed_tokens / xl:,.0f} | {args.speed_tokens / vanilla:,.0f} | "
                     f"{vanilla / xl:.1f}x |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
