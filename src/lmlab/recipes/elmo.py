"""Orchestration for ELMo's biLM: the ``lmlab train configs/elmo.toml`` job and its perplexities.

- :func:`build`: a :class:`lmlab.train.TrainingJob` from the run file's ``[data]``, ``[tokenizer]``
  (the closed output vocabulary, exactly that of the word LMs: :mod:`lmlab.recipes.word_lm`) and
  ``[model]`` (a ``preset`` of :data:`lmlab.models.elmo.PRESETS` plus overrides) tables. The
  training data is the word LMs' stream twice, read in lockstep: forward (``<s> w_1 .. w_n </s>``
  per sentence, documents in order) and backward (the whole stream reversed, ``</s> w_n .. w_1
  <s>``), each cut into lanes whose state the Trainer carries from block to block.
- :func:`perplexities`: forward, backward and mean per-word perplexity on word sentences, with
  the counting rule of every word LM (``n + 1`` events per sentence, OOV words as ``<unk>``).

The model is in :mod:`lmlab.models.elmo`, the objective in :mod:`lmlab.objectives.bilm`.
"""

from __future__ import annotations

import torch

from .. import config as config_io
from ..data.stream import BPTTStream, StackedStreams, bptt_documents, reversed_documents
from ..errors import ConfigError
from ..eval.perplexity import PerplexityResult, encode_sentences, from_log_probs
from ..models import elmo
from ..objectives.bilm import BiLMObjective
from ..train.trainer import TrainingJob
from .run import pop_preset
from .word_lm import WordDataConfig, WordTokenizerSpec, load_word_data


def _streams(documents, bos: int, eos: int, V: int, batch_size: int, bptt: int) -> StackedStreams:
    fwd_ids, fwd_starts = bptt_documents(documents, bos)
    bwd_ids, bwd_starts = bptt_documents(reversed_documents(documents, bos), eos)
    return StackedStreams([BPTTStream(fwd_ids, fwd_starts, V, batch_size, bptt),
                           BPTTStream(bwd_ids, bwd_starts, V, batch_size, bptt)])


def build(run) -> TrainingJob:
    """``lmlab train`` builder for ``family = "elmo"``."""
    for name in run:
        if name not in ("family", "data", "tokenizer", "model", "train"):
            raise ConfigError(f"run file: unknown table {name!r}; known: data, model, tokenizer, train")
    data_cfg = config_io.from_dict(WordDataConfig, dict(run.data), where="data")
    spec = config_io.from_dict(WordTokenizerSpec, dict(run.tokenizer), where="tokenizer")
    model_table = dict(run.model)
    preset_name, preset = pop_preset(model_table, elmo.PRESETS, "elmo-tiny", "ELMo")
    model_cfg = config_io.from_dict(elmo.ElmoConfig, {**preset, **model_table}, where="model")
    data = load_word_data(data_cfg, spec)
    torch.manual_seed(int(run.train.get("seed", 0)))
    model = elmo.build(model_cfg, data.vocab, data.counts)
    V, bos, eos = len(data.vocab), model_cfg.bos_id, model_cfg.eos_id
    train = _streams(data.train, bos, eos, V, data_cfg.batch_size, data_cfg.bptt)
    valid = _streams(data.valid, bos, eos, V, data_cfg.eval_batch_size, data_cfg.bptt) if data.valid else None
    description = {**data.description, "preset": preset_name}
    return TrainingJob(
        model=model, objective=BiLMObjective(V, bos, eos), train_source=train, eval_source=valid,
        export=lambda folder: elmo.save(model, folder, data.vocab, description),
        describe=f"ELMo biLM ({preset_name}) {model_cfg.n_layers}x{model_cfg.cell_dim}->{model_cfg.projection_dim} "
                 f"softmax={model_cfg.softmax.kind} |V|={V} on {data_cfg.stream or data_cfg.corpus}: "
                 f"{len(train.streams[0].ids):,} training tokens per direction")


def perplexities(model: elmo.ElmoLM, sentences: list[list[str]], vocab: list[str]) -> dict[str, PerplexityResult]:
    """Forward, backward and mean (the geometric mean of the two, bilm-tf's number) perplexity."""
    ids, oov = encode_sentences(sentences, vocab)
    fwd, bwd = model.score_both(ids)
    words = sum(len(s) for s in ids)
    return {"forward": from_log_probs(fwd, words=words, oov=oov),
            "backward": from_log_probs(bwd, words=words, oov=oov),
            "mean": from_log_probs([(f + b) / 2 for f, b in zip(fwd, bwd)], words=words, oov=oov)}
