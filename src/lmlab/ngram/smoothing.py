"""Smoothing methods: counts -> a back-off n-gram model (stage 2 of the estimator pipeline).

One class per method, each citing its paper; notation follows Chen & Goodman (1998),
"An empirical study of smoothing techniques for language modeling" (TR-10-98):
c(h w) the count of word w after history h, c(h) = sum_w c(h w), N1+(h .) the
number of distinct words seen after h, n_r the number of n-grams seen r times,
|V| the number of predictable words (the vocabulary without ``<s>``).

Every method is written in one of two shapes, both stored in back-off form
(:class:`lmlab.ngram.model.NgramModel`, the ARPA file's semantics):

* interpolated: p(w|h) = p_u(w|h) + gamma(h) p(w|h'), with h' = h minus its first
  word and, at the unigram level, p(w|h') the uniform 1/|V| (the "order 0" model);
  the ARPA file holds p(w|h) for seen h w and bo(h) = gamma(h) — exact.
* back-off: p(w|h) = p*(w|h) for seen h w, else alpha(h) p(w|h'), with alpha(h)
  computed so that sum_w p(w|h) = 1 (Katz 1987). Where every word was seen after h
  (the denominator is 0) p* is renormalised instead and alpha(h) = 0.

What the ARPA form cannot express exactly is said per method (additive and
Church-Gale share the unseen mass of a history in proportion to the lower order
instead of uniformly / by bucket).

Methods needing held-out data (Jelinek-Mercer, Dirichlet) get it through
:meth:`Smoother.fit_params`; :func:`lmlab.ngram.build` holds out every 10th
training sentence when no valid split is given.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

import numpy as np

from ..errors import ConfigError, UsageError
from .counts import BOS_ID, NgramCounts, adjusted_counts, count_of_counts, encode, match_positions
from .model import NgramModel, log10_or_zero


def quantize(x: np.ndarray) -> np.ndarray:
    """Round log10 values to 10 decimals, so that writing an ARPA file and reading it back is exact."""
    return np.rint(np.asarray(x, dtype=np.float64) * 1e10) / 1e10


class SmoothingWarning(UserWarning):
    """A method fell back to a safe choice on data it cannot handle (the message says what was done)."""


# ----------------------------------------------------------------------------- shared helpers
def _context_sums(cnts: NgramCounts, n: int, values: np.ndarray) -> np.ndarray:
    """sum over the children of each order-(n-1) history of ``values`` (n >= 2)."""
    return np.bincount(cnts.prefix(n), weights=values, minlength=cnts.size(n - 1))


def _unigram_counts(cnts: NgramCounts, raw: np.ndarray | None = None) -> np.ndarray:
    c = (cnts.counts[0] if raw is None else raw).astype(np.float64).copy()
    c[BOS_ID] = 0.0
    return c


def _predictable(V: int) -> np.ndarray:
    mask = np.ones(V, dtype=bool)
    mask[BOS_ID] = False
    return mask


def interpolated_model(cnts: NgramCounts, p_u: list[np.ndarray], gamma: list, info: dict) -> NgramModel:
    """p(w|h) = p_u(w|h) + gamma(h) p(w|h'); ``gamma[0]`` is the unigram level's weight on 1/|V|.

    ``p_u[n-1]`` is indexed by order-n rows, ``gamma[n-1]`` (n >= 2) by order-(n-1) rows.
    """
    V = cnts.V
    uni = p_u[0] + float(gamma[0]) / (V - 1)
    uni[BOS_ID] = 0.0
    probs = [uni]
    backoffs = []
    for n in range(2, cnts.order + 1):
        prefix, suffix = cnts.prefix(n), cnts.suffix(n)
        probs.append(p_u[n - 1] + gamma[n - 1][prefix] * probs[-1][suffix])
        has_child = np.bincount(prefix, minlength=cnts.size(n - 1)) > 0
        backoffs.append(np.where(has_child, log10_or_zero(gamma[n - 1]), 0.0))
    backoffs.append(np.zeros(cnts.size(cnts.order)))
    return _finish(cnts, probs, backoffs, info)


def backoff_model(cnts: NgramCounts, p_star: list[np.ndarray], info: dict) -> NgramModel:
    """p(w|h) = p*(w|h) if c(h w) > 0 else alpha(h) p(w|h') (Katz 1987), alpha normalising."""
    V = cnts.V
    uni = np.asarray(p_star[0], dtype=np.float64).copy()
    uni[BOS_ID] = 0.0
    seen = _unigram_counts(cnts) > 0
    unseen = _predictable(V) & ~seen
    left = 1.0 - math.fsum(uni[seen].tolist())
    if unseen.any() and left > 1e-12:
        uni[unseen] = left / unseen.sum()
    else:
        uni[unseen] = 0.0
        uni[seen] /= uni[seen].sum()
    probs = [uni]
    backoffs = []
    for n in range(2, cnts.order + 1):
        prefix, suffix = cnts.prefix(n), cnts.suffix(n)
        p = np.asarray(p_star[n - 1], dtype=np.float64).copy()
        num = 1.0 - _context_sums(cnts, n, p)
        den = 1.0 - _context_sums(cnts, n, probs[-1][suffix])
        has_child = np.bincount(prefix, minlength=cnts.size(n - 1)) > 0
        full = has_child & ((den <= 1e-9) | (num < 0))
        if full.any():  # every word seen after h (or p* over-full): renormalise p*, no back-off mass
            mass = 1.0 - num
            fix = full[prefix]
            p[fix] /= mass[prefix[fix]]
            num[full] = 0.0
        alpha = np.where(has_child & ~full, num / np.where(den > 0, den, 1.0), 0.0)
        alpha = np.maximum(alpha, 0.0)
        probs.append(p)
        backoffs.append(np.where(has_child, log10_or_zero(alpha), 0.0))
    backoffs.append(np.zeros(cnts.size(cnts.order)))
    return _finish(cnts, probs, backoffs, info)


def _finish(cnts: NgramCounts, probs, backoffs, info) -> NgramModel:
    logprob = [quantize(log10_or_zero(p)) for p in probs]
    logprob[0][BOS_ID] = -99.0
    backoff = [quantize(b) for b in backoffs]
    return NgramModel(cnts.vocab, [k.copy() for k in cnts.keys], logprob, backoff, dict(info))


class Smoother(ABC):
    """Base: ``estimate(counts) -> NgramModel``; ``fit_params`` tunes on held-out text if needed."""

    name = "base"
    needs_heldout = False

    def fit_params(self, cnts: NgramCounts, heldout) -> None:  # noqa: B027 (optional hook, default: nothing)
        """Tune parameters on held-out sentences (only methods with ``needs_heldout``)."""

    @abstractmethod
    def estimate(self, cnts: NgramCounts) -> NgramModel:
        """Probabilities and back-off weights for every n-gram in ``cnts``."""

    def info(self) -> dict:
        return {"method": self.name}


# ----------------------------------------------------------------------------- MLE and additive
class MaximumLikelihood(Smoother):
    """p(w|h) = c(h w) / c(h); unseen words get 0 (log10 -99) after a seen history.

    A history never seen backs off (weight 1) to the shorter one, so every
    distribution still sums to one; the unseen unigrams (e.g. ``<unk>``) get 0.
    """

    name = "mle"

    def estimate(self, cnts):
        c1 = _unigram_counts(cnts)
        p_star = [c1 / c1.sum()]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            p_star.append(c / _context_sums(cnts, n, c)[cnts.prefix(n)])
        return backoff_model(cnts, p_star, self.info())


class Additive(Smoother):
    """Additive (Lidstone; add-one is Laplace) smoothing: p*(w|h) = (c(h w) + delta) / (c(h) + delta |V|).

    Exact at the unigram level. At higher orders the unseen mass of a history,
    delta (|V| - N1+(h .)) / (c(h) + delta |V|), is what textbook add-delta gives;
    the ARPA back-off form shares it among the unseen words in proportion to the
    lower-order estimate (textbook add-delta shares it uniformly, which ARPA cannot say).
    """

    name = "add-delta"

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ConfigError(f"add-delta needs delta > 0, got {delta}")
        self.delta = float(delta)

    def info(self):
        return {"method": "add-one" if self.delta == 1.0 else "add-delta", "delta": self.delta}

    def estimate(self, cnts):
        Vp = cnts.V - 1
        d = self.delta
        c1 = _unigram_counts(cnts)
        p_star = [np.where(c1 > 0, (c1 + d) / (c1.sum() + d * Vp), 0.0)]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            total = _context_sums(cnts, n, c)[cnts.prefix(n)]
            p_star.append((c + d) / (total + d * Vp))
        return backoff_model(cnts, p_star, self.info())


# ----------------------------------------------------------------------------- Good-Turing family
def simple_good_turing(r_values: np.ndarray, n_r: np.ndarray) -> tuple[np.ndarray, float]:
    """Simple Good-Turing (Gale & Sampson 1995): r* for each observed r, and P0 = n_1 / N.

    Z_r = n_r / (0.5 (t - q)) smooths n_r over the gaps between observed counts,
    log Z_r = a + b log r is fitted by least squares, and r* switches from the
    Turing estimate (r+1) n_{r+1} / n_r to the regression estimate (r+1) S(r+1)/S(r)
    the first time they differ by less than 1.96 standard deviations.
    With a single distinct count (e.g. all singletons) the regression is undefined:
    slope b = -2 is used (r* = r^2/(r+1)) and P0 = 1 - sum r* n_r / N, with a warning.
    """
    order = np.argsort(r_values)
    r = np.asarray(r_values, dtype=np.float64)[order]
    n = np.asarray(n_r, dtype=np.float64)[order]
    N = float((r * n).sum())
    if len(r) == 0:
        raise UsageError("Good-Turing needs at least one count")
    if len(r) == 1:
        warnings.warn(
            f"Simple Good-Turing: every event has count {int(r[0])}; the log-log regression is undefined, "
            "using slope -2 (r* = r^2/(r+1))", SmoothingWarning, stacklevel=3)
        rstar = r * r / (r + 1.0)
        return rstar, max(0.0, 1.0 - float((rstar * n).sum()) / N)
    q = np.concatenate([[0.0], r[:-1]])
    t = np.concatenate([r[1:], [2.0 * r[-1] - q[-1]]])
    Z = n / (0.5 * (t - q))
    b, a = np.polyfit(np.log(r), np.log(Z), 1)
    if b > -1:
        warnings.warn(f"Simple Good-Turing: fitted slope {b:.3f} > -1 (Gale & Sampson require < -1); "
                      "r* may exceed r", SmoothingWarning, stacklevel=3)
    lgt = (r + 1.0) * np.exp(a + b * np.log(r + 1.0)) / np.exp(a + b * np.log(r))
    lookup = dict(zip(r.tolist(), n.tolist()))
    rstar = lgt.copy()
    use_turing = True
    for i, (ri, ni) in enumerate(zip(r.tolist(), n.tolist())):  # loop over distinct counts only
        nxt = lookup.get(ri + 1.0, 0.0)
        if use_turing and nxt > 0:
            x = (ri + 1.0) * nxt / ni
            sd = math.sqrt((ri + 1.0) ** 2 * nxt / ni**2 * (1.0 + nxt / ni))
            if abs(x - lgt[i]) > 1.96 * sd:
                rstar[i] = x
                continue
        use_turing = False
    p0 = lookup.get(1.0, 0.0) / N
    out = np.empty_like(rstar)
    out[order] = rstar
    return out, p0


def _sgt_rstar(counts: np.ndarray) -> tuple[np.ndarray, float]:
    """r* for every entry of ``counts`` (> 0) via Simple Good-Turing, and P0."""
    vals, inv, nr = np.unique(counts, return_inverse=True, return_counts=True)
    rstar, p0 = simple_good_turing(vals, nr)
    return rstar[inv.ravel()], p0


class GoodTuring(Smoother):
    """Good-Turing (Good 1953) with Simple Good-Turing r* (Gale & Sampson 1995) at every order.

    p*(w|h) = r*(c(h w)) / c(h); the unseen mass of each history goes to the lower
    order (back-off). Unigrams: seen p(w) = (1 - P0) r* / sum r*, and P0 = n_1 / N
    is shared uniformly by the vocabulary words never seen (if there are none, it
    is given back to the seen ones).
    """

    name = "good-turing"

    def estimate(self, cnts):
        c1 = _unigram_counts(cnts)
        seen = c1 > 0
        uni = np.zeros(cnts.V)
        rstar, p0 = _sgt_rstar(c1[seen])
        uni[seen] = (1.0 - p0) * rstar / rstar.sum()
        p_star = [uni]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            rstar, _ = _sgt_rstar(c)
            p_star.append(rstar / _context_sums(cnts, n, c)[cnts.prefix(n)])
        return backoff_model(cnts, p_star, self.info())


def katz_discounts(c: np.ndarray, k: int = 5) -> tuple[np.ndarray, int]:
    """Katz's d_r for r = 0..k (d_0 unused = 1) from count-of-counts; lowers k when invalid.

    d_r = (r*/r - (k+1) n_{k+1}/n_1) / (1 - (k+1) n_{k+1}/n_1), r* = (r+1) n_{r+1}/n_r.
    When no k >= 1 gives 0 < d_r <= 1, Simple Good-Turing's r* is used instead (with a warning).
    """
    k0 = k
    nr = np.bincount(c.astype(np.int64), minlength=k + 2).astype(np.float64)
    while k > 0:
        n = nr[: k + 2]
        if (n[1: k + 2] > 0).all():
            common = (k + 1) * n[k + 1] / n[1]
            r = np.arange(1, k + 1, dtype=np.float64)
            rstar = (r + 1) * n[2: k + 2] / n[1: k + 1]
            d = (rstar / r - common) / (1 - common)
            if common < 1 and ((d > 0) & (d <= 1)).all():
                if k != k0:
                    warnings.warn(f"Katz: count-of-counts give invalid discounts for k={k0}; using k={k}",
                                  SmoothingWarning, stacklevel=3)
                return np.concatenate([[1.0], d]), k
        k -= 1
    # no k gives valid Turing discounts (e.g. a closed vocabulary without singletons):
    # use Simple Good-Turing's smoothed r* instead, d_r = min(r*/r, 1) for r <= k0
    seen = c[c > 0].astype(np.int64)
    vals, nr_obs = np.unique(seen, return_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmoothingWarning)
        rstar, _ = simple_good_turing(vals, nr_obs)
    lookup = dict(zip(vals.tolist(), rstar.tolist()))
    d = np.ones(k0 + 1)
    for r in range(1, k0 + 1):
        if r in lookup:
            d[r] = min(lookup[r] / r, 1.0)
    warnings.warn(f"Katz: no k <= {k0} gives valid Good-Turing discounts on this data; using Simple "
                  f"Good-Turing discounts d_r = r*/r = {np.round(d[1:], 4).tolist()}", SmoothingWarning, stacklevel=3)
    return d, k0


class Katz(Smoother):
    """Katz back-off (Katz 1987): Good-Turing discounts d_r for r <= k (k = 5), counts above k kept.

    p*(w|h) = d_r c(h w) / c(h); alpha(h) spreads the rest over the unseen words by
    the lower order. The same discounting applies to unigrams, whose freed mass goes
    uniformly to the vocabulary words never seen. Where every count after a history
    exceeds k, Katz's rule leaves nothing for the unseen words (probability 0); lmlab
    then discounts that history's counts by d_k.
    """

    name = "katz"

    def __init__(self, k: int = 5):
        self.k = int(k)
        self.discounts: list[list[float]] = []

    def info(self):
        return {"method": self.name, "k": self.k, "discounts": self.discounts}

    def _discount(self, c, prefix=None, n_contexts=0):
        d, k = katz_discounts(c, self.k)
        self.discounts.append(d[1:].tolist())
        ci = c.astype(np.int64)
        factor = np.ones_like(c)
        small = (ci >= 1) & (ci <= k)
        factor[small] = d[ci[small]]
        if prefix is not None and k >= 1:
            # a history whose counts all exceed k keeps no mass for unseen words (they would get
            # probability 0): discount its counts by d_k, the discount of the most reliable counts
            discounted = np.bincount(prefix, weights=(factor < 1).astype(np.float64), minlength=n_contexts)
            none_left = discounted[prefix] == 0
            factor[none_left] = min(d[k], 1.0)
        return c * factor

    def estimate(self, cnts):
        self.discounts = []
        c1 = _unigram_counts(cnts)
        p_star = [self._discount(c1) / c1.sum()]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            p_star.append(self._discount(c, cnts.prefix(n), cnts.size(n - 1))
                          / _context_sums(cnts, n, c)[cnts.prefix(n)])
        return backoff_model(cnts, p_star, self.info())


class ChurchGale(Smoother):
    """Church & Gale (1991) bucketed Good-Turing: n-grams are grouped by c(h) * c(w) (powers of 2).

    Inside a bucket b, r* = (r+1) n_{b,r+1} / n_{b,r} for r <= k; where a bucket is
    too sparse for that to be a discount (0 < r* < r), the unbucketed Good-Turing r*
    of the order is used, and failing that r is kept; p*(w|h) = r*/c(h). The paper's bigram bucketing by the
    product of unigram counts is used at every order (history count times word
    count). The unseen mass is shared by the lower order (ARPA back-off form; the
    paper shares it by bucket). Unigrams are estimated by Simple Good-Turing.
    """

    name = "church-gale"

    def __init__(self, k: int = 5):
        self.k = int(k)

    def estimate(self, cnts):
        c1 = _unigram_counts(cnts)
        seen = c1 > 0
        uni = np.zeros(cnts.V)
        rstar, p0 = _sgt_rstar(c1[seen])
        uni[seen] = (1.0 - p0) * rstar / rstar.sum()
        p_star = [uni]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            total = _context_sums(cnts, n, c)
            prefix = cnts.prefix(n)
            product = total[prefix] * c1[cnts.last_word(n)]
            bucket = np.floor(np.log2(np.maximum(product, 1.0))).astype(np.int64)
            ci = c.astype(np.int64)
            K = self.k + 3  # columns r = 0..k+1, and one for every count above k+1
            nbr = np.bincount(bucket * K + np.minimum(ci, K - 1), minlength=(bucket.max() + 1) * K)
            nbr = nbr.reshape(-1, K).astype(np.float64)  # (buckets, r = 0..k+2)
            glob = nbr.sum(axis=0)  # unbucketed n_r: the fallback where a bucket is too sparse
            rstar = c.copy()
            small = ci <= self.k
            b, r = bucket[small], ci[small]
            est = (r + 1) * nbr[b, r + 1] / nbr[b, r]
            fallback = (r + 1) * glob[r + 1] / glob[r]
            est = np.where((est > 0) & (est < r), est, fallback)
            ok = (est > 0) & (est < r)
            rs = rstar[small]
            rs[ok] = est[ok]
            rstar[small] = rs
            p_star.append(rstar / total[prefix])
        return backoff_model(cnts, p_star, self.info())


# ----------------------------------------------------------------------------- interpolated family
class WittenBell(Smoother):
    """Witten & Bell (1991) method C: gamma(h) = N1+(h .) / (N1+(h .) + c(h)).

    Interpolated (default): p(w|h) = (c(h w) + N1+(h .) p(w|h')) / (c(h) + N1+(h .)).
    ``backoff=True``: p*(w|h) = c(h w) / (c(h) + N1+(h .)), unseen mass shared by the
    lower order with alpha normalising (SRILM's -wbdiscount without -interpolate).
    """

    def __init__(self, backoff: bool = False):
        self.backoff = bool(backoff)
        self.name = "witten-bell-backoff" if backoff else "witten-bell"

    def estimate(self, cnts):
        c1 = _unigram_counts(cnts)
        types = float((c1 > 0).sum())
        p_u = [c1 / (c1.sum() + types)]
        gamma = [types / (c1.sum() + types)]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            total = _context_sums(cnts, n, c)
            n1p = np.bincount(cnts.prefix(n), minlength=cnts.size(n - 1)).astype(np.float64)
            denom = np.where(total > 0, total + n1p, 1.0)
            p_u.append(c / denom[cnts.prefix(n)])
            gamma.append(np.where(total > 0, n1p / denom, 1.0))
        if self.backoff:
            return backoff_model(cnts, p_u, self.info())
        return interpolated_model(cnts, p_u, gamma, self.info())


def _discounted(cnts: NgramCounts, counts: list[np.ndarray], discount_of, info) -> NgramModel:
    """Interpolated absolute discounting with per-order discount functions D_n(c) (c >= 1).

    p_u(w|h) = max(c(h w) - D(c), 0) / c(h),  gamma(h) = sum_w D(c(h w)) / c(h).
    """
    c1 = counts[0].astype(np.float64).copy()
    c1[BOS_ID] = 0.0
    d1 = np.where(c1 > 0, discount_of(1, c1), 0.0)
    p_u = [np.maximum(c1 - d1, 0.0) / c1.sum()]
    gamma = [d1.sum() / c1.sum()]
    for n in range(2, cnts.order + 1):
        c = counts[n - 1].astype(np.float64)
        d = np.where(c > 0, discount_of(n, c), 0.0)
        total = _context_sums(cnts, n, c)
        safe = np.where(total > 0, total, 1.0)
        p_u.append(np.maximum(c - d, 0.0) / safe[cnts.prefix(n)])
        gamma.append(np.where(total > 0, _context_sums(cnts, n, d) / safe, 1.0))
    return interpolated_model(cnts, p_u, gamma, info)


def _single_discount(coc: np.ndarray, order: int, method: str) -> float:
    n1, n2 = float(coc[1]), float(coc[2])
    if n1 <= 0 or n1 + 2 * n2 <= 0 or n2 <= 0:
        warnings.warn(f"{method}: order {order} has n1={int(n1)}, n2={int(n2)}; D = n1/(n1+2 n2) is "
                      "degenerate, using D = 0.5", SmoothingWarning, stacklevel=3)
        return 0.5
    return n1 / (n1 + 2.0 * n2)


class AbsoluteDiscounting(Smoother):
    """Interpolated absolute discounting (Ney, Essen & Kneser 1994): D_n = n1 / (n1 + 2 n2) per order."""

    name = "absolute"

    def __init__(self):
        self.D: list[float] = []

    def info(self):
        return {"method": self.name, "discounts": self.D}

    def estimate(self, cnts):
        raw = [cnts.counts[0].copy()] + cnts.counts[1:]
        raw[0][BOS_ID] = 0
        self.D = [_single_discount(count_of_counts(raw[n]), n + 1, "absolute discounting")
                  for n in range(cnts.order)]
        return _discounted(cnts, raw, lambda n, c: np.full_like(c, self.D[n - 1]), self.info())


class KneserNey(Smoother):
    """Interpolated Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998 eq. 15).

    Lower orders use continuation counts N1+(. w) (KenLM's adjusted counts, see
    :func:`lmlab.ngram.counts.adjusted_counts`), one discount D_n = n1/(n1+2 n2) per
    order from the adjusted count-of-counts, uniform interpolation at the unigram level.
    """

    name = "kn"

    def __init__(self):
        self.D: list[float] = []

    def info(self):
        return {"method": self.name, "discounts": self.D}

    def estimate(self, cnts):
        adj = adjusted_counts(cnts)
        self.D = [_single_discount(count_of_counts(adj[n]), n + 1, "Kneser-Ney") for n in range(cnts.order)]
        return _discounted(cnts, adj, lambda n, c: np.full_like(c, self.D[n - 1]), self.info())


def mkn_discounts(adj: list[np.ndarray], fallback=(0.5, 1.0, 1.5)) -> list[tuple[float, float, float]]:
    """D1, D2, D3+ per order (Chen & Goodman 1998 eq. 26), as lmplz computes them.

    Y = n1 / (n1 + 2 n2),  D_k = k - (k+1) Y n_{k+1} / n_k  for k = 1, 2, 3,
    from the count-of-counts of the adjusted counts. Where a count-of-count is 0
    or a D_k falls outside (0, k), lmplz aborts; here the order uses ``fallback``
    (lmplz's ``--discount_fallback`` values) and a warning says so.
    """
    return mkn_discounts_of([count_of_counts(a, 4) for a in adj], fallback)


def mkn_discounts_of(cocs: list[np.ndarray], fallback=(0.5, 1.0, 1.5)) -> list[tuple[float, float, float]]:
    """:func:`mkn_discounts` from the count-of-counts n_0..n_4 of each order's adjusted counts."""
    out = []
    for n, coc in enumerate(cocs, start=1):
        coc = np.asarray(coc, dtype=np.float64)
        ok = (coc[1:5] > 0).all()
        if ok:
            Y = coc[1] / (coc[1] + 2.0 * coc[2])
            D = [k - (k + 1) * Y * coc[k + 1] / coc[k] for k in (1, 2, 3)]
            ok = all(0 < d < k for d, k in zip(D, (1, 2, 3)))
        if not ok:
            warnings.warn(
                f"modified Kneser-Ney: order {n} count-of-counts n1..n4 = {coc[1:5].astype(int).tolist()} "
                f"give no valid discounts (KenLM's lmplz aborts here); using fallback D1, D2, D3+ = "
                f"{tuple(fallback)}", SmoothingWarning, stacklevel=3)
            D = list(fallback)
        out.append(tuple(float(d) for d in D))
    return out


class ModifiedKneserNey(Smoother):
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998), exactly as KenLM's lmplz estimates it.

    Adjusted counts a(.) (raw at the top order and for n-grams starting with
    ``<s>``, continuation counts otherwise); D(a) = D1, D2, D3+ for a = 1, 2, >= 3;
    p_u(w|h) = (a(h w) - D(a(h w))) / sum_w a(h w);
    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / sum_w a(h w);
    at the unigram level gamma interpolates with the uniform 1/|V| (|V| excludes ``<s>``,
    includes ``<unk>`` whose adjusted count is 0).
    """

    name = "mkn"

    def __init__(self, discount_fallback=(0.5, 1.0, 1.5)):
        self.discount_fallback = tuple(float(x) for x in discount_fallback)
        self.D: list[tuple[float, float, float]] = []

    def info(self):
        return {"method": self.name, "discounts": [list(d) for d in self.D]}

    def estimate(self, cnts):
        adj = adjusted_counts(cnts)
        self.D = mkn_discounts(adj, self.discount_fallback)

        def discount_of(n, c):
            table = np.array([0.0, *self.D[n - 1]])
            return table[np.minimum(c, 3).astype(np.int64)]

        return _discounted(cnts, adj, discount_of, self.info())


# ----------------------------------------------------------------------------- held-out tuned
class _Heldout:
    """Held-out token stream matched against the count tables: for each order, the
    count of the n-gram ending at each predicted token and the total of its history."""

    def __init__(self, cnts: NgramCounts, sentences):
        ids, pos, _ = encode(sentences, cnts.vocab)
        rows = match_positions(cnts.keys, cnts.V, ids, pos)
        keep = pos > 0
        self.n_tokens = int(keep.sum())
        self.c = []       # c(h w) per order, at predicted tokens
        self.total = []   # c(h) per order (0: history unseen)
        c1 = _unigram_counts(cnts)
        self.c.append(c1[ids[keep]])
        self.total.append(np.full(self.n_tokens, c1.sum()))
        for n in range(2, cnts.order + 1):
            r = rows[n - 1][keep]
            cn = cnts.counts[n - 1].astype(np.float64)
            self.c.append(np.where(r >= 0, cn[np.maximum(r, 0)], 0.0))
            ctx = np.empty(len(ids), dtype=np.int64)
            ctx[0] = -1
            ctx[1:] = rows[n - 2][:-1]
            ctx = np.where(pos >= n - 1, ctx, -1)[keep]
            tot = _context_sums(cnts, n, cn)
            self.total.append(np.where(ctx >= 0, tot[np.maximum(ctx, 0)], 0.0))


def _buckets(total: np.ndarray, n_buckets: int) -> np.ndarray:
    """History-count bucket: floor(log2 c(h)), capped at n_buckets-1 (c(h) >= 1)."""
    b = np.floor(np.log2(np.maximum(total, 1.0))).astype(np.int64)
    return np.minimum(b, n_buckets - 1)


class JelinekMercer(Smoother):
    """Jelinek & Mercer (1980) interpolation, lambdas tuned by EM on held-out text.

    p(w|h) = lambda_b p_ML(w|h) + (1 - lambda_b) p(w|h'), b = bucket of c(h)
    (floor log2 c(h), ``n_buckets`` per order, Chen & Goodman's bucketing; 1 = one
    lambda per order). Unseen histories use p(w|h'). EM (Baum-Welch on the two-way
    mixture) runs order by order, lowest first, on the held-out tokens.
    """

    name = "jelinek-mercer"
    needs_heldout = True

    def __init__(self, n_buckets: int = 6, iterations: int = 50):
        self.n_buckets = int(n_buckets)
        self.iterations = int(iterations)
        self.lambdas: list[list[float]] = []

    def info(self):
        return {"method": self.name, "lambdas": self.lambdas, "n_buckets": self.n_buckets}

    def fit_params(self, cnts, heldout):
        ho = _Heldout(cnts, heldout)
        lower = np.full(ho.n_tokens, 1.0 / (cnts.V - 1))
        self.lambdas = []
        for n in range(1, cnts.order + 1):
            total, c = ho.total[n - 1], ho.c[n - 1]
            seen = total > 0
            p_ml = np.where(seen, c / np.where(seen, total, 1.0), 0.0)
            nb = 1 if n == 1 else self.n_buckets
            b = _buckets(total, nb)
            lam = np.full(nb, 0.5)
            for _ in range(self.iterations):
                top = lam[b] * p_ml
                post = np.where(seen, top / np.maximum(top + (1 - lam[b]) * lower, 1e-300), 0.0)
                num = np.bincount(b[seen], weights=post[seen], minlength=nb)
                den = np.bincount(b[seen], minlength=nb)
                new = np.where(den > 0, num / np.maximum(den, 1), lam)
                if np.abs(new - lam).max() < 1e-7:
                    lam = new
                    break
                lam = new
            lam = np.clip(lam, 1e-6, 1 - 1e-6)
            self.lambdas.append(lam.tolist())
            lower = np.where(seen, lam[b] * p_ml + (1 - lam[b]) * lower, lower)

    def estimate(self, cnts):
        if not self.lambdas:
            raise UsageError("Jelinek-Mercer needs fit_params(counts, heldout) before estimate()")
        c1 = _unigram_counts(cnts)
        lam1 = self.lambdas[0][0]
        p_u = [lam1 * c1 / c1.sum()]
        gamma = [1.0 - lam1]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            total = _context_sums(cnts, n, c)
            lam = np.asarray(self.lambdas[n - 1])[_buckets(total, len(self.lambdas[n - 1]))]
            lam = np.where(total > 0, lam, 0.0)
            prefix = cnts.prefix(n)
            p_u.append(lam[prefix] * c / np.where(total > 0, total, 1.0)[prefix])
            gamma.append(1.0 - lam)
        return interpolated_model(cnts, p_u, gamma, self.info())


class Dirichlet(Smoother):
    """Bayesian smoothing with a Dirichlet prior centred on the lower order (MacKay & Peto 1995).

    p(w|h) = (c(h w) + mu_n p(w|h')) / (c(h) + mu_n): the posterior mean under a
    Dirichlet(mu_n p(.|h')) prior; the prior strength mu_n per order maximises the
    held-out likelihood (golden-section search on log mu, lowest order first).
    """

    name = "dirichlet"
    needs_heldout = True

    def __init__(self):
        self.mu: list[float] = []

    def info(self):
        return {"method": self.name, "mu": self.mu}

    def fit_params(self, cnts, heldout):
        ho = _Heldout(cnts, heldout)
        lower = np.full(ho.n_tokens, 1.0 / (cnts.V - 1))
        self.mu = []
        for n in range(1, cnts.order + 1):
            c, total = ho.c[n - 1], ho.total[n - 1]

            def loglik(log_mu, c=c, total=total, lower=lower):
                mu = math.exp(log_mu)
                return float(np.log((c + mu * lower) / (total + mu)).sum())

            lo, hi = math.log(1e-3), math.log(1e7)
            g = (math.sqrt(5) - 1) / 2
            x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
            f1, f2 = loglik(x1), loglik(x2)
            for _ in range(80):
                if f1 < f2:
                    lo, x1, f1 = x1, x2, f2
                    x2 = lo + g * (hi - lo)
                    f2 = loglik(x2)
                else:
                    hi, x2, f2 = x2, x1, f1
                    x1 = hi - g * (hi - lo)
                    f1 = loglik(x1)
            mu = math.exp((lo + hi) / 2)
            self.mu.append(mu)
            lower = (c + mu * lower) / (total + mu)

    def estimate(self, cnts):
        if not self.mu:
            raise UsageError("Dirichlet needs fit_params(counts, heldout) before estimate()")
        c1 = _unigram_counts(cnts)
        mu = self.mu[0]
        p_u = [c1 / (c1.sum() + mu)]
        gamma = [mu / (c1.sum() + mu)]
        for n in range(2, cnts.order + 1):
            c = cnts.counts[n - 1].astype(np.float64)
            total = _context_sums(cnts, n, c)
            mu = self.mu[n - 1]
            p_u.append(c / (total + mu)[cnts.prefix(n)])
            gamma.append(mu / (total + mu))
        return interpolated_model(cnts, p_u, gamma, self.info())


# ----------------------------------------------------------------------------- the table
METHODS = {
    "mle": "maximum likelihood (no smoothing)",
    "add-one": "additive, delta = 1 (Laplace)",
    "add-delta": "additive, delta tunable (Lidstone)",
    "good-turing": "Simple Good-Turing back-off",
    "katz": "Katz back-off (Good-Turing, k = 5)",
    "jelinek-mercer": "Jelinek-Mercer, lambdas by EM on held-out",
    "witten-bell": "Witten-Bell, interpolated",
    "witten-bell-backoff": "Witten-Bell, back-off",
    "absolute": "absolute discounting, interpolated",
    "kn": "Kneser-Ney, interpolated",
    "mkn": "modified Kneser-Ney, interpolated (KenLM lmplz)",
    "church-gale": "Church-Gale bucketed Good-Turing",
    "dirichlet": "Bayesian, Dirichlet prior on the lower order",
}


def make_smoother(name: str, delta: float = 0.5, katz_k: int = 5, jm_buckets: int = 6) -> Smoother:
    """A smoother by its name in :data:`METHODS`."""
    key = name.lower().replace("_", "-")
    if key == "mle":
        return MaximumLikelihood()
    if key == "add-one":
        return Additive(1.0)
    if key == "add-delta":
        return Additive(delta)
    if key == "good-turing":
        return GoodTuring()
    if key == "katz":
        return Katz(katz_k)
    if key == "jelinek-mercer":
        return JelinekMercer(jm_buckets)
    if key == "witten-bell":
        return WittenBell(backoff=False)
    if key == "witten-bell-backoff":
        return WittenBell(backoff=True)
    if key == "absolute":
        return AbsoluteDiscounting()
    if key == "kn":
        return KneserNey()
    if key == "mkn":
        return ModifiedKneserNey()
    if key == "church-gale":
        return ChurchGale()
    if key == "dirichlet":
        return Dirichlet()
    raise ConfigError(f"unknown smoothing method {name!r}{_suggest(name)}; choose from {', '.join(METHODS)}")


def _suggest(name: str) -> str:
    from ..errors import closest

    return closest(name, METHODS)
