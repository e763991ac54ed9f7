"""Pruning a back-off model: count cut-offs and relative-entropy (Stolcke 1998) pruning.

Both remove n-grams of order >= 2 from an :class:`~lmlab.ngram.model.NgramModel`
and then renormalise: the probabilities of the n-grams that stay are kept, and
each affected history's back-off weight is recomputed so that its distribution
sums to one again (SRILM's ``-prune`` does the same):

    alpha(h) = (1 - sum_{w listed after h} p(w|h)) / (1 - sum_{w listed after h} p(w|h')).

An n-gram that is the prefix or suffix of a kept longer n-gram is never removed
(the tables stay prefix- and suffix-closed); unigrams are never removed.

* :func:`prune_counts` -- count cut-offs per order, as ``lmplz --prune`` and SRILM's
  ``-gtNmin``: drop n-grams whose raw training count is <= the threshold of their
  order. Unlike lmplz (which re-estimates with the pruned n-grams' mass moved to
  the back-off), the estimate is made on all counts and then renormalised.
* :func:`prune_entropy` -- Stolcke (1998), "Entropy-based pruning of backoff language
  models": remove the n-gram h w when the relative entropy D(p || p') between the
  model and the model without it, weighted by the history's marginal probability
  P(h) (chain rule of the model's own probabilities), is below a threshold theta:

      D = -P(h) { p(w|h) [log p(w|h') + log alpha'(h) - log p(w|h)]
                  + (1 - sum_{v listed after h} p(v|h)) [log alpha'(h) - log alpha(h)] },
      alpha'(h) = (num(h) + p(w|h)) / (den(h) + p(w|h')).

  Each order is pruned from the top down, every candidate measured against the
  model before that order's pruning (as SRILM does). ``target_size`` finds theta by
  bisection so that the pruned model keeps at most that many n-grams.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError
from .counts import BOS_ID, NgramCounts
from .model import NgramModel, log10_or_zero
from .smoothing import quantize


def _subset(model: NgramModel, keep: list[np.ndarray]) -> NgramModel:
    """The model restricted to ``keep`` masks per order (closed under prefix and suffix)."""
    keep = [k.copy() for k in keep]
    keep[0][:] = True
    for n in range(model.order, 1, -1):
        kept = np.nonzero(keep[n - 1])[0]
        keep[n - 2][model.keys[n - 1][kept] // model.V] = True
        keep[n - 2][model.suffix(n)[kept]] = True
    keys = [model.keys[0].copy()]
    new_row = [np.arange(model.V)]
    for n in range(2, model.order + 1):
        k = model.keys[n - 1][keep[n - 1]]
        keys.append(new_row[-1][k // model.V] * model.V + k % model.V)
        new_row.append(np.cumsum(keep[n - 1]) - 1)
    logprob = [lp[m].copy() for lp, m in zip(model.logprob, keep)]
    backoff = [bo[m].copy() for bo, m in zip(model.backoff, keep)]
    pruned = NgramModel(model.vocab, keys, logprob, backoff, dict(model.info))
    renormalise(pruned)
    return pruned


def renormalise(model: NgramModel) -> None:
    """Recompute every back-off weight so that each history's distribution sums to one."""
    for n in range(2, model.order + 1):
        prefix = model.keys[n - 1] // model.V
        size = len(model.keys[n - 2])
        p = 10.0 ** model.logprob[n - 1]
        low = 10.0 ** model.logprob[n - 2][model.suffix(n)]
        num = 1.0 - np.bincount(prefix, weights=p, minlength=size)
        den = 1.0 - np.bincount(prefix, weights=low, minlength=size)
        has_child = np.bincount(prefix, minlength=size) > 0
        alpha = np.where(has_child & (den > 1e-12), np.maximum(num, 0.0) / np.maximum(den, 1e-12), 0.0)
        model.backoff[n - 2] = np.where(has_child, quantize(log10_or_zero(alpha)), 0.0)
    model._cache.clear()


def prune_counts(model: NgramModel, counts: NgramCounts, thresholds: list[int]) -> NgramModel:
    """Drop n-grams whose raw count is <= ``thresholds[n-1]`` (order 1's threshold must be 0)."""
    if len(thresholds) > model.order or any(t < 0 for t in thresholds):
        raise UsageError(f"count thresholds {thresholds} do not fit a {model.order}-gram model")
    if thresholds and thresholds[0] != 0:
        raise UsageError("unigrams cannot be pruned (threshold for order 1 must be 0)")
    if model.sizes() != [counts.size(n) for n in range(1, model.order + 1)]:
        raise UsageError("the counts do not belong to this model")
    thr = list(thresholds) + [thresholds[-1] if thresholds else 0] * (model.order - len(thresholds))
    keep = [c > t for c, t in zip(counts.counts, thr)]
    pruned = _subset(model, keep)
    pruned.info["pruned"] = {"count_thresholds": thr}
    return pruned


def _history_log10(model: NgramModel, n: int) -> np.ndarray:
    """log10 P(h) of every order-n n-gram as a history, by the chain rule (P(<s>) = 1)."""
    lp = model.logprob[0].copy()
    lp[BOS_ID] = 0.0
    for k in range(2, n + 1):
        lp = lp[model.keys[k - 1] // model.V] + model.logprob[k - 1]
    return lp


def _entropy_deltas(model: NgramModel, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stolcke's D for each order-n n-gram (natural log), and which of them may be pruned."""
    V = model.V
    prefix = model.keys[n - 1] // V
    size = len(model.keys[n - 2])
    p = 10.0 ** model.logprob[n - 1]
    low = 10.0 ** model.logprob[n - 2][model.suffix(n)]
    num = np.maximum(1.0 - np.bincount(prefix, weights=p, minlength=size), 0.0)
    den = np.maximum(1.0 - np.bincount(prefix, weights=low, minlength=size), 0.0)
    alpha = 10.0 ** model.backoff[n - 2]
    ph = 10.0 ** _history_log10(model, n - 1)
    nh, dh = num[prefix], den[prefix]
    alpha_new = (nh + p) / np.maximum(dh + low, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = p * (np.log(low) + np.log(alpha_new) - np.log(p))
        term += np.where(nh > 0, nh * (np.log(alpha_new) - np.log(alpha[prefix])), 0.0)
    delta = -ph[prefix] * term
    prunable = np.ones(len(p), dtype=bool)
    if n < model.order:  # histories of kept longer n-grams stay
        prunable[np.unique(model.keys[n] // V)] = False
        prunable[np.unique(model.suffix(n + 1))] = False
    return np.nan_to_num(delta, nan=np.inf), prunable


def prune_entropy(model: NgramModel, threshold: float | None = None, target_size: int | None = None) -> NgramModel:
    """Stolcke relative-entropy pruning with ``threshold`` theta, or to at most ``target_size`` n-grams."""
    if (threshold is None) == (target_size is None):
        raise UsageError("give exactly one of threshold or target_size")
    if target_size is not None:
        if target_size < model.V:
            raise UsageError(f"target size {target_size} is below the {model.V} unigrams, which stay")
        if sum(model.sizes()) <= target_size:
            return model
        lo, hi = -30.0, 0.0  # log10 theta
        best = None
        for _ in range(40):
            mid = (lo + hi) / 2
            pruned = prune_entropy(model, threshold=10.0**mid)
            if sum(pruned.sizes()) <= target_size:
                best, hi = pruned, mid
            else:
                lo = mid
        if best is None:
            best = prune_entropy(model, threshold=1.0)
        best.info["pruned"]["target_size"] = int(target_size)
        return best
    if not math.isfinite(float(threshold)) or threshold < 0:
        raise UsageError(f"entropy threshold must be a finite number >= 0, got {threshold}")
    current = model
    for n in range(model.order, 1, -1):
        delta, prunable = _entropy_deltas(current, n)
        keep = [np.ones(s, dtype=bool) for s in current.sizes()]
        keep[n - 1] = ~(prunable & (delta < threshold))
        current = _subset(current, keep)
    current.info["pruned"] = {"entropy_threshold": float(threshold)}
    return current
