"""Encoder-decoder orchestration: the ``lmlab train`` builder of the Transformer and T5, and its tasks.

``build(run)`` is what ``lmlab train configs/transformer.toml`` and ``configs/t5.toml`` run.
``[objective] kind`` picks what is trained:

- ``"translation"`` (the Transformer's default): teacher-forced source -> target pairs of a task,
  below;
- ``"span-corruption"`` (T5's default, Raffel et al., 2020 §3.1.4): pretraining on a corpus
  (``[data] corpus``, default ``wiki-vital``) with a subword tokenizer trained on its train split
  (``[tokenizer]``, default unigram with 4000 pieces, whose ``<pad>``, ``</s>``, ``<unk>`` are ids
  0, 1, 2 as in T5's vocabulary) and ``num_sentinels`` sentinel ids appended at the top of the
  vocabulary. Rows of raw tokens are cut from the token stream (documents end to end, ``</s>``
  between them), as long as :func:`lmlab.objectives.span.span_corruption_lengths` says the
  corrupted inputs of ``inputs_length`` need; :class:`~lmlab.objectives.span.SpanCorruptionObjective`
  corrupts them with the Trainer's generator. Either family trains on it (``family = "t5"`` or
  ``"transformer"``), the comparison the T5 paper's objective study makes.

For ``"translation"``, ``[data] task`` picks the task:

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

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "PairVocab", "PretrainDataSpec", "Seq2SeqDataSpec",
           "Seq2SeqObjectiveSpec", "SpanCorruptionSpec", "build", "g2p_entries", "strip_stress", "translate_tokens",
           "wiki_desc_pairs"]

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

    kind: Literal["translation"] = "translation"
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


OBJECTIVE_KINDS = ("translation", "span-corruption")
DEFAULT_OBJECTIVE = {"transformer": "translation", "t5": "span-corruption"}


def build(run):
    """``lmlab train`` builder: a RunFile ([data], [model] with an optional ``preset``, [objective]) -> TrainingJob.

    ``[objective] kind`` chooses the job: :func:`span_corruption_job` or :func:`translation_job`.
    """
    kind = dict(run.objective).get("kind", DEFAULT_OBJECTIVE.get(run.family, "translation"))
    if kind not in OBJECTIVE_KINDS:
        raise ConfigError(f"objective.kind: unknown {kind!r}; known: {', '.join(OBJECTIVE_KINDS)}")
    if kind == "span-corruption":
        return span_corruption_job(run)
    if run.family != "transformer":
        raise ConfigError(f"objective.kind = 'translation' trains the 'transformer' family, not {run.family!r}; "
                          f"{run.family} trains with objective.kind = 'span-corruption'")
    return translation_job(run)


def translation_job(run):
    """The Transformer on a task's pairs (``[data]`` a :class:`Seq2SeqDataSpec`)."""
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


# --------------------------------------------------------------------------- span-corruption pretraining


@dataclass
class PretrainDataSpec:
    """The ``[data]`` table of a span-corruption run."""

    corpus: str = "wiki-vital"
    inputs_length: int = 64       # corrupted encoder input, EOS included (T5: 512); raw rows are longer
    batch_size: int = 16
    max_documents: int = 0        # training documents kept (0: all)
    max_eval_documents: int = 0   # validation documents kept (0: all)
    seed: int = 0

    def validate(self) -> None:
        if self.max_eval_documents < 0:
            raise ConfigError(f"data.max_eval_documents must be >= 0, got {self.max_eval_documents}")
        if self.inputs_length < 8:
            raise ConfigError(f"data.inputs_length must be >= 8, got {self.inputs_length}")
        if self.batch_size < 1 or self.max_documents < 0:
            raise ConfigError("data.batch_size must be >= 1 and data.max_documents >= 0")


@dataclass
class PretrainTokenizerSpec:
    """The ``[tokenizer]`` table: a subword tokenizer trained on the corpus's train split."""

    kind: Literal["unigram", "bpe", "bytebpe"] = "unigram"
    vocab_size: int = 4000


@dataclass
class SpanCorruptionSpec:
    """The ``[objective]`` table of a span-corruption run (the T5 paper's defaults)."""

    kind: Literal["span-corruption"] = "span-corruption"
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    num_sentinels: int = 100      # ids appended at the top of the vocabulary (<extra_id_0> = the last)

    def validate(self) -> None:
        if not 0.0 < self.noise_density < 1.0:
            raise ConfigError(f"objective.noise_density must be in (0, 1), got {self.noise_density}")
        if not self.mean_noise_span_length >= 1.0:
            raise ConfigError(f"objective.mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}")
        if self.num_sentinels < 1:
            raise ConfigError(f"objective.num_sentinels must be >= 1, got {self.num_sentinels}")


def _encoder_decoder(family: str, model_table: dict, vocab_size: int, ids: dict[str, int], max_length: int):
    """(model, preset name, description) of ``family`` over one shared vocabulary of ``vocab_size``."""
    from .run import pop_preset

    if family == "t5":
        from ..models.t5 import PRESETS, T5Config, T5ForConditionalGeneration

        preset_name, _ = pop_preset(model_table, PRESETS, "t5-tiny", "T5")
        values = {**PRESETS[preset_name], "vocab_size": vocab_size, "pad_token_id": ids["pad"],
                  "eos_token_id": ids["eos"], "decoder_start_token_id": ids["pad"],
                  "max_length": max(512, max_length), **model_table}  # positions are relative: 512 caps outputs
        config = config_io.from_dict(T5Config, values, where="model")
        model = T5ForConditionalGeneration(config)
        shape = (f"{config.n_encoder_layers}+{config.n_decoder_layers} layers x d={config.d_model}, "
                 f"{config.n_heads} heads, {config.feed_forward}, {'tied' if config.tie_embeddings else 'untied'}")
        return model, preset_name, shape
    if family == "transformer":
        from ..models.transformer import PRESETS, Transformer, TransformerConfig

        preset_name, _ = pop_preset(model_table, PRESETS, "tiny", "Transformer")
        if "label_smoothing" in model_table:
            raise ConfigError("model.label_smoothing: span corruption trains without label smoothing")
        values = {**PRESETS[preset_name], "src_vocab_size": vocab_size, "tgt_vocab_size": vocab_size,
                  "share_embeddings": True, "tie_output": True, "max_length": max_length, "label_smoothing": 0.0,
                  "pad_token_id": ids["pad"], "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                  **model_table}
        config = config_io.from_dict(TransformerConfig, values, where="model")
        shape = (f"{config.n_encoder_layers}+{config.n_decoder_layers} layers x d={config.d_model}, "
                 f"{config.n_heads} heads, {config.norm_position}-LN")
        return Transformer(config), preset_name, shape
    raise ConfigError(f"span corruption trains an encoder-decoder family (t5, transformer), not {family!r}")


def span_corruption_job(run):
    """An encoder-decoder pretrained with T5's span corruption on ``[data] corpus``."""
    from ..data import sources
    from ..data.stream import LMBlocks
    from ..data.tokenizers import train_tokenizer
    from ..objectives.span import SpanCorruptionObjective, span_corruption_counts, span_corruption_lengths
    from ..train.trainer import TrainingJob
    from .gpt import document_stream

    data = config_io.from_dict(PretrainDataSpec, dict(run.data), where="data")
    spec = config_io.from_dict(PretrainTokenizerSpec, dict(run.tokenizer), where="tokenizer")
    objective_spec = config_io.from_dict(SpanCorruptionSpec, dict(run.objective), where="objective")
    raw_length, targets_length = span_corruption_lengths(data.inputs_length, objective_spec.noise_density,
                                                         objective_spec.mean_noise_span_length)
    _, spans = span_corruption_counts(raw_length, objective_spec.noise_density,
                                      objective_spec.mean_noise_span_length)
    if spans > objective_spec.num_sentinels:
        raise ConfigError(f"objective.num_sentinels = {objective_spec.num_sentinels}, but rows of {raw_length} raw "
                          f"tokens have {spans} noise spans, each needing its own sentinel")
    splits = sources.load(data.corpus).split()
    train_docs = splits.train[: data.max_documents] if data.max_documents else splits.train
    valid_docs = splits.valid[: data.max_eval_documents] if data.max_eval_documents else splits.valid
    if not train_docs or not valid_docs:
        raise DataError(f"corpus {data.corpus!r} needs training and validation documents")
    tokenizer = train_tokenizer(spec.kind, [d.text for d in train_docs], vocab_size=spec.vocab_size)
    ids = {role: tokenizer.token_to_id(token) for role, token in
           (("pad", "<pad>"), ("eos", "</s>"), ("bos", "<s>"))}
    missing = [token for token, i in zip(("<pad>", "</s>", "<s>"), ids.values()) if i is None]
    if missing:
        raise ConfigError(f"tokenizer {spec.kind!r} has no {missing[0]} token (span corruption needs <pad>, </s>, <s>)")
    vocab_size = tokenizer.vocab_size + objective_spec.num_sentinels
    torch.manual_seed(data.seed)
    model_table = dict(run.model)
    model, preset_name, shape = _encoder_decoder(run.family, model_table, vocab_size, ids,
                                                 max(data.inputs_length, targets_length))
    train_ids = document_stream(tokenizer.encode_batch([d.text for d in train_docs]), ids["eos"])
    valid_ids = document_stream(tokenizer.encode_batch([d.text for d in valid_docs]), ids["eos"])
    train_source = LMBlocks(train_ids, raw_length - 1, data.batch_size, seed=data.seed)   # rows of raw_length
    eval_source = LMBlocks(valid_ids, raw_length - 1, data.batch_size, seed=data.seed, shuffle=False)
    start = ids["pad"] if run.family == "t5" else ids["bos"]
    objective = SpanCorruptionObjective(vocab_size, ids["eos"], start, ids["pad"], objective_spec.noise_density,
                                        objective_spec.mean_noise_span_length)
    metadata = {"data": {"corpus": data.corpus, "inputs_length": data.inputs_length, "raw_length": raw_length,
                         "targets_length": targets_length},
                "sentinels": {"count": objective_spec.num_sentinels, "first_id": vocab_size - 1,
                              "tokenizer_vocab_size": tokenizer.vocab_size}}

    def export(folder: Path) -> None:
        model.save_pretrained(folder, extra_files=tokenizer.files(), metadata=metadata)

    describe = (f"{run.family} ({preset_name}: {shape}) {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
                f"params, span corruption (density {objective_spec.noise_density}, mean span "
                f"{objective_spec.mean_noise_span_length}) on {data.corpus}: {len(train_ids):,} training tokens, "
                f"{spec.kind} |V|={tokenizer.vocab_size} + {objective_spec.num_sentinels} sentinels, rows of "
                f"{raw_length} raw tokens -> {data.inputs_length} inputs, {targets_length} targets")
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


class TextCodec:
    """Text <-> ids for an exported encoder-decoder folder (what ``lmlab generate`` needs).

    - a folder of the translation recipe (``source_vocab.txt`` / ``target_vocab.txt``): g2p sources are
      the word's letters, wiki-desc sources lowercased words; outputs are target tokens joined by spaces;
    - a folder with tokenizer files (span corruption, or a Hugging Face T5 folder with a
      ``tokenizer.json``): the text is tokenized and EOS appended, as T5's inputs end (a BART folder's
      also open with ``<s>``, as :class:`lmlab.tasks.seq2seq.Seq2SeqCodec` frames them); ids above
      the tokenizer's vocabulary are sentinels and print as ``<extra_id_k>`` (k = V - 1 - id).
    """

    def __init__(self, encode, decode) -> None:
        self.encode, self.decode = encode, decode

    @classmethod
    def for_folder(cls, folder: str | Path, model) -> TextCodec:
        from ..data.tokenizers import load_tokenizer
        from ..pretrained import read_model_config

        folder = Path(folder)
        if (folder / SOURCE_VOCAB).is_file():
            vocab = PairVocab.from_folder(folder)
            task = read_model_config(folder).get("data", {}).get("task", "g2p")

            def encode(text: str) -> list[int]:
                from ..data.tokenizers.word import word_tokenize

                tokens = list(text.strip().lower()) if task == "g2p" else word_tokenize(text, lowercase=True)
                return vocab.encode_source(tokens) or [UNK]

            return cls(encode, lambda ids: " ".join(vocab.decode_target(ids)))
        if not ((folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()):
            raise CheckpointError(f"{folder}: no tokenizer or vocabulary files to turn the input text into ids "
                                  "(pass token ids with --ids)")
        tokenizer = load_tokenizer(folder)
        config = model.config
        known = tokenizer.vocab_size

        def decode(ids: Sequence[int]) -> str:
            pieces, run = [], []
            for i in ids:
                if i == config.eos_token_id:
                    break
                if i >= known:  # a sentinel
                    pieces.append(tokenizer.decode(run, skip_specials=True))
                    pieces.append(f"<extra_id_{config.vocab_size - 1 - i}>")
                    run = []
                elif i != config.pad_token_id:
                    run.append(i)
            pieces.append(tokenizer.decode(run, skip_specials=True))
            return " ".join(p.strip() for p in pieces if p.strip())

        from ..tasks.seq2seq import Seq2SeqCodec

        prefix = Seq2SeqCodec(model, tokenizer=tokenizer).source_prefix  # BART's sources open with <s>

        def encode(text: str) -> list[int]:
            if tokenizer.token_to_id("<extra_id_0>") is not None:  # a tokenizer that has the sentinels itself
                return [*prefix, *tokenizer.encode(text), config.eos_token_id]
            return [*prefix, *_with_sentinels(text, tokenizer, config.vocab_size), config.eos_token_id]

        return cls(encode, decode)


def _with_sentinels(text: str, tokenizer, vocab_size: int) -> list[int]:
    """Token ids of ``text`` where each ``<extra_id_k>`` written in it becomes sentinel V - 1 - k."""
    import re

    ids: list[int] = []
    for index, piece in enumerate(re.split(r"<extra_id_(\d+)>", text)):
        if index % 2:
            k = int(piece)
            if vocab_size - 1 - k < tokenizer.vocab_size:
                raise DataError(f"<extra_id_{k}>: the model has only {vocab_size - tokenizer.vocab_size} sentinels")
            ids.append(vocab_size - 1 - k)
        elif piece.strip():
            ids.extend(tokenizer.encode(piece.strip()))
    return ids
