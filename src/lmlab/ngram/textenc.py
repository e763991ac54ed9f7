"""Tokenized text -> the id stream a model scores, in pieces and without a Python object per token.

:func:`encode_text` (and :meth:`NgramModel.evaluate_text`) read a test
file here. The text is cut into pieces of about :data:`PIECE` bytes, each ending after a
newline (a sentence never straddles two pieces, so a piece is scored on its own and only one
piece's ids are in memory at a time). With numba, a piece is split and looked up in one
compiled pass over its bytes: every word of the vocabulary is hashed once into an
open-addressing table (FNV-1a over its UTF-8 bytes, linear probing, at most half full), and
each token of the text is hashed and compared byte for byte against its slot's word, as
KenLM's ``query`` maps words through a hash of their bytes (Heafield 2011, sec. 4.1) rather
than a dictionary of string objects. Without numba, or for text with whitespace other than
``' '``, ``'\\t'`` and ``'\\n'`` (where ``str.split`` / ``str.splitlines`` differ from a
byte-wise split), each piece goes through :func:`split_text` and a dict look-up per token.

Either way a piece gives exactly what :func:`lmlab.ngram.counts.encode` gives for
``[line.split() for line in piece.splitlines() if line.strip()]``: ids (OOVs as ``<unk>``)
and positions (``<s>`` at 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._numba import Kernel, have_kernels
from ..errors import DataError

if TYPE_CHECKING:
    from .counts import Vocabulary

PIECE = 256 << 10  # bytes of text per piece (cut after the next newline); with 4 MB, scoring 3M words held ~100 MB more
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def pieces(data: bytes, size: int):
    """(lo, hi) byte ranges of ``data`` of about ``size`` bytes, each ending after a newline (or at the end)."""
    at = 0
    while at < len(data):
        end = data.find(b"\n", min(len(data), at + size))
        end = len(data) if end < 0 else end + 1
        yield at, end
        at = end


def _fnv(data, lo, hi):
    h = np.uint64(_FNV_OFFSET)
    for i in range(lo, hi):
        h = (h ^ np.uint64(data[i])) * np.uint64(_FNV_PRIME)
    return h


def _same(a, alo, ahi, b, blo, bhi):
    if ahi - alo != bhi - blo:
        return False
    for i in range(ahi - alo):
        if a[alo + i] != b[blo + i]:
            return False
    return True


def _build_table(blob, starts, ends, bits):
    """Slot -> word id (-1: empty) of every word ``blob[starts[i]:ends[i]]``; a repeated word keeps its last id."""
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    table = np.full(1 << bits, -1, dtype=np.int32)
    for i in range(len(starts)):
        s = np.int64(_fnv_c(blob, starts[i], ends[i]) >> shift)
        while table[s] >= 0 and not _same_c(blob, starts[table[s]], ends[table[s]], blob, starts[i], ends[i]):
            s = (s + 1) & mask
        table[s] = i
    return table


def _count_tokens(data):
    """(tokens, non-blank lines) of a piece split at ' ', '\\t' and '\\n'."""
    tokens = 0
    lines = 0
    inside = False
    line_has = False
    for i in range(len(data)):
        b = data[i]
        if b == 10:
            if line_has:
                lines += 1
            line_has = False
            inside = False
        elif b == 32 or b == 9:
            inside = False
        elif not inside:
            tokens += 1
            inside = True
            line_has = True
    if line_has:
        lines += 1
    return tokens, lines


def _token(data, i, table, mask, shift, blob, starts, ends):
    """The token starting at ``data[i]`` (up to ' ', '\\t', '\\n' or the end): (one past its last byte,
    its slot in ``table``, its id there or -1 when the slot found is empty)."""
    h = np.uint64(_FNV_OFFSET)
    j = i
    while j < len(data):
        x = data[j]
        if x == 32 or x == 9 or x == 10:
            break
        h = (h ^ np.uint64(x)) * np.uint64(_FNV_PRIME)
        j += 1
    s = np.int64(h >> shift)
    while table[s] >= 0:
        k = table[s]
        if _same_c(blob, starts[k], ends[k], data, i, j):
            return j, s, k
        s = (s + 1) & mask
    return j, s, -1


def _fill(data, table, bits, blob, starts, ends, ids, pos):
    """Write the stream ``<s> w.. </s> ...`` of a piece into ``ids``/``pos``; returns the number of OOV tokens."""
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    n = len(data)
    t = 0
    p = 0  # position in the current sentence; 0: no sentence open
    oov = 0
    i = 0
    while i < n:
        b = data[i]
        if b == 10:
            if p > 0:
                ids[t] = 2  # EOS_ID
                pos[t] = p
                t += 1
                p = 0
            i += 1
        elif b == 32 or b == 9:
            i += 1
        else:
            j, s, w = _token_c(data, i, table, mask, shift, blob, starts, ends)
            if p == 0:
                ids[t] = 1  # BOS_ID
                pos[t] = 0
                t += 1
                p = 1
            if w < 0:
                oov += 1
                w = 0  # UNK_ID
            ids[t] = w
            pos[t] = p
            t += 1
            p += 1
            i = j
    if p > 0:
        ids[t] = 2
        pos[t] = p
    return oov


def _lookup_spans(data, lo, hi, table, bits, blob, starts, ends, out):
    """``out[i]``: the id of the word ``data[lo[i]:hi[i]]``, -1 if it is not in the vocabulary."""
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    for i in range(len(lo)):
        s = np.int64(_fnv_c(data, lo[i], hi[i]) >> shift)
        w = -1
        while table[s] >= 0:
            k = table[s]
            if _same_c(blob, starts[k], ends[k], data, lo[i], hi[i]):
                w = k
                break
            s = (s + 1) & mask
        out[i] = w


def _intern(data, state, table, bits, blob, starts, ends, out, lengths):
    """Number the tokens of a piece (split at ' ', '\\t', '\\n') by the byte hash, adding unseen words.

    ``out[t]``: the id of token t; ``lengths[k]``: the tokens of non-blank line k. A word not in
    ``table`` gets the next id: its bytes are appended to ``blob`` (``starts``/``ends``) and it takes its
    slot. ``state`` = (byte, token, line, tokens in the open line, words, blob bytes used) says where
    the pass is; it returns 1, leaving ``state`` at the token it stopped before, when adding a word
    would fill the table over half or overrun ``blob``/``starts`` (the caller grows them and calls
    again), 0 when the piece is done."""
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    n = len(data)
    i, t, line, c, words, used = state[0], state[1], state[2], state[3], state[4], state[5]
    while i < n:
        b = data[i]
        if b == 10:
            if c > 0:
                lengths[line] = c
                line += 1
                c = 0
            i += 1
        elif b == 32 or b == 9:
            i += 1
        else:
            j, s, w = _token_c(data, i, table, mask, shift, blob, starts, ends)
            if w < 0:
                if 2 * (words + 1) > len(table) or words >= len(starts) or used + (j - i) > len(blob):
                    state[0], state[1], state[2], state[3], state[4], state[5] = i, t, line, c, words, used
                    return 1
                for q in range(j - i):
                    blob[used + q] = data[i + q]
                starts[words] = used
                ends[words] = used + (j - i)
                used += j - i
                table[s] = words
                w = words
                words += 1
            out[t] = w
            t += 1
            c += 1
            i = j
    if c > 0:
        lengths[line] = c
        line += 1
        c = 0
    state[0], state[1], state[2], state[3], state[4], state[5] = i, t, line, c, words, used
    return 0


class Interner:
    """Word bytes -> id in order of first appearance, kept as a byte hash (what counting a text needs).

    The words live in one byte array with their spans and an open-addressing table over them (FNV-1a,
    linear probing, at most half full), grown by doubling; :meth:`encode` numbers a piece's tokens in
    one compiled pass (:func:`_intern`) instead of a dict look-up per token. ``words(lo)`` gives the
    words from id ``lo`` on as ``bytes``, so a caller can keep a dict of the (few) new words in step.
    """

    def __init__(self, words: list[bytes]):
        self.n, self.used, self.bits = 0, 0, 4
        self.blob = np.zeros(1 << 16, dtype=np.uint8)
        self.starts = np.zeros(1 << 10, dtype=np.int64)
        self.ends = np.zeros(1 << 10, dtype=np.int64)
        self.table = np.full(1 << self.bits, -1, dtype=np.int32)
        self.add(words)

    def add(self, words: list[bytes]) -> None:
        """Append these words (not yet known) with the next ids."""
        for w in words:
            self._room(len(w), 1)
            self.blob[self.used:self.used + len(w)] = np.frombuffer(w, dtype=np.uint8)
            self.starts[self.n], self.ends[self.n] = self.used, self.used + len(w)
            self.used += len(w)
            self.n += 1
        self._rehash()

    def _room(self, more_bytes: int, more_words: int) -> None:
        if self.used + more_bytes > len(self.blob):
            self.blob = np.concatenate([self.blob, np.zeros(max(len(self.blob), more_bytes), dtype=np.uint8)])
        if self.n + more_words > len(self.starts):
            grow = max(len(self.starts), more_words)
            self.starts = np.concatenate([self.starts, np.zeros(grow, dtype=np.int64)])
            self.ends = np.concatenate([self.ends, np.zeros(grow, dtype=np.int64)])

    def _rehash(self) -> None:
        self.bits = max(4, int(2 * (self.n + 1)).bit_length())  # 2^bits > 2 (n + 1): room for one more word
        self.table = _kernels()[0](self.blob, self.starts[:self.n], self.ends[:self.n], self.bits)

    def encode(self, piece: bytes) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the tokens, tokens per non-blank line) of a piece split at ' ', '\\t', '\\n' only."""
        kernels = _kernels()
        raw = np.frombuffer(piece, dtype=np.uint8)
        tokens, lines = kernels[1](raw)
        out = np.empty(tokens, dtype=np.int64)
        lengths = np.empty(lines, dtype=np.int64)
        state = np.array([0, 0, 0, 0, self.n, self.used], dtype=np.int64)
        while kernels[4](raw, state, self.table, self.bits, self.blob, self.starts, self.ends, out, lengths):
            self.n, self.used = int(state[4]), int(state[5])
            self._room(len(piece) - int(state[0]), 1)     # room for the rest of the piece's bytes
            self._room(0, self.n)                           # and twice the words
            self._rehash()                                  # a table at most half full again
        self.n, self.used = int(state[4]), int(state[5])
        return out, lengths

    def words(self, lo: int) -> list[bytes]:
        """The words with ids ``lo`` .. n - 1, as bytes."""
        if lo >= self.n:
            return []
        base = int(self.starts[lo])
        blob = self.blob[base:self.used].tobytes()
        return [blob[a - base:b - base] for a, b in zip(self.starts[lo:self.n].tolist(), self.ends[lo:self.n].tolist())]


_fnv_c = _fnv  # the jitted helpers once _jit_helpers() has run (the kernels call these names)
_same_c = _same
_token_c = _token


def _jit_helpers() -> None:
    """Compile the helpers the kernels call by name (before the kernels themselves are compiled)."""
    global _fnv_c, _same_c, _token_c
    if _fnv_c is _fnv:
        from .._numba import njit

        _fnv_c = njit(cache=True, nogil=True, inline="always")(_fnv)
        _same_c = njit(cache=True, nogil=True, inline="always")(_same)
        _token_c = njit(cache=True, nogil=True, inline="always")(_token)


KERNELS = tuple(Kernel(f, _jit_helpers) for f in (_build_table, _count_tokens, _fill, _lookup_spans, _intern))


def _kernels():
    """(build_table, count_tokens, fill, lookup_spans, intern) compiled with numba (ahead of time where
    the module is built, see :mod:`lmlab._numba`), or None without numba."""
    return KERNELS if have_kernels() else None


def _blob(vocab) -> bytes:
    """The vocabulary's words as UTF-8, one per line (a mapped binary model's own section)."""
    blob = vocab.__dict__.get("_blob")
    return blob if blob is not None else "\n".join(vocab.words).encode("utf-8")


def _word_table(vocab):
    """(table, bits, blob, starts, ends) of the vocabulary's byte hash, built on first use and cached."""
    cached = vocab.__dict__.get("_word_table")
    if cached is None:
        blob = np.frombuffer(_blob(vocab), dtype=np.uint8)
        breaks = np.flatnonzero(blob == 10)
        starts = np.concatenate(([0], breaks + 1)).astype(np.int64)
        ends = np.concatenate((breaks, [len(blob)])).astype(np.int64)
        if len(starts) != len(vocab):
            raise DataError(f"vocabulary of {len(vocab)} words has {len(starts)} lines (a word with a newline?)")
        bits = max(4, int(2 * len(starts)).bit_length())  # at most half full
        table = _kernels()[0](blob, starts, ends, bits)
        cached = vocab.__dict__["_word_table"] = (table, bits, blob, starts, ends)
    return cached


def lookup_spans(data: np.ndarray, lo: np.ndarray, hi: np.ndarray, vocab) -> np.ndarray | None:
    """The vocabulary id of each word ``data[lo[i]:hi[i]]`` (bytes, uint8 array), -1 for a word outside
    it; None without numba."""
    kernels = _kernels()
    if kernels is None:
        return None
    table, bits, blob, starts, ends = _word_table(vocab)
    out = np.empty(len(lo), dtype=np.int64)
    kernels[3](data, np.ascontiguousarray(lo, dtype=np.int64), np.ascontiguousarray(hi, dtype=np.int64),
               table, bits, blob, starts, ends, out)
    return out


def encode_text(data: bytes | str, vocab: Vocabulary, where: str = "text") -> tuple[np.ndarray, np.ndarray, int, int]:
    """Tokenized text (one sentence per line) -> (ids, pos, n_oov, n_sentences), as :func:`encode` of
    ``[line.split() for line in lines if line.strip()]`` gives, split in one pass per piece of the text
    (:func:`encode_pieces`: with numba, a compiled pass over the bytes)."""
    parts = list(encode_pieces(data, vocab, where))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0, 0
    ids = np.concatenate([p[0] for p in parts])
    pos = np.concatenate([p[1] for p in parts])
    return ids, pos, sum(p[2] for p in parts), sum(p[3] for p in parts)


def stream_pieces(f, size: int):
    """(offset, bytes) of the pieces of a binary file object read ``size`` bytes at a time, each ending
    after a newline (or at the end): :func:`pieces` without holding the whole text."""
    at = 0
    carry = b""
    while True:
        chunk = f.read(size)
        if not chunk:
            if carry:
                yield at, carry
            return
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if not cut:  # (a line longer than the piece: read on)
            carry = data
            continue
        yield at, data[:cut]
        at += cut
        carry = data[cut:]


def encode_pieces(data, vocab, where: str = "text", size: int | None = None):
    """Yield (ids, pos, n_oov, n_sentences) per piece of tokenized text (see the module docstring):
    ``data`` is bytes, a str, or a binary file object read a piece at a time.

    Invalid UTF-8 raises :class:`DataError` naming the byte offset in the whole text."""
    from .counts import _only_plain_spaces

    if isinstance(data, str):
        data = data.encode("utf-8")
    size = PIECE if size is None else size
    if hasattr(data, "read"):
        source = stream_pieces(data, size)
    else:
        source = ((lo, data[lo:hi]) for lo, hi in pieces(data, size))
    kernels = _kernels()
    for lo, piece in source:
        try:
            str(piece, "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: not valid UTF-8 at byte {lo + err.start}") from None
        if kernels is None or not _only_plain_spaces(piece):
            ids, pos, n_oov, n = _encode_with_dict(piece, vocab, where)
            if n:
                yield ids, pos, n_oov, n
            continue
        raw = np.frombuffer(piece, dtype=np.uint8)
        tokens, lines = kernels[1](raw)
        if not lines:
            continue
        table, bits, blob, starts, ends = _word_table(vocab)
        ids = np.empty(tokens + 2 * lines, dtype=np.int64)
        pos = np.empty(tokens + 2 * lines, dtype=np.int64)
        n_oov = kernels[2](raw, table, bits, blob, starts, ends, ids, pos)
        yield ids, pos, int(n_oov), int(lines)


def _encode_with_dict(piece: bytes, vocab, where: str):
    """One piece through :func:`split_text` and one dict look-up per token (no numba, or unusual whitespace)."""
    from .counts import UNK_ID, _IdLookup, _stream, split_text

    tokens, lengths = split_text(piece, where)
    if tokens and isinstance(tokens[0], bytes):
        lookup = vocab.__dict__.get("_bytes_lookup")
        if lookup is None:
            lookup = vocab.__dict__["_bytes_lookup"] = _IdLookup(zip((w.encode("utf-8") for w in vocab.words),
                                                                       range(len(vocab))))
    else:
        lookup = vocab.lookup
    words = np.fromiter(map(lookup.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    n_oov = int(np.count_nonzero(words < 0))
    words[words < 0] = UNK_ID
    ids, pos = _stream(words, lengths)
    return ids, pos, n_oov, len(lengths)
