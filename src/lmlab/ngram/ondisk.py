"""Estimation under a memory budget: counts, adjusted counts, probabilities and the ARPA file
streamed over per-order files on disk.

The layout of KenLM's ``lmplz`` (Heafield et al. 2013, "Scalable modified Kneser-Ney language
model estimation", sec. 3): the counts of each order live in files, and every pass reads them
in chunks, so no table of counts, adjusted counts or probabilities of the whole model is
built in memory (the in-memory pipeline holds an :class:`~lmlab.ngram.counts.NgramCounts` and
an :class:`~lmlab.ngram.model.NgramModel` of every order at once). The passes:

1. count: the text in chunks sized from the budget, each spilled as one sorted run per order
   (:func:`lmlab.ngram.extsort.spill_runs`); then per order a k-way merge
   (:func:`~lmlab.ngram.extsort.merge_blocks`) writes the distinct n-grams in lexicographic
   order of word ids to three files: packed rows (``n`` big-endian uint32 word ids), raw
   counts, and the row of each n-gram's prefix in the order below;
2. adjust: per order n >= 2, in chunks, the row of each n-gram's suffix in order n-1 (its key
   looked up in order n-1's sorted keys) and order n-1's adjusted counts (a count of suffixes,
   KenLM's rule for n-grams starting with ``<s>``), with their count-of-counts (the discounts);
3. estimate and write: bottom-up, per order n, the history sums of order n (one chunked pass;
   chunks end at a history boundary, so each sum adds the same numbers in the same order as
   ``np.bincount`` over the whole table), the interpolation weights gamma of order n-1, whose
   section of the ARPA file is then written, and order n's interpolated probabilities (a second
   chunked pass reading order n-1's probabilities at the suffix rows).

Every value is computed with the same floating-point operations on the same operands as
:mod:`lmlab.ngram.smoothing` does over whole arrays (element by element, or sums that keep
their order), so the ARPA file is byte-identical to the in-memory build's (tests check it).
Methods: the interpolated discounting family (``mkn``, ``kn``, ``absolute``); the others are
estimated in memory from counts made under the budget (:func:`lmlab.ngram.extsort.count_text_external`).

What is held in memory besides a chunk's work arrays: per order being processed a few arrays
of one number per n-gram of that order or the one below (keys and suffix rows in pass 2;
probabilities, gamma and history sums in pass 3), and the vocabulary.
Files are raw arrays (no pickling), read with ``np.fromfile`` at an offset, not memory-mapped:
the pages of a mapped file would count in the process's resident memory once read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._numba import Kernel, have_kernels
from ..errors import UsageError
from .arpa import ArpaWriter
from .counts import BOS_ID, Vocabulary, count_of_counts
from .extsort import _MIN_CHUNK, _WORK_PER_TEXT_BYTE, Spilled, merge_block_rows, merge_blocks, spill_runs
from .model import log10_or_zero
from .smoothing import AbsoluteDiscounting, KneserNey, ModifiedKneserNey, Smoother, mkn_discounts_of, quantize

_ROW_WORK = 256  # bytes of work per n-gram row of a chunk in the passes (about a dozen 8-byte arrays)
_MIN_ROWS = 64
# each working buffer (a counting chunk, a merge round, a pass's chunk) is sized from an eighth of the
# budget: the text, the vocabulary and the per-order arrays of a pass are alive beside it
_SHARE = 8


def streams(smoother: Smoother) -> bool:
    """Whether ``smoother`` is estimated on disk (the interpolated discounting methods)."""
    return isinstance(smoother, (ModifiedKneserNey, KneserNey, AbsoluteDiscounting))


def _searchsorted_unordered(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.searchsorted(keys, queries)`` for queries in no particular order, searched in sorted order
    and scattered back: consecutive searches then walk nearby keys instead of missing the cache at every
    step (16M random queries into 14M int64 keys: 21.5 s as they come, 3.5 s sorted first, argsort
    included). Each query's answer is the same either way."""
    order = np.argsort(queries)
    out = np.empty(len(queries), dtype=np.int64)
    out[order] = np.searchsorted(keys, queries[order])
    return out


def _merge_join(table, queries, out):
    """``out[i]``: the first row of ``table`` (M, w) bytes not below ``queries[i]`` (both sorted byte-wise):
    one walk down both, the pointer into ``table`` only moving forward."""
    j = 0
    width = table.shape[1]
    for i in range(queries.shape[0]):
        while j < table.shape[0]:
            below = False
            for b in range(width):
                if table[j, b] != queries[i, b]:
                    below = table[j, b] < queries[i, b]
                    break
            if not below:
                break
            j += 1
        out[i] = j


MERGE_JOIN = Kernel(_merge_join)
_MERGE_JOIN_ABOVE = 1 << 23  # n-grams of order n-1 (about 8M): above, order n's prefixes are merge-joined
# (below, too, when the merge-join costs no numba import: compiled ahead of time, or numba already loaded)


def _searchsorted_sorted(table: np.ndarray, queries: np.ndarray, compiled: bool = True) -> np.ndarray:
    """``np.searchsorted(table, queries)`` for sorted fixed-width byte strings and sorted queries, by one
    merge-join pass (compiled; len(table) + len(queries) steps instead of a bisection per query: 12M
    sorted 4-word queries into 10M rows, 1.85 s -> 0.21 s); plain ``np.searchsorted`` without numba,
    or when not ``compiled`` (the caller's choice for small models, where the pass would not pay for
    importing numba: ~0.4 s and ~90 MB of a small build's peak memory)."""
    if not compiled:
        return np.searchsorted(table, queries)
    if not have_kernels() or not len(queries):
        return np.searchsorted(table, queries)
    width = table.dtype.itemsize
    out = np.empty(len(queries), dtype=np.int64)
    MERGE_JOIN(np.ascontiguousarray(table).view(np.uint8).reshape(-1, width),
                   np.ascontiguousarray(queries).view(np.uint8).reshape(-1, width), out)
    return out


class FileArray:
    """A 1-D array stored raw in a file from ``offset``, read piece by piece."""

    def __init__(self, path: Path, dtype, length: int, offset: int = 0):
        self.path, self.dtype, self.length, self.offset = path, np.dtype(dtype), length, offset
        self.f = None

    @classmethod
    def npy(cls, path: Path) -> FileArray:
        """The array of a ``.npy`` file (its header read, never unpickled)."""
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            return cls(path, dtype, int(shape[0]), f.tell())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        if isinstance(key, slice):
            lo, hi, _ = key.indices(self.length)
            hi = max(lo, hi)
            if self.f is None:
                self.f = open(self.path, "rb")  # noqa: SIM115 (one handle per file, closed by close())
            self.f.seek(self.offset + lo * self.dtype.itemsize)
            return np.fromfile(self.f, dtype=self.dtype, count=hi - lo)
        return self[int(key): int(key) + 1][0]

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _bisect(a: FileArray, value, right: bool) -> int:
    """np.searchsorted(a, value, side) on a sorted FileArray, reading one element per step."""
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < value or (right and a[mid] == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


class _Writer:
    """Appends arrays to a raw file; ``done()`` gives the FileArray."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self.f = open(path, "wb")  # noqa: SIM115 (closed in done())

    def add(self, values: np.ndarray) -> None:
        np.ascontiguousarray(values, dtype=self.dtype).tofile(self.f)
        self.length += len(values)

    def done(self) -> FileArray:
        self.f.close()
        return FileArray(self.path, self.dtype, self.length)


class OnDisk:
    """One estimation's files in ``folder`` (a fresh temporary folder the caller removes)."""

    def __init__(self, folder: Path, order: int, budget: int):
        self.folder, self.order, self.budget = folder, order, budget
        self.work = budget // _SHARE
        self.chunk = max(_MIN_ROWS, self.work // _ROW_WORK)  # rows per chunk of a pass
        self.rows: list[FileArray | None] = [None] * (order + 1)  # [n]: packed rows of order n (n >= 2)
        self.raw: list[FileArray | None] = [None] * (order + 1)  # [n]: raw counts
        self.prefix: list[FileArray | None] = [None] * (order + 1)  # [n]: prefix row in order n-1
        self.suffix: list[FileArray | None] = [None] * (order + 1)  # [n]: suffix row in order n-1
        self.adjusted: list[FileArray | None] = [None] * (order + 1)  # [n]: the counts the method discounts
        self.sizes: list[int] = []
        self.coc: list[tuple[int, ...]] = []  # count-of-counts r = 0..4 per order, of those counts
        self.unigrams = np.zeros(0, dtype=np.int64)
        self.vocab: Vocabulary | None = None
        self.n_sentences = self.n_tokens = 0

    def close(self) -> None:
        """Close every file this estimation reads."""
        for files in (self.rows, self.raw, self.prefix, self.suffix, self.adjusted):
            for a in files:
                if isinstance(a, FileArray):
                    a.close()

    # ------------------------------------------------------------------ pass 1: count and merge
    def count(self, data: bytes, vocab: Vocabulary | None, where: str, workers: int = 1) -> None:
        runs = self.folder / "runs"
        runs.mkdir()
        chunk_size = max(_MIN_CHUNK, self.work // (_WORK_PER_TEXT_BYTE * workers))
        spilled = spill_runs(data, self.order, vocab, where, self.budget, runs, workers, chunk_size)
        self.vocab = spilled.words.vocabulary()
        self.unigrams = spilled.unigrams
        self.n_sentences = spilled.n_sentences
        self.n_tokens = spilled.stream_length - spilled.n_sentences
        self.sizes = [len(self.vocab)]
        for n in range(2, self.order + 1):
            self._merge(spilled, n)
            self.sizes.append(len(self.raw[n]))

    def _merge(self, spilled: Spilled, n: int) -> None:
        files = [runs[n - 2] for runs in spilled.runs]
        opened = [(FileArray.npy(r), FileArray.npy(c)) for r, c in files]
        rows = _Writer(self.folder / f"rows{n}", f"S{4 * n}")
        raw = _Writer(self.folder / f"raw{n}", np.int64)
        prefix = _Writer(self.folder / f"prefix{n}", np.int64)
        prev = self.rows[n - 1]
        for block, counts in merge_blocks(opened, merge_block_rows(self.work, len(opened))):
            ids = block.view(">u4").reshape(-1, n)  # (M, n) word ids
            if n == 2:
                pre = ids[:, 0].astype(np.int64)
            else:  # the prefixes are in order: look them up in the stretch of order n-1 they span
                query = np.ascontiguousarray(ids[:, :-1]).view(f"S{4 * (n - 1)}").ravel()
                lo, hi = _bisect(prev, query[0], False), _bisect(prev, query[-1], True)
                pre = lo + _searchsorted_sorted(prev[lo:hi], query,
                                                len(prev) >= _MERGE_JOIN_ABOVE or MERGE_JOIN.loaded())
            rows.add(block)
            raw.add(counts)
            prefix.add(pre)
        for r, c in opened:
            r.close()
            c.close()
        for r, c in files:  # the runs of this order are merged: free their disk space
            os.remove(r)
            os.remove(c)
        self.rows[n], self.raw[n], self.prefix[n] = rows.done(), raw.done(), prefix.done()

    def _pieces(self, n: int, at_histories: bool = False):
        """(lo, hi) chunks of order n's rows; ``at_histories``: each ends where a history ends."""
        lo, size = 0, self.sizes[n - 1]
        while lo < size:
            hi = min(size, lo + self.chunk)
            if at_histories and hi < size:
                hi = _bisect(self.prefix[n], self.prefix[n][hi - 1], True)
            yield lo, hi
            lo = hi

    def _ids(self, n: int, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, n) word ids of order-n rows lo..hi-1."""
        if n == 1:
            return np.arange(lo, hi, dtype=np.int64)[:, None]
        return self.rows[n][lo:hi].view(">u4").reshape(-1, n)

    # ------------------------------------------------------------------ pass 2: suffixes, adjusted counts
    def adjust(self, kneser_ney: bool) -> None:
        """Suffix rows per order; the counts to discount (adjusted for Kneser-Ney, else raw) and their n_r."""
        V, N = self.sizes[0], self.order
        keys = suffix = None  # order n-1's sorted keys and suffix rows (n >= 3), in memory
        self.coc = []
        for n in range(2, N + 1):
            out = _Writer(self.folder / f"suffix{n}", np.int64)
            left = np.zeros(self.sizes[n - 2], dtype=np.int64)  # distinct left extensions per order-(n-1) row
            new_keys, new_suffix = [], []
            for lo, hi in self._pieces(n):
                last = self._ids(n, lo, hi)[:, -1].astype(np.int64)
                pre = self.prefix[n][lo:hi]
                if n == 2:
                    suf = last
                else:
                    suf = _searchsorted_unordered(keys, suffix[pre] * V + last)
                out.add(suf)
                left += np.bincount(suf, minlength=len(left))
                if n < N:
                    new_keys.append(pre * V + last)
                    new_suffix.append(suf)
            self.suffix[n] = out.done()
            self._finish_counts(n - 1, left if kneser_ney else None)
            if n < N:
                keys, suffix = np.concatenate(new_keys), np.concatenate(new_suffix)
            del left, new_keys, new_suffix
        self._finish_counts(N, None)

    def _finish_counts(self, n: int, left: np.ndarray | None) -> None:
        """Write order n's counts to discount: ``left`` (continuation counts, raw where the n-gram
        starts with ``<s>``) or raw counts; order 1's ``<s>`` gets 0."""
        if n == 1:
            a = self.unigrams.copy() if left is None else np.where(np.arange(len(left)) == BOS_ID,
                                                                     self.unigrams, left)
            a[BOS_ID] = 0
            self.adjusted[1] = a  # (dense, in memory: one number per word)
            self.coc.append(tuple(count_of_counts(a, 4).tolist()))
            return
        if left is None:
            self.adjusted[n] = self.raw[n]
            total = np.zeros(5, dtype=np.int64)
            for lo, hi in self._pieces(n):
                total += count_of_counts(self.raw[n][lo:hi], 4)
            self.coc.append(tuple(total.tolist()))
            return
        out = _Writer(self.folder / f"adjusted{n}", np.int64)
        total = np.zeros(5, dtype=np.int64)
        for lo, hi in self._pieces(n):
            a = left[lo:hi].copy()
            bos = self._ids(n, lo, hi)[:, 0] == BOS_ID
            a[bos] = self.raw[n][lo:hi][bos]
            total += count_of_counts(a, 4)
            out.add(a)
        self.adjusted[n] = out.done()
        self.coc.append(tuple(total.tolist()))

    def _counts(self, n: int, lo: int, hi: int) -> np.ndarray:
        return self.adjusted[n][lo:hi]

    # ------------------------------------------------------------------ pass 3: estimate and write
    def estimate(self, smoother: Smoother, f) -> dict:
        """Discounts from the count-of-counts, then the interpolated model written to ``f`` as ARPA.
        Returns the smoother's info (method and discounts)."""
        discount_of = _discount_function(smoother, self.coc)
        V, N = self.sizes[0], self.order
        writer = ArpaWriter(f, self.vocab.words, self.sizes)
        # order 1, as smoothing._discounted and interpolated_model compute it (whole arrays)
        c1 = self.adjusted[1].astype(np.float64).copy()
        c1[BOS_ID] = 0.0
        d1 = np.where(c1 > 0, discount_of(1, c1), 0.0)
        probs = np.maximum(c1 - d1, 0.0) / c1.sum() + float(d1.sum() / c1.sum()) / (V - 1)
        probs[BOS_ID] = 0.0
        for n in range(2, N + 1):
            m = self.sizes[n - 2]
            total, dsum = np.zeros(m), np.zeros(m)
            has_child = np.zeros(m, dtype=bool)
            pieces = list(self._pieces(n, at_histories=True))
            for lo, hi in pieces:  # the history sums: each history's children in one chunk, in order
                pre = self.prefix[n][lo:hi]
                c = self._counts(n, lo, hi).astype(np.float64)
                d = np.where(c > 0, discount_of(n, c), 0.0)
                p0, p1 = int(pre[0]), int(pre[-1]) + 1
                total[p0:p1] = np.bincount(pre - p0, weights=c, minlength=p1 - p0)
                dsum[p0:p1] = np.bincount(pre - p0, weights=d, minlength=p1 - p0)
                has_child[p0:p1] = np.bincount(pre - p0, minlength=p1 - p0) > 0
            safe = np.where(total > 0, total, 1.0)
            gamma = np.where(total > 0, dsum / safe, 1.0)
            del total, dsum
            self._write(writer, n - 1, probs, quantize(np.where(has_child, log10_or_zero(gamma), 0.0)))
            del has_child
            out = np.empty(self.sizes[n - 1])
            for lo, hi in pieces:
                pre = self.prefix[n][lo:hi]
                c = self._counts(n, lo, hi).astype(np.float64)
                d = np.where(c > 0, discount_of(n, c), 0.0)
                out[lo:hi] = np.maximum(c - d, 0.0) / safe[pre] + gamma[pre] * probs[self.suffix[n][lo:hi]]
            probs = out
            del safe, gamma
        self._write(writer, N, probs, np.zeros(len(probs)))
        writer.end()
        self.close()
        return smoother.info()

    def _write(self, writer: ArpaWriter, n: int, probs: np.ndarray, backoff: np.ndarray) -> None:
        writer.section(n)
        for lo, hi in self._pieces(n):
            logprob = quantize(log10_or_zero(probs[lo:hi]))
            if n == 1 and lo <= BOS_ID < hi:
                logprob[BOS_ID - lo] = -99.0
            writer.lines(self._ids(n, lo, hi), logprob, backoff[lo:hi])


def _discount_function(smoother: Smoother, coc: list[tuple[int, ...]]):
    """D_n(c) of the method from the count-of-counts per order (sets the smoother's discounts, as
    its ``estimate`` would)."""
    if isinstance(smoother, ModifiedKneserNey):
        smoother.D = mkn_discounts_of([np.array(c) for c in coc], smoother.discount_fallback)

        def discount_of(n, c):
            table = np.array([0.0, *smoother.D[n - 1]])
            return table[np.minimum(c, 3).astype(np.int64)]

        return discount_of
    if isinstance(smoother, (KneserNey, AbsoluteDiscounting)):
        from .smoothing import _single_discount

        label = "Kneser-Ney" if isinstance(smoother, KneserNey) else "absolute discounting"
        smoother.D = [_single_discount(np.array(c), n, label) for n, c in enumerate(coc, start=1)]
        return lambda n, c: np.full_like(c, smoother.D[n - 1])
    raise UsageError(f"{smoother.name} is not estimated on disk (only mkn, kn, absolute)")
