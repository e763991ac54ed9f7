"""The binary n-gram model file (``.lmbin``): sorted-key tables memory-mapped with numpy.

The idea is KenLM's ``build_binary`` (Heafield 2011, "KenLM: Faster and smaller language
model queries", WMT): instead of parsing text at every start, write the query structures
once and map them from disk, so that loading costs a few system calls whatever the size
and only the pages a query touches are read. lmlab's structure is the one
:class:`~lmlab.ngram.model.NgramModel` already queries (a trie stored as sorted arrays,
see :mod:`lmlab.ngram.counts`): per order n >= 2 the sorted int64 keys
``prefix_row * V + w_n``, the log10 probabilities and (below the top order) the log10
back-off weights; order 1 is dense over the vocabulary. Lookups are ``np.searchsorted``
over the mapped keys, whole sentences / batches at once (no Python object per n-gram,
no hash table to build at load).

Layout (little-endian)::

    bytes 0-7    magic  b"\\x93LMBIN\\r\\n"   (the \\r\\n catches text-mode mangling)
    8-11         format version (uint32, this module writes and reads VERSION)
    12-15        length of the JSON header in bytes (uint32)
    16-19        CRC-32 of bytes 8-15, 20-31 and the JSON header
    20-23        CRC-32 of the payload (every byte after the header, padding included)
    24-31        total file size in bytes (uint64): a truncated file is refused at once
    32-          JSON header: order, vocabulary size, n-gram counts, quantisation, the
                 model's info, and each section's (name, dtype, offset, length)
    then         the payload, each section aligned to 64 bytes: the vocabulary (UTF-8,
                 one word per line), then per order its keys, probabilities, back-offs

Quantisation (KenLM's ``-q``/``-b``): probabilities and back-offs of orders >= 2 can be
stored as float32 (``bits=32``) or as b-bit codes into 2^b bin centres (2 <= b <= 16):
the values of each order are sorted into 2^b bins of equal size and each bin is
represented by its mean (KenLM's binning, ``lm/quantize.cc``). -99 (log10 0) and a
back-off of exactly 0 keep their own exact centre. Unigrams are never quantised (as in
KenLM). The default (64) stores the float64 values: scores are bit-identical to the ARPA
model's.

Checks on load: magic, version, header CRC and file size always (constant time); the
payload CRC when ``verify`` is True, or by default (``"auto"``) for files up to
:data:`VERIFY_AUTO_BYTES` -- a full pass over a multi-gigabyte file would defeat loading
in milliseconds, so big files are checked with ``verify=True`` (``lmlab ngram binarize
--verify`` or ``lmlab ngram check``).
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from .._numba import Kernel, have_kernels
from ..errors import DataError, FormatError, UsageError
from ..io import atomic_open
from .counts import Vocabulary
from .model import LOG10_ZERO, NgramModel, _emit, _emit_jitted

MAGIC = b"\x93LMBIN\r\n"
VERSION = 1
SUFFIX = ".lmbin"
VERIFY_AUTO_BYTES = 32 << 20  # files up to this size get their payload CRC checked on every load
_PREFIX = struct.Struct("<8sIIIIQ")  # magic, version, header length, header CRC, payload CRC, file size
_ALIGN = 64
_CRC_BLOCK = 64 << 20  # bytes per zlib.crc32 call


def is_binary(path: str | os.PathLike) -> bool:
    """Whether the file starts with this format's magic (any version)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class Quantized:
    """A column stored as b-bit codes into a table of bin centres; indexing gives float64 values."""

    def __init__(self, codes: np.ndarray, centers: np.ndarray):
        self.codes = codes
        self.centers = centers

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.codes.shape

    def __getitem__(self, index):
        return self.centers[self.codes[index]]

    def __array__(self, dtype=None, copy=None):
        out = self.centers[self.codes]
        return out if dtype is None else out.astype(dtype)


def _bins(values: np.ndarray, bits: int, exact: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """KenLM-style binning: (codes, centres) for ``values``; values in ``exact`` keep their own centre."""
    values = np.asarray(values, dtype=np.float64)
    special = [v for v in exact if np.any(values == v)]
    rest = np.sort(values[~np.isin(values, special)]) if special else np.sort(values)
    n_bins = (1 << bits) - len(special)
    centers = []
    if len(rest):
        n_bins = max(1, min(n_bins, len(rest)))
        bounds = (np.arange(n_bins + 1) * len(rest)) // n_bins  # equal-size bins over the sorted values
        sums = np.add.reduceat(rest, bounds[:-1])
        centers = (sums / np.diff(bounds)).tolist()
    table = np.array(sorted(set(centers)) + special, dtype=np.float64)
    ordinary = table[: len(table) - len(special)]
    codes = np.zeros(len(values), dtype=np.uint8 if bits <= 8 else np.uint16)
    if len(ordinary):
        mid = (ordinary[1:] + ordinary[:-1]) / 2  # nearest centre
        codes[:] = np.searchsorted(mid, values)
    for j, v in enumerate(special):
        codes[values == v] = len(ordinary) + j
    return codes, table


def check_bits(bits: int, what: str) -> None:
    if bits not in (32, 64) and not 2 <= bits <= 16:
        raise UsageError(f"{what} must be 64 (exact), 32 (float32) or 2..16 (quantised bins), got {bits}")


def _columns(values, bits: int, exact: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    """The sections that store one column: [("", values)] or [("codes", ..), ("centers", ..)]."""
    values = np.asarray(values)
    if bits == 64:
        return [("", np.ascontiguousarray(values, dtype=np.float64))]
    if bits == 32:
        return [("", np.ascontiguousarray(values, dtype=np.float32))]
    codes, centers = _bins(values, bits, exact)
    return [(".codes", codes), (".centers", centers)]


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_binary(model: NgramModel, path: str | os.PathLike, prob_bits: int = 64, backoff_bits: int = 64) -> None:
    """Write ``model`` as a binary file (atomically); ``*_bits``: 64, 32 or 2..16 (see the module docstring)."""
    check_bits(prob_bits, "prob_bits")
    check_bits(backoff_bits, "backoff_bits")
    words = model.vocab.words
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise FormatError(f"{path}: the word {w!r} cannot be stored (empty or with whitespace)")
    sections: list[tuple[str, np.ndarray]] = [("vocab", np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8))]
    N = model.order
    for n in range(1, N + 1):
        if n >= 2:
            sections.append((f"keys.{n}", np.ascontiguousarray(model.keys[n - 1], dtype=np.int64)))
            sections.append((f"children.{n}", _children(model.keys[n - 1], model.V, len(model.keys[n - 2]))))
        pb, bb = (64, 64) if n == 1 else (prob_bits, backoff_bits)
        sections += [(f"prob.{n}{tail}", a) for tail, a in _columns(model.logprob[n - 1], pb, (LOG10_ZERO,))]
        if n < N:
            sections += [(f"backoff.{n}{tail}", a) for tail, a in _columns(model.backoff[n - 1], bb, (0.0, LOG10_ZERO))]
    table, offset = [], 0
    for name, a in sections:
        offset = -(-offset // _ALIGN) * _ALIGN
        table.append({"name": name, "dtype": a.dtype.str, "offset": offset, "length": int(a.size)})
        offset += a.nbytes
    payload_size = offset
    crc = 0
    pad = bytes(_ALIGN)
    pieces = []  # (padding before, bytes of the section)
    at = 0
    for entry, (_, a) in zip(table, sections):
        gap = entry["offset"] - at
        raw = memoryview(a).cast("B")
        pieces.append((gap, raw))
        crc = zlib.crc32(pad[:gap], crc)
        for lo in range(0, len(raw), _CRC_BLOCK):
            crc = zlib.crc32(raw[lo: lo + _CRC_BLOCK], crc)
        at = entry["offset"] + a.nbytes
    header = {"format": "lmlab n-gram binary", "order": N, "vocab_size": model.V, "sizes": model.sizes(),
              "prob_bits": prob_bits, "backoff_bits": backoff_bits, "suffix_closed": _suffix_closed(model),
              "info": _json_safe({k: v for k, v in model.info.items() if k != "binary"}),
              "sections": table}
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    start = -(-(_PREFIX.size + len(text)) // _ALIGN) * _ALIGN
    text += b" " * (start - _PREFIX.size - len(text))  # pad the JSON with spaces up to the payload
    size = start + payload_size
    prefix = _PREFIX.pack(MAGIC, VERSION, len(text), _header_crc(VERSION, len(text), crc, size, text), crc, size)
    with atomic_open(path) as f:
        f.write(prefix)
        f.write(text)
        for gap, raw in pieces:
            f.write(pad[:gap])
            f.write(raw)


def _children(keys: np.ndarray, V: int, n_prefixes: int) -> np.ndarray:
    """First row of each prefix's block in an order's sorted keys, and the end: (n_prefixes + 1,)."""
    starts = np.searchsorted(keys, np.arange(n_prefixes + 1, dtype=np.int64) * V)
    return starts.astype(np.uint32 if len(keys) < 1 << 32 else np.int64)


def _suffix_closed(model: NgramModel) -> bool:
    """Whether every listed n-gram's suffix is listed (then a query may stop at the first miss)."""
    try:
        for n in range(2, model.order + 1):
            model.suffix(n)
    except DataError:
        return False
    return True


def _header_crc(version: int, length: int, payload_crc: int, size: int, text: bytes) -> int:
    return zlib.crc32(text, zlib.crc32(struct.pack("<IIIQ", version, length, payload_crc, size)))


class _MappedVocabulary(Vocabulary):
    """The vocabulary of a mapped file: the word list and the word -> id dict are made on first use."""

    def __init__(self, blob: bytes, size: int):  # (Vocabulary.__init__ is not called: nothing is built yet)
        self._blob = blob
        self._size = size
        self._words: list[str] | None = None
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = self._blob.decode("utf-8").split("\n")
        return self._words

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self.words, range(self._size)))
        return self._index

    @property
    def lookup(self):
        from .counts import _IdLookup

        if "_lookup" not in self.__dict__:
            self.__dict__["_lookup"] = _IdLookup(self.index)
        return self.__dict__["_lookup"]


def _find(keys, q, lo, hi):
    """Row of key ``q`` in the sorted ``keys[lo:hi]``, or -1: branch-free bisection down to the one
    candidate row (no early exit, so the loop has no data-dependent branch to mispredict)."""
    n = hi - lo
    if n <= 0:
        return -1
    while n > 1:
        half = n >> 1
        lo = lo + half if keys[lo + half] <= q else lo  # (a conditional move)
        n -= half
    return lo if keys[lo] == q else -1


def _trie_kernel(ids, pos, V, N, keys, children, uni_lp, uni_bo, lp, bo, lp_codes, bo_codes, closed, compact,
                 rows, logp, matched, is_oov, sent):
    """The scorer of :func:`lmlab.ngram.model._score_kernel` over the mapped sorted tables:
    per position and order one :func:`_find` of ``prev_row * V + w`` (no hash table), among
    the rows whose prefix is ``prev_row``: ``children[n-2][p]`` .. ``children[n-2][p + 1]``
    (KenLM's trie keeps the same "first child" pointers), or the whole table when the file
    has no such section (``children`` then holds empty placeholders).

    Order-major: one pass over the stream per order fills ``rows[n-1, t]``, the row of the
    n-gram ending at t (-1: not listed), from order n-1's rows at t-1. Within a pass the
    look-ups of different positions do not depend on each other, so the processor overlaps
    their cache misses (walking position by position, every look-up would wait for the one
    before it). A last pass turns the rows into scores.

    ``keys[n-2]``, ``lp[n-2]``, ``bo[n-2]``: order n's keys, log10 probs and back-offs
    (n = 2..N; the top order's back-off array is a placeholder). With quantised columns
    ``lp_codes``/``bo_codes`` hold the codes and ``lp``/``bo`` the bin centres; otherwise the
    codes tuples are empty-array placeholders and ``lp``/``bo`` the values. Same floating-point
    operations in the same order as the hash kernel: scores are bit-identical."""
    quant_p = len(lp_codes[0]) > 0
    quant_b = len(bo_codes[0]) > 0
    T = len(ids)
    for t in range(T):
        w = ids[t]
        rows[0, t] = w if w < V else -1
    for n in range(2, N + 1):
        table = keys[n - 2]
        first = children[n - 2]
        blocks = len(first) > 0
        for t in range(T):
            r = -1
            if t >= 1 and pos[t] >= n - 1:
                p = np.int64(rows[n - 2, t - 1])
                # in a suffix-closed table the n-gram ending at t needs its suffix, the (n-1)-gram ending at t
                if p >= 0 and (rows[n - 2, t] >= 0 or not closed):
                    if blocks:
                        r = _find_compiled(table, p * V + ids[t], np.int64(first[p]), np.int64(first[p + 1]))
                    else:
                        r = _find_compiled(table, p * V + ids[t], 0, len(table))
            rows[n - 1, t] = r
    out = 0
    sentence = -1
    for t in range(T):
        m = 1 if rows[0, t] >= 0 else 0
        best = np.int64(rows[0, t])
        for n in range(2, N + 1):
            if rows[n - 1, t] >= 0:
                m = n
                best = np.int64(rows[n - 1, t])
        if m <= 1:
            value = uni_lp[max(best, 0)]
        elif quant_p:
            value = lp[m - 2][lp_codes[m - 2][best]]
        else:
            value = np.float64(lp[m - 2][best])
        if t >= 1:
            for k in range(1, N):
                ctx = np.int64(rows[k - 1, t - 1])
                if m <= k and ctx >= 0:
                    if k == 1:
                        value += uni_bo[ctx]
                    elif quant_b:
                        value += bo[k - 2][bo_codes[k - 2][ctx]]
                    else:
                        value += np.float64(bo[k - 2][ctx])
                else:
                    value += 0.0
        out, sentence = _emit_compiled(compact, t, pos[t], ids[t], value, m, out, sentence, logp, matched, is_oov,
                                       sent)


def _child_rows(table, first, V, row, w, out):
    """``out[i]``: the row of key ``row[i] * V + w[i]`` in ``table`` (-1 if absent or ``row[i] < 0``),
    searched within the block ``first[row[i]]`` .. ``first[row[i] + 1]`` (one step down the trie)."""
    for i in range(len(row)):
        r = np.int64(row[i])
        if r >= 0:
            out[i] = _find_compiled(table, r * V + w[i], np.int64(first[r]), np.int64(first[r + 1]))
        else:
            out[i] = -1


def child_rows(table: np.ndarray, first: np.ndarray, V: int, row: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """:func:`_child_rows` compiled (None without numba): the trie step of every (row, word) pair at once."""
    if _trie_scorer() is None:
        return None
    out = np.empty(len(row), dtype=np.int64)
    STEP(table, first, V, np.ascontiguousarray(row, dtype=np.int64), np.ascontiguousarray(w, dtype=np.int64), out)
    return out


_find_compiled = _find  # the jitted _find once _jit_helpers() has run (the kernels call it)
_emit_compiled = _emit  # (likewise the jitted model._emit)


def _jit_helpers() -> None:
    global _find_compiled, _emit_compiled
    if _find_compiled is _find:
        from .._numba import njit

        _find_compiled = njit(cache=True, nogil=True)(_find)
        _emit_compiled = _emit_jitted()


TRIE = Kernel(_trie_kernel, _jit_helpers)
STEP = Kernel(_child_rows, _jit_helpers)


def _trie_scorer():
    """The numba-compiled trie scorer (ahead of time where that module is built), or None without numba."""
    return TRIE if have_kernels() else None


def _readonly(a) -> np.ndarray:
    """A read-only ndarray view (numba types the arrays of a tuple alike only when all are)."""
    view = np.asarray(a).view()
    view.flags.writeable = False
    return view


def _same_dtype(arrays) -> tuple:
    """The arrays read-only, as int64 if their types differ (a numba tuple indexed at run time is of one type)."""
    if len({np.asarray(a).dtype for a in arrays}) > 1:
        arrays = [np.asarray(a, dtype=np.int64) for a in arrays]
    return tuple(_readonly(a) for a in arrays)


def _split_column(col, dtype):
    """(values or centres, codes or an empty placeholder) of one mapped column, read-only."""
    if isinstance(col, Quantized):
        return _readonly(np.asarray(col.centers, dtype=np.float64)), _readonly(col.codes)
    return _readonly(col), _readonly(np.zeros(0, dtype=dtype))


class BinaryNgramModel(NgramModel):
    """An :class:`NgramModel` whose tables are views of a memory-mapped file.

    Scoring walks the stream once in a numba kernel (:func:`_trie_kernel`) that searches the
    mapped sorted tables directly, or without numba looks keys up with ``np.searchsorted``
    over the whole stream per order; no hash index is built, so nothing at load time is
    proportional to the model's size.
    """

    def index(self):
        return None

    def use_compiled(self, positions: int | None = None) -> bool:  # (the trie kernel needs no index)
        return self.order >= 2 and _trie_scorer() is not None

    def _score_compiled(self, ids: np.ndarray, pos: np.ndarray, compact: bool):
        N = self.order
        size = int(np.count_nonzero(pos > 0)) if compact else len(ids)
        logp = np.empty(size, dtype=np.float64)
        matched = np.empty(size, dtype=np.int64)
        is_oov = np.empty(size if compact else 0, dtype=np.bool_)
        sent = np.empty(size if compact else 0, dtype=np.int64)
        if "trie" not in self._cache:
            lps = [_split_column(self.logprob[n - 1], np.uint8) for n in range(2, N + 1)]
            bos = [_split_column(self.backoff[n - 1], np.uint8) for n in range(2, N)]
            if not bos:  # (a bigram model has no back-offs above order 1: a placeholder of the top's type)
                bos = [(_readonly(np.zeros(1)), _readonly(np.zeros(0, dtype=np.uint8)))]
            bos.append((_readonly(np.zeros(1, dtype=bos[0][0].dtype)), _readonly(np.zeros(0, dtype=bos[0][1].dtype))))  # (top order)
            self._cache["trie"] = (
                tuple(_readonly(self.keys[n - 1]) for n in range(2, N + 1)),
                _same_dtype([self._cache.get(("children", n), np.zeros(0, dtype=np.uint32)) for n in range(2, N + 1)]),
                np.asarray(self.logprob[0], dtype=np.float64), np.asarray(self.backoff[0], dtype=np.float64),
                tuple(v for v, _ in lps), tuple(v for v, _ in bos),
                tuple(c for _, c in lps), tuple(c for _, c in bos),
                bool(self.info.get("binary", {}).get("suffix_closed", False)))
        keys, children, uni_lp, uni_bo, lp, bo, lp_codes, bo_codes, closed = self._cache["trie"]
        rows = np.empty((N, len(ids)), dtype=np.int32 if max(self.sizes()) < 1 << 31 else np.int64)  # (orders, T)
        _trie_scorer()(np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(pos, dtype=np.int64),
                       self.V, N, keys, children, uni_lp, uni_bo, lp, bo, lp_codes, bo_codes, closed, compact,
                       rows, logp, matched, is_oov, sent)
        return logp, matched, is_oov, sent


def _refuse(path, what: str) -> FormatError:
    return FormatError(f"{path}: {what}")


def read_binary(path: str | os.PathLike, verify: bool | str = "auto") -> BinaryNgramModel:
    """Map a binary model file (see the module docstring for the checks and ``verify``)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(_PREFIX.size)
            if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
                raise _refuse(path, "not an lmlab binary n-gram model (wrong magic bytes)")
            if len(prefix) < _PREFIX.size:
                raise _refuse(path, f"truncated binary model ({size} bytes, shorter than its header)")
            _, version, length, header_crc, payload_crc, declared = _PREFIX.unpack(prefix)
            if version != VERSION:
                raise _refuse(path, f"binary model format version {version}; this lmlab reads version {VERSION} "
                                    "(rebuild it with `lmlab ngram binarize`)")
            text = f.read(length)
    except OSError as err:
        raise _refuse(path, f"cannot read ({err.strerror})") from None
    if len(text) < length or size < declared:
        raise _refuse(path, f"truncated binary model ({size} of {declared} bytes)")
    if _header_crc(version, length, payload_crc, declared, text) != header_crc:
        raise _refuse(path, "header checksum mismatch (corrupt file)")
    if size != declared:
        raise _refuse(path, f"binary model is {size} bytes, its header says {declared} (corrupt file)")
    try:
        header = json.loads(text)
        order, V, sizes = int(header["order"]), int(header["vocab_size"]), [int(s) for s in header["sizes"]]
        table = {e["name"]: e for e in header["sections"]}
    except (ValueError, KeyError, TypeError):
        raise _refuse(path, "unreadable binary model header") from None
    start = _PREFIX.size + length
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    if verify is True or (verify == "auto" and size <= VERIFY_AUTO_BYTES):
        crc = 0
        for lo in range(start, size, _CRC_BLOCK):
            crc = zlib.crc32(buf[lo: min(size, lo + _CRC_BLOCK)], crc)
        if crc != payload_crc:
            raise _refuse(path, "payload checksum mismatch (corrupt file)")

    def section(name: str, count: int | None = None) -> np.ndarray:
        e = table.get(name)
        if e is None:
            raise _refuse(path, f"binary model lacks section {name!r}")
        dtype = np.dtype(e["dtype"])
        lo = start + int(e["offset"])
        hi = lo + int(e["length"]) * dtype.itemsize
        if hi > size or (count is not None and int(e["length"]) != count):
            raise _refuse(path, f"section {name!r} does not fit the file (corrupt file)")
        return buf[lo:hi].view(dtype)

    def column(name: str, count: int):
        if name in table:
            return section(name, count)
        return Quantized(section(name + ".codes", count), np.array(section(name + ".centers")))

    vocab = _MappedVocabulary(bytes(section("vocab")), V)
    keys = [np.arange(V, dtype=np.int64)]
    logprob = [column("prob.1", V)]
    backoff = []
    children = {}
    for n in range(2, order + 1):
        keys.append(section(f"keys.{n}", sizes[n - 1]))
        if f"children.{n}" in table:  # (files written before these sections are searched table-wide)
            children[("children", n)] = section(f"children.{n}", sizes[n - 2] + 1)
        logprob.append(column(f"prob.{n}", sizes[n - 1]))
    for n in range(1, order):
        backoff.append(column(f"backoff.{n}", sizes[n - 1]))
    backoff.append(np.zeros(sizes[-1]))  # the top order has no back-off weights (calloc'ed: no memory until read)
    info = dict(header.get("info") or {})
    info["binary"] = {"path": path, "prob_bits": header.get("prob_bits"), "backoff_bits": header.get("backoff_bits"),
                      "suffix_closed": bool(header.get("suffix_closed", False))}
    model = BinaryNgramModel(vocab, keys, logprob, backoff, info)
    model._cache.update(children)
    return model


__all__ = ["MAGIC", "SUFFIX", "VERSION", "BinaryNgramModel", "Quantized", "is_binary", "read_binary",
           "write_binary"]
