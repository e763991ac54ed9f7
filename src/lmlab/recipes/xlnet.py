"""XLNet pretraining: the ``lmlab train`` builder for ``family = "xlnet"``.

``build(run)`` (what ``lmlab train configs/xlnet.toml`` runs): a WordPiece vocabulary trained on
the corpus's train split (its ``[CLS]``, ``[SEP]``, ``[PAD]`` play XLNet's ``<cls>``, ``<sep>``,
``<pad>``, and the saved folder fine-tunes with ``lmlab finetune``), the documents laid end to end
with ``[SEP]`` between them (a functional token, never a target, as XLNet's ``<eod>``), blocks
of ``seq_len - 2`` tokens to which the objective appends ``<sep> <cls>``, an
:class:`~lmlab.models.xlnet.XLNetLMHeadModel` from a preset (``xlnet-tiny`` by default) plus the
``[model]`` overrides, and :class:`~lmlab.objectives.plm.PLMObjective` with the ``[objective]``
table (:class:`~lmlab.objectives.plm.PLMConfig`: K, max_gram, mask_alpha, mask_beta, perm_size,
reuse_len); spans are aligned to WordPiece word starts. Without memory (``model.mem_len = 0``,
Hugging Face's ``use_mems_train = False`` default) the blocks are shuffled. With ``model.mem_len > 0``
training carries XLNet's segment memory as its pretraining does: the stream is read in
``batch_size`` contiguous lanes (:class:`LaneSegments`), each row starting ``reuse_len`` tokens after
the lane's previous one, the model caches the first ``reuse_len`` positions of every layer
(``model.reuse_len`` = ``objective.reuse_len``, required), and the Trainer carries that memory from
step to step and through checkpoints (:class:`~lmlab.objectives.plm.PLMMemoryObjective`).
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


class LaneSegments:
    """Trainer batch source for XLNet with memory: ``batch(step, shard, shards)`` -> (B, L) ids.

    The stream is cut into ``shards * batch_size`` lanes; step ``s`` reads tokens ``[s R, s R + L)``
    of each lane (``R`` = ``stride``, XLNet's ``reuse_len``), so the first ``R`` tokens of a row follow
    the first ``R`` of the lane's previous row: what the model cached. The first row of every pass
    has ``vocab_size`` added to its first id (the objective drops the memory there)."""

    def __init__(self, ids, vocab_size: int, batch_size: int, length: int, stride: int) -> None:
        import numpy as np

        self.ids = np.asarray(ids, dtype=np.int64)
        self.vocab_size, self.batch_size, self.length, self.stride = vocab_size, batch_size, length, stride
        if not 0 < stride <= length:
            raise ConfigError(f"lane stride {stride} must be in [1, row length {length}]")

    def _steps(self, lanes: int) -> tuple[int, int]:
        lane_len = len(self.ids) // lanes
        steps = (lane_len - self.length) // self.stride + 1 if lane_len >= self.length else 0
        if steps < 1:
            raise DataError(f"stream of {len(self.ids)} tokens is too short for {lanes} lanes of rows of "
                            f"{self.length}")
        return lane_len, steps

    def batch(self, step: int, shard: int = 0, shards: int = 1):
        import numpy as np

        lane_len, steps = self._steps(shards * self.batch_size)
        within = step % steps
        lane = np.arange(shard * self.batch_size, (shard + 1) * self.batch_size)
        index = (lane * lane_len)[:, None] + within * self.stride + np.arange(self.length)[None, :]  # (B, L)
        out = self.ids[index].copy()
        if within == 0:
            out[:, 0] += self.vocab_size
        return torch.from_numpy(out)

    def eval_batches(self, rank: int = 0, world: int = 1):
        """Every row of every lane in order (an evaluation pass, the memory carried along)."""
        _, steps = self._steps(world * self.batch_size)
        for step in range(steps):
            yield self.batch(step, rank, world)


def build(run):
    """``lmlab train`` builder: a RunFile ([data], [tokenizer], [model] with ``preset``, [objective]) -> TrainingJob."""
    from ..data import sources
    from ..data.stream import LMBlocks
    from ..data.tokenizers import train_tokenizer
    from ..data.tokenizers.subword import special_ids
    from ..models.xlnet import PRESETS, XLNetConfig, XLNetLMHeadModel
    from ..objectives.masking import word_boundary_tables
    from ..objectives.plm import PLMConfig, PLMMemoryObjective, PLMObjective
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
    text_len = data.seq_len - 2                                  # the rows' text, before <sep> <cls>
    if config.mem_len:
        if not 0 < config.reuse_len == plm.reuse_len <= text_len:
            raise ConfigError(f"model.mem_len = {config.mem_len} needs model.reuse_len = objective.reuse_len in "
                              f"[1, {text_len}] (got {config.reuse_len} and {plm.reuse_len})")
        objective = PLMMemoryObjective(plm, specials["sep"], specials["cls"], specials["pad"], tokenizer.vocab_size,
                                       starts_word)
    else:
        objective = PLMObjective(plm, specials["sep"], specials["cls"], specials["pad"], starts_word)
    train_ids = document_stream(tokenizer.encode_batch([d.text for d in train_docs]), specials["sep"])
    valid_ids = document_stream(tokenizer.encode_batch([d.text for d in valid_docs]), specials["sep"])
    enough = len(valid_ids) > text_len * data.batch_size
    if config.mem_len:
        train_source = LaneSegments(train_ids, tokenizer.vocab_size, data.batch_size, text_len, config.reuse_len)
        eval_source = LaneSegments(valid_ids, tokenizer.vocab_size, data.batch_size, text_len, config.reuse_len) \
            if enough else None
    else:                                                        # LMBlocks yields seq_len + 1 tokens
        train_source = LMBlocks(train_ids, text_len - 1, data.batch_size, seed=data.seed)
        eval_source = LMBlocks(valid_ids, text_len - 1, data.batch_size, seed=data.seed, shuffle=False) \
            if enough else None

    def export(folder: Path) -> None:
        model.save_pretrained(folder, extra_files=tokenizer.files(), metadata={"data": {"corpus": data.corpus}})

    describe = (f"XLNet ({preset_name}: {config.n_layers}x{config.d_model}) {model.num_parameters() / 1e6:.2f}M "
                f"params, wordpiece |V|={tokenizer.vocab_size}, rows of {data.seq_len} (text + <sep> <cls>), "
                f"PLM K={plm.K} spans <= {plm.max_gram}"
                f"{f', memory {config.mem_len} (reuse {config.reuse_len})' if config.mem_len else ''}, on {data.corpus} ({len(train_ids)} train tokens)")
    return TrainingJob(model, objective, train_source, eval_source, export, describe)
