"""A back-off n-gram model: query, perplexity, sampling (the querying side of the ARPA seam).

Every smoothing method in :mod:`lmlab.ngram.smoothing` ends here, in back-off
form (Katz 1987; the ARPA format of Paul & Baker 1992 / SRILM): for a word w
after history h = w_1..w_{n-1},

    log10 P(w | h) = log10 p(h w)                       if h w is listed,
                   = bo(h) + log10 P(w | w_2..w_{n-1})  otherwise (bo(h) = 0 if h is not listed).

Interpolated estimates (Kneser-Ney, Witten-Bell, Jelinek-Mercer, ...) are stored
after the exact conversion SRILM and KenLM use: p(h w) is the interpolated
probability and bo(h) is the interpolation weight gamma(h).

``<s>`` is context only (its unigram log10 prob is -99, as SRILM writes it) and
``</s>`` is predicted. Words outside the vocabulary are scored as ``<unk>`` and
counted as OOVs; :meth:`NgramModel.evaluate` reports perplexity including and
excluding them, exactly as KenLM's ``query`` does (the OOV's own probability is
left out of the excluding figure, the context after it is kept as ``<unk>``).

Scoring a token stream is vectorised: per order one ``np.searchsorted`` over the
whole stream (see :func:`lmlab.ngram.counts.match_positions`); there is no
Python loop per token. Sampling loops per generated token (it is sequential) but
scores the whole vocabulary at once at each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .counts import (
    BOS_ID,
    EOS_ID,
    UNK_ID,
    KeyIndex,
    Vocabulary,
    encode,
    match_positions,
    ngram_suffix,
    ngram_words,
)

LOG10_ZERO = -99.0  # what ARPA files write for log10(0)


def log10_or_zero(p: np.ndarray) -> np.ndarray:
    """log10 with 0 -> -99 (the ARPA convention)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, LOG10_ZERO)
    pos = p > 0
    out[pos] = np.log10(p[pos])
    return np.maximum(out, LOG10_ZERO)


@dataclass
class Evaluation:
    """What ``query -v summary`` reports, plus cross-entropy."""

    log10_prob: float          # total over all predicted tokens (OOVs included)
    tokens: int                # words + </s>
    oovs: int
    sentences: int
    log10_prob_no_oov: float

    @property
    def perplexity(self) -> float:
        return 10.0 ** (-self.log10_prob / max(self.tokens, 1))

    @property
    def perplexity_no_oov(self) -> float:
        return 10.0 ** (-self.log10_prob_no_oov / max(self.tokens - self.oovs, 1))

    @property
    def bits_per_word(self) -> float:
        return -self.log10_prob / max(self.tokens, 1) * math.log2(10.0)

    def as_dict(self) -> dict:
        return {
            "perplexity": self.perplexity,
            "perplexity_excl_oov": self.perplexity_no_oov,
            "bits_per_word": self.bits_per_word,
            "log10_prob": self.log10_prob,
            "tokens": self.tokens,
            "oovs": self.oovs,
            "sentences": self.sentences,
        }


@dataclass
class NgramModel:
    """Back-off n-gram model in sorted-key tables (same layout as :class:`NgramCounts`).

    ``logprob[n-1][row]`` and ``backoff[n-1][row]`` are log10 values of the order-n
    n-gram at ``row``; the order-1 table is dense over the vocabulary.
    """

    vocab: Vocabulary
    keys: list[np.ndarray]
    logprob: list[np.ndarray]
    backoff: list[np.ndarray]
    info: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def V(self) -> int:
        return len(self.vocab)

    def sizes(self) -> list[int]:
        return [len(k) for k in self.keys]

    def ngram_words(self, n: int, rows=None) -> np.ndarray:
        rows = np.arange(len(self.keys[n - 1])) if rows is None else rows
        return ngram_words(self.keys, self.V, n, rows)

    def suffix(self, n: int) -> np.ndarray:
        return ngram_suffix(self.keys, self.V, n, self._cache)

    # ------------------------------------------------------------------ scoring
    def index(self) -> list:
        """Hash indexes of the key tables (built on first use, then cached)."""
        if "index" not in self._cache:
            self._cache["index"] = [None] + [KeyIndex(k) for k in self.keys[1:]]
        return self._cache["index"]

    def _flat_tables(self):
        """All orders' log10 probs / back-offs in one array each, and each order's offset (cached)."""
        if "flat" not in self._cache:
            offset = np.cumsum([0] + [len(k) for k in self.keys])
            self._cache["flat"] = (np.concatenate(self.logprob), np.concatenate(self.backoff), offset)
        return self._cache["flat"]

    def score_ids(self, ids: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log10 P(w_t | history) for every stream position; also the matched order per position.

        Positions with ``pos == 0`` (``<s>``) get 0 and order 0; the caller drops them.
        """
        rows = match_positions(self.keys, self.V, ids, pos, self.index())
        N = self.order
        flat_lp, flat_bo, offset = self._flat_tables()
        # longest match: the highest order whose n-gram ending at t is listed
        matched = np.where(rows[0] >= 0, 1, 0)
        best = rows[0].copy()
        for n in range(2, N + 1):
            found = rows[n - 1] >= 0
            matched[found] = n
            best[found] = rows[n - 1][found]
        logp = flat_lp[offset[np.maximum(matched - 1, 0)] + np.maximum(best, 0)]
        # back-off weights of the contexts longer than the match: bo(w_{t-k}..w_{t-1}), k >= matched
        for k in range(1, N):
            ctx = rows[k - 1][:-1]  # context of length k ending at t-1, for t = 1..
            use = (matched[1:] <= k) & (ctx >= 0)
            logp[1:] += np.where(use, flat_bo[offset[k - 1] + np.maximum(ctx, 0)], 0.0)
        predicted = pos > 0
        logp[~predicted] = 0.0
        matched[~predicted] = 0
        return logp, matched

    def score_sentences(self, sentences) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per predicted token: (log10 prob, is OOV, sentence index, matched order).

        Tokens are each sentence's words then ``</s>``; ``<s>`` is not scored.
        """
        ids, pos, _ = encode(sentences, self.vocab)
        is_oov = ids == UNK_ID  # OOVs (and literal "<unk>" tokens) are scored as <unk>
        logp, matched = self.score_ids(ids, pos)
        keep = pos > 0
        sent = np.cumsum(pos == 0) - 1
        return logp[keep], is_oov[keep], sent[keep], matched[keep]

    def sentence_scores(self, sentences) -> np.ndarray:
        """Total log10 probability of each sentence (``</s>`` included)."""
        logp, _, sent, _ = self.score_sentences(sentences)
        return np.bincount(sent, weights=logp, minlength=len(sentences))

    def evaluate(self, sentences) -> Evaluation:
        """Perplexity incl./excl. OOVs, OOV count, token count (KenLM ``query`` semantics)."""
        logp, is_oov, _, _ = self.score_sentences(sentences)
        return Evaluation(
            log10_prob=float(math.fsum(logp.tolist())),
            tokens=len(logp),
            oovs=int(is_oov.sum()),
            sentences=len(sentences),
            log10_prob_no_oov=float(math.fsum(logp[~is_oov].tolist())),
        )

    def perplexity(self, sentences) -> float:
        return self.evaluate(sentences).perplexity

    # ---------------------------------------------------------- distributions
    def next_logprobs(self, history: list[str]) -> np.ndarray:
        """log10 P(w | history) for every word id w (``<s>`` gets -inf), vectorised over the vocabulary."""
        get = self.vocab.index.get
        h = [BOS_ID if w == "<s>" else get(w, UNK_ID) for w in history][-(self.order - 1):] if self.order > 1 else []
        return self._next_logprobs_ids(h)

    def _next_logprobs_ids(self, h: list[int]) -> np.ndarray:
        V = self.V
        out = self.logprob[0].copy()
        # walk the history from the shortest suffix up: rows[k] = row of the last k history words
        ctx_rows = []
        for k in range(1, len(h) + 1):
            words = h[len(h) - k:]
            row = words[0]
            ok = True
            for j in range(1, k):
                table = self.keys[j]
                q = row * V + words[j]
                i = int(np.searchsorted(table, q))
                if i >= len(table) or table[i] != q:
                    ok = False
                    break
                row = i
            ctx_rows.append(row if ok else -1)
        # log P(w|h) = log p(longest listed h_k w) + sum of bo(h_j) for j >= that k
        for k in range(1, len(h) + 1):
            r = ctx_rows[k - 1]
            if r < 0:
                break
            bo = self.backoff[k - 1][r]
            out = out + bo  # backing off past this context costs bo(h_k)
            table = self.keys[k]
            lo = int(np.searchsorted(table, r * V))
            hi = int(np.searchsorted(table, (r + 1) * V))
            if hi > lo:
                words = table[lo:hi] - r * V
                out[words] = self.logprob[k][lo:hi]
        out[BOS_ID] = -np.inf
        return out

    def sample(self, n_sentences: int = 1, seed: int = 0, max_words: int = 100) -> list[list[str]]:
        """Draw sentences from the model (``<s>`` context, stop at ``</s>`` or ``max_words``)."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n_sentences):
            h = [BOS_ID]
            words: list[str] = []
            while len(words) < max_words:
                lp = self._next_logprobs_ids(h[-(self.order - 1):] if self.order > 1 else [])
                p = np.where(np.isfinite(lp), 10.0 ** lp, 0.0)
                p[p < 10.0 ** (LOG10_ZERO + 1)] = 0.0
                w = int(rng.choice(len(p), p=p / p.sum()))
                if w == EOS_ID:
                    break
                words.append(self.vocab.words[w])
                h.append(w)
            out.append(words)
        return out

    def describe(self) -> str:
        sizes = ", ".join(f"{n + 1}-grams: {s}" for n, s in enumerate(self.sizes()))
        return f"{self.order}-gram {self.info.get('method', 'ARPA')} model, vocabulary {self.V}; {sizes}"


def check_order(order: int) -> None:
    if not 1 <= order <= 12:
        raise UsageError(f"n-gram order must be between 1 and 12, got {order}")
