"""lmlab.ngram: statistical n-gram language models (counts -> smoothing -> ARPA -> query).

    from lmlab.ngram import build, load_arpa, write_arpa
    model = build(train_sentences, order=5, smoothing="mkn")   # KenLM lmplz's estimator
    model.evaluate(test_sentences).perplexity
    write_arpa(model, "model.arpa")

Stages: :mod:`.counts` (sorted numpy count tables), :mod:`.smoothing` (one class per
method), :mod:`.model` (back-off query, perplexity, sampling), :mod:`.arpa`
(the text file format; :func:`load_model` reads it or a binary file), :mod:`.binary` (the
memory-mapped binary file), :mod:`.prune` (count cut-offs, Stolcke relative-entropy pruning).
:mod:`.pipeline` runs them in order (count -> adjust -> estimate -> prune, lmplz's
stages, with stage callbacks); :func:`build` and ``lmlab ngram build`` both go through it.
"""

from __future__ import annotations

from .arpa import load_model, read_arpa, write_arpa
from .binary import read_binary, write_binary
from .counts import NgramCounts, Vocabulary, count_ngrams, count_text
from .model import Evaluation, NgramModel
from .pipeline import PipelineConfig, StageEvent, Text
from .pipeline import build as pipeline_build
from .smoothing import METHODS, Smoother, make_smoother

load_arpa = read_arpa


def build(sentences, order: int = 3, smoothing: str | Smoother = "mkn", vocab=None, heldout=None,
          seed: int = 0) -> NgramModel:
    """Estimate an n-gram model from tokenized sentences (``<s>``/``</s>`` are added here).

    ``vocab``: a closed vocabulary (words outside it count as ``<unk>``); default: every
    training word. ``heldout``: sentences for the methods that tune on held-out text
    (Jelinek-Mercer, Dirichlet); without it every 10th training sentence is held out
    for tuning (the final counts use all of them). ``seed`` is unused (every method is
    deterministic). This is :func:`lmlab.ngram.pipeline.build` without pruning; call that
    for cut-offs, entropy pruning, a vocabulary by count or stage callbacks.
    """
    config = PipelineConfig(order=order, smoothing=smoothing)
    return pipeline_build(sentences, config, vocab=vocab, heldout=heldout)


__all__ = [
    "METHODS", "Evaluation", "NgramCounts", "NgramModel", "PipelineConfig", "Smoother", "StageEvent",
    "Text", "Vocabulary", "build", "count_ngrams", "count_text", "load_arpa", "load_model", "make_smoother", "read_arpa",
    "read_binary", "write_arpa", "write_binary",
]
