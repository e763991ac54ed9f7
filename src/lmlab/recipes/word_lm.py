"""Orchestration for the word-level neural LMs (NNLM, RNN / LSTM LM): data, training jobs, demo rows.

- :class:`WordDataConfig` / :func:`load_word_data`: a corpus's word-level stream (the one every
  word-level LM scores: sentence-split, word-tokenized, lowercased), its closed vocabulary and
  the training unigram counts the output layers are built from.
- :func:`nnlm_job` / :func:`rnnlm_job`: what ``lmlab train configs/nnlm.toml`` (``lstm.toml``)
  runs: a :class:`lmlab.train.TrainingJob` from the run file's ``[data]``, ``[model]`` and
  ``[batch]`` tables.
- :func:`run_demo`: the NNLM and LSTM rows of ``lmlab demo`` (exact per-word test perplexity).

The models themselves are in :mod:`lmlab.models.nnlm` and :mod:`lmlab.models.rnnlm`; this file
only wires data, models and the Trainer together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import config as config_io
from ..data.stream import BPTTStream, WindowBatches, WindowEval, bptt_documents
from ..data.vocab import frequent_vocabulary
from ..errors import ConfigError, DataError
from ..eval.perplexity import encode_sentences, word_perplexity
from ..models import nnlm, rnnlm
from ..nn.softmax import SoftmaxConfig
from ..objectives.bptt import BPTTObjective
from ..objectives.nextword import WindowObjective
from ..pretrained import save_word_lm
from ..report import DemoData, DemoRow
from ..train.trainer import TrainConfig, Trainer, TrainingJob

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


@dataclass
class WordDataConfig:
    """The ``[data]`` table: the text (a built-in corpus, or a prepared stream) and how it is batched."""

    corpus: str = "wiki-vital"
    stream: str = ""              # a folder `lmlab corpus prepare --tokenizer word` wrote: its splits and vocabulary
    batch_size: int = 64          # rows (NNLM: windows; LSTM: lanes) per step
    bptt: int = 35                # truncated BPTT length of the recurrent models
    eval_batch_size: int = 16


@dataclass
class WordTokenizerSpec:
    """The ``[tokenizer]`` table: the closed word vocabulary, built on the training split."""

    kind: str = "word"
    vocab_size: int = 10000       # most frequent training words kept (specials included)
    min_count: int = 1


@dataclass
class WordData:
    vocab: list[str]
    counts: np.ndarray                       # training unigram counts per id (words and </s>)
    train: list[list[list[int]]]             # per document, per sentence: ids w_1 .. w_n </s>
    valid: list[list[list[int]]]
    test_sentences: list[list[str]]
    description: dict = field(default_factory=dict)


def unigram_counts(sentences_ids: list[list[int]], vocab_size: int) -> np.ndarray:
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sentences_ids]) if sentences_ids else np.zeros(0)
    return np.bincount(flat.astype(np.int64), minlength=vocab_size)


def train_oov_rate(counts: np.ndarray, vocab: list[str]) -> float:
    """The share of training words (``</s>`` not counted) that fell outside the closed vocabulary:
    what ``lmlab eval ppl`` compares a test text's OOV rate with."""
    words = int(counts.sum()) - int(counts[vocab.index("</s>")])
    return round(int(counts[vocab.index("<unk>")]) / words, 6) if words > 0 else 0.0


def load_word_data(cfg: WordDataConfig, spec: WordTokenizerSpec) -> WordData:
    """The training data of a word LM: from ``cfg.stream`` (a prepared word-level stream, its
    vocabulary reused) or from ``cfg.corpus`` (split, vocabulary built on train, encoded by document)."""
    from ..data import sources
    from ..data.corpus import word_sentences

    if spec.kind != "word":
        raise ConfigError(f"tokenizer.kind: the word LMs predict words from a closed vocabulary ('word'), "
                          f"got {spec.kind!r}")
    if cfg.stream:
        return _stream_word_data(cfg)
    splits = sources.load(cfg.corpus).split()
    per_doc = {name: [word_sentences([d]) for d in docs] for name, docs in
               (("train", splits.train), ("valid", splits.valid))}
    train_flat = [s for doc in per_doc["train"] for s in doc]
    if not train_flat:
        raise DataError(f"corpus {cfg.corpus!r} has no training sentences")
    vocab = frequent_vocabulary(train_flat, spec.vocab_size, spec.min_count, SPECIALS)
    index = {w: i for i, w in enumerate(vocab)}
    encoded = {name: [encode_sentences(doc, index)[0] for doc in docs if doc] for name, docs in per_doc.items()}
    counts = unigram_counts([s for doc in encoded["train"] for s in doc], len(vocab))
    return WordData(vocab, counts, encoded["train"], encoded["valid"], word_sentences(splits.test),
                    {"corpus": cfg.corpus, "vocab_size": len(vocab), "min_count": spec.min_count,
                     "train_oov_rate": train_oov_rate(counts, vocab)})


def _stream_word_data(cfg: WordDataConfig) -> WordData:
    """A prepared word-level stream: one entry per sentence (``w_1 .. w_n </s>``), the saved vocabulary.

    The stream does not record document boundaries, so each split is one document (the LSTM's
    state runs through it, as in the usual PTB-style setup)."""
    from ..data.stream import TokenStream
    from ..data.tokenizers import load_tokenizer

    folder = Path(cfg.stream)
    tokenizer = load_tokenizer(folder / "tokenizer")
    if tokenizer.kind != "word":
        raise ConfigError(f"data.stream: {folder} was prepared with a {tokenizer.kind!r} tokenizer; the word LMs "
                          "need one prepared with --tokenizer word")
    vocab = list(tokenizer.tokens)
    if vocab[: len(SPECIALS)] != SPECIALS:
        raise ConfigError(f"data.stream: {folder}/tokenizer must start with {', '.join(SPECIALS)}")
    splits = {}
    for name in ("train", "valid", "test"):
        stream = TokenStream(folder / name)
        splits[name] = [[stream.document(i).astype(np.int64).tolist() for i in range(stream.n_documents)]]
    if not splits["train"][0]:
        raise DataError(f"data.stream: {folder}/train holds no sentences")
    counts = unigram_counts(splits["train"][0], len(vocab))
    test_sentences = [[vocab[i] for i in s[:-1]] for s in splits["test"][0]]
    corpus = TokenStream(folder / "train").meta.get("corpus", "")
    return WordData(vocab, counts, splits["train"], splits["valid"], test_sentences,
                    {"corpus": corpus, "stream": str(folder), "vocab_size": len(vocab),
                     "train_oov_rate": train_oov_rate(counts, vocab)})


def _sections(run, allowed: set[str]) -> None:
    unknown = sorted(set(run) - allowed)
    if unknown:
        raise ConfigError(f"run file: unknown table {unknown[0]!r}; known: {', '.join(sorted(allowed))}")


def _read_tables(run) -> tuple[WordDataConfig, WordTokenizerSpec]:
    """[data] and [tokenizer] of a word-LM run file (the tables of lmlab 0.2 are named in the error)."""
    if "batch" in run:
        raise ConfigError("run file: the [batch] table is now part of [data] (batch_size, bptt, eval_batch_size)")
    data = dict(run.get("data", {}))
    moved = sorted(k for k in ("vocab_size", "min_count") if k in data)
    if moved:
        raise ConfigError(f"run file: data.{moved[0]} is now tokenizer.{moved[0]} (the vocabulary is the tokenizer's)")
    return (config_io.from_dict(WordDataConfig, data, where="data"),
            config_io.from_dict(WordTokenizerSpec, run.get("tokenizer", {}), where="tokenizer"))


def nnlm_job(run: dict) -> TrainingJob:
    """A training job for the NNLM from a run file (tables [data] [model] [batch]; [train] is the CLI's)."""
    _sections(run, {"family", "data", "tokenizer", "model", "batch", "train"})
    data_cfg, spec = _read_tables(run)
    model_cfg = config_io.from_dict(nnlm.NNLMConfig, run.get("model", {}), where="model")
    data = load_word_data(data_cfg, spec)
    model = nnlm.build(model_cfg, data.vocab, data.counts)
    bos = data.vocab.index("<s>")
    train = nnlm.ngram_windows([s for doc in data.train for s in doc], model_cfg.order, bos)
    valid = nnlm.ngram_windows([s for doc in data.valid for s in doc], model_cfg.order, bos)
    seed = int(run.get("train", {}).get("seed", 0))
    return TrainingJob(
        model=model, objective=WindowObjective(), train_source=WindowBatches(train, data_cfg.batch_size, seed),
        eval_source=WindowEval(valid), export=lambda folder: nnlm.save(model, folder, data.vocab, data.description),
        describe=f"NNLM n={model_cfg.order} softmax={model_cfg.softmax.kind} |V|={len(data.vocab)} "
                 f"on {data_cfg.stream or data_cfg.corpus}: {len(train):,} training windows")


def rnnlm_job(run: dict) -> TrainingJob:
    """A training job for the RNN / LSTM LM (truncated BPTT over the documents of the train split)."""
    _sections(run, {"family", "data", "tokenizer", "model", "batch", "train"})
    data_cfg, spec = _read_tables(run)
    model_cfg = config_io.from_dict(rnnlm.RNNLMConfig, run.get("model", {}), where="model")
    data = load_word_data(data_cfg, spec)
    model = rnnlm.build(model_cfg, data.vocab, data.counts)
    return bptt_job(model, data, data_cfg, f"{model_cfg.cell.upper()} LM {model_cfg.layers}x{model_cfg.hidden_dim} "
                                           f"softmax={model_cfg.softmax.kind} |V|={len(data.vocab)} on {data_cfg.corpus}")


def bptt_job(model, data: WordData, data_cfg: WordDataConfig, describe: str) -> TrainingJob:
    """A truncated-BPTT job over the train split's documents with carried state (the LSTM's state,
    Transformer-XL's memory), evaluated the same way on valid; exported as a word LM folder."""
    bos, V = data.vocab.index("<s>"), len(data.vocab)
    train_ids, train_starts = bptt_documents(data.train, bos)
    valid_ids, valid_starts = bptt_documents(data.valid, bos)
    return TrainingJob(
        model=model, objective=BPTTObjective(V, bos),
        train_source=BPTTStream(train_ids, train_starts, V, data_cfg.batch_size, data_cfg.bptt),
        eval_source=BPTTStream(valid_ids, valid_starts, V, data_cfg.eval_batch_size, data_cfg.bptt),
        export=lambda folder: save_word_lm(model, folder, data.vocab, data.description),
        describe=f"{describe}: {len(train_ids):,} training tokens")


# ----------------------------------------------------------------------------- the demo


def train_for(trainer: Trainer, seconds: float, max_steps: int) -> tuple[int, float]:
    """Run Trainer steps until ``max_steps`` or ``seconds`` have passed; (steps, seconds taken)."""
    start = time.monotonic()
    steps = 0
    while steps < max_steps and time.monotonic() - start < seconds:
        trainer.train_step()
        steps += 1
    return steps, time.monotonic() - start


def _quiet(seed: int, lr: float) -> TrainConfig:
    return TrainConfig.quiet(seed=seed, max_steps=10**9, lr=lr, weight_decay=0.0, clip_norm=1.0)


def run_demo(data: DemoData) -> list[DemoRow]:
    """NNLM (5-gram context) and a 1-layer LSTM with tied embeddings, each trained
    for a share of the time left (about 60 s in all), scored exactly per word on the test sentences.

    Runs on one thread: these small matrices gain nothing from a second one, and on a shared
    machine OpenMP's spinning threads make each step many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(data)
    finally:
        torch.set_num_threads(threads)


def _run_demo(data: DemoData) -> list[DemoRow]:
    torch.manual_seed(data.seed)
    budget = max(0.0, min(60.0, data.seconds_left()))
    if budget < 10:
        return [DemoRow("neural LM", "NNLM / LSTM (skipped)", notes="time budget spent")]
    vocab = list(data.vocab)
    index = {w: i for i, w in enumerate(vocab)}
    bos = index["<s>"]
    train_ids, _ = encode_sentences(data.train_sentences, index)
    counts = unigram_counts(train_ids, len(vocab))
    rows = []
    out_dir = Path(data.out_dir) / "neural"
    # the NNLM: about 35% of the budget for training, the LSTM 45%, the rest for exact scoring
    # class-based softmax (sqrt(|V|) frequency classes): ~6x faster steps than the full softmax
    # on this machine, and still exactly normalised for the perplexity
    classes = SoftmaxConfig(kind="class")
    model = nnlm.build(nnlm.NNLMConfig(order=5, embed_dim=64, hidden_dim=128, softmax=classes),
                       vocab, counts)
    windows = nnlm.ngram_windows(train_ids, 5, bos)
    trainer = Trainer(model, WindowObjective(), WindowBatches(windows, 256, data.seed),
                      _quiet(data.seed, 5e-3), out_dir / "nnlm")
    steps, took = train_for(trainer, 0.35 * budget, 10**9)
    ppl = word_perplexity(model, data.test_sentences, vocab)
    rows.append(DemoRow("neural LM", "NNLM 5-gram (Bengio 2003)", {"test ppl": ppl.perplexity}, took,
                        f"{steps} steps x 256 windows ({steps * 256 / max(len(windows), 1):.2f} epochs), class softmax"))
    lstm = rnnlm.build(rnnlm.RNNLMConfig(embed_dim=128, hidden_dim=128, layers=1, dropout=0.1, tie_embeddings=True,
                                         softmax=classes),
                       vocab, counts)
    stream, starts = bptt_documents([train_ids], bos)
    trainer = Trainer(lstm, BPTTObjective(len(vocab), bos), BPTTStream(stream, starts, len(vocab), 32, 35),
                      _quiet(data.seed, 3e-3), out_dir / "lstm")
    from ..train.budget import seconds_left as hard_limit  # lmlab demo's: the LSTM trains no further than it

    seconds = min(max(5.0, min(0.45 * budget, data.seconds_left() - 0.15 * budget)), hard_limit() - 1.0)
    if seconds < 2:
        rows.append(DemoRow("neural LM", "LSTM 1x128, tied (Zaremba 2014)", notes="skipped: its time share was spent"))
        return rows
    steps, took = train_for(trainer, seconds, 10**9)
    ppl = word_perplexity(lstm, data.test_sentences, vocab)
    rows.append(DemoRow("neural LM", "LSTM 1x128, tied (Zaremba 2014)", {"test ppl": ppl.perplexity}, took,
                        f"{steps} steps x 32x35 tokens ({steps * 32 * 35 / len(stream):.2f} epochs), class softmax"))
    return rows
