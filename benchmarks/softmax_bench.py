"""Softmax speed-ups and neural LM perplexities on wiki-vital with a 10k-word closed vocabulary.

Two parts, both in one process, one thread (``torch.set_num_threads(1)``):

``--part speed``: training throughput of each output layer, side by side and interleaved
(round-robin over the layers, best of ``--repeats`` rounds), as tokens/s and as the speed-up
over the full softmax: (a) the output layer alone (forward + backward + AdamW step on random
hidden states), which is what the seed's |V|/log2|V| prediction is about; (b) a whole LSTM LM
training step (embedding, LSTM, output layer, optimiser).

``--part ppl``: NNLM and LSTM LMs trained for the same number of steps (the same tokens seen)
with each output layer, scored exactly (normalised) per word on the test split; NCE's mean
|log Z(h)| on the test positions; MKN 3- and 5-gram (lmlab.ngram) on the same stream; and the
linear interpolation of the LSTM with MKN 5-gram, the weight tuned on the valid split.

    .venv/bin/python benchmarks/softmax_bench.py --part speed
    .venv/bin/python benchmarks/softmax_bench.py --part ppl --steps 400

Results are printed as JSON and merged into the file ``--json`` names (if any); the tables in
``benchmarks/results/neural_lm.md`` and ``docs/neural_lm.md`` are written from them by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lmlab.data.stream import BPTTStream, WindowBatches, bptt_documents
from lmlab.eval.perplexity import encode_sentences, word_perplexity
from lmlab.models import nnlm, rnnlm
from lmlab.nn.softmax import SOFTMAX_KINDS, SoftmaxConfig, build_output_layer, huffman_tree
from lmlab.objectives.bptt import BPTTObjective
from lmlab.objectives.nextword import WindowObjective
from lmlab.recipes import word_lm as dn
from lmlab.train.trainer import TrainConfig, Trainer


def load(corpus: str, vocab_size: int):
    from lmlab.data import sources
    from lmlab.data.corpus import word_sentences
    from lmlab.data.vocab import frequent_vocabulary

    splits = sources.load(corpus).split()
    train = word_sentences(splits.train)
    vocab = frequent_vocabulary(train, vocab_size, 1, dn.SPECIALS)
    index = {w: i for i, w in enumerate(vocab)}
    train_ids, _ = encode_sentences(train, index)
    counts = dn.unigram_counts(train_ids, len(vocab))
    return {"vocab": vocab, "index": index, "train": train, "train_ids": train_ids, "counts": counts,
            "valid": word_sentences(splits.valid), "test": word_sentences(splits.test)}


def _config(seed=0, lr=3e-3):
    return TrainConfig.quiet(seed=seed, max_steps=10**9, lr=lr, weight_decay=0.0, clip_norm=1.0)


def speed(data, hidden: int, batch: int, bptt: int, repeats: int, steps: int) -> dict:
    vocab, counts = data["vocab"], data["counts"]
    V = len(vocab)
    kinds = [k for k in SOFTMAX_KINDS]
    torch.manual_seed(0)
    # (a) the output layer alone
    layers = {k: build_output_layer(SoftmaxConfig(kind=k), hidden, vocab, counts) for k in kinds}
    opts = {k: torch.optim.AdamW(layers[k].parameters(), lr=1e-3) for k in kinds}
    N = batch * bptt
    targets = torch.as_tensor(np.concatenate(data["train_ids"])[: N * 4]).view(4, N)
    hs = torch.randn(4, N, hidden)
    layer_best = {k: float("inf") for k in kinds}
    grad_best = {k: float("inf") for k in kinds}
    for _ in range(repeats):
        for k in kinds:
            start = time.perf_counter()
            for i in range(steps):
                opts[k].zero_grad()
                layers[k].loss(hs[i % 4], targets[i % 4]).backward()
                opts[k].step()
            layer_best[k] = min(layer_best[k], (time.perf_counter() - start) / steps)
            start = time.perf_counter()
            for i in range(steps):  # the same without the optimiser: the loss and its gradient only
                opts[k].zero_grad()
                layers[k].loss(hs[i % 4], targets[i % 4]).backward()
            grad_best[k] = min(grad_best[k], (time.perf_counter() - start) / steps)
    # (b) a whole LSTM LM training step through the Trainer
    stream, starts = bptt_documents([data["train_ids"]], vocab.index("<s>"))
    trainers = {}
    for k in kinds:
        torch.manual_seed(0)
        model = rnnlm.build(rnnlm.RNNLMConfig(embed_dim=hidden, hidden_dim=hidden, layers=1, dropout=0.0,
                                              softmax=SoftmaxConfig(kind=k)), vocab, counts)
        trainers[k] = Trainer(model, BPTTObjective(V, vocab.index("<s>")),
                              BPTTStream(stream, starts, V, batch, bptt), _config(), "/tmp/lmlab-softmax-bench")
        trainers[k].train_step()
    model_best = {k: float("inf") for k in kinds}
    for _ in range(repeats):
        for k in kinds:
            start = time.perf_counter()
            for _ in range(steps):
                trainers[k].train_step()
            model_best[k] = min(model_best[k], (time.perf_counter() - start) / steps)
    out = {"V": V, "hidden": hidden, "tokens_per_step": N, "layer": {}, "layer_grad_only": {}, "lstm": {},
           "predicted_tree_speedup": V / math.log2(V)}
    for k in kinds:
        out["layer"][k] = {"tokens_per_s": N / layer_best[k], "speedup": layer_best["full"] / layer_best[k]}
        out["layer_grad_only"][k] = {"tokens_per_s": N / grad_best[k], "speedup": grad_best["full"] / grad_best[k]}
        out["lstm"][k] = {"tokens_per_s": N / model_best[k], "speedup": model_best["full"] / model_best[k]}
    depth = torch.tensor(huffman_tree(counts).depths(), dtype=torch.float64)
    p = torch.as_tensor(counts, dtype=torch.float64)
    out["huffman_mean_depth"] = float((depth * p).sum() / p.sum())
    return out


def interpolate(lstm_valid, mkn_valid, lstm_test, mkn_test) -> tuple[float, float]:
    """Best lambda on valid for p = lam p_lstm + (1 - lam) p_mkn; test perplexity at that lambda."""
    def ppl(a, b, lam):
        return math.exp(-float(np.mean(np.logaddexp(np.log(lam) + a, np.log1p(-lam) + b))))
    grid = np.linspace(0.05, 0.95, 19)
    lam = min(grid, key=lambda g: ppl(lstm_valid, mkn_valid, g))
    return float(lam), ppl(lstm_test, mkn_test, lam)


def perplexities(data, steps: int, hidden: int, batch: int, bptt: int, kinds: list[str], with_ngram: bool,
                 seconds: float = float("inf"), nnlm_kinds: tuple[str, ...] = ("full",),
                 interpolate_kind: str = "full") -> dict:
    vocab, counts = data["vocab"], data["counts"]
    V, bos = len(vocab), data["vocab"].index("<s>")
    results: dict = {"steps": steps, "seconds": seconds, "hidden": hidden, "batch": batch, "bptt": bptt, "lstm": {}, "nnlm": {}}
    stream, starts = bptt_documents([data["train_ids"]], bos)
    scores = {}
    for k in kinds:
        torch.manual_seed(0)
        model = rnnlm.build(rnnlm.RNNLMConfig(embed_dim=hidden, hidden_dim=hidden, layers=1, dropout=0.1,
                                              softmax=SoftmaxConfig(kind=k)), vocab, counts)
        trainer = Trainer(model, BPTTObjective(V, bos), BPTTStream(stream, starts, V, batch, bptt),
                          _config(), "/tmp/lmlab-softmax-bench")
        n, took = dn.train_for(trainer, seconds, steps)
        ppl = word_perplexity(model, data["test"], vocab)
        row = {"steps": n, "test_ppl": ppl.perplexity, "train_s": took, "tokens_per_s": n * batch * bptt / took,
               "epochs": n * batch * bptt / len(stream)}
        if k == "nce":
            ids, _ = encode_sentences(data["test"][:500], vocab)
            with torch.no_grad():
                model.eval()
                logz = []
                for sent in ids:
                    x = torch.tensor([[bos] + sent[:-1]])
                    h, _ = model(x)
                    logz.append(model.output.log_partition(h[0]))
                row["mean_abs_log_z"] = float(torch.cat(logz).abs().mean())
        results["lstm"][k] = row
        print(f"LSTM {k}: {row}", flush=True)
        if k == interpolate_kind:
            valid_scores = model.score_sentences(encode_sentences(data["valid"], vocab)[0])
            test_scores = model.score_sentences(encode_sentences(data["test"], vocab)[0])
            scores["lstm"] = (torch.cat(valid_scores).double().numpy(), torch.cat(test_scores).double().numpy())
    for k in nnlm_kinds:
        torch.manual_seed(0)
        model = nnlm.build(nnlm.NNLMConfig(order=5, embed_dim=64, hidden_dim=hidden, direct=True,
                                           softmax=SoftmaxConfig(kind=k)), vocab, counts)
        windows = nnlm.ngram_windows(data["train_ids"], 5, bos)
        trainer = Trainer(model, WindowObjective(), WindowBatches(windows, batch * bptt // 2),
                          _config(), "/tmp/lmlab-softmax-bench")
        n, took = dn.train_for(trainer, seconds, steps)
        ppl = word_perplexity(model, data["test"], vocab)
        results["nnlm"][k] = {"steps": n, "test_ppl": ppl.perplexity, "train_s": took,
                              "tokens_per_s": n * (batch * bptt // 2) / took,
                              "epochs": n * (batch * bptt // 2) / len(windows)}
        print(f"NNLM {k}: {results['nnlm'][k]}", flush=True)
    if with_ngram:
        try:
            from lmlab import ngram
        except ImportError:
            return results
        results["mkn"] = {}
        for order in (3, 5):
            start = time.perf_counter()
            model = ngram.build(data["train"], order=order, smoothing="mkn", vocab=vocab)
            ev = model.evaluate(data["test"])
            results["mkn"][str(order)] = {"test_ppl": ev.perplexity, "train_s": time.perf_counter() - start}
            print(f"MKN {order}: {results['mkn'][str(order)]}", flush=True)
            if order == 5 and "lstm" in scores:
                mkn_valid = model.score_sentences(data["valid"])[0] * math.log(10)
                mkn_test = model.score_sentences(data["test"])[0] * math.log(10)
                lam, ppl = interpolate(scores["lstm"][0], mkn_valid, scores["lstm"][1], mkn_test)
                results["interpolation"] = {"lstm_softmax": interpolate_kind, "lambda_lstm": lam, "test_ppl": ppl}
                print(f"LSTM+MKN5: {results['interpolation']}", flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["speed", "ppl"], required=True)
    parser.add_argument("--corpus", default="wiki-vital")
    parser.add_argument("--vocab-size", type=int, default=10000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=float("inf"), help="ppl: training time per model")
    parser.add_argument("--nnlm-kinds", default="full", help="ppl: output layers for the NNLM rows ('' for none)")
    parser.add_argument("--interpolate", default="full", help="ppl: which LSTM to interpolate with MKN 5-gram")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(SOFTMAX_KINDS))
    parser.add_argument("--no-ngram", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="Merge the result into this JSON file.")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load(args.corpus, args.vocab_size)
    started = time.perf_counter()
    if args.part == "speed":
        result = speed(data, args.hidden, args.batch, args.bptt, args.repeats, steps=5)
    else:
        result = perplexities(data, args.steps, args.hidden, args.batch, args.bptt, args.kinds.split(","),
                              not args.no_ngram, args.seconds, tuple(k for k in args.nnlm_kinds.split(",") if k),
                              args.interpolate)
    result["command"] = "benchmarks/softmax_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["wall_s"] = time.perf_counter() - started
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.is_file() else {}
        merged[args.part] = result
        args.json.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
