"""Sequence-to-sequence fine-tuning of a pretrained BART (or MASS) model, and its scores.

:func:`finetune_seq2seq` ``(model_dir, data, spec, out_dir) -> scores`` is the whole flow
(``lmlab finetune MODEL DATA`` calls it for encoder-decoders):

1. the model and its tokenizer from ``model_dir`` (an lmlab BART folder written by ``lmlab train
   configs/bart.toml`` / ``mass.toml``, or a Hugging Face BART folder with its ``tokenizer.json``);
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
   through the one Trainer: source ``<s> x </s>``, decoder input ``</s> <s> y``, target ``<s> y </s>``
   (Hugging Face / fairseq's layout, decoder_start = ``</s>``);
4. decoding of the test (or valid) sources with :func:`lmlab.tasks.generation.generate` (greedy) or
   ``beam_search`` through :class:`lmlab.models.bart.BartSteps` (KV-cached), from ``decoder_start``;
5. scores (:mod:`lmlab.eval.metrics`): BLEU, chrF, ROUGE-1/2/L for every task, PER and WER as well for
   ``g2p`` (phonemes compared as space-separated symbols).

The fine-tuned model is saved to ``out_dir/model`` (with its tokenizer) and the scores to
``out_dir/scores.json``, with a few example outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError, UsageError

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
            if getattr(self, name) < 3:
                raise ConfigError(f"{name} must be >= 3, got {getattr(self, name)}")
        if self.eval_split not in ("valid", "test"):
            raise ConfigError(f"eval_split must be valid or test, got {self.eval_split!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


Pairs = list[tuple[str, str]]


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


# --------------------------------------------------------------------------- model, rows, decoding


def load_model(model_dir: str | Path):
    """(BART model, tokenizer) of a saved lmlab or Hugging Face BART folder."""
    from .. import pretrained
    from ..data.tokenizers import load_tokenizer
    from ..models.bart import BartForConditionalGeneration

    model = pretrained.load(model_dir)
    if not isinstance(model, BartForConditionalGeneration):
        raise UsageError(f"{model_dir}: seq2seq fine-tuning needs a BART / MASS model, got {type(model).__name__}")
    if not (Path(model_dir) / "tokenizer.json").is_file():
        raise UsageError(f"{model_dir}: no tokenizer.json next to the model")
    return model, load_tokenizer(model_dir)


def encode_pairs(pairs: Pairs, tokenizer, config, max_source: int, max_target: int) -> list[tuple[list, list]]:
    """(source ids ``<s> x </s>``, target ids ``<s> y`` (``</s>`` is added by the rows)), cut to the lengths."""
    bos, eos = config.bos_token_id, config.eos_token_id
    sources = tokenizer.encode_batch([s for s, _ in pairs])
    targets = tokenizer.encode_batch([t for _, t in pairs])
    return [([bos, *s[: max_source - 2], eos], [bos, *t[: max_target - 2]]) for s, t in zip(sources, targets)]


def decode_sources(model, tokenizer, sources: list[str], max_source: int, max_new_tokens: int,
                   num_beams: int = 1, length_penalty: float = 1.0, batch_size: int = 32) -> list[str]:
    """Outputs of ``model`` for each source text: greedy or beam search from ``decoder_start``."""
    from ..models.bart import BartSteps
    from .generation import GenerationConfig, beam_search, generate

    c = model.config
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for first in range(0, len(sources), batch_size):
            encoded = tokenizer.encode_batch(sources[first:first + batch_size])
            rows = [[c.bos_token_id, *ids[: max_source - 2], c.eos_token_id] for ids in encoded]
            src = torch.full((len(rows), max(map(len, rows))), c.pad_token_id, dtype=torch.long)
            for i, ids in enumerate(rows):
                src[i, : len(ids)] = torch.tensor(ids)
            with torch.no_grad():
                steps = BartSteps(model, src)
                config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams,
                                          length_penalty=length_penalty, stop_token_ids=[c.eos_token_id],
                                          pad_token_id=c.pad_token_id)
                run = beam_search if num_beams > 1 else generate
                produced = run(steps, steps.start_ids(), config=config)[:, 1:]
            for row in produced.tolist():
                ids = row[: row.index(c.eos_token_id)] if c.eos_token_id in row else row
                outputs.append(tokenizer.decode([i for i in ids if i != c.pad_token_id], skip_specials=True).strip())
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


def finetune_seq2seq(model_dir: str | Path, data: str, spec: Seq2SeqFinetuneSpec | None = None,
                     out_dir: str | Path = "runs/seq2seq-finetune") -> dict:
    """Fine-tune the BART model in ``model_dir`` on ``data`` (a built-in task or a pairs file); the scores.

    Returns ``{"task", "bleu", "chrf", "rouge1", "rouge2", "rougeL", ("per", "wer" for g2p), "n_train",
    "n_eval", "eval_split", "train_loss", "examples"}``; the model goes to ``out_dir/model``.
    """
    from ..data.stream import PairRows, pair_rows
    from ..io import atomic_write_text
    from ..models.bart import BartForConditionalGeneration
    from ..objectives.seq2seq import Seq2SeqObjective
    from ..train.trainer import TrainConfig, Trainer

    spec = spec or Seq2SeqFinetuneSpec()
    spec.validate()
    out_dir = Path(out_dir)
    model, tokenizer = load_model(model_dir)
    c = model.config
    if spec.from_scratch:
        torch.manual_seed(spec.seed)
        model = BartForConditionalGeneration(c)
    if max(spec.max_source_len, spec.max_target_len) > c.max_length:
        raise ConfigError(f"max_source_len / max_target_len exceed the model's max_length={c.max_length}")
    task, splits = task_pairs(data)
    train = splits["train"][: spec.max_train] if spec.max_train else splits["train"]
    evaluation = splits[spec.eval_split][: spec.max_eval]
    if not train or not evaluation:
        raise DataError(f"{data}: {len(train)} training and {len(evaluation)} {spec.eval_split} pairs; need both")
    src_len, tgt_len = spec.max_source_len, spec.max_target_len - 1
    # decoder input </s> <s> y, target <s> y </s>: pair_rows puts its "bos" (here decoder_start) in front
    rows = pair_rows(encode_pairs(train, tokenizer, c, spec.max_source_len, spec.max_target_len), src_len, tgt_len,
                     c.pad_token_id, c.decoder_start_token_id, c.eos_token_id)
    source = PairRows(rows, src_len, min(spec.batch_size, rows.shape[0]), seed=spec.seed, bucket=20,
                      pad_id=c.pad_token_id)
    objective = Seq2SeqObjective(src_len, tgt_len, c.pad_token_id, spec.label_smoothing)
    config = TrainConfig.quiet(seed=spec.seed, max_steps=spec.steps, lr=spec.lr, schedule="linear",
                               warmup_steps=min(spec.warmup_steps, spec.steps - 1), weight_decay=spec.weight_decay,
                               clip_norm=1.0, threads=spec.threads, device="cpu", precision="fp32")
    threads_before = torch.get_num_threads()
    try:
        result = Trainer(model, objective, source, config, out_dir / "train").fit()
        hypotheses = decode_sources(model, tokenizer, [s for s, _ in evaluation], spec.max_source_len,
                                    spec.max_target_len, spec.num_beams, spec.length_penalty)
    finally:
        torch.set_num_threads(threads_before)
    references = [t for _, t in evaluation]
    scores = {"task": task, **score_outputs(task, hypotheses, references), "n_train": len(train),
              "n_eval": len(evaluation), "eval_split": spec.eval_split, "train_loss": result.loss,
              "examples": [{"source": s, "reference": r, "output": h}
                           for (s, r), h in list(zip(evaluation, hypotheses))[:5]]}
    model.save_pretrained(out_dir / "model", extra_files=tokenizer.files(),
                          metadata={"finetuned": {"task": task, "data": str(data), "spec": asdict(spec)}})
    atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    return scores
