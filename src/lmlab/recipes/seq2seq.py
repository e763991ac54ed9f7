"""Encoder-decoder Transformer orchestration: the ``lmlab train`` builder and its two real tasks.

``build(run)`` is what ``lmlab train configs/transformer.toml`` runs. ``[data] task`` picks the task:

- ``"g2p"``: English grapheme-to-phoneme on the built-in ``cmudict`` corpus (split by word).
  Source = the word's characters, target = its first ARPAbet pronunciation, stress digits removed
  (39 phonemes) unless ``keep_stress``. Separate letter and phoneme vocabularies, so no shared
  embeddings (the target embedding is still the pre-softmax matrix).
- ``"wiki-desc"``: the lead sentence of a ``wiki-vital`` article -> its short Wikidata description,
  lowercased words; one word vocabulary for both sides (three-way embedding sharing).

Vocabularies are built from the training split only (:class:`PairVocab`); the eval source is the
``valid`` split (``eval_split = "test"`` to change it). Rows are :func:`lmlab.data.stream.pair_rows`,
batched by :class:`lmlab.data.stream.PairRows` (per-epoch reshuffle, length bucketing), and the
loss is :class:`lmlab.objectives.seq2seq.Seq2SeqObjective` (label-smoothed in training; the eval
loss is unsmoothed, so ``lmlab train`` prints a per-token perplexity).

``[model]``: ``preset`` (one of :data:`lmlab.models.transformer.PRESETS`, default ``"tiny"``) plus any
:class:`~lmlab.models.transformer.TransformerConfig` field; vocabulary sizes and special ids come
from the data. Label smoothing is set in ``[objective]`` (and copied into the model's config).

The exported folder is ``config.json`` + ``model.safetensors`` + ``source_vocab.txt`` and
``target_vocab.txt`` (one token per line, line i = id i): ``lmlab.load(folder)`` gives the model,
:meth:`PairVocab.from_folder` its vocabularies, :func:`translate_tokens` turns token lists into
output token lists through :func:`lmlab.tasks.generation.translate`.

The data preparation here (:func:`g2p_entries`, :func:`wiki_desc_pairs`, :class:`PairVocab`) is also
what ``benchmarks/seq2seq_bench.py`` trains and scores on.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .. import config as config_io
from ..errors import CheckpointError, ConfigError, DataError
from ..pretrained import read_vocabulary_file

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "PairVocab", "Seq2SeqDataSpec", "Seq2SeqObjectiveSpec", "build",
           "g2p_entries", "strip_stress", "translate_tokens", "wiki_desc_pairs"]

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SOURCE_VOCAB, TARGET_VOCAB = "source_vocab.txt", "target_vocab.txt"

# Task defaults for src_len / tgt_len (tokens; 0 in [data] means these).
TASK_LENGTHS = {"g2p": (20, 20), "wiki-desc": (40, 16)}


@dataclass
class Seq2SeqDataSpec:
    """The ``[data]`` table of a Transformer run file."""

    task: Literal["g2p", "wiki-desc"] = "g2p"
    src_len: int = 0             # longest source (letters / words); 0: 20 for g2p, 40 for wiki-desc
    tgt_len: int = 0             # longest target before </s>; 0: 20 for g2p, 16 for wiki-desc
    batch_size: int = 128
    bucket: int = 50             # length bucketing: runs of this many batches sorted by source length (1: off)
    max_examples: int = 0        # training pairs kept (0: all)
    eval_split: Literal["valid", "test"] = "valid"
    max_eval_examples: int = 0   # eval pairs kept (0: all)
    keep_stress: bool = False    # g2p: predict the stress digits 0/1/2 too
    vocab_size: int = 8000       # wiki-desc: the shared word vocabulary, specials included
    min_count: int = 2           # wiki-desc: words seen fewer times in training are <unk>
    seed: int = 0

    def validate(self) -> None:
        for name in ("src_len", "tgt_len", "max_examples", "max_eval_examples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "bucket", "min_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size <= len(SPECIALS):
            raise ConfigError(f"data.vocab_size must exceed the {len(SPECIALS)} specials, got {self.vocab_size}")

    def lengths(self) -> tuple[int, int]:
        default_src, default_tgt = TASK_LENGTHS[self.task]
        return self.src_len or default_src, self.tgt_len or default_tgt


@dataclass
class Seq2SeqObjectiveSpec:
    """The ``[objective]`` table: teacher-forced cross-entropy, label-smoothed in training (§5.4)."""

    label_smoothing: float = 0.1

    def validate(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"objective.label_smoothing must be in [0, 1), got {self.label_smoothing}")


# --------------------------------------------------------------------------- vocabularies


class PairVocab:
    """A source and a target vocabulary (lists of tokens, id = position), each starting with :data:`SPECIALS`.

    ``shared`` when both are the same list (one vocabulary, three-way embedding sharing).
    Unknown tokens encode as ``<unk>``.
    """

    def __init__(self, source: list[str], target: list[str]) -> None:
        for name, tokens in (("source", source), ("target", target)):
            if tokens[:len(SPECIALS)] != SPECIALS:
                raise DataError(f"{name} vocabulary must start with {SPECIALS}, got {tokens[:len(SPECIALS)]}")
            if len(set(tokens)) != len(tokens):
                raise DataError(f"{name} vocabulary has a token twice")
        self.source, self.target = source, target
        self.source_id = {t: i for i, t in enumerate(source)}
        self.target_id = {t: i for i, t in enumerate(target)}

    @property
    def shared(self) -> bool:
        return self.source == self.target

    @classmethod
    def for_g2p(cls, train: list[tuple[str, list[list[str]]]]) -> PairVocab:
        """The characters of the training words (source) and their phonemes (target), sorted."""
        letters = SPECIALS + sorted({c for word, _ in train for c in word})
        phonemes = SPECIALS + sorted({p for _, prons in train for pron in prons for p in pron})
        return cls(letters, phonemes)

    @classmethod
    def shared_words(cls, train: list[tuple[list[str], list[str]]], size: int = 8000,
                     min_count: int = 2) -> PairVocab:
        """One word vocabulary for both sides: the ``size - 4`` most frequent training words
        (source and target counted together) that were seen at least ``min_count`` times."""
        counts = collections.Counter(w for src, tgt in train for w in src + tgt)
        words = SPECIALS + [w for w, c in counts.most_common(size - len(SPECIALS)) if c >= min_count
                            and w not in SPECIALS]
        return cls(words, words)

    def encode_source(self, tokens: Sequence[str]) -> list[int]:
        return [self.source_id.get(t, UNK) for t in tokens]

    def encode_target(self, tokens: Sequence[str]) -> list[int]:
        return [self.target_id.get(t, UNK) for t in tokens]

    def encode_pairs(self, pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[tuple[list[int], list[int]]]:
        return [(self.encode_source(src), self.encode_target(tgt)) for src, tgt in pairs]

    def decode_target(self, ids: Sequence[int]) -> list[str]:
        """Target tokens of output ids, up to the first ``</s>`` or pad (``<s>`` skipped)."""
        tokens = []
        for i in ids:
            if i in (EOS, PAD):
                break
            if i != BOS:
                tokens.append(self.target[i])
        return tokens

    def files(self) -> dict[str, bytes]:
        """``source_vocab.txt`` and ``target_vocab.txt``: one token per line, line i = id i."""
        out = {}
        for name, tokens in ((SOURCE_VOCAB, self.source), (TARGET_VOCAB, self.target)):
            bad = next((t for t in tokens if not t or "\n" in t or "\r" in t or t != t.strip()), None)
            if bad is not None:
                raise DataError(f"vocabulary token {bad!r} cannot be written one per line")
            out[name] = ("\n".join(tokens) + "\n").encode("utf-8")
        return out

    @classmethod
    def from_folder(cls, folder: str | Path) -> PairVocab:
        """The vocabularies of an exported model folder, checked against its config.json's sizes."""
        from ..pretrained import read_model_config, split_config

        folder = Path(folder)
        _, fields, _ = split_config(read_model_config(folder), f"{folder}/config.json")
        lists = []
        for name, size_key in ((SOURCE_VOCAB, "src_vocab_size"), (TARGET_VOCAB, "tgt_vocab_size")):
            path = folder / name
            if not path.is_file():
                raise CheckpointError(f"{folder}: no {name} (not a folder exported by the seq2seq recipe)")
            tokens = read_vocabulary_file(path)
            if len(tokens) != fields.get(size_key):
                raise CheckpointError(f"{path}: {len(tokens)} tokens, config.json says {size_key}="
                                      f"{fields.get(size_key)}")
            lists.append(tokens)
        try:
            return cls(*lists)
        except DataError as err:
            raise CheckpointError(f"{folder}: {err}") from None


# --------------------------------------------------------------------------- the two tasks' data


def strip_stress(phonemes: str) -> list[str]:
    """``"HH AH0 L OW1"`` -> ``["HH", "AH", "L", "OW"]``."""
    return [p.rstrip("012") for p in phonemes.split()]


def g2p_entries(keep_stress: bool = False):
    """cmudict's train, valid and test splits as (word, [pronunciation, ...]) lists, each
    pronunciation a list of phonemes (stress digits removed unless ``keep_stress``)."""
    from ..data import sources

    def entries(docs):
        return [(d.text, [p.split() if keep_stress else strip_stress(p) for p in d.meta["pronunciations"]])
                for d in docs]

    splits = sources.load("cmudict").split()
    return entries(splits.train), entries(splits.valid), entries(splits.test)


def wiki_desc_pairs(docs, src_words: int = 40, tgt_words: int = 16) -> list[tuple[list[str], list[str]]]:
    """(lead-sentence words, description words) of each wiki-vital document that has both;
    lowercased word tokens, cut to ``src_words`` / ``tgt_words``."""
    from ..data.clean import split_sentences
    from ..data.tokenizers.word import word_tokenize

    out = []
    for d in docs:
        description = d.meta.get("description") or ""
        sentences = split_sentences(d.text)
        if description and sentences:
            out.append((word_tokenize(sentences[0], lowercase=True)[:src_words],
                        word_tokenize(description, lowercase=True)[:tgt_words]))
    return out


@dataclass
class TaskData:
    """A task's token pairs and vocabulary, as the recipe trains and evaluates on them."""

    vocab: PairVocab
    train: list[tuple[list[str], list[str]]]
    eval: list[tuple[list[str], list[str]]]
    left_out: int                 # g2p training words longer than src_len / tgt_len
    corpus: str


def load_task(data: Seq2SeqDataSpec) -> TaskData:
    """The training and eval pairs of ``data.task``, and the vocabulary built from the whole training split.

    g2p keeps the words whose letters and first pronunciation fit ``src_len`` / ``tgt_len`` (the
    others are left out, so no target is cut); wiki-desc cuts sentences and descriptions to them.
    ``max_examples`` / ``max_eval_examples`` then keep the first pairs of each split.
    """
    src_len, tgt_len = data.lengths()
    if data.task == "g2p":
        train, valid, test = g2p_entries(data.keep_stress)

        def fit(entries):
            return [(list(w), p[0]) for w, p in entries if len(w) <= src_len and len(p[0]) <= tgt_len]

        vocab = PairVocab.for_g2p(train)
        train_pairs, eval_pairs = fit(train), fit(valid if data.eval_split == "valid" else test)
        left_out, corpus = len(train) - len(train_pairs), "cmudict"
    else:
        from ..data import sources

        splits = sources.load("wiki-vital").split()
        train_pairs = wiki_desc_pairs(splits.train, src_len, tgt_len)
        eval_pairs = wiki_desc_pairs(splits[data.eval_split], src_len, tgt_len)
        vocab = PairVocab.shared_words(train_pairs, data.vocab_size, data.min_count)
        left_out, corpus = 0, "wiki-vital"
    if data.max_examples:
        train_pairs = train_pairs[:data.max_examples]
    if data.max_eval_examples:
        eval_pairs = eval_pairs[:data.max_eval_examples]
    if not train_pairs:
        raise DataError(f"task {data.task!r}: no training pairs (src_len={src_len}, tgt_len={tgt_len})")
    if not eval_pairs:
        raise DataError(f"task {data.task!r}: no {data.eval_split} pairs (src_len={src_len}, tgt_len={tgt_len})")
    return TaskData(vocab, train_pairs, eval_pairs, left_out, corpus)


# --------------------------------------------------------------------------- the lmlab train builder


def build(run):
    """``lmlab train`` builder: a RunFile ([data], [model] with an optional ``preset``, [objective]) -> TrainingJob."""
    from ..data.stream import PairRows, pair_rows
    from ..models.transformer import PRESETS, Transformer, TransformerConfig
    from ..objectives.seq2seq import Seq2SeqObjective
    from ..train.trainer import TrainingJob
    from .run import pop_preset

    data = config_io.from_dict(Seq2SeqDataSpec, dict(run.data), where="data")
    objective_spec = config_io.from_dict(Seq2SeqObjectiveSpec, dict(run.objective), where="objective")
    model_table = dict(run.model)
    preset_name, _ = pop_preset(model_table, PRESETS, "tiny", "Transformer")
    if "label_smoothing" in model_table:
        raise ConfigError("model.label_smoothing: set it as objective.label_smoothing (the objective applies it)")
    src_len, tgt_len = data.lengths()
    task = load_task(data)
    vocab = task.vocab
    values = {**PRESETS[preset_name], "src_vocab_size": len(vocab.source), "tgt_vocab_size": len(vocab.target),
              "share_embeddings": vocab.shared, "tie_output": True, "max_length": max(64, src_len, tgt_len + 1),
              "label_smoothing": objective_spec.label_smoothing, "pad_token_id": PAD, "bos_token_id": BOS,
              "eos_token_id": EOS, **model_table}
    config = config_io.from_dict(TransformerConfig, values, where="model")  # validated there
    if config.max_length < max(src_len, tgt_len + 1):
        raise ConfigError(f"model.max_length={config.max_length} is shorter than the rows "
                          f"(src_len={src_len}, tgt_len + 1={tgt_len + 1})")
    torch.manual_seed(data.seed)
    model = Transformer(config)
    train_rows = pair_rows(vocab.encode_pairs(task.train), src_len, tgt_len, PAD, BOS, EOS)
    eval_rows = pair_rows(vocab.encode_pairs(task.eval), src_len, tgt_len, PAD, BOS, EOS)
    train_source = PairRows(train_rows, src_len, data.batch_size, seed=data.seed,
                            bucket=data.bucket, pad_id=PAD)
    eval_source = PairRows(eval_rows, src_len, min(data.batch_size, len(eval_rows)), seed=data.seed, pad_id=PAD)
    objective = Seq2SeqObjective(src_len, tgt_len, PAD, objective_spec.label_smoothing)
    metadata = {"data": {"task": data.task, "corpus": task.corpus, "src_len": src_len, "tgt_len": tgt_len,
                         "keep_stress": data.keep_stress, "training_pairs": len(task.train)},
                "vocabulary": {"source": SOURCE_VOCAB, "target": TARGET_VOCAB}}

    def export(folder: Path) -> None:
        model.save_pretrained(folder, extra_files=vocab.files(), metadata=metadata)

    sides = (f"shared |V|={len(vocab.source)}" if vocab.shared
             else f"|V_src|={len(vocab.source)}, |V_tgt|={len(vocab.target)}")
    left_out = f" ({task.left_out:,} longer than {src_len}/{tgt_len} left out)" if task.left_out else ""
    describe = (f"Transformer ({preset_name}: {config.n_encoder_layers}+{config.n_decoder_layers} layers x "
                f"d={config.d_model}, {config.n_heads} heads, {config.norm_position}-LN) "
                f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {data.task} on {task.corpus}: "
                f"{len(task.train):,} training pairs{left_out}, {len(task.eval):,} {data.eval_split} pairs, {sides}")
    return TrainingJob(model, objective, train_source, eval_source, export, describe)


# --------------------------------------------------------------------------- using a trained model


def translate_tokens(model, vocab: PairVocab, sources: Sequence[Sequence[str]], max_new_tokens: int = 32,
                     num_beams: int = 1) -> list[list[str]]:
    """Output target tokens for each source token list (``list("word")`` for g2p), greedy or beam search."""
    from ..tasks.generation import translate

    if not sources:
        return []
    encoded = [vocab.encode_source(tokens) or [UNK] for tokens in sources]
    src = torch.full((len(encoded), max(len(ids) for ids in encoded)), PAD, dtype=torch.long)
    for i, ids in enumerate(encoded):
        src[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    produced = translate(model, src, max_new_tokens=max_new_tokens, num_beams=num_beams)
    return [vocab.decode_target(row) for row in produced.tolist()]
