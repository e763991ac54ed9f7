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

Scoring a token stream is vectorised: per order one hash lookup over the
whole stream (see :func:`lmlab.ngram.counts.match_positions`); there is no
Python loop per token. Big models (> 1 M n-grams) are scored by a numba kernel
(``_score_kernel``, the optional ``fast`` extra) that walks the stream once with the
same hash tables and the same floating-point operations, so scores are bit-identical.
Sampling loops per generated token (it is sequential) but scores the whole
vocabulary at once at each step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from .._numba import Kernel, have_kernels
from ..errors import DataError, UsageError
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
_COMPILED_ABOVE = 1_000_000  # n-grams: above this, score with the numba kernel when numba is installed
_INDEX_PER_POSITION = 8  # a stream of fewer positions than n-grams / 8 is scored by binary search (no index)


def worker_threads(variable: str) -> int:
    """Threads for work the compiled kernels and numpy do side by side (they release the GIL): the cores
    this process may use, at most 4; the environment variable ``variable`` (a number >= 1) overrides."""
    given = os.environ.get(variable, "")
    if given.strip().isdigit() and int(given) >= 1:
        return int(given)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _emit(compact, t, p, w, value, m, out, sentence, logp, matched, is_oov, sent):
    """Store one stream position's score (both compiled scorers): per position, or with ``compact``
    per predicted token (``p > 0``) with its OOV flag and sentence index. Returns (out, sentence)."""
    if compact:
        if p > 0:
            logp[out] = value
            matched[out] = m
            is_oov[out] = w == 0  # UNK_ID: OOVs were mapped to it
            sent[out] = sentence
            out += 1
        else:
            sentence += 1
    elif p > 0:
        logp[t] = value
        matched[t] = m
    else:
        logp[t] = 0.0
        matched[t] = 0
    return out, sentence


_emit_compiled = _emit  # the jitted _emit once a compiled scorer is made (the kernels call it)
_EMIT: list = []


def _emit_jitted():
    """The numba-compiled :func:`_emit` (numba must be installed)."""
    if not _EMIT:
        from .._numba import njit

        _EMIT.append(njit(cache=True, nogil=True, inline="always")(_emit))
    return _EMIT[0]


def _jit_helpers() -> None:
    global _emit_compiled
    _emit_compiled = _emit_jitted()


# The compiled scorer: one pass over the stream doing exactly what score_ids' numpy code does,
# with the same hash tables (KeyIndex) and the same floating-point operations in the same order
# (so the scores are bit-identical). Plain Python here; _compiled_scorer() jits it on first use.
# compact=False: one output per stream position (score_ids); compact=True: one per predicted
# token (pos > 0), with its OOV flag and sentence index (score_sentences), as out[keep] would give.
def _score_kernel(ids, pos, V, N, table, slot_off, masks, shifts, lpbo, closed, offset, compact,
                  logp, matched, is_oov, sent):
    mult = np.uint64(0x9E3779B97F4A7C15)
    prev = np.full(N, -1, dtype=np.int64)  # rows of the n-grams (n = 1..N) ending at t-1
    cur = np.full(N, -1, dtype=np.int64)
    out = 0
    sentence = -1
    for t in range(len(ids)):
        w = ids[t]
        cur[0] = w if w < V else -1
        for n in range(2, N + 1):
            r = -1
            p = prev[n - 2]
            # in a suffix-closed table the n-gram ending at t needs its suffix, the (n-1)-gram ending at t
            if pos[t] >= n - 1 and p >= 0 and (cur[n - 2] >= 0 or not closed):
                q = p * V + w
                home = np.int64((np.uint64(q) * mult) >> np.uint64(shifts[n - 1]))
                probe = 0
                while True:
                    slot = slot_off[n - 1] + ((home + probe) & masks[n - 1])
                    s = table[slot, 1]
                    if s < 0:
                        break
                    if table[slot, 0] == q:
                        r = s
                        break
                    probe += 1
            cur[n - 1] = r
        m = 1 if cur[0] >= 0 else 0
        best = cur[0]
        for n in range(2, N + 1):
            if cur[n - 1] >= 0:
                m = n
                best = cur[n - 1]
        lp = lpbo[offset[max(m - 1, 0)] + max(best, 0), 0]
        if t >= 1:
            for k in range(1, N):
                ctx = prev[k - 1]
                if m <= k and ctx >= 0:
                    lp += lpbo[offset[k - 1] + ctx, 1]
                else:
                    lp += 0.0
        out, sentence = _emit_compiled(compact, t, pos[t], w, lp, m, out, sentence, logp, matched, is_oov, sent)
        for n in range(N):
            prev[n] = cur[n]


def _compiled_scorer():
    """The numba-compiled scorer, or None without numba (the optional ``fast`` extra)."""
    return SCORER if have_kernels() else None


SCORER = Kernel(_score_kernel, _jit_helpers)


def log10_or_zero(p: np.ndarray) -> np.ndarray:
    """log10 with 0 -> -99 (the ARPA convention)."""
    p = np.asarray(p, dtype=np.float64)
    pos = p > 0
    if pos.all():  # (the common case: no masking, same log10 of the same values)
        out = np.log10(p)
    else:
        out = np.full(p.shape, LOG10_ZERO)
        out[pos] = np.log10(p[pos])
    return np.maximum(out, LOG10_ZERO)


def _exact_sum(values: np.ndarray) -> float:
    """math.fsum of the array (correctly rounded), fed in pieces so no list of all values is made."""
    return _exact_sum_of([values])


def _exact_sum_of(arrays: list[np.ndarray]) -> float:
    """math.fsum of all the arrays' values together (exact: the same as of their concatenation)."""
    total = ExactSum()
    for a in arrays:
        total.add(a)
    return total.value()


class ExactSum:
    """math.fsum of arrays added one at a time (exact, as of their concatenation), keeping little.

    When the compiled kernel costs no numba import (numba is loaded, or the kernel was compiled ahead
    of time), each array of many values is reduced at once by :func:`_partials` to the few partial
    sums math.fsum would hold for it, and only those are kept: the partials of an array sum exactly
    to its values' sum, so math.fsum of all partials is the same float, without a Python float per
    value (3.2M values, measured with CI running beside it: ~0.23 s -> ~0.05 s) and without keeping
    the arrays. An array the kernel leaves to math.fsum (a value that is not finite, or too many
    partials) is kept as it is and added with the partials at the end.
    """

    def __init__(self) -> None:
        self.parts: list[float] = []
        self.arrays: list[np.ndarray] = []
        self.buffer = None

    def add(self, values: np.ndarray) -> None:
        if len(values) >= _PARTIALS_ABOVE and PARTIALS.loaded():
            if self.buffer is None:
                self.buffer = np.empty(_MAX_PARTIALS)
            k = PARTIALS(np.ascontiguousarray(values, dtype=np.float64), self.buffer)
            if k >= 0:
                self.parts.extend(self.buffer[:k].tolist())
                return
        self.arrays.append(values)

    def value(self) -> float:
        pieces = (a[i: i + (1 << 16)].tolist() for a in self.arrays for i in range(0, len(a), 1 << 16))
        return float(math.fsum(chain(self.parts, chain.from_iterable(pieces))))


_PARTIALS_ABOVE = 1 << 10  # values in one array: from here its compiled partials (when the kernel is loaded)
_MAX_PARTIALS = 128  # (finite doubles need at most ~40 non-overlapping partials)


def _partials(values, out):
    """Shewchuk's exact summation, the loop math.fsum runs before its final rounding ("Adaptive
    precision floating-point arithmetic", 1997): ``out[:k]`` ends up holding non-overlapping partial
    sums whose exact total is the exact sum of ``values``; returns k, or -1 when a value or a partial
    is not finite or the partials would outgrow ``out`` (the caller then leaves it to math.fsum)."""
    k = 0
    for i in range(len(values)):
        x = values[i]
        j = 0
        for m in range(k):  # add x to the expansion: two-sum with each partial, keep the non-zero errors
            y = out[m]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                out[j] = lo
                j += 1
            x = hi
        if not np.isfinite(x):
            return -1
        if x != 0.0:
            if j >= len(out):
                return -1
            out[j] = x
            j += 1
        k = j
    return k


PARTIALS = Kernel(_partials)


def _partials_compiled():
    """The numba-compiled :func:`_partials` (numba must be installed)."""
    return PARTIALS


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

    def _packed_index(self):
        """The hash indexes packed into flat arrays for the compiled scorer (cached)."""
        if "packed" not in self._cache:
            index = self.index()
            N = self.order
            slot_len = [len(index[n].slots) for n in range(1, N)]  # orders 2..N
            slot_off = np.concatenate([[0], np.cumsum([0] + slot_len)[: N - 1]]).astype(np.int64)  # (N,)
            masks = np.array([0] + [index[n].mask for n in range(1, N)], dtype=np.int64)
            shifts = np.array([0] + [int(index[n].shift) for n in range(1, N)], dtype=np.int64)
            slots = np.concatenate([np.zeros(0, np.int64)] + [index[n].slots for n in range(1, N)])
            # one row per hash slot: (key, row), so a probe touches one cache line
            table = np.empty((len(slots), 2), dtype=np.int64)  # (slots, 2)
            table[:, 1] = slots
            table[:, 0] = np.concatenate([np.zeros(0, np.int64)] + [
                np.where(index[n].slots >= 0, self.keys[n][np.maximum(index[n].slots, 0)], -1) for n in range(1, N)])
            flat_lp, flat_bo, _ = self._flat_tables()
            lpbo = np.stack([flat_lp, flat_bo], axis=1).astype(np.float64)  # (n-grams, 2): log10 p, back-off
            try:  # suffix-closed (every table lmlab builds or reads is): lookups can stop at the first miss
                for n in range(2, N + 1):
                    self.suffix(n)
                closed = True
            except DataError:
                closed = False
            self._cache["packed"] = (table, slot_off, masks, shifts, lpbo, closed)
        return self._cache["packed"]

    def index_pays(self, positions: int) -> bool:
        """Whether scoring a stream of ``positions`` positions pays for the hash index (built once, then
        cached). Building it touches every n-gram of the model (seconds, and ~150 bytes per n-gram, for a
        model of millions), so a stream with fewer than 1/:data:`_INDEX_PER_POSITION` as many positions
        as the model has n-grams (one line scored against a big ARPA file) is looked up by binary search
        in the sorted key tables instead: the same rows, so the same numbers."""
        return "index" in self._cache or positions * _INDEX_PER_POSITION >= sum(self.sizes())

    def use_compiled(self, positions: int | None = None) -> bool:
        """Whether scoring runs the numba kernel: big models (> 1 M n-grams) with numba installed, and
        (given ``positions``) a stream long enough to pay for the kernel's hash tables (:meth:`index_pays`)."""
        return (sum(self.sizes()) > _COMPILED_ABOVE and _compiled_scorer() is not None
                and (positions is None or self.index_pays(positions)))

    def score_ids(self, ids: np.ndarray, pos: np.ndarray, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """log10 P(w_t | history) for every stream position; also the matched order per position.

        Positions with ``pos == 0`` (``<s>``) get 0 and order 0; the caller drops them.
        ``compiled``: run the numba kernel (same numbers, bit for bit); default: :meth:`use_compiled`.
        """
        if compiled is None:
            compiled = self.use_compiled(len(ids))
        if compiled and _compiled_scorer() is not None and self.order >= 2:
            logp, matched, _, _ = self._score_compiled(ids, pos, compact=False)
            return logp, matched
        rows = match_positions(self.keys, self.V, ids, pos, self.index() if self.index_pays(len(ids)) else None)
        N = self.order
        # longest match: the highest order whose n-gram ending at t is listed
        matched = np.where(rows[0] >= 0, 1, 0)
        best = rows[0].copy()
        for n in range(2, N + 1):
            found = rows[n - 1] >= 0
            matched[found] = n
            best[found] = rows[n - 1][found]
        # each order's probabilities gathered from its own table (the tables may be memory-mapped)
        logp = np.empty(len(ids), dtype=np.float64)
        low = matched <= 1
        logp[low] = self.logprob[0][np.maximum(best[low], 0)]
        for n in range(2, N + 1):
            at = np.flatnonzero(matched == n)
            logp[at] = self.logprob[n - 1][best[at]]
        # back-off weights of the contexts longer than the match: bo(w_{t-k}..w_{t-1}), k >= matched
        for k in range(1, N):
            ctx = rows[k - 1][:-1]  # context of length k ending at t-1, for t = 1..
            use = np.flatnonzero((matched[1:] <= k) & (ctx >= 0))
            bo = np.zeros(len(ctx))
            bo[use] = self.backoff[k - 1][ctx[use]]
            logp[1:] += bo
        predicted = pos > 0
        logp[~predicted] = 0.0
        matched[~predicted] = 0
        return logp, matched

    def _score_compiled(self, ids: np.ndarray, pos: np.ndarray, compact: bool):
        """Run the numba scorer: (logp, matched, is_oov, sent), per position or per predicted token."""
        size = int(np.count_nonzero(pos > 0)) if compact else len(ids)
        logp = np.empty(size, dtype=np.float64)
        matched = np.empty(size, dtype=np.int64)
        is_oov = np.empty(size if compact else 0, dtype=np.bool_)
        sent = np.empty(size if compact else 0, dtype=np.int64)
        _compiled_scorer()(np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(pos, dtype=np.int64),
                           self.V, self.order, *self._packed_index(), self._flat_tables()[2].astype(np.int64),
                           compact, logp, matched, is_oov, sent)
        return logp, matched, is_oov, sent

    def score_sentences(self, sentences, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per predicted token: (log10 prob, is OOV, sentence index, matched order).

        Tokens are each sentence's words then ``</s>``; ``<s>`` is not scored.
        ``compiled``: as in :meth:`score_ids`.
        """
        ids, pos, _ = encode(sentences, self.vocab)
        return self.score_stream(ids, pos, compiled)

    def score_stream(self, ids: np.ndarray, pos: np.ndarray,
                     compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`score_sentences` of an encoded stream (``ids``, ``pos`` as :func:`encode` gives)."""
        if compiled is None:
            compiled = self.use_compiled(len(ids))
        if compiled and _compiled_scorer() is not None and self.order >= 2:
            logp, matched, is_oov, sent = self._score_compiled(ids, pos, compact=True)
            return logp, is_oov, sent, matched
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
        ids, pos, _ = encode(sentences, self.vocab)
        return self.evaluate_stream(ids, pos, len(sentences))

    def evaluate_text(self, data, where: str = "text") -> Evaluation:
        """:meth:`evaluate` of tokenized text (one sentence per line, blank lines skipped), read in one pass:
        bytes, a str, or a binary file object (then read a piece at a time, never held whole)."""
        from .textenc import encode_pieces

        total, in_vocab = ExactSum(), ExactSum()  # each piece's scores are added as they come, then dropped
        tokens = oovs = n_sentences = 0

        def add(scored) -> None:
            nonlocal tokens, oovs
            logp, is_oov, _, _ = scored
            n_oov = int(is_oov.sum())
            parts, arrays = len(total.parts), len(total.arrays)
            total.add(logp)
            if n_oov:
                in_vocab.add(logp[~is_oov])
            else:  # the same values: the same partials (or the same array)
                in_vocab.parts += total.parts[parts:]
                in_vocab.arrays += total.arrays[arrays:]
            tokens += len(logp)
            oovs += n_oov

        # The first piece is scored here (it builds whatever the scorer builds once); later pieces are
        # scored in a thread pool while the next ones are read and encoded (the kernels release the GIL),
        # a few pieces in flight at a time; their results are added in text order, so the sums are the same.
        threads = worker_threads("LMLAB_SCORE_THREADS")
        pool = pending = None
        try:
            for ids, pos, _, n in encode_pieces(data, self.vocab, where):  # a few pieces in memory at a time
                n_sentences += n
                if threads == 1 or not tokens:
                    add(self.score_stream(ids, pos))
                    continue
                if pool is None:
                    from collections import deque
                    from concurrent.futures import ThreadPoolExecutor

                    pool, pending = ThreadPoolExecutor(threads), deque()
                pending.append(pool.submit(self.score_stream, ids, pos))
                while len(pending) > threads:
                    add(pending.popleft().result())
            while pending:
                add(pending.popleft().result())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return Evaluation(log10_prob=total.value(), tokens=tokens, oovs=oovs, sentences=n_sentences,
                          log10_prob_no_oov=in_vocab.value())

    def evaluate_stream(self, ids: np.ndarray, pos: np.ndarray, n_sentences: int) -> Evaluation:
        """:meth:`evaluate` of an encoded stream of ``n_sentences`` sentences."""
        logp, is_oov, _, _ = self.score_stream(ids, pos)
        total = _exact_sum(logp)
        oovs = int(is_oov.sum())
        return Evaluation(
            log10_prob=total,
            tokens=len(logp),
            oovs=oovs,
            sentences=n_sentences,
            log10_prob_no_oov=_exact_sum(logp[~is_oov]) if oovs else total,
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
