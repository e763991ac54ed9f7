"""Counting n-grams under a memory budget: sorted runs spilled to disk and a k-way merge.

The design of KenLM's ``lmplz`` (Heafield et al. 2013, "Scalable modified Kneser-Ney
language model estimation", sec. 3.1; ``-S`` memory, ``-T`` temporary folder): the text is
read in chunks sized from the budget; each chunk is counted in memory
(:func:`lmlab.ngram.counts._count_stream`, the in-memory counter) and its n-grams of every
order are written to the temporary folder as one sorted *run*: the distinct n-grams as
fixed-width byte strings (each word id a big-endian uint32, so that comparing the bytes
compares the id tuples lexicographically) with their counts, as ``.npy`` arrays (read back
memory-mapped, never unpickled). Then, order by order, the runs are merged: a k-way merge
over blocks of every run (:func:`merge_runs`): each round takes, from every run, the rows
up to the smallest of the runs' current block ends, sorts them together and adds the counts
of equal n-grams, so at most one block per run is in memory. The merged n-grams are in
lexicographic order of word ids, which is the row order of lmlab's sorted-key tables, so
the result is the :class:`~lmlab.ngram.counts.NgramCounts` the in-memory counter gives, array
for array (same keys, same counts, same word numbering by first appearance), and the ARPA
file written from it is byte-identical.

Chunks can be counted in worker processes (``workers`` > 1): each worker numbers words by
their first appearance in its chunk; the parent renumbers them by first appearance in the
whole text (chunk order) and re-sorts each run before the same merge, so the result does
not depend on how the text was counted.

A text that fits in one chunk is counted by the in-memory counter directly (nothing to spill).
What is bounded: the counting stage (chunks and merge blocks). The merged tables, the
estimation and the model are held in memory as before (see docs/ngram.md, "At scale").
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .counts import (
    BOS,
    EOS,
    UNK,
    UNK_ID,
    NgramCounts,
    Vocabulary,
    _count_stream,
    _only_plain_spaces,
    _stream,
    ngram_words,
    split_text,
)

# bytes of counting work per byte of text, measured for the in-memory counter at order 5
# (~30x); the chunk size is the budget divided by this (with the merge's share taken out)
_WORK_PER_TEXT_BYTE = 40
_MIN_CHUNK = 1 << 12


def parse_memory(text: str | int) -> int:
    """'2G', '500M', '64K', '1000000' (bytes) or a percentage of physical memory ('50%') -> bytes."""
    if isinstance(text, int):
        value = text
    else:
        s = text.strip().upper().removesuffix("B")
        try:
            if s.endswith("%"):
                pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
                value = int(pages * float(s[:-1]) / 100)
            else:
                scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
                value = int(float(s[:-1] if s[-1:] in "KMGT" else s) * scale)
        except (ValueError, IndexError):
            raise UsageError(f"--memory: expected a size like 2G, 500M or 50%, got {text!r}") from None
    if value < 1 << 16:
        raise UsageError(f"--memory must be at least 64K, got {text!r}")
    return value


class _Words:
    """Word bytes -> id in order of first appearance (the specials first), shared by the chunks."""

    def __init__(self, vocab: Vocabulary | None):
        self.closed = vocab
        if vocab is None:
            self.ids: dict[bytes, int] = {w.encode(): i for i, w in enumerate((UNK, BOS, EOS))}
        else:
            self.ids = {w.encode("utf-8"): i for w, i in vocab.index.items()}
        self.interner = None  # the byte hash of encode_text, made at its first chunk

    def encode_text(self, chunk: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the chunk's tokens, tokens per sentence): :func:`split_text` then :meth:`encode`, or, for an
        open vocabulary over text split at ' ', '\\t', '\\n' only, one compiled pass over its bytes
        (:class:`~lmlab.ngram.textenc.Interner`, with the same ids: first appearance); the dict learns the
        new words only."""
        from .textenc import Interner, _kernels

        if self.closed is not None or _kernels() is None or not _only_plain_spaces(chunk):
            tokens, lengths = split_text(chunk, where)
            return self.encode(tokens), lengths
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: not valid UTF-8 at byte {err.start}") from None
        if self.interner is None:
            self.interner = Interner(list(self.ids))
        elif self.interner.n < len(self.ids):  # words the dict learnt from a chunk split as str
            self.interner.add(list(self.ids)[self.interner.n:])
        before = self.interner.n
        ids, lengths = self.interner.encode(chunk)
        self.ids.update(zip(self.interner.words(before), range(before, self.interner.n)))
        return ids, lengths

    def encode(self, tokens: list) -> np.ndarray:
        if tokens and isinstance(tokens[0], str):
            tokens = [t.encode("utf-8") for t in tokens]
        if self.closed is not None:
            words = np.fromiter(map(self.ids.get, tokens, [-1] * len(tokens)), dtype=np.int64, count=len(tokens))
            words[words < 0] = UNK_ID
            return words
        ids = self.ids
        out = np.empty(len(tokens), dtype=np.int64)
        for j, t in enumerate(tokens):  # (one dict look-up per token, as count_text's _NextId)
            i = ids.get(t)
            if i is None:
                i = ids[t] = len(ids)
            out[j] = i
        return out

    def vocabulary(self) -> Vocabulary:
        if self.closed is not None:
            return self.closed
        rest = list(self.ids)[3:]
        return Vocabulary._of_new_words(b"\n".join(rest).decode("utf-8").split("\n") if rest else [])


class _Sized:
    """What the in-memory counter needs of a vocabulary while a chunk is counted: its size."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def _as_rows(ids: np.ndarray) -> np.ndarray:
    """(M, n) word ids -> M fixed-width byte strings that sort as the id tuples do."""
    n = ids.shape[1]
    return np.ascontiguousarray(ids.astype(">u4")).view(f"S{4 * n}").ravel()


def _chunks(data: bytes, size: int):
    """The text in pieces of about ``size`` bytes, cut after a newline."""
    at = 0
    while at < len(data):
        end = min(len(data), at + size)
        if end < len(data):
            cut = data.rfind(b"\n", at, end)
            end = cut + 1 if cut >= at else (data.find(b"\n", end) + 1 or len(data))
        yield data[at:end]
        at = end


def _count_chunk(chunk: bytes, order: int, words: _Words, where: str):
    """Count one chunk: (unigram counts, [sorted rows, counts] per order >= 2, sentences, stream length)."""
    tokens, lengths = words.encode_text(chunk, where)
    if not len(lengths):
        return None
    ids, pos = _stream(tokens, lengths)
    V = len(words.ids)
    c = _count_stream(ids, pos, _Sized(V), order, len(lengths))
    runs = []
    for n in range(2, order + 1):
        runs.append((_as_rows(ngram_words(c.keys, V, n, np.arange(c.size(n)))), c.counts[n - 1]))
    return c.counts[0], runs, len(lengths), len(ids)


def _spill(folder: Path, index: int, runs) -> list[tuple[Path, Path]]:
    out = []
    for n, (rows, counts) in enumerate(runs, start=2):
        r, c = folder / f"run{index:05d}.order{n}.rows.npy", folder / f"run{index:05d}.order{n}.counts.npy"
        np.save(r, rows, allow_pickle=False)
        np.save(c, counts, allow_pickle=False)
        out.append((r, c))
    return out


def merge_blocks(runs: list[tuple[np.ndarray, np.ndarray]], block: int):
    """k-way merge of sorted runs (rows, counts), in pieces: yields (distinct rows in order, counts added).

    ``block``: rows taken from each run per round; in memory at once: about one block per run.
    One run is already merged: its blocks are yielded as they are (copied out of the file).
    """
    runs = [(r, c) for r, c in runs if len(r)]
    if len(runs) == 1:
        r, c = runs[0]
        for lo in range(0, len(r), block):
            yield np.array(r[lo: lo + block]), np.array(c[lo: lo + block], dtype=np.int64)
        return
    cursor = [0] * len(runs)
    while True:
        active = [i for i, (r, _) in enumerate(runs) if cursor[i] < len(r)]
        if not active:
            break
        # every row <= bound is in the current blocks: the bound is the smallest block end of a run
        # that goes on after its block
        ends = [runs[i][0][min(cursor[i] + block, len(runs[i][0])) - 1] for i in active
                if cursor[i] + block < len(runs[i][0])]
        bound = min(ends) if ends else None
        rows, counts = [], []
        for i in active:
            r, c = runs[i]
            lo = cursor[i]
            hi = min(lo + block, len(r))
            if bound is not None:
                hi = lo + int(np.searchsorted(r[lo:hi], bound, side="right"))
            rows.append(np.asarray(r[lo:hi]))
            counts.append(np.asarray(c[lo:hi]))
            cursor[i] = hi
        rows_all = np.concatenate(rows)
        counts_all = np.concatenate(counts)
        order = np.argsort(rows_all, kind="stable")
        rows_all = rows_all[order]
        counts_all = counts_all[order]
        first = np.ones(len(rows_all), dtype=bool)
        first[1:] = rows_all[1:] != rows_all[:-1]
        starts = np.flatnonzero(first)
        yield rows_all[starts], np.add.reduceat(counts_all, starts)


def merge_runs(runs: list[tuple[np.ndarray, np.ndarray]], block: int) -> tuple[np.ndarray, np.ndarray]:
    """k-way merge of sorted runs (rows, counts): the distinct rows in order, counts added
    (:func:`merge_blocks`, concatenated)."""
    pieces = list(merge_blocks(runs, block))
    if not pieces:
        return np.zeros(0, dtype="S4"), np.zeros(0, dtype=np.int64)
    return np.concatenate([r for r, _ in pieces]), np.concatenate([c for _, c in pieces])


def _renumber(rows: np.ndarray, n: int, mapping: np.ndarray) -> np.ndarray:
    """Rows of local word ids -> rows of global ids (no longer sorted)."""
    ids = rows.view(">u4").reshape(-1, n).astype(np.int64)
    return _as_rows(mapping[ids])


def _worker_count(args):
    """In a worker process: count one chunk with its own word numbering; return (words, counts, runs...)."""
    chunk, order, where = args
    words = _Words(None)
    got = _count_chunk(chunk, order, words, where)
    return list(words.ids)[3:], got


@dataclass
class Spilled:
    """The counting pass's result: the words, the unigram counts, and per chunk one sorted run per order >= 2."""

    words: _Words
    unigrams: np.ndarray
    runs: list[list[tuple[Path, Path]]]  # runs[chunk][n - 2] = (rows file, counts file) of order n
    n_sentences: int
    stream_length: int

    def opened(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every chunk's run of order n (>= 2), memory-mapped (read-only)."""
        return [(np.load(r, mmap_mode="r", allow_pickle=False), np.load(c, mmap_mode="r", allow_pickle=False))
                for r, c in (runs[n - 2] for runs in self.runs)]


def check_budget(memory: int | str, temp: str | os.PathLike | None, workers: int) -> int:
    """The budget in bytes; refuses a bad ``temp`` folder or ``workers``."""
    budget = parse_memory(memory)
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    if temp is not None and not Path(temp).is_dir():
        raise UsageError(f"--temp {temp} is not a folder")
    return budget


def spill_runs(data: bytes, order: int, vocab: Vocabulary | None, where: str, budget: int, folder: Path,
               workers: int = 1, chunk_size: int | None = None) -> Spilled:
    """Count the text chunk by chunk (in ``workers`` processes), each chunk's n-grams spilled to
    ``folder`` as sorted runs; words numbered by first appearance in the whole text."""
    if chunk_size is None:
        chunk_size = max(_MIN_CHUNK, budget // (_WORK_PER_TEXT_BYTE * workers))
    words = _Words(vocab)
    unigrams = np.zeros(len(words.ids), dtype=np.int64)
    spilled: list[list[tuple[Path, Path]]] = []
    n_sentences = stream_length = 0

    def add(got, mapping=None):
        nonlocal unigrams, n_sentences, stream_length
        if got is None:
            return
        uni, runs, sents, length = got
        if mapping is not None:
            renumbered = []
            for n, (r, c) in enumerate(runs, start=2):
                r = _renumber(r, n, mapping)
                order_ = np.argsort(r, kind="stable")
                renumbered.append((r[order_], c[order_]))
            runs = renumbered
            full = np.zeros(len(words.ids), dtype=np.int64)
            np.add.at(full, mapping[: len(uni)], uni)
            uni = full
        if len(uni) > len(unigrams):
            unigrams = np.concatenate([unigrams, np.zeros(len(uni) - len(unigrams), dtype=np.int64)])
        unigrams[: len(uni)] += uni
        spilled.append(_spill(folder, len(spilled), runs))
        n_sentences += sents
        stream_length += length

    pieces = _chunks(data, chunk_size)
    if workers == 1 or vocab is not None:
        for chunk in pieces:
            add(_count_chunk(chunk, order, words, where))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for local_words, got in pool.imap(_worker_count, ((c, order, where) for c in pieces)):
                mapping = np.arange(3 + len(local_words), dtype=np.int64)
                for j, w in enumerate(local_words, start=3):  # first appearance in the whole text
                    i = words.ids.get(w)
                    if i is None:
                        i = words.ids[w] = len(words.ids)
                    mapping[j] = i
                add(got, mapping)
    if not n_sentences:
        raise DataError(f"cannot count n-grams: {where} has no words")
    V = len(words.ids)
    if float(V) ** 2 * 2 > 2**62:
        raise UsageError(f"vocabulary of {V} words is too large for int64 n-gram keys")
    unigrams = np.concatenate([unigrams, np.zeros(V - len(unigrams), dtype=np.int64)])
    return Spilled(words, unigrams, spilled, n_sentences, stream_length)


def merge_block_rows(budget: int, runs: int) -> int:
    """Rows taken from each of ``runs`` runs per merge round under ``budget`` bytes."""
    return max(1024, budget // (4 * 24 * max(1, runs)))


def count_text_external(data: bytes, order: int, vocab: Vocabulary | None = None, where: str = "text",
                        memory: int | str = "2G", temp: str | os.PathLike | None = None,
                        workers: int = 1) -> NgramCounts:
    """:func:`lmlab.ngram.counts.count_text` under a memory budget (``memory`` bytes or '2G'),
    spilling sorted runs to ``temp`` (a fresh folder inside it; default the system's); same result."""
    if order < 1:
        raise UsageError(f"n-gram order must be >= 1, got {order}")
    budget = check_budget(memory, temp, workers)
    chunk_size = max(_MIN_CHUNK, budget // (_WORK_PER_TEXT_BYTE * workers))
    if workers == 1 and len(data) <= chunk_size:  # one chunk: nothing to spill (lmplz, too, spills only when needed)
        from .counts import count_text

        return count_text(data, order, vocab, where=where)
    with tempfile.TemporaryDirectory(prefix="lmlab-ngram-", dir=temp) as tmp:
        spilled = spill_runs(data, order, vocab, where, budget, Path(tmp), workers, chunk_size)
        final = spilled.words.vocabulary()
        V = len(final)
        keys = [np.arange(V, dtype=np.int64)]
        counts = [spilled.unigrams]
        prev_rows = None
        for n in range(2, order + 1):
            opened = spilled.opened(n)
            rows, cnt = merge_runs(opened, merge_block_rows(budget, len(opened)))
            del opened
            ids = rows.view(">u4").reshape(-1, n)  # (M, n) word ids
            if n == 2:
                prefix = ids[:, 0].astype(np.int64)
            else:
                prefix = np.searchsorted(prev_rows, np.ascontiguousarray(ids[:, :-1]).view(f"S{4 * (n - 1)}").ravel())
            keys.append(prefix.astype(np.int64) * V + ids[:, -1].astype(np.int64))
            counts.append(cnt.astype(np.int64))
            prev_rows = rows
    return NgramCounts(final, order, keys, counts, spilled.n_sentences, spilled.stream_length - spilled.n_sentences)
