"""lmlab GPT vs Hugging Face GPT-2, side by side in one process: training step and KV-cache generation.

Both models have the same shape and the *same weights* (lmlab's GPT is saved as a GPT-2 folder
with :func:`lmlab.interop.hf.save_gpt2` and loaded by ``transformers``), fp32, the same thread count.

- training: one AdamW step (forward, cross-entropy over every position, backward, update) on a
  (batch, seq) block, the same loss code for both; tokens/s and MFU = achieved model FLOP/s / the
  matmul peak measured here (an n x n fp32 matmul with the same threads). Model FLOPs per token:
  6 x (non-embedding matmul weights + output matrix) + 12 x layers x seq x d (attention).
- generation: greedy, ``--new-tokens`` new tokens after a 16-token prompt, KV cache on, at batch 1
  and 8; lmlab's ``generate`` vs ``transformers``' ``generate`` (no stop token, so both produce
  exactly the same number of tokens — the tokens themselves are checked equal).

Runs alternate between the two libraries (A B A B ...) and the median is reported, so a noisy,
shared machine affects both alike. Usage::

    python benchmarks/gpt_bench.py                 # the issue's shape: d=256, 4 layers, 4 heads, V=8192
    python benchmarks/gpt_bench.py --write benchmarks/results/gpt.md
    python benchmarks/gpt_bench.py --task seq2seq --train-seconds 300 --write benchmarks/results/gpt-seq2seq.md

``--task seq2seq`` trains the encoder-decoder Transformer (post-LN, shared embeddings, label
smoothing 0.1, the Trainer's Noam schedule) on a real task available offline: the lead sentence of a
``wiki-vital`` article -> its short Wikidata description ("The 100 metres ... is a sprint race in
track and field competitions." -> "sprint race"), train/test by the corpus's document split, and
reports test loss and BLEU / chrF (sacrebleu) for greedy and beam-search outputs, next to an
extractive baseline (the words after the first "is/was/are/were", article dropped, up to a comma).
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
    parser.add_argument("--task", choices=["speed", "seq2seq"], default="speed")
    parser.add_argument("--train-seconds", type=float, default=300.0, help="seq2seq: training time budget")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.task == "seq2seq":
        return seq2seq(args, argv)

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

    def step_fn(model, logits_of):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()

        def step():
            logits = logits_of(model, inputs)
            loss = F.cross_entropy(logits.reshape(-1, args.vocab), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    ours_step = step_fn(ours, lambda m, x: m(x))
    theirs_step = step_fn(theirs, lambda m, x: m(input_ids=x).logits)
    for step in (ours_step, theirs_step):  # warm-up
        step()
        step()
    train_times = {"lmlab": [], "transformers": []}
    for _ in range(args.rounds):
        train_times["lmlab"] += median_time(ours_step, args.steps)
        train_times["transformers"] += median_time(theirs_step, args.steps)
        peaks.append(measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=0.5))
    peaks.append(measure_matmul_flops(torch.device("cpu"), torch.float32, seconds=1.0))
    peak = max(peaks)
    tokens = args.batch * args.seq
    train_rows = {}
    for name, times in train_times.items():
        tps = tokens / statistics.median(times)
        train_rows[name] = (tps, tps * flops_per_token / peak)

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
    (a_tps, a_mfu), (b_tps, b_mfu) = train_rows["lmlab"], train_rows["transformers"]
    lines.append(f"| training step, tokens/s | {a_tps:,.0f} | {b_tps:,.0f} | {a_tps / b_tps:.2f}x |")
    lines.append(f"| training step, MFU | {a_mfu:.2f} | {b_mfu:.2f} | {a_mfu / b_mfu:.2f}x |")
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


# --------------------------------------------------------------------------- seq2seq: lead sentence -> description

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SRC_LEN, TGT_LEN = 40, 16


def extractive_baseline(words: list[str]) -> list[str]:
    """The words after the first copula, leading article dropped, up to a comma (at most 6)."""
    for i, w in enumerate(words):
        if w in ("is", "was", "are", "were"):
            rest = words[i + 1:]
            if rest and rest[0] in ("a", "an", "the"):
                rest = rest[1:]
            out = []
            for w2 in rest:
                if w2 in (",", ".", ";", "("):
                    break
                out.append(w2)
            return out[:6]
    return words[:4]


class PairRows:
    """Rows [source (SRC_LEN) | target-in (TGT_LEN + 1) | target-out (TGT_LEN + 1)], shuffled per epoch."""

    def __init__(self, rows: torch.Tensor, batch_size: int, seed: int = 0):
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.steps_per_epoch = len(rows) // batch_size

    def batch(self, step: int, shard: int = 0, shards: int = 1) -> torch.Tensor:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = torch.randperm(len(self.rows), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        chosen = order[within * self.batch_size:(within + 1) * self.batch_size]
        per = self.batch_size // shards
        return self.rows[chosen[shard * per:(shard + 1) * per]]


class Seq2SeqObjective:
    def prepare(self, ids, generator):
        return ids[:, :SRC_LEN], ids[:, SRC_LEN:SRC_LEN + TGT_LEN + 1], ids[:, SRC_LEN + TGT_LEN + 1:]

    def loss(self, model, batch):
        return model.loss_sum(*batch)


def seq2seq(args, argv) -> int:
    import collections

    import sacrebleu

    from lmlab.data import sources
    from lmlab.data.clean import split_sentences
    from lmlab.data.tokenizers.word import word_tokenize
    from lmlab.models.transformer import Transformer, TransformerConfig
    from lmlab.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    splits = sources.load("wiki-vital").split()

    def pairs(docs):
        out = []
        for d in docs:
            description = d.meta.get("description") or ""
            sentences = split_sentences(d.text)
            if description and sentences:
                out.append((word_tokenize(sentences[0], lowercase=True)[:SRC_LEN],
                            word_tokenize(description, lowercase=True)[:TGT_LEN]))
        return out

    train, test = pairs(splits.train), pairs(splits.test)
    counts = collections.Counter(w for src, tgt in train for w in src + tgt)
    vocab = ["<pad>", "<s>", "</s>", "<unk>"] + [w for w, c in counts.most_common(8000 - 4) if c >= 2]
    index = {w: i for i, w in enumerate(vocab)}

    def encode(words, length):
        ids = [index.get(w, UNK) for w in words][:length]
        return ids + [PAD] * (length - len(ids))

    def rows(data):
        out = []
        for src, tgt in data:
            t = [index.get(w, UNK) for w in tgt]
            out.append(encode(src, SRC_LEN) + ([BOS] + t + [PAD] * (TGT_LEN - len(t)))
                       + (t + [EOS] + [PAD] * (TGT_LEN - len(t))))
        return torch.tensor(out, dtype=torch.long)

    train_rows, test_rows = rows(train), rows(test)
    config = TransformerConfig(src_vocab_size=len(vocab), tgt_vocab_size=len(vocab), d_model=128, n_heads=4,
                               n_encoder_layers=3, n_decoder_layers=3, d_ff=512, dropout=0.1, label_smoothing=0.1,
                               max_length=64, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = Transformer(config)
    train_config = TrainConfig(seed=0, max_steps=10**9, lr=0.5, schedule="noam", d_model=128, warmup_steps=200,
                               betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, clip_norm=1.0, progress="off",
                               tensorboard=False, plot=False, mfu=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, Seq2SeqObjective(), PairRows(train_rows, 64), train_config, Path(tmp) / "run")
        started, steps = time.monotonic(), 0
        while time.monotonic() - started < args.train_seconds:
            trainer.train_step()
            steps += 1
        took = time.monotonic() - started
    model.eval()
    objective = Seq2SeqObjective()
    with torch.no_grad():
        total, count = 0.0, 0
        for start in range(0, len(test_rows), 256):
            loss_sum, n = objective.loss(model, objective.prepare(test_rows[start:start + 256], None))
            total, count = total + loss_sum.item(), count + int(n)
    references = [" ".join(tgt) for _, tgt in test]
    results = {"extractive baseline": [" ".join(extractive_baseline(src)) for src, _ in test]}
    for beams in (1, 4):
        outputs = []
        for start in range(0, len(test_rows), 128):
            produced = model.translate(test_rows[start:start + 128, :SRC_LEN], max_new_tokens=TGT_LEN + 1,
                                       num_beams=beams, length_penalty=1.0)
            for row in produced.tolist():
                words = []
                for i in row:
                    if i in (EOS, PAD):
                        break
                    words.append(vocab[i])
                outputs.append(" ".join(words))
        results["Transformer, greedy" if beams == 1 else f"Transformer, beam {beams}"] = outputs
    lines = ["## Encoder-decoder Transformer: wiki-vital lead sentence -> description", "",
             f"Command: `python benchmarks/gpt_bench.py {' '.join(argv)}`  ",
             (f"Data: {len(train):,} training pairs, {len(test):,} test pairs (wiki-vital document split), "
             f"shared word vocabulary of {len(vocab):,} (min count 2), source cut to {SRC_LEN} words, target to {TGT_LEN}.  "),
             (f"Model: post-LN, d=128, 4 heads, 3+3 layers, d_ff=512, dropout 0.1, label smoothing 0.1, shared "
             f"source/target/output embeddings ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters); "
             f"Adam(0.9, 0.98), Noam schedule (warm-up 200, scale 0.5), batch 64.  "),
             (f"Training: {steps:,} steps ({steps * 64 / len(train):.1f} epochs) in {took:.0f} s on {args.threads} "
             f"thread(s) of a shared, loaded machine. Test cross-entropy (label-smoothed, per target token incl. </s>): "
             f"{total / count:.3f} nats."), "",
             "| system | BLEU | chrF |", "|---|---|---|"]
    for name, outputs in results.items():
        bleu = sacrebleu.corpus_bleu(outputs, [references])
        chrf = sacrebleu.corpus_chrf(outputs, [references])
        lines.append(f"| {name} | {bleu.score:.1f} | {chrf.score:.1f} |")
    examples = list(zip(test[:5], results["Transformer, beam 4"][:5]))
    lines += ["", "Examples (test split):", ""]
    for (src, tgt), out in examples:
        lines.append(f"- {' '.join(src[:18])} ... -> **{out}** (reference: {' '.join(tgt)})")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
