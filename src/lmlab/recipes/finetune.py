"""Fine-tuning flows that build their encoder here rather than load it: from scratch, or from word vectors.

``lmlab finetune --from-scratch CONFIG DATA`` (seed 003's first step): a Transformer classifier
with no pretraining. CONFIG is a small TOML file (``configs/classifier_scratch.toml``)::

    family = "bert"                  # any family with the encode capability and a recipe-built model
    [tokenizer]
    kind = "wordpiece"               # trained on the training split's texts
    vocab_size = 8000
    [model]                          # the family's Config fields over its registry row's tiny sizes
    d_model = 128

``lmlab finetune --vectors FILE DATA``: word2vec / fastText / GloVe vectors as fixed features
(:mod:`lmlab.tasks.features`). Both then run the same loop as a pretrained folder
(:func:`lmlab.tasks.classification.finetune_model`) and save the same reloadable folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import config as config_io
from .. import registry
from ..errors import ConfigError


@dataclass
class ScratchTokenizer:
    kind: str = "wordpiece"
    vocab_size: int = 8000


@dataclass
class ScratchSpec:
    """A from-scratch classifier's encoder: its family, tokenizer and sizes."""

    family: str = "bert"
    tokenizer: ScratchTokenizer = field(default_factory=ScratchTokenizer)
    model: dict = field(default_factory=dict)


def read_scratch_spec(path: str | Path) -> ScratchSpec:
    spec = config_io.from_dict(ScratchSpec, config_io.read_table(path), where=str(path))
    registry.get(spec.family).require("encode", "lmlab finetune --from-scratch")
    return spec


def scratch_encoder(spec: ScratchSpec, texts: list[str], seed: int = 0):
    """(a freshly initialised model of ``spec.family``, a tokenizer trained on ``texts``)."""
    from ..data.tokenizers import train_tokenizer

    tokenizer = train_tokenizer(spec.tokenizer.kind, texts, vocab_size=spec.tokenizer.vocab_size)
    return scratch_model(spec, tokenizer, seed), tokenizer


def scratch_model(spec: ScratchSpec, tokenizer, seed: int = 0):
    """A freshly initialised model of ``spec.family`` for ``tokenizer`` (its vocabulary and special ids)."""
    ids = tokenizer.special_ids()
    torch.manual_seed(seed)
    row = registry.get(spec.family)
    if spec.family == "gpt":
        if ids.get("eos") is None or ids.get("pad") is None:
            raise ConfigError(f"tokenizer.kind = {spec.tokenizer.kind!r} has no </s> or <pad> for a GPT classifier; "
                              f"use bytebpe or bpe")
        values = {"vocab_size": tokenizer.vocab_size, "bos_token_id": ids.get("bos"), "eos_token_id": ids["eos"],
                  "pad_token_id": ids["pad"]}
        return row.model_class()(row.config_from(values, dict(spec.model), where="model"))
    from .bert_family import make_model

    if ids.get("pad") is None:
        raise ConfigError(f"tokenizer.kind = {spec.tokenizer.kind!r} has no padding token for {spec.family!r}")
    return make_model(spec.family, tokenizer.vocab_size, {"pad": ids["pad"]}, dict(spec.model))


def _save(scores: dict, tokenizer, out_dir: Path, base: str) -> dict:
    from ..tasks.classification import save_classifier

    head = scores.pop("head")
    save_classifier(head, tokenizer, out_dir / "model", base, scores)
    return scores


def finetune_from_scratch(config_path: str | Path, spec, out_dir: str | Path, resume: bool = False) -> dict:
    """Train a classifier whose encoder starts from random weights; the folder is as ``lmlab finetune``'s."""
    from ..tasks.classification import finetune_model, task_data

    scratch = read_scratch_spec(config_path)
    data = task_data(spec)
    texts = [e.text for e in data.train] + [e.pair for e in data.train if e.pair]
    model, tokenizer = scratch_encoder(scratch, texts, seed=spec.seed)
    out_dir = Path(out_dir)
    scores = finetune_model(model, tokenizer, None, spec, out_dir / "train", data=data, resume=resume)
    return _save(scores, tokenizer, out_dir, f"from scratch: {config_path}")


def finetune_on_vectors(vector_file: str | Path, spec, out_dir: str | Path, resume: bool = False,
                        lowercase: bool = True) -> dict:
    """A classifier on fixed word vectors (averaged, or per token with ``spec.head = "bilstm"``)."""
    from ..tasks.classification import finetune_model
    from ..tasks.features import from_vector_file

    model, tokenizer = from_vector_file(vector_file, lowercase=lowercase)
    out_dir = Path(out_dir)
    scores = finetune_model(model, tokenizer, None, spec, out_dir / "train", resume=resume)
    return _save(scores, tokenizer, out_dir, f"vectors: {vector_file}")
