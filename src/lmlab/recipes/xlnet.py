"""XLNet pretraining: the ``lmlab train`` builder for ``family = "xlnet"``.

``build(run)`` (what ``lmlab train configs/xlnet.toml`` runs): a WordPiece vocabulary trained on
the corpus's train split (its ``[CLS]``, ``[SEP]``, ``[PAD]`` play XLNet's ``<cls>``, ``<sep>``,
``<pad>``, and the saved folder fine-tunes with ``lmlab finetune``), the documents laid end to end
with ``[SEP]`` between them (a functional token, never a target, as XLNet's ``<eod>``), blocks
of ``seq_len - 2`` tokens to which the objective appends ``<sep> <cls>``, an
:class:`~lmlab.models.xlnet.XLNetLMHeadModel` from a preset (``xlnet-tiny`` by default) plus the
``[model]`` overrides, and :class:`~lmlab.objectives.plm.PLMObjective` with the ``[objective]``
table (:class:`~lmlab.objectives.plm.PLMConfig`: K, max_gram, mask_alpha, mask_beta, perm_size,
reuse_len); spans are aligned to WordPiece word starts. Blocks are shuffled, so consecutive
batches are not consecutive text: training runs without memory (Hugging Face's
``use_mems_train = False`` default), which the model supports at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import config as config_io
from ..errors import ConfigError, DataError


@dataclass
class XLNetDataSpec:
    """The ``[data]`` table of an XLNet run file."""

    corpus: str = "wiki-vital"
    seq_len: int = 64              # T, with the <sep> <cls> at the end
    batch_size: int = 16
    max_documents: int = 0         # 0: every training document
    eval_documents: int = 0        # 0: the whole valid split
    seed: int = 0


@dataclass
class XLNetTokenizerSpec:
    kind: str = "wordpiece"
    vocab_size: int = 8192


def build(run):
    """``lmlab train`` builder: a RunFile ([data], [tokenizer], [model] with ``preset``, [objective]) -> TrainingJob."""
    from ..data import sources
    from ..data.stream import LMBlocks
    from ..data.tokenizers import train_tokenizer
    from ..data.tokenizers.subword import special_ids
    from ..models.xlnet import PRESETS, XLNetConfig, XLNetLMHeadModel
    from ..objectives.masking import word_boundary_tables
    from ..objectives.plm import PLMConfig, PLMObjective
    from ..train.trainer import TrainingJob
    from .gpt import document_stream
    from .run import pop_preset

    data = config_io.from_dict(XLNetDataSpec, dict(run.data), where="data")
    spec = config_io.from_dict(XLNetTokenizerSpec, dict(run.tokenizer), where="tokenizer")
    if spec.kind != "wordpiece":
        raise ConfigError(f"tokenizer.kind = {spec.kind!r}: XLNet's recipe needs [CLS]/[SEP]/[PAD]/[MASK]; "
                          "use wordpiece")
    if data.seq_len < 8:
        raise ConfigError(f"data.seq_len = {data.seq_len} is too short for XLNet rows (>= 8)")
    plm = config_io.from_dict(PLMConfig, dict(run.objective), where="objective")
    plm.validate()
    model_table = dict(run.model)
    preset_name, preset_values = pop_preset(model_table, PRESETS, "xlnet-tiny", "XLNet")
    splits = sources.load(data.corpus).split()
    train_docs = splits.train[: data.max_documents] if data.max_documents else splits.train
    valid_docs = splits.valid[: data.eval_documents] if data.eval_documents else splits.valid
    if not train_docs:
        raise DataError(f"corpus {data.corpus!r} has no training documents")
    tokenizer = train_tokenizer(spec.kind, [d.text for d in train_docs], vocab_size=spec.vocab_size)
    specials = special_ids(tokenizer)
    values = {**preset_values, "vocab_size": tokenizer.vocab_size, "pad_token_id": specials["pad"], **model_table}
    config = config_io.from_dict(XLNetConfig, values, where="model")
    config.validate()
    torch.manual_seed(data.seed)
    model = XLNetLMHeadModel(config)
    starts_word, _ = word_boundary_tables(tokenizer)
    objective = PLMObjective(plm, specials["sep"], specials["cls"], specials["pad"], starts_word)
    train_ids = document_stream(tokenizer.encode_batch([d.text for d in train_docs]), specials["sep"])
    valid_ids = document_stream(tokenizer.encode_batch([d.text for d in valid_docs]), specials["sep"])
    text_len = data.seq_len - 2                                  # LMBlocks yields seq_len + 1 tokens
    train_source = LMBlocks(train_ids, text_len - 1, data.batch_size, seed=data.seed)
    eval_source = LMBlocks(valid_ids, text_len - 1, data.batch_size, seed=data.seed, shuffle=False) \
        if len(valid_ids) > text_len * data.batch_size else None

    def export(folder: Path) -> None:
        model.save_pretrained(folder, extra_files=tokenizer.files(), metadata={"data": {"corpus": data.corpus}})

    describe = (f"XLNet ({preset_name}: {config.n_layers}x{config.d_model}) {model.num_parameters() / 1e6:.2f}M "
                f"params, wordpiece |V|={tokenizer.vocab_size}, rows of {data.seq_len} (text + <sep> <cls>), "
                f"PLM K={plm.K} spans <= {plm.max_gram}, on {data.corpus} ({len(train_ids)} train tokens)")
    return TrainingJob(model, objective, train_source, eval_source, export, describe)
