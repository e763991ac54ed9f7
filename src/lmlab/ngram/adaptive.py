"""Adaptive n-gram language models: cache, decaying cache, and mixtures with EM weights.

An n-gram model treats every document alike; these models adapt it to the text at hand
(seed 004, "语言模型的自适应方法"). All three sit on top of a back-off
:class:`lmlab.ngram.model.NgramModel` (an ARPA file) and give a proper distribution
over its vocabulary (``<s>`` is never predicted).

* **Cache LM** (Kuhn & De Mori 1990, "A cache-based natural language model for speech
  recognition"; Jelinek et al. 1991)::

      P(w | h) = λ P_ngram(w | h) + (1 - λ) P_cache(w)
      P_cache(w) = Σ_{j in cache, c_j = w} ω_j / Σ_{j in cache} ω_j

  The cache holds the last K words c_j of the current document (``</s>`` and ``<unk>``
  are not cached); it is emptied at every document boundary, and while it is empty
  P(w | h) = P_ngram(w | h). The plain cache has ω_j = 1 (relative frequency); the
  **decaying cache** (Clarkson & Robinson 1997, "Language model adaptation using
  mixtures and an exponentially decaying cache") has ω_j = exp(-α (d_j - 1)), d_j = 1
  for the most recent cached word. λ is fitted by EM on held-out text, K and α by grid.
* **Mixture LM** (Kneser & Steinbiss 1993; Iyer & Ostendorf 1999, "Modeling long
  distance dependence in language: topic mixtures versus dynamic cache models")::

      P(w | h) = Σ_j λ_j P_{M_j}(w | h),   λ_j ≥ 0, Σ_j λ_j = 1

  The sub-models M_j are n-gram models trained on parts of the training documents,
  grouped by source (a metadata field such as wiki-vital's ``topic``) or by topic
  clusters (spherical k-means on TF-IDF vectors, :func:`kmeans_topics`), usually with
  the general model as one more component. The weights are fitted by EM on held-out
  text (Dempster, Laird & Rubin 1977; every iteration cannot lower the held-out
  likelihood). Optional dynamic adaptation, per document: after every word the weights
  become the (tempered) posterior of the components given the document so far,
  π_j(t) ∝ λ_j Π_{s<t} P_{M_j}(w_s | h_s)^β (β = 1: the exact Bayesian document-level
  mixture; β = 0: static λ), β tuned on held-out text.

Scoring is per document (the documents of a :class:`DocumentStream`, scored one by one
in the sense that no state crosses a document boundary) and vectorised: the cache
probabilities of a whole stream come from one sort and ``searchsorted`` over
(document, word, position) keys, the posterior mixture weights from cumulative sums.

The maximum-entropy model, and :func:`load_adapted` for all three kinds, are in :mod:`lmlab.ngram.maxent`. This file does not
implement the cache variants of the seed's later citations (TF-IDF-weighted or
semantically extended caches), nor class-based or bigram caches.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, UsageError
from .counts import BOS_ID, EOS, EOS_ID, UNK_ID, Vocabulary, encode
from .model import Evaluation, NgramModel

LN10 = math.log(10.0)


# ----------------------------------------------------------------------------- the stream
@dataclass
class DocumentStream:
    """The predicted tokens of a list of documents, in order: each sentence's words then ``</s>``.

    ``ids[t]`` is the token's id in ``vocab`` (OOV words are ``<unk>``), ``doc[t]`` its
    document index, ``sent[t]`` its sentence index in ``sentences`` (all documents'
    sentences, flattened), ``is_oov[t]`` whether it is scored as ``<unk>`` (as :meth:`NgramModel.evaluate` counts OOVs).
    """

    vocab: Vocabulary
    sentences: list[list[str]]
    ids: np.ndarray
    doc: np.ndarray
    sent: np.ndarray
    is_oov: np.ndarray
    n_docs: int

    @classmethod
    def from_documents(cls, documents: list[list[list[str]]], vocab: Vocabulary) -> DocumentStream:
        """``documents``: one list of tokenized sentences per document (empty documents are kept, empty)."""
        if isinstance(documents, (str, bytes)) or not isinstance(documents, (list, tuple)):
            raise UsageError("documents must be a list of documents, each a list of token lists")
        sentences: list[list[str]] = []
        sent_doc: list[int] = []
        for d, doc in enumerate(documents):
            for sentence in doc:
                if isinstance(sentence, (str, bytes)):
                    raise UsageError(f"document {d}: sentences must be token lists, not strings")
                if len(sentence):
                    sentences.append(list(sentence))
                    sent_doc.append(d)
        if not sentences:
            raise UsageError("no sentences to score: every document is empty")
        ids, pos, _ = encode(sentences, vocab)
        keep = pos > 0                                   # <s> is context only
        sent = np.cumsum(pos == 0) - 1
        ids, sent = ids[keep], sent[keep]
        return cls(vocab, sentences, ids, np.asarray(sent_doc, dtype=np.int64)[sent], sent,
                   ids == UNK_ID, len(documents))

    def __len__(self) -> int:
        return len(self.ids)


def base_logprobs(model: NgramModel, stream: DocumentStream) -> np.ndarray:
    """Natural-log P_ngram(w_t | h_t) for every token of the stream, shape (T,)."""
    check_same_vocab(model.vocab, stream.vocab, "n-gram model")
    logp10, _, _, _ = model.score_sentences(stream.sentences)
    return logp10 * LN10


def base_next_probs(model: NgramModel, sentence_prefix: list[str]) -> np.ndarray:
    """P_ngram(. | <s> prefix) over the vocabulary, shape (V,) (``<s>`` gets 0)."""
    lp = model.next_logprobs(["<s>", *sentence_prefix])
    return np.where(np.isfinite(lp), 10.0 ** lp, 0.0)


def check_same_vocab(a: Vocabulary, b: Vocabulary, what: str) -> None:
    if a.words != b.words:
        raise UsageError(f"{what}: vocabulary differs from the base model's ({len(a)} vs {len(b)} words); "
                         "build every component with the same closed vocabulary")


def split_history(history: list[str]) -> tuple[list[str], list[str]]:
    """A document history (flat tokens, ``</s>`` ending each finished sentence) -> (all tokens, current sentence)."""
    history = list(history)
    last = max((i for i, w in enumerate(history) if w == EOS), default=-1)
    return history, history[last + 1:]


def evaluation(logp: np.ndarray, stream: DocumentStream) -> Evaluation:
    """Natural-log token probabilities -> :class:`Evaluation` (KenLM ``query`` semantics, log10)."""
    lp10 = np.asarray(logp, dtype=np.float64) / LN10
    return Evaluation(
        log10_prob=float(math.fsum(lp10.tolist())), tokens=len(lp10), oovs=int(stream.is_oov.sum()),
        sentences=len(stream.sentences), log10_prob_no_oov=float(math.fsum(lp10[~stream.is_oov].tolist())),
    )


def perplexity(logp: np.ndarray) -> float:
    return float(math.exp(-np.mean(logp)))


# ----------------------------------------------------------------------------- cache
def cacheable(ids: np.ndarray) -> np.ndarray:
    """Which tokens enter the cache: words, not ``</s>``/``<unk>``/``<s>``."""
    return (ids != EOS_ID) & (ids != UNK_ID) & (ids != BOS_ID)


@dataclass
class CacheMatches:
    """For every token t: m[t] = cached words before it in its document, and every earlier
    cached occurrence of the same word as (token index, distance d >= 1) pairs."""

    m: np.ndarray
    pair_token: np.ndarray
    pair_distance: np.ndarray


def cache_matches(stream: DocumentStream, max_size: int) -> CacheMatches:
    """All (target, earlier occurrence) pairs within ``max_size`` cached words, vectorised.

    Cached words get a running index j within their document; the target t has
    m[t] = number of cached words before it. An earlier occurrence of w_t at index j
    lies d = m[t] - j words back. Pairs are found with one sort of the keys
    (doc * V + word) * L + j and two ``searchsorted`` calls per target.
    """
    ids, doc = stream.ids, stream.doc
    T, V = len(ids), len(stream.vocab)
    cached = cacheable(ids)
    running = np.cumsum(cached)                           # cached words up to and including t
    doc_start = np.searchsorted(doc, np.arange(stream.n_docs))     # doc is non-decreasing
    before_doc = np.concatenate([[0], running])[doc_start]        # cached words before each doc
    m = running - cached - before_doc[doc]               # cached words before t in its doc
    L = int(m.max()) + 2 if T else 1
    if float(stream.n_docs) * V * L >= 2 ** 62:
        raise UsageError("stream too large for int64 cache keys; score fewer documents at a time")
    cpos = np.nonzero(cached)[0]
    keys = np.sort((doc[cpos] * V + ids[cpos]) * L + m[cpos])
    target_key = (doc * V + ids) * L
    lo = np.searchsorted(keys, target_key + np.maximum(m - max_size, 0))
    hi = np.searchsorted(keys, target_key + m)
    counts = hi - lo
    pair_token = np.repeat(np.arange(T), counts)
    # index of each pair inside keys: lo[t] + 0..counts[t]-1
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    j = keys[np.repeat(lo, counts) + offsets] % L
    return CacheMatches(m, pair_token, m[pair_token] - j)


def cache_probs(matches: CacheMatches, size: int, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """(P_cache(w_t), cache non-empty) for every token, from precomputed matches.

    Numerator Σ_{matches, d <= K} exp(-α (d - 1)); denominator over the n = min(m, K)
    cached words: n for α = 0, else (1 - exp(-α n)) / (1 - exp(-α)).
    """
    if size < 1:
        raise UsageError(f"cache size must be >= 1, got {size}")
    if decay < 0:
        raise UsageError(f"cache decay must be >= 0, got {decay}")
    n = np.minimum(matches.m, size).astype(np.float64)
    keep = matches.pair_distance <= size
    weights = np.exp(-decay * (matches.pair_distance[keep] - 1.0))
    numerator = np.bincount(matches.pair_token[keep], weights=weights, minlength=len(n))
    denominator = n if decay == 0 else -np.expm1(-decay * n) / -np.expm1(-decay)
    nonempty = n > 0
    p = np.zeros_like(n)
    p[nonempty] = numerator[nonempty] / denominator[nonempty]
    return p, nonempty


def em_two_way(p_a: np.ndarray, p_b: np.ndarray, lam: float = 0.5, iterations: int = 100,
               tol: float = 1e-9) -> float:
    """EM for λ in λ p_a + (1 - λ) p_b (maximises held-out likelihood; monotone)."""
    for _ in range(iterations):
        mix = lam * p_a + (1 - lam) * p_b
        new = float(np.mean(lam * p_a / mix))
        if abs(new - lam) < tol:
            return new
        lam = new
    return lam


@dataclass
class CacheLM:
    """λ P_ngram + (1 - λ) P_cache, with a window (``decay = 0``) or exponentially decaying cache."""

    base: NgramModel
    lam: float = 0.9     # weight of the n-gram model
    size: int = 200      # K: cached words
    decay: float = 0.0   # α: exp(-α (d - 1)) per cached occurrence d words back

    def __post_init__(self):
        check_cache_params(self.lam, self.size, self.decay)

    @property
    def vocab(self) -> Vocabulary:
        return self.base.vocab

    @property
    def kind(self) -> str:
        return "decaying cache" if self.decay > 0 else "cache"

    def token_logprobs(self, stream: DocumentStream, base_lp: np.ndarray | None = None) -> np.ndarray:
        """Natural-log P(w_t | h_t) for every token (cache reset at each document), shape (T,)."""
        base_lp = base_logprobs(self.base, stream) if base_lp is None else base_lp
        p_cache, nonempty = cache_probs(cache_matches(stream, self.size), self.size, self.decay)
        p = np.exp(base_lp)
        return np.log(np.where(nonempty, self.lam * p + (1 - self.lam) * p_cache, p))

    def next_probs(self, history: list[str]) -> np.ndarray:
        """P(. | history) over the vocabulary, shape (V,); ``history``: the document so far."""
        tokens, current = split_history(history)
        p = base_next_probs(self.base, current)
        ids = np.asarray([self.vocab.index.get(w, UNK_ID) for w in tokens], dtype=np.int64)
        cached = ids[cacheable(ids)][-self.size:]
        if len(cached) == 0:
            return p
        d = np.arange(len(cached), 0, -1, dtype=np.float64)          # distance of each cached word
        w = np.exp(-self.decay * (d - 1.0))
        p_cache = np.bincount(cached, weights=w, minlength=len(p)) / w.sum()
        return self.lam * p + (1 - self.lam) * p_cache

    def evaluate(self, stream: DocumentStream) -> Evaluation:
        return evaluation(self.token_logprobs(stream), stream)

    def params(self) -> dict:
        return {"lambda": self.lam, "cache_size": self.size, "decay": self.decay}


def check_cache_params(lam: float, size: int, decay: float) -> None:
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise UsageError(f"cache size must be a positive integer, got {size}")
    if not 0.0 <= lam <= 1.0:
        raise UsageError(f"cache interpolation weight lambda must be in [0, 1], got {lam}")
    if not decay >= 0.0:
        raise UsageError(f"cache decay alpha must be >= 0, got {decay}")


def tune_cache(base: NgramModel, valid: DocumentStream, sizes=(50, 100, 200, 500, 1000),
               decays=(0.0,), base_lp: np.ndarray | None = None) -> tuple[CacheLM, list[dict]]:
    """Grid over K and α, λ by EM at each point; the best held-out perplexity wins.

    Returns the tuned model and one row per grid point (K, α, λ, valid perplexity).
    """
    sizes = [int(k) for k in sizes]
    for k in sizes:
        check_cache_params(0.5, k, 0.0)
    for a in decays:
        check_cache_params(0.5, 1, float(a))
    base_lp = base_logprobs(base, valid) if base_lp is None else base_lp
    p_base = np.exp(base_lp)
    matches = cache_matches(valid, max(sizes))
    rows, best = [], None
    for size in sizes:
        for decay in decays:
            p_cache, nonempty = cache_probs(matches, size, float(decay))
            lam = em_two_way(p_base[nonempty], p_cache[nonempty], lam=0.9) if nonempty.any() else 1.0
            p = np.where(nonempty, lam * p_base + (1 - lam) * p_cache, p_base)
            ppl = perplexity(np.log(p))
            rows.append({"cache_size": size, "decay": float(decay), "lambda": lam, "valid_ppl": ppl})
            if best is None or ppl < best[0]:
                best = (ppl, CacheLM(base, lam, size, float(decay)))
    return best[1], rows


# ----------------------------------------------------------------------------- topics
@dataclass
class TfidfRows:
    """Sparse L2-normalised TF-IDF rows in coordinate form: value ``val[i]`` at (``row[i]``, ``col[i]``)."""

    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    shape: tuple[int, int]
    features: list[str]

    def dense(self) -> np.ndarray:
        X = np.zeros(self.shape)                           # (N documents, F features)
        X[self.row, self.col] = self.val
        return X

    def times(self, C: np.ndarray) -> np.ndarray:
        """X @ C.T for centroids C (k, F) -> (N, k), summed over the non-zeros only."""
        N, k = self.shape[0], len(C)
        contrib = self.val[:, None] * C.T[self.col]        # (nnz, k)
        return np.stack([np.bincount(self.row, weights=contrib[:, j], minlength=N) for j in range(k)], axis=1)

    def cluster_sums(self, labels: np.ndarray, k: int) -> np.ndarray:
        """Σ of the rows in each cluster -> (k, F)."""
        F = self.shape[1]
        flat = np.bincount(labels[self.row] * F + self.col, weights=self.val, minlength=k * F)
        return flat.reshape(k, F)                          # (k, F)


def tfidf_matrix(documents: list[list[list[str]]], max_features: int = 3000,
                 max_df: float = 0.5) -> TfidfRows:
    """L2-normalised TF-IDF vectors (sublinear tf 1 + ln c, idf ln(N / df)), shape (N, F).

    Features: the ``max_features`` words with the highest document frequency among those
    in at most ``max_df`` of the documents and in at least two.
    """
    N = len(documents)
    if N == 0:
        raise UsageError("cannot cluster: no documents")
    vocab = Vocabulary.from_sentences(s for d in documents for s in d)
    V = len(vocab)
    index = vocab.index
    lengths = np.fromiter((sum(len(s) for s in d) for d in documents), dtype=np.int64, count=N)
    word_ids = np.fromiter((index[w] for d in documents for s in d for w in s), dtype=np.int64,
                           count=int(lengths.sum()))
    doc_ids = np.repeat(np.arange(N), lengths)
    keys, counts = np.unique(doc_ids * V + word_ids, return_counts=True)
    d_of, w_of = keys // V, keys % V
    df = np.bincount(w_of, minlength=V)
    allowed = (df >= 2) & (df <= max_df * N)
    allowed[:3] = False                                   # the specials
    candidates = np.nonzero(allowed)[0]
    chosen = candidates[np.argsort(-df[candidates], kind="stable")][:max_features]
    if len(chosen) == 0:
        raise UsageError("cannot cluster: no word occurs in 2 or more documents")
    column = np.full(V, -1, dtype=np.int64)
    column[chosen] = np.arange(len(chosen))
    use = column[w_of] >= 0
    row, col = d_of[use], column[w_of[use]]
    val = (1.0 + np.log(counts[use])) * np.log(N / df[w_of[use]])
    norms = np.sqrt(np.bincount(row, weights=val * val, minlength=N))
    val = val / norms[row]
    return TfidfRows(row, col, val, (N, len(chosen)), [vocab.words[i] for i in chosen])


def kmeans_topics(X: TfidfRows, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Spherical k-means (cosine similarity) with k-means++ seeding; returns a cluster label per row.

    Documents with no feature word have an all-zero row and join whichever cluster ties first.
    """
    N, F = X.shape
    if not 1 <= k <= N:
        raise UsageError(f"number of topic clusters k must be between 1 and the number of documents ({N}), got {k}")
    rng = np.random.default_rng(seed)

    def row_vector(i: int) -> np.ndarray:
        v = np.zeros(F)
        sel = X.row == i
        v[X.col[sel]] = X.val[sel]
        return v

    centres = [row_vector(int(rng.integers(N)))]
    dist = np.full(N, np.inf)
    for _ in range(1, k):                                  # k-means++ on cosine distance
        dist = np.minimum(dist, np.maximum(1.0 - X.times(centres[-1][None])[:, 0], 0.0))
        total = dist.sum()
        centres.append(row_vector(int(rng.choice(N, p=dist / total) if total > 0 else rng.integers(N))))
    C = np.stack(centres)                                  # (k, F)
    labels = np.full(N, -1)
    for _ in range(iterations):
        sim = X.times(C)                                   # (N, k)
        new = sim.argmax(axis=1)
        for j in np.setdiff1d(np.arange(k), new):          # an empty cluster takes the worst-fitted doc
            new[int(np.argmin(sim[np.arange(N), new]))] = j
        if np.array_equal(new, labels):
            break
        labels = new
        C = X.cluster_sums(labels, k)
        C /= np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
    return labels


# ----------------------------------------------------------------------------- mixture
def em_mixture_weights(L: np.ndarray, weights: np.ndarray | None = None, iterations: int = 100,
                       tol: float = 1e-7) -> tuple[np.ndarray, list[float]]:
    """EM for λ in Σ_j λ_j P_j on held-out tokens; ``L`` (T, M) holds ln P_j(w_t | h_t).

    E-step: r_tj = λ_j P_j(t) / Σ_k λ_k P_k(t); M-step: λ_j = mean_t r_tj.
    Returns the weights and the mean held-out log-likelihood before each iteration and at
    the end (non-decreasing: EM never lowers the likelihood).
    """
    T, M = L.shape
    if T == 0:
        raise UsageError("EM needs held-out tokens; the held-out text is empty")
    lam = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    shift = L.max(axis=1, keepdims=True)
    P = np.exp(L - shift)                                  # (T, M), rescaled per token
    history = []
    for _ in range(iterations):
        mix = P @ lam                                      # (T,)
        history.append(float(np.mean(np.log(mix) + shift[:, 0])))
        new = (P * lam / mix[:, None]).mean(axis=0)
        new /= new.sum()
        done = np.max(np.abs(new - lam)) < tol
        lam = new
        if done:
            break
    history.append(float(np.mean(np.log(P @ lam) + shift[:, 0])))
    return lam, history


def posterior_log_weights(L: np.ndarray, doc: np.ndarray, weights: np.ndarray, beta: float) -> np.ndarray:
    """ln π_j(t) ∝ ln λ_j + β Σ_{s < t, same document} ln P_j(w_s | h_s), normalised; shape (T, M).

    β = 1 is the exact Bayesian posterior of a document-level mixture (the document was written
    by one component, chosen with probability λ_j); β < 1 tempers it; β = 0 gives static weights.
    """
    T, M = L.shape
    total = np.vstack([np.zeros((1, M)), np.cumsum(L, axis=0)])   # (T+1, M): Σ_{s < t} over the stream
    first = np.searchsorted(doc, doc)                               # first token of each token's document
    history = total[np.arange(T)] - total[first]                    # (T, M): Σ over the same document only
    logit = np.log(np.maximum(weights, 1e-300)) + beta * history
    return logit - np.logaddexp.reduce(logit, axis=1, keepdims=True)


@dataclass
class MixtureLM:
    """Σ_j π_j P_{M_j}(w | h): linear interpolation of n-gram sub-models with one vocabulary.

    π = λ (EM weights) when ``beta`` = 0; otherwise the per-document posterior of
    :func:`posterior_log_weights`, updated after every word and reset at each document.
    """

    components: list[NgramModel]
    names: list[str]
    weights: np.ndarray
    beta: float = 0.0

    def __post_init__(self):
        if not self.components:
            raise UsageError("a mixture needs at least one component model")
        if len(self.names) != len(self.components) or len(self.weights) != len(self.components):
            raise UsageError("mixture: one name and one weight per component")
        for name, comp in zip(self.names, self.components):
            check_same_vocab(comp.vocab, self.components[0].vocab, f"mixture component {name!r}")
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if np.any(self.weights < 0) or abs(self.weights.sum() - 1) > 1e-6:
            raise UsageError("mixture weights must be non-negative and sum to 1")
        if not 0.0 <= self.beta <= 1.0:
            raise UsageError(f"dynamic adaptation rate beta must be in [0, 1] (0 = static weights), got {self.beta}")

    @property
    def vocab(self) -> Vocabulary:
        return self.components[0].vocab

    @property
    def kind(self) -> str:
        return "dynamic mixture" if self.beta > 0 else "mixture"

    def component_logprobs(self, stream: DocumentStream) -> np.ndarray:
        """ln P_j(w_t | h_t) for every token and component, shape (T, M)."""
        return np.stack([base_logprobs(c, stream) for c in self.components], axis=1)

    def token_logprobs(self, stream: DocumentStream, L: np.ndarray | None = None) -> np.ndarray:
        L = self.component_logprobs(stream) if L is None else L
        return mixture_logprobs(L, stream, self.weights, self.beta)

    def next_probs(self, history: list[str]) -> np.ndarray:
        tokens, current = split_history(history)
        lam = self.weights
        if self.beta > 0 and tokens:
            sentences, cur = [], []
            for w in tokens:                                # the document so far, sentence by sentence
                if w == EOS:
                    sentences.append(cur)
                    cur = []
                else:
                    cur.append(w)
            if cur or any(sentences):
                L = self.component_logprobs(DocumentStream.from_documents([[*sentences, cur]], self.vocab))
                if cur:
                    L = L[:-1]                              # the open sentence's </s> is not history
                log_pi = np.log(self.weights) + self.beta * L.sum(axis=0)
                lam = np.exp(log_pi - np.logaddexp.reduce(log_pi))
        return sum(l * base_next_probs(c, current) for l, c in zip(lam, self.components))

    def evaluate(self, stream: DocumentStream) -> Evaluation:
        return evaluation(self.token_logprobs(stream), stream)

    def params(self) -> dict:
        return {"weights": dict(zip(self.names, map(float, self.weights))), "beta": self.beta}


def mixture_logprobs(L: np.ndarray, stream: DocumentStream, weights: np.ndarray, beta: float) -> np.ndarray:
    """ln Σ_j π_j(t) P_j(w_t | h_t) per token (vectorised; π from :func:`posterior_log_weights`)."""
    if beta == 0:
        shift = L.max(axis=1)
        return np.log(np.exp(L - shift[:, None]) @ weights) + shift
    return np.logaddexp.reduce(posterior_log_weights(L, stream.doc, weights, beta) + L, axis=1)


def tune_mixture(components: list[NgramModel], names: list[str], valid: DocumentStream,
                 betas=(0.0,), L: np.ndarray | None = None) -> tuple[MixtureLM, list[float], list[dict]]:
    """Global weights λ by EM on ``valid``, then β by grid; returns (model, EM log-likelihood history, rows)."""
    L = np.stack([base_logprobs(c, valid) for c in components], axis=1) if L is None else L
    weights, history = em_mixture_weights(L, iterations=300)
    rows, best = [], None
    for beta in betas:
        ppl = perplexity(mixture_logprobs(L, valid, weights, float(beta)))
        rows.append({"beta": float(beta), "valid_ppl": ppl})
        if best is None or ppl < best[0]:
            best = (ppl, float(beta))
    return MixtureLM(list(components), list(names), weights, best[1]), history, rows


def group_documents(documents, labels) -> dict[str, list]:
    """Documents grouped by a label each (a source/topic name or a cluster id), in first-seen order."""
    groups: dict[str, list] = {}
    for doc, label in zip(documents, labels):
        groups.setdefault(str(label), []).append(doc)
    return groups


def build_components(groups: dict[str, list[list[list[str]]]], vocab: Vocabulary, order: int,
                     smoothing: str = "mkn", min_sentences: int = 20) -> tuple[list[NgramModel], list[str]]:
    """One n-gram model per group of documents (each a list of sentences), all on ``vocab``.

    Groups with fewer than ``min_sentences`` sentences are skipped (too little text for a model).
    """
    from . import build

    models, names = [], []
    for name, docs in groups.items():
        sentences = [s for d in docs for s in d]
        if len(sentences) < min_sentences:
            continue
        models.append(build(sentences, order=order, smoothing=smoothing, vocab=vocab))
        names.append(name)
    if not models:
        raise UsageError(f"no group has {min_sentences} or more sentences to train a component on")
    return models, names


# ----------------------------------------------------------------------------- files
ADAPT_KINDS = ("cache", "mixture", "maxent")


def mixture_folder(out: str | Path) -> Path:
    """The folder a mixture's sub-model ARPA files go to: ``X.mixture.json`` -> ``X.mixture/``."""
    out = Path(out)
    return out.with_name(out.name[: -len(".json")] if out.name.endswith(".json") else out.name + ".d")


def adapted_path(base_arpa: str | Path, kind: str) -> Path:
    """Where the adapted model's JSON goes: beside the base ARPA (``model.arpa`` -> ``model.cache.json``)."""
    base_arpa = Path(base_arpa)
    stem = base_arpa.name
    for suffix in (".gz", ".arpa", ".lmbin"):
        stem = stem.removesuffix(suffix)
    return base_arpa.with_name(f"{stem}.{kind}.json")


def save_cache(model: CacheLM, base_arpa: str | Path, path: str | Path, extra: dict | None = None) -> Path:
    from ..io import atomic_write_text

    config = {"type": "cache", "base": _relative(base_arpa, path), **model.params(), **(extra or {})}
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return Path(path)


def save_mixture(model: MixtureLM, arpa_paths: list[str | Path], path: str | Path,
                 extra: dict | None = None) -> Path:
    from ..io import atomic_write_text

    config = {"type": "mixture",
              "components": [{"name": n, "arpa": _relative(p, path), "weight": float(w)}
                             for n, p, w in zip(model.names, arpa_paths, model.weights)],
              "beta": model.beta, **(extra or {})}
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return Path(path)


def _relative(target: str | Path, json_path: str | Path) -> str:
    target, folder = Path(target).resolve(), Path(json_path).resolve().parent
    try:
        return str(target.relative_to(folder))
    except ValueError:
        return str(target)


def read_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such adapted-model file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: not an adapted-model JSON file ({err})") from None
    if not isinstance(config, dict) or config.get("type") not in ADAPT_KINDS:
        got = config.get("type") if isinstance(config, dict) else None
        raise FormatError(f"{path}: 'type' must be one of {', '.join(ADAPT_KINDS)}, got {got!r}")
    return config


def evaluate_adapted(model, documents: list[list[list[str]]]) -> Evaluation:
    """Perplexity of an adapted model on documents given as word-level sentences
    (:func:`lmlab.data.corpus.document_sentences`), each document scored on its own, cache reset."""
    stream = DocumentStream.from_documents(documents, model.vocab)
    return evaluation(model.token_logprobs(stream), stream)
