"""GPT orchestration: the ``lmlab train`` builder and the GPT row of ``lmlab demo``.

``build(run)`` is what ``lmlab train configs/gpt.toml`` runs: a byte-level BPE (by default) trained
on the corpus's train split, documents encoded and laid end to end with ``</s>`` between them, a GPT
from a preset plus ``[model]`` overrides, blocks of ``seq_len + 1`` tokens; it exports a model folder
(config.json + model.safetensors + the tokenizer's files) that ``lmlab generate`` reads.

``finetune_classifier``: GPT-1 §3.2 on ``rotten-tomatoes`` (or ``wiki-topics``): the pre-trained body
under a :class:`GPTClassifier` head (last-token or mean pooling), every parameter fine-tuned with
the Trainer, test accuracy against the majority-class baseline.

``run_demo``: a tiny word-level GPT trained for about a minute on the shared split, then (time
permitting) fine-tuned on rotten-tomatoes.

It reads the same word-level stream and closed vocabulary as the n-grams and the LSTM
(``data.train_sentences``, ``data.vocab``), trains a 2-layer pre-LN GPT with the Trainer on
``<s> w_1 .. w_n </s>`` sentences laid end to end (blocks of 64 tokens), and scores each test
sentence exactly as the other word-level models are scored: log P(w_i | <s> w_<i) for every
word and ``</s>``, ``<s>`` context only, OOVs as ``<unk>`` (via
:func:`lmlab.eval.perplexity.word_perplexity`). Bits per byte are reported from the same sums.

:class:`~lmlab.objectives.clm.CausalLMObjective` (from :mod:`lmlab.objectives.clm`, re-exported
here) is the causal-LM objective the Trainer runs: predict token t+1 from tokens <= t, summed
cross-entropy. ``finetune_classifier(..., lm_coef=0.5)`` adds GPT-1's auxiliary LM loss (§3.2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import config as config_io
from ..errors import ConfigError, DataError
from ..eval.perplexity import encode_sentences, word_perplexity
from ..models.gpt import PRESETS, GPTConfig, GPTLanguageModel
from ..objectives.classify import ClassifyObjective
from ..objectives.clm import CausalLMObjective
from ..report import DemoData, DemoRow

__all__ = ["CausalLMObjective", "GPTDataSpec", "GPTTokenizerSpec", "classification_rows", "document_stream",
           "finetune_classifier", "build", "run_demo", "sentence_stream"]


@dataclass
class GPTDataSpec:
    """The ``[data]`` table of a GPT run file."""

    corpus: str = "wiki-vital"
    stream: str = ""              # a folder `lmlab corpus prepare` wrote: its token streams and tokenizer are used
    seq_len: int = 128
    batch_size: int = 16
    max_documents: int = 0        # 0: every training document
    seed: int = 0


@dataclass
class GPTTokenizerSpec:
    """The ``[tokenizer]`` table: a subword tokenizer trained on the train split (GPT-2: byte-level BPE)."""

    kind: str = "bytebpe"
    vocab_size: int = 8192


def _check_tokenizer_kind(spec: GPTTokenizerSpec) -> None:
    """``tokenizer.kind`` before any data is read: a known kind, with the ``</s>`` that separates
    documents (the subword kinds but wordpiece, and the word-level ones)."""
    from ..data.tokenizers import NAMES
    from ..errors import closest

    if spec.kind not in NAMES:
        raise ConfigError(f"tokenizer.kind: unknown tokenizer {spec.kind!r}{closest(spec.kind, NAMES)}; "
                          f"GPT trains with one of {', '.join(k for k in NAMES if k != 'wordpiece')}")
    if spec.kind == "wordpiece":
        raise ConfigError("tokenizer.kind = 'wordpiece': it has no </s> token to separate documents; "
                          "use bytebpe (GPT-2's), bpe or unigram")
    if spec.vocab_size is not None and spec.vocab_size < 1:
        raise ConfigError(f"tokenizer.vocab_size must be >= 1, got {spec.vocab_size}")


def document_stream(documents: list[list[int]], separator: int) -> np.ndarray:
    """Documents back to back, each followed by ``separator`` (GPT-2's <|endoftext|> role)."""
    return np.fromiter((i for doc in documents for i in (*doc, separator)), dtype=np.int64)


def build(run):
    """``lmlab train`` builder: a RunFile ([data], [tokenizer], [model] with an optional ``preset``) -> TrainingJob."""
    from ..data import sources
    from ..data.stream import LMBlocks, TokenStream
    from ..data.tokenizers import train_tokenizer
    from ..train.trainer import TrainingJob
    from .run import pop_preset

    data = config_io.from_dict(GPTDataSpec, dict(run.data), where="data")
    spec = config_io.from_dict(GPTTokenizerSpec, dict(run.tokenizer), where="tokenizer")
    _check_tokenizer_kind(spec)
    model_table = dict(run.model)
    preset_name, _ = pop_preset(model_table, PRESETS, "gpt-tiny", "GPT")
    if data.stream:
        tokenizer, train_ids, valid_ids = _prepared(data)
        given = dict(run.tokenizer)
        for key, value in (("kind", tokenizer.kind), ("vocab_size", tokenizer.vocab_size)):
            if key in given and given[key] != value:
                raise ConfigError(f"tokenizer.{key} = {given[key]!r}, but the prepared stream {data.stream} was "
                                  f"tokenized with {key} = {value!r}: the stream's own tokenizer is used; make "
                                  f"[tokenizer] agree or leave it out")
        spec = GPTTokenizerSpec(kind=tokenizer.kind, vocab_size=tokenizer.vocab_size)
    else:
        splits = sources.load(data.corpus).split()
        train_docs = splits.train[: data.max_documents] if data.max_documents else splits.train
        if not train_docs:
            raise DataError(f"corpus {data.corpus!r} has no training documents")
        tokenizer = train_tokenizer(spec.kind, [d.text for d in train_docs], vocab_size=spec.vocab_size)
    eos = tokenizer.token_to_id("</s>")
    if eos is None:
        raise ConfigError(f"tokenizer {spec.kind!r} has no </s> token to separate documents")
    bos = tokenizer.token_to_id("<s>")
    pad = tokenizer.token_to_id("<pad>")
    values = {**PRESETS[preset_name], "vocab_size": tokenizer.vocab_size, "max_length": data.seq_len,
              "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, **model_table}
    config = config_io.from_dict(GPTConfig, values, where="model")
    torch.manual_seed(data.seed)
    model = GPTLanguageModel(config)
    if not data.stream:
        train_ids = document_stream(tokenizer.encode_batch([d.text for d in train_docs]), eos)
        valid_ids = document_stream(tokenizer.encode_batch([d.text for d in splits.valid]), eos)
    train_source = LMBlocks(train_ids, data.seq_len, data.batch_size, seed=data.seed)
    eval_source = LMBlocks(valid_ids, data.seq_len, data.batch_size, seed=data.seed, shuffle=False)

    def export(folder: Path) -> None:
        corpus = TokenStream(Path(data.stream) / "train").meta.get("corpus", "") if data.stream else data.corpus
        model.save_pretrained(folder, extra_files=tokenizer.files(),
                              metadata={"data": {"corpus": corpus, "stream": data.stream}})

    return TrainingJob(model, CausalLMObjective(), train_source, eval_source, export,
                       f"GPT ({preset_name}: {config.n_layers}x{config.d_model}, {config.norm_position}-LN) "
                       f"{model.num_parameters() / 1e6:.2f}M params, {spec.kind} |V|={tokenizer.vocab_size} on "
                       f"{data.stream or data.corpus}: {len(train_ids):,} training tokens")


def _prepared(data: GPTDataSpec):
    """(tokenizer, train ids, valid ids) of a folder ``lmlab corpus prepare`` wrote.

    Subword streams hold documents back to back, each followed by ``</s>``: the layout
    :func:`document_stream` makes, so training on a prepared stream equals training on the corpus
    it was prepared from with the same tokenizer."""
    from ..data.stream import TokenStream
    from ..data.tokenizers import load_tokenizer

    folder = Path(data.stream)
    tokenizer = load_tokenizer(folder / "tokenizer")
    train, valid = TokenStream(folder / "train"), TokenStream(folder / "valid")
    if train.meta.get("unit") != "document":
        raise ConfigError(f"data.stream: {folder} holds sentences of a word-level stream; GPT trains on a subword "
                          "stream (lmlab corpus prepare --tokenizer bytebpe | bpe | unigram)")
    if data.max_documents:
        end = int(train.offsets[min(data.max_documents, train.n_documents)])
        train_ids = np.asarray(train.ids[:end], dtype=np.int64)
    else:
        train_ids = np.asarray(train.ids, dtype=np.int64)
    return tokenizer, train_ids, np.asarray(valid.ids, dtype=np.int64)


def classification_rows(examples: list[tuple[list[int], int]], max_len: int, eos: int, pad: int) -> torch.Tensor:
    """``tokens </s> <pad>... label`` rows, (N, max_len + 1): GPT-1's "extract" token ends each input."""
    rows = torch.full((len(examples), max_len + 1), pad, dtype=torch.long)
    for i, (tokens, label) in enumerate(examples):
        body = [*tokens[: max_len - 1], eos]
        rows[i, : len(body)] = torch.tensor(body, dtype=torch.long)
        rows[i, -1] = label
    return rows


def finetune_classifier(lm: GPTLanguageModel, encode, task: str = "rotten-tomatoes", steps: int = 200,
                        batch_size: int = 32, max_len: int = 48, lr: float = 1e-3, pooling: str = "last",
                        seed: int = 0, out_dir: Path | None = None, lm_coef: float = 0.0) -> dict:
    """Fine-tune ``lm``'s body with a classification head on ``task``; ``encode(text) -> ids``.

    ``lm_coef`` = λ of GPT-1's L_3 = L_2 + λ·L_1 (the auxiliary LM loss on the same reviews; GPT-1
    uses 0.5). Returns test accuracy, the majority-class accuracy and the sizes. The LM is left
    unchanged (the classifier gets a copy of its weights).
    """
    import tempfile

    from ..data.stream import Rows
    from ..models.gpt import GPTClassifier
    from ..tasks.classification import accuracy, sequence_task
    from ..train.trainer import TrainConfig, Trainer

    config = lm.config
    if config.eos_token_id is None or config.pad_token_id is None:
        raise ConfigError("fine-tuning a GPT classifier needs eos_token_id and pad_token_id in its config")
    names, train, test = sequence_task(task)
    torch.manual_seed(seed)
    model = GPTClassifier.from_language_model(lm, num_labels=len(names), pooling=pooling, lm_coef=lm_coef)
    train_rows = classification_rows([(encode(t), y) for t, y in train], max_len, config.eos_token_id,
                                     config.pad_token_id)
    test_rows = classification_rows([(encode(t), y) for t, y in test], max_len, config.eos_token_id,
                                    config.pad_token_id)
    objective = ClassifyObjective(config.pad_token_id)
    train_config = TrainConfig.quiet(seed=seed, max_steps=steps, lr=lr, schedule="linear",
                                     warmup_steps=max(1, steps // 10), weight_decay=0.01)
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(model, objective, Rows(train_rows, batch_size, seed=seed), train_config,
                out_dir or Path(tmp) / "finetune").fit()
    model.eval()
    predicted = []
    with torch.no_grad():
        for first in range(0, len(test_rows), 256):
            batch = objective.prepare(test_rows[first:first + 256], torch.Generator())
            predicted += model(batch["input_ids"], batch["attention_mask"]).argmax(-1).tolist()
    gold = test_rows[:, -1].tolist()
    majority = max(set(gold), key=gold.count)
    return {"accuracy": accuracy(gold, predicted), "majority_baseline": accuracy(gold, [majority] * len(gold)),
            "n_train": len(train), "n_test": len(test), "classifier": model}


def sentence_stream(sentences: list[list[int]], bos: int) -> np.ndarray:
    """``<s> w_1 .. w_n </s>`` for each sentence (ids already end in </s>), back to back."""
    return np.fromiter((i for s in sentences for i in (bos, *s)), dtype=np.int64)


def run_demo(data: DemoData) -> list[DemoRow]:
    from ..data.stream import LMBlocks
    from ..train.trainer import TrainConfig, Trainer

    budget = max(0.0, min(60.0, data.seconds_left()))
    if budget < 10:
        return [DemoRow("transformer", "GPT (skipped)", notes="time budget spent")]
    torch.manual_seed(data.seed)
    vocab = list(data.vocab)
    index = {w: i for i, w in enumerate(vocab)}
    train_ids, _ = encode_sentences(data.train_sentences, index)
    stream = sentence_stream(train_ids, index["<s>"])
    seq_len, batch_size = 64, 16
    config = GPTConfig(vocab_size=len(vocab), max_length=128, d_model=128, n_layers=2, n_heads=4, dropout=0.0,
                       attn_dropout=0.0, bos_token_id=index["<s>"], eos_token_id=index["</s>"],
                       pad_token_id=index.get("<pad>"))
    model = GPTLanguageModel(config)
    train = TrainConfig.quiet(seed=data.seed, max_steps=10**9, lr=3e-3, warmup_steps=30, weight_decay=0.0, clip_norm=1.0)
    trainer = Trainer(model, CausalLMObjective(), LMBlocks(stream, seq_len, batch_size, seed=data.seed), train,
                      Path(data.out_dir) / "gpt")
    from .scoring import plan_scoring, scored_note

    with torch.no_grad():  # scoring is timed up front; a share too small for the whole test stream scores a sample
        seconds, stride = plan_scoring(data, budget, model, lambda s: word_perplexity(model, s, vocab), 0.75)
    started = time.monotonic()
    steps = 0
    while time.monotonic() - started < seconds:  # the rest is for scoring
        trainer.train_step()
        steps += 1
    took = time.monotonic() - started
    result = word_perplexity(model, data.test_sentences[::stride], vocab)
    epochs = steps * batch_size * seq_len / max(len(stream), 1)
    rows = [DemoRow("transformer", "GPT 2x128, pre-LN, tied (Radford 2019)",
                    {"test ppl": result.perplexity, "bits/byte": result.bits_per_byte}, took,
                    f"{steps} steps x {batch_size}x{seq_len} tokens ({epochs:.2f} epochs), word-level, "
                    f"{model.num_parameters() / 1e6:.2f}M params{scored_note(data, stride)}")]
    if data.seconds_left() > 30:  # GPT-1 §3.2: the same body, fine-tuned with a linear head
        from ..data.tokenizers.word import word_tokenize
        from ..train.budget import OverBudget

        unk = index["<unk>"]
        started = time.monotonic()
        try:
            scores = finetune_classifier(model, lambda text: [index.get(w, unk) for w in word_tokenize(text, True)],
                                         steps=150, seed=data.seed)
        except OverBudget as stopped:  # lmlab demo's hard limit: keep the LM row
            rows.append(DemoRow("transformer", "GPT above -> rotten-tomatoes (last-token head)", notes=str(stopped)))
            return rows
        rows.append(DemoRow("transformer", "GPT above -> rotten-tomatoes (last-token head)",
                            {"test acc": scores["accuracy"], "majority acc": scores["majority_baseline"]},
                            time.monotonic() - started,
                            f"150 fine-tuning steps x 32 reviews; test split by movie (n={scores['n_test']})"))
    return rows
