"""lmlab.ngram: statistical n-gram language models (counts -> smoothing -> ARPA -> query).

    from lmlab.ngram import build, load_arpa, write_arpa
    model = build(train_sentences, order=5, smoothing="mkn")   # KenLM lmplz's estimator
    model.evaluate(test_sentences).perplexity
    write_arpa(model, "model.arpa")

Stages: :mod:`.counts` (sorted numpy count tables), :mod:`.smoothing` (one class per
method), :mod:`.model` (back-off query, perplexity, sampling), :mod:`.arpa`
(the file format), :mod:`.prune` (count cut-offs, Stolcke relative-entropy pruning).
"""

from __future__ import annotations

from .arpa import read_arpa, write_arpa
from .counts import NgramCounts, Vocabulary, count_ngrams, count_text
from .model import Evaluation, NgramModel
from .smoothing import METHODS, Smoother, make_smoother

load_arpa = read_arpa


def build(sentences, order: int = 3, smoothing: str | Smoother = "mkn", vocab=None, heldout=None,
          seed: int = 0) -> NgramModel:
    """Estimate an n-gram model from tokenized sentences (``<s>``/``</s>`` are added here).

    ``vocab``: a closed vocabulary (words outside it count as ``<unk>``); default: every
    training word. ``heldout``: sentences for the methods that tune on held-out text
    (Jelinek-Mercer, Dirichlet); without it every 10th training sentence is held out
    for tuning (the final counts use all of them).
    """
    from .model import check_order

    check_order(order)
    smoother = make_smoother(smoothing) if isinstance(smoothing, str) else smoothing
    sentences = sentences if isinstance(sentences, list) else list(sentences)
    voc = Vocabulary(vocab) if vocab is not None and not isinstance(vocab, Vocabulary) else vocab
    cnts = count_ngrams(sentences, order, voc)
    if smoother.needs_heldout:
        if heldout is None or not len(heldout):
            tune = [s for i, s in enumerate(sentences) if i % 10 != 9]
            heldout = [s for i, s in enumerate(sentences) if i % 10 == 9]
            smoother.fit_params(count_ngrams(tune, order, cnts.vocab), heldout)
        else:
            smoother.fit_params(cnts, list(heldout))
    model = smoother.estimate(cnts)
    model.info.setdefault("order", order)
    return model


__all__ = [
    "METHODS", "Evaluation", "NgramCounts", "NgramModel", "Smoother", "Vocabulary",
    "build", "count_ngrams", "count_text", "load_arpa", "make_smoother", "read_arpa", "write_arpa",
]
