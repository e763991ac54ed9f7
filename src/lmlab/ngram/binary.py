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
                 one word per line), then per order its keys, children, probabilities,
                 back-offs; then (probing) per order n >= 2 its hash table

Structures (KenLM's ``build_binary trie`` / ``probing``): every file holds the trie above. A file
written with ``structure="probing"`` (``lmlab ngram binarize --structure probing``) holds, per
order n >= 2, a hash table too (section ``probing.n``: 1.5 slots per n-gram, a filled one holding an n-gram's
64-bit hash, its probability and back-off side by side; see the notes above
:func:`_probing_insert`). Scoring then probes those tables, one cache line per look-up, instead of
bisecting the trie; everything else (sampling, adaptation, writing ARPA) reads the trie. The tables
are not quantised (as in KenLM): float32 values by default, like KenLM's, or float64 (``-q 64 -b
64``: scores bit-identical to the ARPA model's).

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


STRUCTURES = ("trie", "probing")


def value_bits(structure: str, prob_bits: int | None, backoff_bits: int | None) -> tuple[int, int]:
    """The value widths, defaults filled in: float64 in the trie (scores bit-identical to the ARPA
    model's), float32 in the probing tables (KenLM's probing values; half the memory)."""
    default = 32 if structure == "probing" else 64
    return (default if prob_bits is None else prob_bits), (default if backoff_bits is None else backoff_bits)


def check_structure(structure: str, prob_bits: int, backoff_bits: int, what: str = "structure") -> None:
    """Refuse an unknown structure, or quantised / mixed-width values for ``probing`` (as KenLM does)."""
    if structure not in STRUCTURES:
        raise UsageError(f"{what} must be one of {', '.join(STRUCTURES)}, got {structure!r}")
    if structure == "probing" and (prob_bits != backoff_bits or prob_bits not in (32, 64)):
        raise UsageError(f"the probing structure stores float64 (64) or float32 (32) probabilities and back-offs of "
                         f"one width (got {prob_bits} and {backoff_bits} bits); quantised values need the trie "
                         "(as in KenLM)")


class _Lazy:
    """A section of known type and length whose array is made only when it is written (then dropped)."""

    def __init__(self, dtype, size: int, make):
        self.dtype, self.size, self.make = np.dtype(dtype), int(size), make
        self.nbytes = self.size * self.dtype.itemsize


def _probing_sections(model: NgramModel, bits: int, path) -> list[tuple[str, _Lazy]]:
    """Per order n >= 2 its hash table, flat uint32 (see the probing notes above), made as it is written:
    one order's hashes and table in memory at a time."""
    dtype = np.float64 if bits == 64 else np.float32
    pcol, bcol = _value_columns(bits)
    orders = _hash_orders(model)

    def table(n: int, slots: int, width: int):
        def make() -> np.ndarray:
            hashes = next(orders)
            top = n == model.order
            words = np.zeros((slots, width), dtype=np.uint32)
            probs = np.ascontiguousarray(np.asarray(model.logprob[n - 1], dtype=np.float64))
            backoffs = np.zeros(0) if top else np.ascontiguousarray(np.asarray(model.backoff[n - 1], dtype=np.float64))
            dup = INSERT(hashes, probs, backoffs, words, words.view(dtype), pcol, bcol)
            if dup:
                raise FormatError(f"{path}: {dup} {n}-grams share a 64-bit hash with another; write the trie structure")
            return words.reshape(-1)
        return make

    out = []
    for n in range(2, model.order + 1):
        count = model.sizes()[n - 1]
        slots = max(int(count * PROBING_MULTIPLIER) + 1, count + 1)
        if slots >= 1 << 32:
            raise FormatError(f"{path}: {count:,} {n}-grams are too many for one probing table; write the trie")
        width = _slot_words(bits, n == model.order)
        out.append((f"probing.{n}", _Lazy(np.uint32, slots * width, table(n, slots, width))))
    return out


def write_binary(model: NgramModel, path: str | os.PathLike, prob_bits: int | None = None,
                 backoff_bits: int | None = None, structure: str = "trie") -> None:
    """Write ``model`` as a binary file (atomically); ``*_bits``: 64, 32 or 2..16 (see the module docstring;
    None: 64 for the trie, 32 for probing, see :func:`value_bits`). ``structure="probing"`` adds KenLM-style
    hash tables that the query kernel uses instead of the trie (the trie's sections stay: every other
    use of the model reads them; they hold the same widths). The sections are streamed into the file
    (the probing tables made one order at a time), the prefix with its checksums written last."""
    prob_bits, backoff_bits = value_bits(structure, prob_bits, backoff_bits)
    check_bits(prob_bits, "prob_bits")
    check_bits(backoff_bits, "backoff_bits")
    check_structure(structure, prob_bits, backoff_bits)
    words = model.vocab.words
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise FormatError(f"{path}: the word {w!r} cannot be stored (empty or with whitespace)")
    sections: list = [("vocab", np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8))]
    N = model.order
    for n in range(1, N + 1):
        if n >= 2:
            sections.append((f"keys.{n}", np.ascontiguousarray(model.keys[n - 1], dtype=np.int64)))
            sections.append((f"children.{n}", _children(model.keys[n - 1], model.V, len(model.keys[n - 2]))))
        pb, bb = (64, 64) if n == 1 else (prob_bits, backoff_bits)
        sections += [(f"prob.{n}{tail}", a) for tail, a in _columns(model.logprob[n - 1], pb, (LOG10_ZERO,))]
        if n < N:
            sections += [(f"backoff.{n}{tail}", a) for tail, a in _columns(model.backoff[n - 1], bb, (0.0, LOG10_ZERO))]
    if structure == "probing" and N >= 2:
        sections += _probing_sections(model, prob_bits, path)
    table, offset = [], 0
    for name, a in sections:
        offset = -(-offset // _ALIGN) * _ALIGN
        table.append({"name": name, "dtype": a.dtype.str, "offset": offset, "length": int(a.size)})
        offset += a.nbytes
    header = {"format": "lmlab n-gram binary", "order": N, "vocab_size": model.V, "sizes": model.sizes(),
              "prob_bits": prob_bits, "backoff_bits": backoff_bits, "suffix_closed": _suffix_closed(model),
              "structure": structure if N >= 2 else "trie",
              "info": _json_safe({k: v for k, v in model.info.items() if k != "binary"}),
              "sections": table}
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    start = -(-(_PREFIX.size + len(text)) // _ALIGN) * _ALIGN
    text += b" " * (start - _PREFIX.size - len(text))  # pad the JSON with spaces up to the payload
    size = start + offset
    crc = 0
    pad = bytes(_ALIGN)
    with atomic_open(path) as f:
        f.write(bytes(_PREFIX.size))  # (the prefix holds the payload's checksum: written when it is known)
        f.write(text)
        at = 0
        for entry, (_, a) in zip(table, sections):
            gap = entry["offset"] - at
            f.write(pad[:gap])
            crc = zlib.crc32(pad[:gap], crc)
            raw = memoryview(a.make() if isinstance(a, _Lazy) else a).cast("B")
            for lo in range(0, len(raw), _CRC_BLOCK):
                crc = zlib.crc32(raw[lo: lo + _CRC_BLOCK], crc)
            f.write(raw)
            at = entry["offset"] + len(raw)
            del raw
        f.seek(0)
        f.write(_PREFIX.pack(MAGIC, VERSION, len(text), _header_crc(VERSION, len(text), crc, size, text), crc, size))


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


# ---------------------------------------------------------------------------------------------
# The probing structure (KenLM's ``build_binary probing``): per order n >= 2 one open-addressing
# hash table whose slot holds the n-gram's 64-bit hash with its log10 probability and back-off,
# side by side, so that a look-up costs one or two probes of one cache line where the trie's
# bisection costs several dependent reads. The hash of an n-gram is computed from its prefix's
# hash and its last word (``_extend``), so a query extends the hash of the (n-1)-gram ending at
# the word before. Like KenLM, the words are not stored: two n-grams whose 64-bit hashes agree
# cannot be told apart. For listed n-grams that is checked when the table is written (a collision
# is refused); an unlisted n-gram of a query is taken for a listed one with probability ~ (listed
# n-grams of that order) / 2**64 per look-up, about 1e-12 for ten million n-grams.
#
# A slot is ``W`` uint32 words: the hash (low word, high word), then the probability and (below
# the top order) the back-off, each one word (float32) or two (float64, 8-byte aligned: the slot
# is then 24 or 16 bytes). An empty slot's hash is 0 (``_extend`` never gives 0). The home slot
# of hash h in a table of S slots is ``(h >> 32) * S >> 32``; collisions probe the next slots
# (linear probing), wrapping at the end. S = 1.5 x the n-grams, KenLM's default multiplier.

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_LOW = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
PROBING_MULTIPLIER = 1.5


def _mix(x):
    """The 64-bit finaliser of MurmurHash3 (a bijection that spreads every input bit)."""
    x = x ^ (x >> _S33)
    x = x * _M1
    x = x ^ (x >> _S33)
    x = x * _M2
    return x ^ (x >> _S33)


def _unigram_hash(w):
    return _mix_compiled(np.uint64(w) + _GOLD)


def _extend(h, w):
    """The hash of an n-gram from the hash ``h`` of its first n-1 words and its last word ``w`` (never 0)."""
    x = _mix_compiled((h * _GOLD) ^ (np.uint64(w) + _ONE))
    return x if x != _ZERO else _ONE


def _hash_orders(model: NgramModel):
    """Yield per order n >= 2 the uint64 hash of each listed n-gram in key order, computed from its
    prefix's hash as :func:`_extend` does (numpy, vectorised; same values bit for bit); only the
    order before is kept."""
    V = model.V
    with np.errstate(over="ignore"):
        h = _mix(np.arange(V, dtype=np.uint64) + _GOLD)
    for n in range(2, model.order + 1):
        keys = np.asarray(model.keys[n - 1], dtype=np.int64)
        prefix = keys // V
        w = (keys - prefix * V).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = _mix((h[prefix] * _GOLD) ^ (w + _ONE))
        h[h == 0] = _ONE
        del prefix, w
        yield h


def ngram_hashes(model: NgramModel) -> list[np.ndarray]:
    """Per order n >= 2 (index n - 2) the hashes :func:`_hash_orders` yields."""
    return list(_hash_orders(model))


def _slot_words(bits: int, top: bool) -> int:
    """uint32 words per slot: the hash (2), the probability and, below the top order, the back-off."""
    per_value = 2 if bits == 64 else 1
    return 2 + per_value * (1 if top else 2)


def _value_columns(bits: int) -> tuple[int, int]:
    """(probability, back-off) column of a slot in its float view (float64: 8-byte columns)."""
    return (1, 2) if bits == 64 else (2, 3)


def _probing_insert(hashes, probs, backoffs, words, vals, pcol, bcol):
    """Insert the n-grams of one order into an empty table (``words``: (S, W) uint32; ``vals`` the
    float view of the same memory); ``backoffs`` empty for the top order. Returns how many hashes
    were already present (collisions: the table is then unusable)."""
    S = np.uint64(words.shape[0])
    dup = 0
    for i in range(len(hashes)):
        h = hashes[i]
        lo = np.uint32(h & _LOW)
        hi = np.uint32(h >> _S32)
        s = np.int64(((h >> _S32) * S) >> _S32)
        while words[s, 0] != 0 or words[s, 1] != 0:
            if words[s, 0] == lo and words[s, 1] == hi:
                dup += 1
                break
            s += 1
            if s == words.shape[0]:
                s = 0
        words[s, 0] = lo
        words[s, 1] = hi
        vals[s, pcol] = probs[i]
        if len(backoffs) > 0:
            vals[s, bcol] = backoffs[i]
    return dup


def _probe(words, h):
    """Slot of hash ``h`` in one order's table, or -1 (linear probing from its home slot)."""
    lo = np.uint32(h & _LOW)
    hi = np.uint32(h >> _S32)
    size = words.shape[0]
    s = np.int64(((h >> _S32) * np.uint64(size)) >> _S32)
    while True:
        a = words[s, 0]
        b = words[s, 1]
        if a == lo and b == hi:
            return s
        if a == 0 and b == 0:
            return -1
        s += 1
        if s == size:
            s = 0


def _unigram_pass(ids, V, N, uni_lp, uni_bo, hashes, probs, bos):
    """First pass of :func:`_probing_kernel`: the unigrams' hashes, probabilities and back-offs."""
    for t in range(len(ids)):
        w = ids[t]
        if w < V:
            hashes[0, t] = _unigram_hash_compiled(w)
            probs[t] = uni_lp[w]
            if N > 1:
                bos[0, t] = uni_bo[w]
        else:
            hashes[0, t] = 0
            probs[t] = uni_lp[0]


def _ngram_pass(n, N, ids, pos, table, values, pcol, bcol, closed, hashes, probs, bos):
    """The pass of order n: look up the n-gram ending at each t whose prefix (the (n-1)-gram ending at
    t - 1) is listed; where it is found, take its probability and back-off from the slot."""
    for t in range(len(ids)):
        h = _ZERO
        if t >= 1 and pos[t] >= n - 1:
            prefix = hashes[n - 2, t - 1]
            # in a suffix-closed table the n-gram ending at t needs its suffix, the (n-1)-gram ending at t
            if prefix != 0 and (hashes[n - 2, t] != 0 or not closed):
                h = _extend_compiled(prefix, ids[t])
                s = _probe_compiled(table, h)
                if s >= 0:
                    probs[t] = values[s, pcol]
                    if n < N:
                        bos[n - 1, t] = values[s, bcol]
                else:
                    h = _ZERO
        hashes[n - 1, t] = h


def _score_pass(ids, pos, N, compact, hashes, probs, bos, logp, matched, is_oov, sent):
    """Last pass: each position's score from the arrays the passes filled (position order only)."""
    out = 0
    sentence = -1
    for t in range(len(ids)):
        m = 0
        for n in range(1, N + 1):
            if hashes[n - 1, t] != 0:
                m = n
        value = np.float64(probs[t])
        if t >= 1:
            for k in range(1, N):
                if m <= k and hashes[k - 1, t - 1] != 0:
                    value += np.float64(bos[k - 1, t - 1])
                else:
                    value += 0.0
        out, sentence = _emit_compiled(compact, t, pos[t], ids[t], value, m, out, sentence, logp, matched, is_oov,
                                       sent)


def _probing_kernel(ids, pos, V, N, words, vals, pcol, bcol, uni_lp, uni_bo, closed, compact, hashes, probs, bos,
                    logp, matched, is_oov, sent):
    """:func:`_trie_kernel` over the probing tables. Order-major passes as there, but a look-up
    that finds its n-gram takes the values from the slot at once (they share its cache line):
    ``hashes[n-1, t]`` is the hash of the n-gram ending at t, 0 if it is not listed;
    ``probs[t]`` the probability of the longest listed one, ``bos[n-1, t]`` the back-off of the
    listed n-gram ending at t (n < N). The last pass reads only these position-ordered arrays.
    ``words[n-2]``/``vals[n-2]``: order n's slots as uint32 words and as floats. Same
    floating-point operations in the same order as the trie kernel: with the same value width
    the scores are bit-identical.

    Each pass is its own compiled function: written as one loop nest in one function, the same
    passes ran 1.4x slower (measured; LLVM optimises the small loops better apart)."""
    _unigram_pass_compiled(ids, V, N, uni_lp, uni_bo, hashes, probs, bos)
    for n in range(2, N + 1):
        _ngram_pass_compiled(n, N, ids, pos, words[n - 2], vals[n - 2], pcol, bcol, closed, hashes, probs, bos)
    _score_pass_compiled(ids, pos, N, compact, hashes, probs, bos, logp, matched, is_oov, sent)

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
_emit_compiled = _emit  # (likewise the jitted model._emit, and the probing helpers)
_probe_compiled = _probe
_mix_compiled = _mix
_extend_compiled = _extend
_unigram_hash_compiled = _unigram_hash
_unigram_pass_compiled = _unigram_pass
_ngram_pass_compiled = _ngram_pass
_score_pass_compiled = _score_pass


def _jit_helpers() -> None:
    global _find_compiled, _emit_compiled, _probe_compiled, _extend_compiled, _unigram_hash_compiled, _mix_compiled
    global _unigram_pass_compiled, _ngram_pass_compiled, _score_pass_compiled
    if _find_compiled is _find:
        from .._numba import njit

        _find_compiled = njit(cache=True, nogil=True)(_find)
        _emit_compiled = _emit_jitted()
        _mix_compiled = njit(cache=True, nogil=True, inline="always")(_mix)
        _probe_compiled = njit(cache=True, nogil=True)(_probe)
        _extend_compiled = njit(cache=True, nogil=True, inline="always")(_extend)
        _unigram_hash_compiled = njit(cache=True, nogil=True, inline="always")(_unigram_hash)
        _unigram_pass_compiled = njit(cache=True, nogil=True)(_unigram_pass)
        _ngram_pass_compiled = njit(cache=True, nogil=True)(_ngram_pass)
        _score_pass_compiled = njit(cache=True, nogil=True)(_score_pass)


TRIE = Kernel(_trie_kernel, _jit_helpers)
STEP = Kernel(_child_rows, _jit_helpers)
PROBING = Kernel(_probing_kernel, _jit_helpers)
INSERT = Kernel(_probing_insert, _jit_helpers)


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
    mapped sorted tables directly (:func:`_probing_kernel` over the hash tables of a probing file), or without numba looks keys up with ``np.searchsorted``
    over the whole stream per order; no hash index is built, so nothing at load time is
    proportional to the model's size.
    """

    def index(self):
        return None

    def describe(self) -> str:
        b = self.info.get("binary", {})
        bits = b.get("prob_bits"), b.get("backoff_bits")
        names = [{64: "float64", 32: "float32"}.get(x, f"{x}-bit quantised") for x in bits]
        values = names[0] if bits[0] == bits[1] else f"{names[0]} probability, {names[1]} back-off"
        return f"{super().describe()}; binary {b.get('structure', 'trie')}, {values} values"

    def use_compiled(self, positions: int | None = None) -> bool:  # (the trie kernel needs no index)
        return self.order >= 2 and _trie_scorer() is not None

    def _score_compiled(self, ids: np.ndarray, pos: np.ndarray, compact: bool):
        N = self.order
        size = int(np.count_nonzero(pos > 0)) if compact else len(ids)
        logp = np.empty(size, dtype=np.float64)
        matched = np.empty(size, dtype=np.int64)
        is_oov = np.empty(size if compact else 0, dtype=np.bool_)
        sent = np.empty(size if compact else 0, dtype=np.int64)
        if ("probing", 2) in self._cache:
            return self._score_probing(ids, pos, compact, logp, matched, is_oov, sent)
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

    def _score_probing(self, ids, pos, compact, logp, matched, is_oov, sent):
        N = self.order
        if "probing" not in self._cache:
            bits = self.info["binary"]["prob_bits"]
            dtype = np.float64 if bits == 64 else np.float32
            words = tuple(_readonly(self._cache[("probing", n)]) for n in range(2, N + 1))
            self._cache["probing"] = (words, tuple(_readonly(w.view(dtype)) for w in words), *_value_columns(bits),
                                      np.asarray(self.logprob[0], dtype=np.float64),
                                      np.asarray(self.backoff[0], dtype=np.float64),
                                      bool(self.info["binary"].get("suffix_closed", False)))
        words, vals, pcol, bcol, uni_lp, uni_bo, closed = self._cache["probing"]
        hashes = np.empty((N, len(ids)), dtype=np.uint64)
        probs = np.empty(len(ids), dtype=np.float64)
        bos = np.empty((N - 1, len(ids)), dtype=np.float64)
        PROBING(np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(pos, dtype=np.int64), self.V, N,
                words, vals, pcol, bcol, uni_lp, uni_bo, closed, compact, hashes, probs, bos, logp, matched, is_oov,
                sent)
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
        if f"probing.{n}" in table:
            bits = header.get("prob_bits")
            if bits not in (32, 64):
                raise _refuse(path, f"probing table of order {n} with {bits}-bit values (corrupt file)")
            flat = section(f"probing.{n}")
            width = _slot_words(bits, n == order)
            if len(flat) % width or len(flat) // width <= sizes[n - 1]:
                raise _refuse(path, f"section 'probing.{n}' does not fit its n-grams (corrupt file)")
            children[("probing", n)] = flat.reshape(-1, width)
    for n in range(1, order):
        backoff.append(column(f"backoff.{n}", sizes[n - 1]))
    backoff.append(np.zeros(sizes[-1]))  # the top order has no back-off weights (calloc'ed: no memory until read)
    info = dict(header.get("info") or {})
    info["binary"] = {"path": path, "prob_bits": header.get("prob_bits"), "backoff_bits": header.get("backoff_bits"),
                      "suffix_closed": bool(header.get("suffix_closed", False)),
                      "structure": "probing" if ("probing", 2) in children else "trie"}
    model = BinaryNgramModel(vocab, keys, logprob, backoff, info)
    model._cache.update(children)
    return model


__all__ = ["MAGIC", "STRUCTURES", "SUFFIX", "VERSION", "BinaryNgramModel", "Quantized", "is_binary",
           "ngram_hashes", "read_binary", "value_bits", "write_binary"]
