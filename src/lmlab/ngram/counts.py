"""N-gram counting into compact sorted numpy arrays (stage 1 of the estimator pipeline).

Input: sentences as ``list[list[str]]``, already tokenized, exactly as KenLM's
``lmplz`` reads text. Each sentence is wrapped as ``<s> w1 ... wk </s>``; ``<s>``
is context only (it starts n-grams but is never predicted). Output: for every
order n = 1..N the distinct n-grams that occur in some sentence, with their raw
counts, plus the derived quantities the smoothing methods need:

* adjusted counts (Kneser & Ney 1995; Chen & Goodman 1998 sec. 3.6) exactly as
  KenLM's ``lmplz`` computes them (Heafield et al. 2013, "Scalable modified
  Kneser-Ney language model estimation", sec. 3.2): the highest order keeps raw
  counts; a lower-order n-gram's adjusted count is the number of distinct words
  that precede it, N1+(. w_2..w_n); n-grams that begin with ``<s>`` cannot be
  extended to the left and keep their raw counts; the unigram ``<s>`` gets 0.
* count-of-counts n_r per order (for Good-Turing, Katz, absolute discounting,
  Kneser-Ney discounts).

Storage (a trie in sorted arrays): the order-1 table is dense, index = word id.
An order-n n-gram is stored as the int64 key ``prefix_index * V + w_n`` where
``prefix_index`` is the row of its (n-1)-word prefix in the order-(n-1) table
and V the vocabulary size; keys are sorted, so rows are in lexicographic order of
word ids and all n-grams sharing a history are contiguous. Lookups are
``np.searchsorted``; no Python loop runs per n-gram or per token. Each order's keys
are sorted with an LSD radix sort (:func:`unique_counts`, 16 bits per pass), which
gives exactly ``np.unique``'s output in about 0.4x its time.

Word ids: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then words in order of
first appearance (KenLM's numbering). This file does counting only; the
probabilities are in :mod:`lmlab.ngram.smoothing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from ..errors import DataError, UsageError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class _IdLookup(dict):
    def __missing__(self, word):
        return -1


class Vocabulary:
    """Word <-> id map with the three specials first (``<unk>``=0, ``<s>``=1, ``</s>``=2)."""

    def __init__(self, words):
        words = list(words)
        head = [UNK, BOS, EOS]
        rest = [w for w in words if w not in (UNK, BOS, EOS)]
        self.words: list[str] = head + list(dict.fromkeys(rest))
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.lookup = _IdLookup(self.index)  # word -> id, -1 for a word outside the vocabulary

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @classmethod
    def from_sentences(cls, sentences) -> Vocabulary:
        """Specials, then every word in order of first appearance (as lmplz numbers them)."""
        return cls(dict.fromkeys(chain.from_iterable(sentences)))


def encode(sentences, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, int]:
    """Sentences -> (ids, pos, n_oov): the stream ``<s> w.. </s> <s> w.. </s> ...``.

    ``ids[t]`` is the word id at stream position t (OOV words map to ``<unk>``),
    ``pos[t]`` the position inside its padded sentence (0 for ``<s>``).
    ``n_oov`` counts words that were not in the vocabulary.
    """
    if isinstance(sentences, (str, bytes)):
        raise UsageError("sentences must be a list of token lists, not a string")
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64)
    n_sent = len(lengths)
    total = int(lengths.sum()) + 2 * n_sent
    words = np.fromiter(map(vocab.lookup.__getitem__, chain.from_iterable(sentences)),
                        dtype=np.int64, count=int(lengths.sum()))
    n_oov = int(np.count_nonzero(words < 0))
    words[words < 0] = UNK_ID
    starts = np.zeros(n_sent, dtype=np.int64)
    np.cumsum(lengths[:-1] + 2, out=starts[1:])
    ids = np.empty(total, dtype=np.int64)
    ids[starts] = BOS_ID
    ids[starts + lengths + 1] = EOS_ID
    inner = np.ones(total, dtype=bool)
    inner[starts] = False
    inner[starts + lengths + 1] = False
    ids[inner] = words
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths + 2)
    return ids, pos, n_oov


class KeyIndex:
    """Open-addressing hash over one sorted key table: key -> row, vectorised (no Python loop per key).

    Multiplicative (Fibonacci) hashing into 2^b >= 2 M slots with linear probing; both
    building and lookup run in rounds over all keys still unresolved (about 1.5 rounds
    on average at this load factor), each round one numpy gather. Used for query-time
    lookups, where it is ~3x faster than ``np.searchsorted`` on large tables.
    """

    _MULT = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        M = len(keys)
        bits = max(4, int(2 * M - 1).bit_length())
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        self.slots = np.full(1 << bits, -1, dtype=np.int64)
        home = self._home(keys)
        pending = np.arange(M)
        probe = 0
        while len(pending):
            slot = (home[pending] + probe) & self.mask
            free = np.nonzero(self.slots[slot] < 0)[0]
            taken, first = np.unique(slot[free], return_index=True)  # one winner per free slot
            self.slots[taken] = pending[free[first]]
            placed = np.zeros(len(pending), dtype=bool)
            placed[free[first]] = True
            pending = pending[~placed]
            probe += 1

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MULT) >> self.shift).astype(np.int64)

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """Row of each query key, or -1."""
        out = np.full(len(query), -1, dtype=np.int64)
        if not len(self.keys):
            return out
        home = self._home(query)
        active = np.arange(len(query))
        probe = 0
        while len(active):
            row = self.slots[(home[active] + probe) & self.mask]
            empty = row < 0
            hit = ~empty & (self.keys[np.where(empty, 0, row)] == query[active])
            out[active[hit]] = row[hit]
            active = active[~(hit | empty)]
            probe += 1
        return out


def match_positions(keys: list[np.ndarray], V: int, ids: np.ndarray, pos: np.ndarray,
                    index: list | None = None) -> list[np.ndarray]:
    """For each order n, the row of the n-gram ending at each stream position (-1 if absent).

    ``keys[n-1]`` is the sorted key table of order n (``keys[0]`` is unused: order 1 is dense);
    ``index[n-1]``, if given, a :class:`KeyIndex` over it (else binary search).
    Returns ``rows`` with ``rows[n-1][t]`` = row in order n of ``ids[t-n+1..t]`` or -1.
    """
    rows = [np.where(ids < V, ids, -1)]
    for n in range(2, len(keys) + 1):
        row = np.full(len(ids), -1, dtype=np.int64)
        prev = np.empty_like(row)
        prev[0] = -1
        prev[1:] = rows[-1][:-1]
        t = np.nonzero((pos >= n - 1) & (prev >= 0))[0]
        table = keys[n - 1]
        if index is not None and len(t):
            row[t] = index[n - 1].lookup(prev[t] * V + ids[t])
        elif len(t) and len(table):
            query = prev[t] * V + ids[t]
            hit = np.searchsorted(table, query)
            hit[hit == len(table)] = len(table) - 1
            ok = table[hit] == query
            row[t[ok]] = hit[ok]
        rows.append(row)
    return rows


@dataclass
class NgramCounts:
    """Distinct n-grams of orders 1..N with raw counts, in sorted-key tables.

    ``keys[n-1]`` (int64, sorted) and ``counts[n-1]`` (int64) for order n;
    ``keys[0]`` is ``arange(V)`` (dense unigrams, ``<s>``'s raw count = number of sentences).
    """

    vocab: Vocabulary
    order: int
    keys: list[np.ndarray]
    counts: list[np.ndarray]
    n_sentences: int
    n_tokens: int  # words + </s>, as lmplz counts "Unigram tokens" minus the <s>
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def V(self) -> int:
        return len(self.vocab)

    def size(self, n: int) -> int:
        return len(self.keys[n - 1])

    def prefix(self, n: int) -> np.ndarray:
        """Row in order n-1 of each order-n n-gram's history (n >= 2)."""
        return self.keys[n - 1] // self.V

    def last_word(self, n: int) -> np.ndarray:
        return self.keys[n - 1] % self.V

    def suffix(self, n: int) -> np.ndarray:
        """Row in order n-1 of each order-n n-gram's suffix w_2..w_n (n >= 2)."""
        return ngram_suffix(self.keys, self.V, n, self._cache)

    def first_word(self, n: int) -> np.ndarray:
        return ngram_first_word(self.keys, self.V, n, self._cache)

    def words_of(self, n: int, rows: np.ndarray) -> np.ndarray:
        """Word ids of the given order-n rows, shape (len(rows), n)."""
        return ngram_words(self.keys, self.V, n, rows)


def ngram_suffix(keys, V: int, n: int, cache: dict) -> np.ndarray:
    """Row in order n-1 of each order-n suffix (vectorised, cached per order)."""
    tag = ("suffix", n)
    if tag in cache:
        return cache[tag]
    if n == 2:
        out = keys[1] % V
    else:
        prefix = keys[n - 1] // V
        query = ngram_suffix(keys, V, n - 1, cache)[prefix] * V + keys[n - 1] % V
        out = np.searchsorted(keys[n - 2], query)
        if len(out) and not np.array_equal(keys[n - 2][np.minimum(out, len(keys[n - 2]) - 1)], query):
            raise DataError(f"n-gram table of order {n} is not suffix-closed")
    cache[tag] = out
    return out


def ngram_first_word(keys, V: int, n: int, cache: dict) -> np.ndarray:
    tag = ("first", n)
    if tag in cache:
        return cache[tag]
    out = keys[0] if n == 1 else ngram_first_word(keys, V, n - 1, cache)[keys[n - 1] // V]
    cache[tag] = out
    return out


def ngram_words(keys, V: int, n: int, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), n), dtype=np.int64)  # (M, n) word ids, oldest first
    cur = np.asarray(rows, dtype=np.int64)
    for j in range(n, 1, -1):
        key = keys[j - 1][cur]
        out[:, j - 1] = key % V
        cur = key // V
    out[:, 0] = cur
    return out


def radix_argsort(keys: np.ndarray) -> np.ndarray:
    """A stable argsort of non-negative int64 keys: LSD radix sort, 16 bits per pass.

    Each pass is numpy's stable argsort of a uint16 digit (a counting sort in numpy), so
    a key table with 35-bit keys costs three linear passes instead of one O(M log M)
    comparison sort (~2.5x faster here).
    """
    perm = np.arange(len(keys))
    if not len(keys):
        return perm
    bits = max(1, int(keys.max()).bit_length())
    current = keys
    for shift in range(0, bits, 16):
        step = np.argsort(((current >> shift) & 0xFFFF).astype(np.uint16), kind="stable")
        perm = perm[step]
        current = current[step]
    return perm


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True, return_counts=True)`` for non-negative int64 keys, by radix sort."""
    perm = radix_argsort(keys)
    ordered = keys[perm]
    first = np.empty(len(ordered), dtype=bool)  # first of its run of equal keys
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.nonzero(first)[0]
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[perm] = np.cumsum(first) - 1
    counts = np.diff(np.append(starts, len(ordered)))
    return ordered[starts], inverse, counts


def count_ngrams(sentences, order: int, vocab: Vocabulary | None = None) -> NgramCounts:
    """Count every n-gram of orders 1..``order`` in the sentences (``<s>``/``</s>`` added here).

    With ``vocab`` given (a closed vocabulary), words outside it are counted as ``<unk>``;
    otherwise the vocabulary is every word seen plus the specials (as lmplz does).
    """
    if order < 1:
        raise UsageError(f"n-gram order must be >= 1, got {order}")
    if isinstance(sentences, (str, bytes)):
        raise UsageError("sentences must be a list of token lists, not a string")
    if not isinstance(sentences, list):
        sentences = list(sentences)
    if sentences and isinstance(sentences[0], str):
        raise UsageError("sentences must be a list of token lists (got a list of strings; split them first)")
    if not sentences or not any(len(s) for s in sentences):
        raise DataError("cannot count n-grams: the training text has no words")
    if vocab is None:
        vocab = Vocabulary.from_sentences(sentences)
    V = len(vocab)
    if float(V) ** 2 * 2 > 2**62:
        raise UsageError(f"vocabulary of {V} words is too large for int64 n-gram keys")
    ids, pos, _ = encode(sentences, vocab)
    keys = [np.arange(V, dtype=np.int64)]
    counts = [np.bincount(ids, minlength=V).astype(np.int64)]
    cache: dict = {}
    prev_rows = ids  # order-1 row of the n-gram ending at each position
    for n in range(2, order + 1):
        t = np.nonzero(pos >= n - 1)[0]
        query = prev_rows[t - 1] * V + ids[t]
        uniq, inverse, cnt = unique_counts(query)
        if len(uniq) and uniq[-1] > 2**62:
            raise UsageError(f"order-{n} n-gram keys overflow int64 (vocabulary {V})")
        keys.append(uniq.astype(np.int64))
        counts.append(cnt.astype(np.int64))
        # the suffix w_2..w_n of the n-gram ending at t is the (n-1)-gram ending at t: no search needed
        suffix = np.empty(len(uniq), dtype=np.int64)
        suffix[inverse] = prev_rows[t]
        cache[("suffix", n)] = suffix
        rows = np.full(len(ids), -1, dtype=np.int64)
        rows[t] = inverse
        prev_rows = rows
    n_tokens = int(len(ids) - len(sentences))
    return NgramCounts(vocab, order, keys, counts, len(sentences), n_tokens, cache)


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """KenLM's adjusted counts a(.) per order (see module docstring)."""
    N = counts.order
    out = []
    for n in range(1, N + 1):
        if n == N:
            a = counts.counts[n - 1].copy()
        else:
            a = np.bincount(counts.suffix(n + 1), minlength=counts.size(n)).astype(np.int64)
            starts_bos = counts.first_word(n) == BOS_ID
            a[starts_bos] = counts.counts[n - 1][starts_bos]
        if n == 1:
            a[BOS_ID] = 0
        out.append(a)
    return out


def count_of_counts(values: np.ndarray, max_r: int = 4) -> np.ndarray:
    """n_r for r = 0..max_r (index r), from an array of counts."""
    v = np.asarray(values)
    return np.bincount(np.minimum(v[v <= max_r], max_r), minlength=max_r + 1)[: max_r + 1].astype(np.int64)
