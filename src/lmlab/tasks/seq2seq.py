"""Sequence-to-sequence fine-tuning of a pretrained encoder-decoder (T5, BART, MASS, Transformer), and its scores.

:func:`finetune_seq2seq` ``(model_dir, data, spec, out_dir) -> scores`` is the whole flow
(``lmlab finetune MODEL DATA`` calls it for encoder-decoders):

1. the model and its text codec (:class:`Seq2SeqCodec`) from ``model_dir``: an lmlab folder written by
   ``lmlab train configs/{t5,bart,mass,transformer}.toml`` (or by this function), or a Hugging Face T5 /
   BART folder with its ``tokenizer.json``;
   ``spec.from_scratch`` re-initialises the weights at the same size (the "no pretraining" baseline);
2. source -> target pairs of ``data``, split into train / valid / test:

   | data | pairs | split |
   |---|---|---|
   | ``g2p`` | a cmudict word -> its first pronunciation, stress removed (``"HH AH L OW"``) | cmudict's own, by word |
   | ``kjv-web`` | a KJV verse -> the same verse in the World English Bible (:mod:`lmlab.data.bible`) | by book |
   | ``wiki-desc`` | a wiki-vital article's lead sentence -> its short description | wiki-vital's own, by document |
   | a ``.jsonl`` file | ``{"source": ..., "target": ...}`` per line | 80/10/10 by a hash of the source |
   | a ``.tsv`` file | ``source<TAB>target`` per line | 80/10/10 by a hash of the source |

3. teacher-forced training with label-smoothed cross-entropy (ε = 0.1, BART's fine-tuning setting)
   through the one Trainer, each family's pairs framed as it was pretrained (:class:`Seq2SeqCodec`;
   BART: source ``<s> x </s>``, decoder input ``</s> <s> y``, target ``<s> y </s>``; T5: ``x </s>``,
   ``<pad> y``, ``y </s>``);
4. decoding of the test (or valid) sources with :func:`lmlab.tasks.generation.generate` (greedy) or
   ``beam_search`` through the model's ``generation_steps`` (:class:`lmlab.nn.decoding.EncoderDecoderSteps`,
   KV-cached), from its decoder start;
5. scores (:mod:`lmlab.eval.metrics`): BLEU, chrF, ROUGE-1/2/L for every task, PER and WER as well for
   ``g2p`` (phonemes compared as space-separated symbols).

The fine-tuned model is saved to ``out_dir/model`` (with its tokenizer or vocabularies, and the spec in
its config.json) and the scores to ``out_dir/scores.json``, with a few example outputs.
:func:`evaluate_seq2seq` (``lmlab eval seq2seq``) scores a saved folder again with the same settings;
:class:`Text2TextGenerationPipeline` (``lmlab predict``) decodes texts with it, by default with the recorded
beams, length penalty and lengths (:func:`saved_spec`; a folder without them: the old defaults).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, LmlabError, UsageError

BUILT_IN = ("g2p", "kjv-web", "wiki-desc")


@dataclass
class Seq2SeqFinetuneSpec:
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-4
    warmup_steps: int = 30
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    max_source_len: int = 64          # tokens, <s> and </s> included
    max_target_len: int = 64
    max_train: int = 0                # training pairs kept (0: all)
    max_eval: int = 200               # pairs decoded and scored
    eval_split: str = "test"          # test | valid
    num_beams: int = 1
    length_penalty: float = 1.0
    from_scratch: bool = False        # same size, fresh weights: the no-pretraining baseline
    seed: int = 0
    threads: int = 1

    def validate(self) -> None:
        for name in ("steps", "batch_size", "num_beams"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_source_len", "max_target_len"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name} must be >= 2, got {getattr(self, name)}")
        if not math.isfinite(self.length_penalty):
            raise ConfigError(f"length_penalty must be a finite number, got {self.length_penalty}")
        if self.eval_split not in ("valid", "test"):
            raise ConfigError(f"eval_split must be valid or test, got {self.eval_split!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


Pairs = list[tuple[str, str]]

# the decoding settings a fine-tuning records (its spec's field -> the command-line option naming it)
DECODING_OPTIONS = {"num_beams": "--num-beams", "length_penalty": "--length-penalty",
                    "max_source_len": "--max-source-length", "max_target_len": "--max-target-length"}


def check_decoding_options(given: dict, max_length: int | None = None) -> dict:
    """``given`` (spec field -> value, None: not given) without its Nones, after the range checks of
    ``--num-beams`` (>= 1), ``--length-penalty`` (finite) and ``--max-source-length`` /
    ``--max-target-length`` (>= 2 and at most the model's ``max_length``); a one-line UsageError otherwise."""
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        option = DECODING_OPTIONS[name]
        if name == "num_beams" and value < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
        if name == "length_penalty" and not math.isfinite(value):
            raise UsageError(f"{option} must be a finite number, got {value}")
        if name in ("max_source_len", "max_target_len"):
            if value < 2:
                raise UsageError(f"{option} must be >= 2, got {value}")
            if max_length is not None and value > max_length:
                raise UsageError(f"{option} must be <= the model's max_length ({max_length}), got {value}")
        out[name] = value
    return out


def folder_max_length(folder: str | Path) -> int | None:
    """The ``max_length`` (positions) in a saved folder's config.json, or None when it names none."""
    from ..pretrained import read_model_config, split_config

    _, fields, _ = split_config(read_model_config(folder), f"{folder}/config.json")
    value = fields.get("max_length")
    return value if isinstance(value, int) else None


def saved_spec(folder: str | Path) -> Seq2SeqFinetuneSpec | None:
    """The Seq2SeqFinetuneSpec a fine-tuned folder recorded (config.json's ``finetuned.spec``; keys an older
    lmlab did not write take their defaults), or None for a folder that records no fine-tuning."""
    from ..pretrained import read_model_config

    finetuned = read_model_config(folder).get("finetuned")
    if not isinstance(finetuned, dict):
        return None
    saved = finetuned.get("spec") or {}
    known = set(Seq2SeqFinetuneSpec.__dataclass_fields__)
    return Seq2SeqFinetuneSpec(**{k: v for k, v in saved.items() if k in known})


# --------------------------------------------------------------------------- the tasks' pairs


def g2p_pairs() -> dict[str, Pairs]:
    """cmudict's splits as (word, "PH O NE MES") pairs, first pronunciation, stress digits removed."""
    from ..data import sources

    splits = sources.load("cmudict").split()
    return {name: [(d.text, " ".join(p.rstrip("012") for p in d.meta["pronunciations"][0].split()))
                   for d in splits[name]] for name in ("train", "valid", "test")}


def kjv_web_pairs() -> dict[str, Pairs]:
    """(KJV verse, WEB verse) pairs split by book (:func:`lmlab.data.bible.split_by_book`)."""
    from ..data import bible

    return {name: [(v.kjv, v.web) for v in verses]
            for name, verses in bible.split_by_book(bible.aligned_verses()).items()}


def wiki_desc_pairs() -> dict[str, Pairs]:
    """(lead sentence, short description) of each wiki-vital document that has both."""
    from ..data import sources
    from ..data.clean import split_sentences

    splits = sources.load("wiki-vital").split()
    out = {}
    for name in ("train", "valid", "test"):
        out[name] = []
        for d in splits[name]:
            description = (d.meta.get("description") or "").strip()
            sentences = split_sentences(d.text)
            if description and sentences:
                out[name].append((sentences[0], description))
    return out


def read_pairs_file(path: str | Path) -> Pairs:
    """A user's pairs: ``.jsonl`` ({"source", "target"} per line) or ``.tsv`` (source TAB target)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pairs file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: invalid UTF-8 at byte {err.start}") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("source"), str) \
                    or not isinstance(row.get("target"), str):
                raise DataError(f"{path}:{number}: expected {{\"source\": \"...\", \"target\": \"...\"}}")
            pairs.append((row["source"], row["target"]))
        elif path.suffix == ".tsv":
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{path}:{number}: expected source<TAB>target, got {len(parts)} fields")
            pairs.append((parts[0], parts[1]))
        else:
            raise DataError(f"{path}: pairs files are .jsonl or .tsv, not {path.suffix or 'no suffix'!r}")
    if not pairs:
        raise DataError(f"{path}: no pairs")
    return pairs


def split_pairs(pairs: Pairs, seed: int = 0) -> dict[str, Pairs]:
    """80/10/10 train/valid/test by a hash of the source (the same source always lands in the same split)."""
    from ..data.corpus import split_fraction

    out: dict[str, Pairs] = {"train": [], "valid": [], "test": []}
    for source, target in pairs:
        u = split_fraction(source, seed)
        out["train" if u < 0.8 else "valid" if u < 0.9 else "test"].append((source, target))
    return out


def task_pairs(data: str) -> tuple[str, dict[str, Pairs]]:
    """(task name, its splits) for a built-in task name or a pairs file."""
    if data == "g2p":
        return data, g2p_pairs()
    if data == "kjv-web":
        return data, kjv_web_pairs()
    if data == "wiki-desc":
        return data, wiki_desc_pairs()
    if Path(data).suffix in (".jsonl", ".tsv") or Path(data).exists():
        return "pairs", split_pairs(read_pairs_file(data))
    raise DataError(f"unknown seq2seq task {data!r}: use {', '.join(BUILT_IN)} or a .jsonl / .tsv pairs file")


# --------------------------------------------------------------------------- model, text, rows, decoding

ENCODER_DECODERS = ("t5", "bart", "mass", "transformer")
SOURCE_VOCAB, TARGET_VOCAB = "source_vocab.txt", "target_vocab.txt"  # the translation recipe's folders


class Seq2SeqCodec:
    """Text <-> ids of one encoder-decoder folder, framed the way its family was trained.

    - BART / MASS: source ``<s> x </s>``, target ``<s> y`` (decoder input ``</s> <s> y``, as HF / fairseq);
    - T5: source ``x </s>``, target ``y`` (decoder input ``<pad> y``, T5's ``decoder_start``);
    - the Transformer with tokenizer files (span-corruption pretraining): source ``x </s>``, target ``y``
      (decoder input ``<s> y``); with the translation recipe's ``source_vocab.txt`` / ``target_vocab.txt``:
      source ``x`` (letters for a g2p folder, lowercased words otherwise), target tokens split on spaces
      (g2p) or lowercased words.

    ``</s>`` after the target comes from :func:`lmlab.data.stream.pair_rows`. ``decode`` cuts at ``</s>``
    and drops pad, specials and ids the tokenizer does not know (T5's sentinels).
    """

    def __init__(self, model, tokenizer=None, vocabularies: tuple[list[str], list[str]] | None = None,
                 task: str = "", folder: Path | None = None) -> None:
        from ..models.bart import BartForConditionalGeneration

        if (tokenizer is None) == (vocabularies is None):
            raise UsageError("Seq2SeqCodec needs a tokenizer or a pair of vocabularies")
        c = model.config
        self.tokenizer, self.vocabularies, self.task, self.folder = tokenizer, vocabularies, task, folder
        self.pad, self.eos = c.pad_token_id, c.eos_token_id
        bart = isinstance(model, BartForConditionalGeneration)
        bos = getattr(c, "bos_token_id", None)
        self.source_prefix = [bos] if bart else []
        self.source_suffix = [] if vocabularies is not None else [c.eos_token_id]
        self.target_prefix = [bos] if bart else []
        self.skip = {self.pad, self.eos, *([bos] if bos is not None else [])}
        if vocabularies is not None:
            source, target = vocabularies
            self.source_id = {t: i for i, t in enumerate(source)}
            self.target_id = {t: i for i, t in enumerate(target)}
            self.unk = self.source_id.get("<unk>", 0), self.target_id.get("<unk>", 0)

    @classmethod
    def for_folder(cls, folder: str | Path, model) -> Seq2SeqCodec:
        from ..data.tokenizers import load_tokenizer
        from ..pretrained import read_model_config, read_vocabulary_file

        folder = Path(folder)
        if (folder / SOURCE_VOCAB).is_file() and (folder / TARGET_VOCAB).is_file():
            task = read_model_config(folder).get("data", {}).get("task", "g2p")
            vocabularies = (read_vocabulary_file(folder / SOURCE_VOCAB), read_vocabulary_file(folder / TARGET_VOCAB))
            return cls(model, vocabularies=vocabularies, task=task, folder=folder)
        if not ((folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()):
            raise UsageError(f"{folder}: no tokenizer files and no source/target vocabularies next to the model")
        return cls(model, tokenizer=load_tokenizer(folder), folder=folder)

    def _tokens(self, text: str, side: str) -> list[str]:
        from ..data.tokenizers.word import word_tokenize

        if self.task == "g2p":
            return list(text.strip().lower()) if side == "source" else text.split()
        return word_tokenize(text, lowercase=True)

    def source_ids(self, texts: list[str], max_len: int) -> list[list[int]]:
        """Framed source ids of each text, at most ``max_len`` (the framing included)."""
        room = max_len - len(self.source_prefix) - len(self.source_suffix)
        if self.tokenizer is not None:
            encoded = self.tokenizer.encode_batch(texts)
        else:
            encoded = [[self.source_id.get(t, self.unk[0]) for t in self._tokens(x, "source")] for x in texts]
        return [[*self.source_prefix, *ids[:room], *self.source_suffix] for ids in encoded]

    def target_ids(self, texts: list[str], max_len: int) -> list[list[int]]:
        """Target ids of each text (before ``</s>``), at most ``max_len - 1`` so that ``</s>`` fits."""
        room = max_len - 1 - len(self.target_prefix)
        if self.tokenizer is not None:
            encoded = self.tokenizer.encode_batch(texts)
        else:
            encoded = [[self.target_id.get(t, self.unk[1]) for t in self._tokens(y, "target")] for y in texts]
        return [[*self.target_prefix, *ids[:room]] for ids in encoded]

    def decode(self, ids: list[int]) -> str:
        ids = ids[: ids.index(self.eos)] if self.eos in ids else ids
        if self.tokenizer is not None:
            known = self.tokenizer.vocab_size
            return self.tokenizer.decode([i for i in ids if i not in self.skip and i < known],
                                         skip_specials=True).strip()
        target = self.vocabularies[1]
        return " ".join(target[i] for i in ids if i not in self.skip and i < len(target) and not
                        (target[i].startswith("<") and target[i].endswith(">")))

    def files(self) -> dict[str, bytes]:
        """The files that travel with a fine-tuned copy of the model."""
        if self.tokenizer is not None:
            return self.tokenizer.files()
        return {name: (self.folder / name).read_bytes() for name in (SOURCE_VOCAB, TARGET_VOCAB)}


def is_pairs_for_encoder_decoder(model_dir: str | Path, data: str, text_field: str = "text") -> bool:
    """True when ``model_dir`` is an encoder-decoder and ``data`` a source -> target pairs file: a ``.jsonl``
    whose first row has ``source`` and ``target``, or a ``.tsv`` whose first line is not a header naming
    ``text_field`` (a classification file)."""
    from .classification import folder_family

    path = Path(data)
    if path.suffix not in (".jsonl", ".tsv") or not path.is_file():
        return False
    try:
        if folder_family(model_dir) not in ENCODER_DECODERS:
            return False
    except LmlabError:
        return False
    with path.open(encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    if path.suffix == ".tsv":
        return text_field not in first.rstrip("\n").split("\t")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and "source" in row and "target" in row


def load_model(model_dir: str | Path):
    """(model, :class:`Seq2SeqCodec`) of a saved T5, BART, MASS or Transformer folder (lmlab or Hugging Face)."""
    from .. import pretrained
    from .classification import folder_family

    family = folder_family(model_dir)
    if family not in ENCODER_DECODERS:
        raise UsageError(f"{model_dir}: seq2seq fine-tuning needs an encoder-decoder "
                         f"({', '.join(ENCODER_DECODERS)}), got a {family!r} model")
    model = pretrained.load(model_dir)
    return model, Seq2SeqCodec.for_folder(model_dir, model)


def _padded(rows: list[list[int]], pad: int) -> torch.Tensor:
    src = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.long)
    for i, ids in enumerate(rows):
        src[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return src


def decode_sources(model, codec: Seq2SeqCodec, sources: list[str], max_source: int, max_new_tokens: int,
                   num_beams: int = 1, length_penalty: float = 1.0, batch_size: int = 32) -> list[str]:
    """Outputs of ``model`` for each source text: greedy or beam search from the family's decoder start,
    through its ``generation_steps`` (:class:`lmlab.nn.decoding.EncoderDecoderSteps`, KV-cached)."""
    from .generation import GenerationConfig, beam_search, generate

    c = model.config
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    max_new_tokens = min(max_new_tokens, c.max_length - 1)
    try:
        for first in range(0, len(sources), batch_size):
            src = _padded(codec.source_ids(sources[first:first + batch_size], max_source), c.pad_token_id)
            with torch.no_grad():
                steps = model.generation_steps(src)
                config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams,
                                          length_penalty=length_penalty, stop_token_ids=[c.eos_token_id],
                                          pad_token_id=c.pad_token_id)
                run = beam_search if num_beams > 1 else generate
                produced = run(steps, steps.start_ids(), config=config)[:, 1:]
            outputs.extend(codec.decode(row) for row in produced.tolist())
    finally:
        model.train(was_training)
    return outputs


def score_outputs(task: str, hypotheses: list[str], references: list[str]) -> dict[str, float]:
    from ..eval.metrics import corpus_bleu, corpus_chrf, g2p_error_rates, rouge_scores

    scores = {"bleu": corpus_bleu(hypotheses, references), "chrf": corpus_chrf(hypotheses, references),
              **rouge_scores(hypotheses, references)}
    if task == "g2p":
        scores.update(g2p_error_rates([h.split() for h in hypotheses], [r.split() for r in references]))
    return scores


def evaluate_pairs(model, codec: Seq2SeqCodec, task: str, pairs: Pairs, spec: Seq2SeqFinetuneSpec) -> dict:
    """Decode the sources of ``pairs`` and score them against their targets (``spec``'s lengths and beams)."""
    hypotheses = decode_sources(model, codec, [s for s, _ in pairs], spec.max_source_len, spec.max_target_len,
                                spec.num_beams, spec.length_penalty)
    return {"task": task, **score_outputs(task, hypotheses, [t for _, t in pairs]), "n_eval": len(pairs),
            "examples": [{"source": s, "reference": r, "output": h} for (s, r), h in list(zip(pairs, hypotheses))[:5]]}


def evaluate_seq2seq(model_dir: str | Path, data: str | None = None, split: str | None = None,
                     max_eval: int | None = None, num_beams: int | None = None, length_penalty: float | None = None,
                     max_source_len: int | None = None, max_target_len: int | None = None) -> dict:
    """Scores of a saved encoder-decoder on ``data`` (default: the task it was fine-tuned on), with the
    fine-tuning's decoding settings (beams, length penalty, source and target lengths) unless given:
    ``lmlab eval seq2seq`` reproduces ``lmlab finetune``'s."""
    from ..pretrained import read_model_config

    recorded = read_model_config(model_dir).get("finetuned", {})
    spec = saved_spec(model_dir) or Seq2SeqFinetuneSpec()
    spec.eval_split = split or spec.eval_split
    spec.max_eval = spec.max_eval if max_eval is None else max_eval
    overrides = {"num_beams": num_beams, "length_penalty": length_penalty, "max_source_len": max_source_len,
                 "max_target_len": max_target_len}
    for name, value in check_decoding_options(overrides).items():
        setattr(spec, name, value)
    spec.validate()
    data = data or recorded.get("data")
    if not data:
        raise UsageError(f"{model_dir}: not a fine-tuned seq2seq folder; name the DATA to evaluate on")
    model, codec = load_model(model_dir)
    check_decoding_options({k: getattr(spec, k) for k in ("max_source_len", "max_target_len")},
                           model.config.max_length)
    task, splits = task_pairs(data)
    pairs = splits[spec.eval_split][: spec.max_eval]
    if not pairs:
        raise DataError(f"{data}: no {spec.eval_split} pairs")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        return {**evaluate_pairs(model, codec, task, pairs, spec), "eval_split": spec.eval_split}
    finally:
        torch.set_num_threads(threads_before)


def _fit(model, codec: Seq2SeqCodec, train: Pairs, spec: Seq2SeqFinetuneSpec, train_dir: Path) -> float:
    """Teacher-forced training on ``train`` through the one Trainer; the final training loss."""
    from ..data.stream import PairRows, pair_rows
    from ..objectives.seq2seq import Seq2SeqObjective
    from ..train.trainer import TrainConfig, Trainer

    c = model.config
    src_len, tgt_len = spec.max_source_len, spec.max_target_len - 1
    encoded = list(zip(codec.source_ids([s for s, _ in train], spec.max_source_len),
                       codec.target_ids([t for _, t in train], spec.max_target_len)))
    # decoder input = [decoder_start, *target], decoder output = [*target, </s>]: pair_rows' "bos" is the start
    rows = pair_rows(encoded, src_len, tgt_len, c.pad_token_id, decoder_start(model), c.eos_token_id)
    source = PairRows(rows, src_len, min(spec.batch_size, rows.shape[0]), seed=spec.seed, bucket=20,
                      pad_id=c.pad_token_id)
    objective = Seq2SeqObjective(src_len, tgt_len, c.pad_token_id, spec.label_smoothing)
    config = TrainConfig.quiet(seed=spec.seed, max_steps=spec.steps, lr=spec.lr, schedule="linear",
                               warmup_steps=min(spec.warmup_steps, spec.steps - 1), weight_decay=spec.weight_decay,
                               clip_norm=1.0, threads=spec.threads, device="cpu", precision="fp32")
    return Trainer(model, objective, source, config, train_dir).fit().loss


def decoder_start(model) -> int:
    """The id the family's decoder starts from (BART: ``</s>``, T5: ``<pad>``, the Transformer: ``<s>``)."""
    c = model.config
    return c.decoder_start_token_id if hasattr(c, "decoder_start_token_id") else c.bos_token_id


def finetune_seq2seq(model_dir: str | Path, data: str, spec: Seq2SeqFinetuneSpec | None = None,
                     out_dir: str | Path = "runs/seq2seq-finetune") -> dict:
    """Fine-tune the T5 / BART / MASS / Transformer model in ``model_dir`` on ``data`` (a built-in task or
    a pairs file); the scores.

    Returns ``{"task", "bleu", "chrf", "rouge1", "rouge2", "rougeL", ("per", "wer" for g2p), "n_train",
    "n_eval", "eval_split", "train_loss", "examples"}``; the model goes to ``out_dir/model``.
    """
    from ..io import atomic_write_text
    from ..pretrained import read_model_config

    spec = spec or Seq2SeqFinetuneSpec()
    spec.validate()
    out_dir = Path(out_dir)
    model, codec = load_model(model_dir)
    c = model.config
    if spec.from_scratch:
        torch.manual_seed(spec.seed)
        model = type(model)(c)
    if max(spec.max_source_len, spec.max_target_len) > c.max_length:
        raise ConfigError(f"max_source_len / max_target_len exceed the model's max_length={c.max_length}")
    task, splits = task_pairs(data)
    train = splits["train"][: spec.max_train] if spec.max_train else splits["train"]
    evaluation = splits[spec.eval_split][: spec.max_eval]
    if not train or not evaluation:
        raise DataError(f"{data}: {len(train)} training and {len(evaluation)} {spec.eval_split} pairs; need both")
    threads_before = torch.get_num_threads()
    try:
        train_loss = _fit(model, codec, train, spec, out_dir / "train")
        scores = evaluate_pairs(model, codec, task, evaluation, spec)
    finally:
        torch.set_num_threads(threads_before)
    scores = {**scores, "n_train": len(train), "eval_split": spec.eval_split, "train_loss": train_loss}
    metadata = {"finetuned": {"task": task, "data": str(data), "spec": asdict(spec)}}
    if "data" in read_model_config(model_dir):  # the translation recipe's task, which its vocabularies follow
        metadata["data"] = read_model_config(model_dir)["data"]
    model.save_pretrained(out_dir / "model", extra_files=codec.files(), metadata=metadata)
    atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    return scores


class Text2TextGenerationPipeline:
    """``lmlab.pipeline("text2text-generation", folder)``: an encoder-decoder's output text for each input,
    ``{"generated_text": ...}`` as Hugging Face's pipeline of that name (greedy unless ``num_beams`` > 1)."""

    progress: bool = False

    def __init__(self, model, tokenizer) -> None:
        self.model = model.eval()
        self.codec = tokenizer if isinstance(tokenizer, Seq2SeqCodec) else Seq2SeqCodec(model, tokenizer=tokenizer)
        # the call's defaults; a fine-tuned folder's pipeline takes its recorded ones (:meth:`use_saved`)
        self.defaults = {"max_new_tokens": 64, "num_beams": 1, "length_penalty": 1.0, "max_source_len": 0}

    def use_saved(self, folder: str | Path) -> bool:
        """Decode as the fine-tuning recorded in ``folder`` did (its beams, length penalty, source and target
        lengths) unless a call says otherwise; False (the defaults kept) for a folder not fine-tuned."""
        spec = saved_spec(folder)
        if spec is None:
            return False
        self.defaults = {"max_new_tokens": spec.max_target_len, "num_beams": spec.num_beams,
                         "length_penalty": spec.length_penalty, "max_source_len": spec.max_source_len}
        return True

    def __call__(self, inputs, batch_size: int = 32, max_new_tokens: int | None = None, num_beams: int | None = None,
                 max_source_len: int | None = None, length_penalty: float | None = None):
        given = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "max_source_len": max_source_len,
                 "length_penalty": length_penalty}
        settings = {k: self.defaults[k] if v is None else v for k, v in given.items()}
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise UsageError(f"input {i}: expected a string, got {type(text).__name__}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        limit = settings["max_source_len"] or self.model.config.max_length
        outputs = decode_sources(self.model, self.codec, texts, limit, settings["max_new_tokens"],
                                 settings["num_beams"], settings["length_penalty"], batch_size=batch_size) \
            if texts else []
        results = [{"generated_text": text} for text in outputs]
        return results[0] if single else results


# --------------------------------------------------------------------------- text-to-text classification


def text_to_text_source(text: str, pair: str | None) -> str:
    """The input text of an example (a sentence pair as T5 writes its GLUE inputs: ``"sentence1: .. sentence2: .."``)."""
    return text if pair is None else f"sentence1: {text} sentence2: {pair}"


def label_log_probs(model, codec: Seq2SeqCodec, texts: list[str], labels: list[str], max_source: int,
                    batch_size: int = 32) -> torch.Tensor:
    """(N, L) log P(label word sequence, then ``</s>`` | text) under the encoder-decoder, teacher-forced:
    Σ_t log p(y_t | y_<t, x) over each label's tokens and its ``</s>`` (T5's text-to-text scoring)."""
    c = model.config
    targets = codec.target_ids(labels, c.max_length)
    width = max(map(len, targets)) + 1
    tgt_in = torch.full((len(labels), width), c.pad_token_id, dtype=torch.long)
    tgt_out = torch.full((len(labels), width), c.pad_token_id, dtype=torch.long)
    for j, ids in enumerate(targets):
        tgt_in[j, : len(ids) + 1] = torch.tensor([decoder_start(model), *ids])
        tgt_out[j, : len(ids) + 1] = torch.tensor([*ids, c.eos_token_id])
    L, out = len(labels), []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(texts), batch_size):
                src = _padded(codec.source_ids(texts[first:first + batch_size], max_source), c.pad_token_id)
                B = src.shape[0]
                src = src.repeat_interleave(L, dim=0)                                   # (B·L, S)
                logp = torch.log_softmax(model(src, tgt_in.repeat(B, 1)).float(), dim=-1)  # (B·L, T, V)
                gold = tgt_out.repeat(B, 1)                                              # (B·L, T)
                picked = logp.gather(-1, gold.clamp(min=0)[..., None])[..., 0]          # (B·L, T)
                picked = picked.masked_fill(gold == c.pad_token_id, 0.0)
                out.append(picked.sum(dim=1).view(B, L))                                 # (B, L)
    finally:
        model.train(was_training)
    return torch.cat(out)


def finetune_text_to_text(model_dir: str | Path, task: str, spec: Seq2SeqFinetuneSpec | None = None,
                          out_dir: str | Path = "runs/text-to-text", text_field: str = "text",
                          label_field: str = "label") -> dict:
    """T5's text-to-text classification (Raffel et al. 2020, §2.4): the encoder-decoder in ``model_dir`` learns
    to write the label word of each text of ``task`` (``rotten-tomatoes``, ``wiki-topics`` or a labelled
    file, as :func:`lmlab.tasks.classification.task_data` reads them); an example is classified as the label
    whose word sequence is most probable. Returns accuracy, macro-F1, the majority baseline, ``n_train``,
    ``n_test``, ``train_loss``; the model goes to ``out_dir/model`` with its labels (``text_to_text``)."""
    from ..io import atomic_write_text
    from .classification import FinetuneSpec, task_data

    spec = spec or Seq2SeqFinetuneSpec()
    spec.validate()
    out_dir = Path(out_dir)
    model, codec = load_model(model_dir)
    data = task_data(FinetuneSpec(task=task, text_field=text_field, label_field=label_field, seed=spec.seed))
    train = [(text_to_text_source(e.text, e.pair), e.label) for e in data.train]
    train = train[: spec.max_train] if spec.max_train else train
    test = data.test[: spec.max_eval] if spec.max_eval else data.test
    threads_before = torch.get_num_threads()
    try:
        train_loss = _fit(model, codec, train, spec, out_dir / "train")
        scores = text_to_text_scores(model, codec, test, data.labels, spec.max_source_len)
    finally:
        torch.set_num_threads(threads_before)
    result = {"task": task, **scores, "n_train": len(train), "n_test": len(test),
              "train_loss": train_loss, "labels": data.labels}
    metadata = {"text_to_text": {"labels": data.labels, "max_source_len": spec.max_source_len, "data": data.source,
                                 "scores": {k: result[k] for k in ("accuracy", "macro_f1", "majority_baseline",
                                                                   "n_test")}},
                "finetuned": {"task": task, "data": task, "spec": asdict(spec)}}
    model.save_pretrained(out_dir / "model", extra_files=codec.files(), metadata=metadata)
    atomic_write_text(out_dir / "scores.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def text_to_text_scores(model, codec: Seq2SeqCodec, examples, labels: list[str], max_source: int,
                        batch_size: int = 32) -> dict:
    """Accuracy, macro-F1 and the majority baseline of a text-to-text classifier on labelled ``examples``
    (:class:`lmlab.tasks.data.Example`), each classified as its most probable label word sequence."""
    from .classification import sequence_scores

    logp = label_log_probs(model, codec, [text_to_text_source(e.text, e.pair) for e in examples], labels,
                           max_source, batch_size)
    return sequence_scores([labels.index(e.label) for e in examples], logp.argmax(dim=1).tolist())


def evaluate_text_to_text(folder: str | Path, split: str = "test", batch_size: int = 32) -> dict:
    """Scores of a :func:`finetune_text_to_text` folder on a split of the data it recorded (``lmlab eval
    classify``): its test split, cut as the fine-tuning cut it, gives the numbers ``lmlab finetune`` printed."""
    from ..pretrained import read_model_config
    from .classification import data_from_source

    meta = read_model_config(folder)["text_to_text"]
    data = data_from_source(meta.get("data") or {})
    examples = {"train": data.train, "valid": data.valid, "test": data.test}.get(split)
    if examples is None:
        raise UsageError(f"split must be train, valid or test, got {split!r}")
    spec = saved_spec(folder) or Seq2SeqFinetuneSpec()
    if split == "test" and spec.max_eval:
        examples = examples[: spec.max_eval]
    if not examples:
        raise DataError(f"{folder}: the {split} split of its data is empty")
    labels = list(meta["labels"])
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise DataError(f"{folder}: label {unknown[0]!r} in the {split} split is not one of the model's labels")
    model, codec = load_model(folder)
    scores = text_to_text_scores(model, codec, examples, labels, int(meta["max_source_len"]), batch_size)
    return {"split": split, "n": len(examples), **scores, "recorded": meta.get("scores", {})}


def wants_text_to_text(model_dir: str | Path, asked: bool | None) -> bool:
    """Whether ``lmlab finetune MODEL_DIR <classification data>`` runs text-to-text: as ``asked``
    (``--text-to-text`` / ``--no-text-to-text``), else for T5 folders; refused for a model that is no
    encoder-decoder."""
    from .classification import folder_family

    if asked is False:
        return False
    try:
        family = folder_family(model_dir)
    except LmlabError:
        if asked:
            raise
        return False  # the classification path gives the one-line error
    if asked and family not in ENCODER_DECODERS:
        raise UsageError(f"--text-to-text needs an encoder-decoder ({', '.join(ENCODER_DECODERS)}), "
                         f"got a {family!r} model")
    return bool(asked) or family == "t5"


def is_text_to_text_classifier(folder: str | Path) -> bool:
    """True for a folder written by :func:`finetune_text_to_text` (its config.json has ``text_to_text``)."""
    from ..pretrained import read_model_config

    try:
        return "text_to_text" in read_model_config(folder)
    except LmlabError:
        return False


class TextToTextClassificationPipeline:
    """``lmlab.pipeline("text-classification", folder)`` on a text-to-text classifier: ``{"label", "score"}``
    with score = P(label words | text) normalised over the labels (``top_k``: the k best, best first)."""

    progress: bool = False

    def __init__(self, model, codec: Seq2SeqCodec, labels: list[str], max_source_len: int) -> None:
        self.model, self.codec, self.labels, self.max_source_len = model.eval(), codec, labels, max_source_len

    @classmethod
    def for_folder(cls, folder: str | Path) -> TextToTextClassificationPipeline:
        from ..pretrained import read_model_config

        model, codec = load_model(folder)
        meta = read_model_config(folder)["text_to_text"]
        return cls(model, codec, list(meta["labels"]), int(meta["max_source_len"]))

    def __call__(self, inputs, batch_size: int = 32, top_k: int | None = 1):
        single = isinstance(inputs, str | dict)
        items = [inputs] if single else list(inputs)
        texts = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict):
                texts.append(text_to_text_source(str(item.get("text", "")), item.get("text_pair")))
            else:
                raise UsageError(f"input {i}: expected a string, got {type(item).__name__}")
        if top_k is not None and top_k < 1:
            raise UsageError(f"top_k must be >= 1 (or None: every label), got {top_k}")
        if not texts:
            return []
        probs = torch.softmax(label_log_probs(self.model, self.codec, texts, self.labels, self.max_source_len,
                                              batch_size), dim=1)                         # (N, L)
        from .classification import ranked_labels

        results = ranked_labels(probs, self.labels, top_k)
        return results[0] if single else results
