"""Pretraining recipes for the BERT family and ELECTRA, the ``lmlab train`` builder, and the demo rows.

A *recipe* turns a corpus into what the Trainer runs, the way each paper prepares its data:

| family | tokenizer | inputs (``objectives/sentence.py``) | masking | extra loss |
|---|---|---|---|---|
| bert | WordPiece | ``[CLS] A [SEP] B [SEP]`` pairs, NSP 50/50 | token, 80/10/10 | NSP |
| roberta | byte-level BPE | FULL-SENTENCES (or DOC-SENTENCES), no NSP | token, dynamic | — |
| albert | WordPiece (the paper: SentencePiece) | SOP pairs | n-gram (6/11, 3/11, 2/11) | SOP |
| spanbert | WordPiece | single DOC-SENTENCES rows | geometric spans | SBO |
| electra | WordPiece | single rows (FULL-SENTENCES) | token, all [MASK] | λ · RTD |

:func:`build` is the ``lmlab train`` builder (``family = "bert" | "roberta" | "albert" |
"spanbert" | "electra"``; tables ``[data]``, ``[tokenizer]``, ``[model]`` (preset fields),
``[objective]`` (MaskingConfig fields)). :func:`run_demo` pretrains a tiny BERT, RoBERTa,
ALBERT and ELECTRA with the same budget (steps x batch x sequence length) on the demo's training
documents, fine-tunes each on
``rotten-tomatoes`` (mean pooling: at this size the [CLS] state barely varies with the input and
[CLS] fine-tuning often collapses to the majority class, see docs/bert_family.md) and reports test
accuracy, macro-F1 and the majority-class accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import config as cfg
from .. import registry
from ..data.tokenizers.subword import special_ids, tokenizer_files  # noqa: F401 - re-exported for tests
from ..errors import ConfigError, closest


@dataclass
class DataSpec:
    corpus: str = "wiki-vital-small"
    split: str = "train"
    max_documents: int = 0            # 0: all documents of the split
    seq_len: int = 128
    batch_size: int = 16
    input_format: str = ""            # pairs | full-sentences | doc-sentences ("" = the family's own)
    duplicates: int = 1               # passes with fresh NSP/SOP pairings (BERT's dupe_factor)
    eval_documents: int = 0           # documents of the valid split held out for evaluation
    segment: str = ""                 # Chinese words for whole-word masking: "" | jieba | gold | entities
    seed: int = 0


@dataclass
class TokenizerSpec:
    kind: str = ""                    # "" = the family's own (wordpiece; bytebpe for roberta)
    vocab_size: int = 8192


@dataclass
class Recipe:
    family: str
    data: DataSpec = field(default_factory=DataSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    model: dict = field(default_factory=dict)       # overrides of the tiny preset
    objective: dict = field(default_factory=dict)   # MaskingConfig fields


def make_model(family: str, vocab_size: int, specials: dict, overrides: dict | None = None):
    """A fresh model of ``family`` at its registry row's tiny sizes, with ``overrides`` applied
    (unknown keys refused). RoBERTa's positions start after its padding id, as Hugging Face's do."""
    row = registry.get(family)
    data_values = {"vocab_size": vocab_size, "pad_token_id": specials["pad"]}
    if family == "roberta":
        data_values["position_offset"] = specials["pad"] + 1
        data_values["max_length"] = 512 + data_values["position_offset"]
    return row.model_class()(row.config_from(data_values, dict(overrides or {})))


@dataclass
class Prepared:
    """Everything a pretraining run needs."""

    model: torch.nn.Module
    objective: object
    train_source: object
    eval_source: object
    tokenizer: object
    specials: dict
    describe: str


SEGMENTS = ("", "jieba", "gold", "entities")


def segmented_text(document, segment: str) -> str:
    """A document's text with its words separated by spaces, so that WordPiece marks the pieces inside
    a word with ``##`` and whole-word masking masks words (Cui et al., 2019: Chinese BERT-wwm).

    Chinese is written without spaces: left as it is, a WordPiece "word" is everything between two
    punctuation marks (a clause), and whole-word masking masks clauses. ``jieba``: words from
    jieba's segmentation; ``gold``: the corpus's own words (People's Daily ``meta["words"]``);
    ``entities``: the gold words with each named entity (consecutive words tagged person, place or
    organisation, e.g. surname + given name) joined into one unit, so it is masked whole, as in
    ERNIE's entity-level masking (Sun et al., 2019). ``""``: the text unchanged.
    """
    from ..objectives.masking import ENTITY_TAGS

    if segment == "":
        return document.text
    if segment == "jieba":
        from ..data.tokenizers.chinese import segment as jieba_words

        return " ".join(jieba_words(document.text, require_jieba=True))
    if segment not in SEGMENTS:
        raise ConfigError(f"data.segment must be one of {', '.join(repr(s) for s in SEGMENTS)}, got {segment!r}"
                          f"{closest(segment, SEGMENTS)}")
    words, tags = document.meta.get("words"), document.meta.get("tags")
    if not words:
        raise ConfigError(f"data.segment = {segment!r} needs a corpus with gold words (peoples-daily); "
                          "use segment = \"jieba\" for raw Chinese text")
    if segment == "gold":
        return " ".join(words)
    units: list[str] = []
    previous = None
    for word, tag in zip(words, tags):
        if tag in ENTITY_TAGS and tag == previous:
            units[-1] += word  # the entity continues: one unit
        else:
            units.append(word)
        previous = tag if tag in ENTITY_TAGS else None
    return " ".join(units)


def prepare(recipe: Recipe, documents=None, eval_docs=None) -> Prepared:
    """Corpus -> tokenizer -> rows -> model + objective (see the table in the module docstring)."""
    from ..data import sources
    from ..data.stream import Rows
    from ..data.tokenizers import train_tokenizer
    from ..objectives import masking
    from ..objectives.mlm import Masker, MaskingConfig, MLMObjective
    from ..objectives.rtd import RTDObjective
    from ..objectives.sentence import encode_documents, packed_rows, pair_rows
    from ..objectives.span import SBOObjective

    family, data = recipe.family, recipe.data
    mine = [name for name, row in registry.FAMILIES.items() if row.recipe == "lmlab.recipes.bert_family:build"]
    if family not in mine:
        raise ConfigError(f"unknown family {family!r}{closest(family, mine)}; this recipe builds {', '.join(mine)}")
    if documents is None:
        splits = sources.load(data.corpus).split()
        documents = splits[data.split]
        if data.eval_documents:
            eval_docs = splits.valid[: data.eval_documents]
    if data.max_documents:
        documents = documents[: data.max_documents]
    texts = [segmented_text(d, data.segment) for d in documents]
    kind = recipe.tokenizer.kind or ("bytebpe" if family == "roberta" else "wordpiece")
    tokenizer = train_tokenizer(kind, texts, vocab_size=recipe.tokenizer.vocab_size)
    specials = special_ids(tokenizer)
    encoded = encode_documents(texts, tokenizer)
    fmt = data.input_format or {"bert": "pairs", "albert": "pairs", "roberta": "full-sentences",
                                "spanbert": "doc-sentences", "electra": "full-sentences"}[family]
    generator = torch.Generator().manual_seed(data.seed)
    task = {"bert": "nsp", "albert": "sop"}.get(family) if fmt == "pairs" else None
    if fmt == "pairs" and task is None:
        raise ConfigError(f"{family} has no sentence-pair task; use full-sentences or doc-sentences")

    def rows_of(docs_ids):
        if fmt == "pairs":
            return pair_rows(docs_ids, data.seq_len, specials["cls"], specials["sep"], specials["pad"], generator,
                             task=task, duplicates=data.duplicates)
        if fmt not in ("full-sentences", "doc-sentences"):
            raise ConfigError(f"data.input_format must be pairs, full-sentences or doc-sentences, got {fmt!r}")
        return packed_rows(docs_ids, data.seq_len, specials["cls"], specials["sep"], specials["pad"],
                           cross_documents=fmt == "full-sentences")

    rows = rows_of(encoded)
    eval_source = None
    if eval_docs:
        eval_source = Rows(rows_of(encode_documents([segmented_text(d, data.segment) for d in eval_docs], tokenizer)),
                           data.batch_size)
    default_scheme = {"albert": "ngram", "spanbert": "span"}.get(family, "token")
    objective_table = {"scheme": default_scheme, **recipe.objective}
    if family == "electra":
        objective_table = {"mask_prob": 1.0, "random_prob": 0.0, **objective_table}
    masking_config = cfg.from_dict(MaskingConfig, objective_table, where="objective")
    starts, ends = masking.word_boundary_tables(tokenizer)
    special_list = [specials[k] for k in ("pad", "cls", "sep", "mask")]
    masker = Masker(masking_config, tokenizer.vocab_size, specials["mask"], special_list, starts, ends)
    model = make_model(family, tokenizer.vocab_size, specials, recipe.model)
    if family == "electra":
        objective = RTDObjective(masker, specials["pad"], rtd_weight=model.config.rtd_weight)
    else:
        objective = MLMObjective(masker, specials["pad"], specials["sep"], sentence_task=task)
        if family == "spanbert":  # MLM + SpanBERT's span boundary objective
            objective = SBOObjective(objective)
    describe = (f"{family}: {len(rows)} rows x {data.seq_len} ({fmt}), {kind} vocab {tokenizer.vocab_size}, "
                f"masking {masking_config.scheme}")
    return Prepared(model, objective, Rows(rows, data.batch_size, seed=data.seed), eval_source, tokenizer,
                    specials, describe)


def build(run):
    """``lmlab train`` builder: a RunFile (family, [data], [tokenizer], [model], [objective]) -> TrainingJob."""
    from ..train import TrainingJob

    recipe = Recipe(run.family, cfg.from_dict(DataSpec, run.data, where="data"),
                    cfg.from_dict(TokenizerSpec, run.tokenizer, where="tokenizer"), dict(run.model),
                    dict(run.objective))
    prepared = prepare(recipe)

    def export(folder: Path) -> None:
        prepared.model.save_pretrained(folder, extra_files=prepared.tokenizer.files(),
                                       metadata={"data": {"corpus": recipe.data.corpus,
                                                          "segment": recipe.data.segment}})

    return TrainingJob(prepared.model, prepared.objective, prepared.train_source, prepared.eval_source, export,
                       prepared.describe)


def pretrain(prepared: Prepared, steps: int, out_dir: Path, lr: float = 1e-3, seed: int = 0,
             threads: int = 0) -> dict:
    """Run the Trainer for ``steps`` (linear warm-up 10%) quietly; returns the last record's numbers."""
    from ..train import TrainConfig, Trainer

    config = TrainConfig.quiet(seed=seed, max_steps=steps, lr=lr, schedule="linear",
                               warmup_steps=max(1, steps // 10), weight_decay=0.01, threads=threads, device="cpu",
                               precision="fp32")
    result = Trainer(prepared.model, prepared.objective, prepared.train_source, config, out_dir,
                     eval_source=prepared.eval_source).fit()
    return {"loss": result.loss, **result.eval}


DEMO_FAMILIES = ("bert", "roberta", "albert", "electra")
DEMO_PRETRAIN = {"steps": 100, "batch_size": 16, "seq_len": 64, "max_documents": 1500, "vocab_size": 4096}
DEMO_FINETUNE = {"steps": 150, "batch_size": 32, "max_len": 48, "lr": 1e-3}


def run_demo(data) -> list:
    """BERT, RoBERTa, ALBERT and ELECTRA, each pretrained with the same budget (steps x batch x seq) on the
    demo's training documents, then fine-tuned on rotten-tomatoes with the same fine-tuning budget."""
    from ..report import DemoRow
    from ..train.budget import OverBudget, time_up

    rows = []
    threads_before = torch.get_num_threads()
    try:
        for family in DEMO_FAMILIES:
            if data.seconds_left() < 30 or time_up():
                rows.append(DemoRow("transformer", f"{family} (tiny) -> rotten-tomatoes", {}, None,
                                    "skipped: out of time"))
                continue
            try:
                rows.append(_demo_row(data, family))
            except OverBudget as stopped:  # lmlab demo's hard limit: keep the rows already done
                rows.append(DemoRow("transformer", f"{family} (tiny) -> rotten-tomatoes", {}, None, str(stopped)))
    finally:
        torch.set_num_threads(threads_before)  # the Trainer sets the thread count process-wide
    return rows


def _demo_row(data, family: str):
    """One demo row: pretrain ``family`` with DEMO_PRETRAIN, fine-tune with DEMO_FINETUNE, on one thread.

    One thread: a row is ~20 s of small matrix products; on the shared 2-core machine (load average
    3-4) two threads made the same row 5-10x slower, one thread did not.
    """
    import tempfile

    from ..report import DemoRow
    from ..tasks.classification import FinetuneSpec, finetune_model

    pre_budget, ft_budget = DEMO_PRETRAIN, DEMO_FINETUNE
    start = time.monotonic()
    torch.manual_seed(data.seed)
    recipe = Recipe(family, DataSpec(seq_len=pre_budget["seq_len"], batch_size=pre_budget["batch_size"],
                                     max_documents=pre_budget["max_documents"], seed=data.seed),
                    TokenizerSpec(vocab_size=pre_budget["vocab_size"]))
    prepared = prepare(recipe, documents=data.train_documents)
    n_params = sum(p.numel() for p in prepared.model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        pre = pretrain(prepared, pre_budget["steps"], Path(tmp) / "pretrain", lr=1e-3, seed=data.seed, threads=1)
        spec = FinetuneSpec(task="rotten-tomatoes", steps=ft_budget["steps"], batch_size=ft_budget["batch_size"],
                            max_len=ft_budget["max_len"], lr=ft_budget["lr"], pooling="mean", seed=data.seed,
                            threads=1)
        scores = finetune_model(prepared.model, prepared.tokenizer, prepared.specials, spec, Path(tmp) / "ft")
    inputs = {"bert": "NSP pairs, token masks", "roberta": "FULL-SENTENCES, byte BPE, token masks",
              "albert": "SOP pairs, n-gram masks", "electra": "generator 1/4 + discriminator, RTD"}[family]
    return DemoRow("transformer", f"{family} (tiny) -> rotten-tomatoes",
                   {"test acc": scores["accuracy"], "macro-F1": scores["macro_f1"],
                    "majority acc": scores["majority_baseline"], "pretrain loss": pre["loss"]},
                   time.monotonic() - start,
                   f"budget: pretrain {pre_budget['steps']} steps x {pre_budget['batch_size']} x "
                   f"{pre_budget['seq_len']} tokens ({inputs}; {n_params / 1e6:.2f}M params) on the demo train "
                   f"split, fine-tune {spec.steps} steps x {spec.batch_size} x {spec.max_len} (mean pooling); "
                   f"test split by movie (n={scores['n_test']})")
