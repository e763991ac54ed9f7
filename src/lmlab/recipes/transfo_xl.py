"""Orchestration for Transformer-XL on a word-level stream: what ``lmlab train configs/transfo_xl.toml`` runs.

The data side is the word LMs' (:mod:`lmlab.recipes.word_lm`): the corpus's word-level stream,
a closed vocabulary sorted by frequency (so the adaptive ``cutoffs`` cut it into frequency bands),
documents as ``<s> w_1 .. w_n </s>`` sentences back to back. Training is the LSTM's truncated
BPTT loop (:class:`lmlab.data.stream.BPTTStream` lanes and :class:`lmlab.objectives.bptt.BPTTObjective`):
``data.bptt`` is the segment length ``L``, and the state the Trainer carries from one segment of a
lane to the next (and through checkpoints) is the model's memory of ``model.mem_len`` positions
per layer; a document start hides the memory from that position on.

The model is :mod:`lmlab.models.transfo_xl`; this file only wires data, model and the Trainer.
"""

from __future__ import annotations

import torch

from .. import config as config_io
from ..models import transfo_xl
from ..train.trainer import TrainingJob
from .run import pop_preset
from .word_lm import _read_tables, _sections, bptt_job, load_word_data


def build(run) -> TrainingJob:
    """A training job from a run file's [data] (word_lm's table: corpus / stream, batch_size, bptt =
    segment length, eval_batch_size), [tokenizer] (the closed word vocabulary) and [model]
    (``preset`` + TransfoXLConfig overrides)."""
    _sections(run, {"family", "data", "tokenizer", "model", "train"})
    data_cfg, spec = _read_tables(run)
    model_table = dict(run.get("model", {}))
    _, preset = pop_preset(model_table, transfo_xl.PRESETS, "xl-tiny", "Transformer-XL")
    data = load_word_data(data_cfg, spec)
    values = {**preset, **model_table, "vocab_size": len(data.vocab)}
    config = config_io.from_dict(transfo_xl.TransfoXLConfig, values, where="model")
    seed = int(run.get("train", {}).get("seed", 0))
    torch.manual_seed(seed)
    model = transfo_xl.build(config, data.vocab)
    return bptt_job(model, data, data_cfg,
                    f"Transformer-XL {config.n_layer}x{config.d_model} segment {data_cfg.bptt} memory {config.mem_len} "
                    f"cutoffs={config.cutoffs} |V|={len(data.vocab)} on {data_cfg.stream or data_cfg.corpus}")
