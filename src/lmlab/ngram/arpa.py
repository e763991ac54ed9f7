"""ARPA back-off files: writer and reader (the seam between estimating and querying).

Format (Paul & Baker 1992; as SRILM's ``ngram-format(5)`` and KenLM write it)::

    \\data\\
    ngram 1=7488
    ngram 2=26271

    \\1-grams:
    -4.4239480000	<unk>	0
    -99	<s>	-0.5000486400
    ...
    \\end\\

one line per n-gram: log10 p(w | h), the words, and (below the top order) the
log10 back-off weight of the n-gram as a history (0 when it has no extensions).

Writer: probabilities are held in memory rounded to 10 decimals (see
:func:`lmlab.ngram.smoothing.quantize`) and written with exactly those digits,
so reading a written file gives back bit-identical numbers and scores. No Python loop
per n-gram: per chunk of 8192 lines, one compiled pass formats each line into a buffer
(:func:`_format_lines`, compiled ahead of time, so writing imports no numba; an earlier
numba writer compiled just in time was slower than numpy because of numba's import and
cache load). Without numba the text is assembled with numpy: the numbers are formatted
into fixed 24-byte records with lookup tables of digit groups (:func:`_format_records`),
and each line's bytes -- number record, word entries of a word blob, back-off record --
are gathered in one ``np.take`` (:func:`_ngram_lines_numpy`). Both write the same bytes
(tested). ``<s>`` is written at -99 (SRILM's convention; KenLM writes 0 -- both mean
"never predicted").

Reader: any valid ARPA file (KenLM, SRILM, IRSTLM, lmlab): tabs or spaces,
missing back-off fields (= 0), blank lines, ``\\data\\`` preceded by comments.
Missing prefixes or suffixes of listed n-grams (legal in ARPA, written by some
pruning tools) are added with their back-off probability and weight 0, as
KenLM does, so scores do not change. A file without ``<unk>`` gets
``<unk>`` at -99 with a warning (KenLM does the same at -100).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._numba import Kernel, have_kernels
from ..errors import FormatError
from ..io import atomic_open
from .counts import BOS, EOS, UNK, Vocabulary, ngram_words
from .model import LOG10_ZERO, NgramModel, worker_threads

_CHUNK = 8192  # lines formatted at once: the work buffers (~4 MB) stay in cache and are reused
_REC = 24  # bytes per formatted number: [lead, sign, integer digits right-aligned to byte 7]['.' 10 decimals][trail]


def _digit_tables() -> dict:
    """Lookup tables for :func:`_format_records` (built once, vectorised).

    ``d5[v]``: the 5 ASCII digits of v (0..99999, zero-padded) packed little-endian in a uint64;
    ``end_lo[v]`` / ``end_hi[v]``: one past the last non-zero digit of v when v holds decimals
    6-10 / 1-5 of a record (0 / 8 (= no decimals: drop the '.') when v = 0);
    ``int{lead}[i]``, ``start{lead}[i]``: bytes 0-7 of a record for integer part i % 1000 and sign
    '-' if i >= 1000, right-aligned to byte 7 after an optional ``lead`` byte, and its first byte.
    """
    v = np.arange(100_000, dtype=np.uint64)
    digits = [(v // np.uint64(10 ** (4 - i))) % np.uint64(10) for i in range(5)]  # most significant first
    d5 = np.zeros(len(v), dtype=np.uint64)
    for i, d in enumerate(digits):
        d5 |= (d + np.uint64(48)) << np.uint64(8 * i)
    kept = np.zeros(len(v), dtype=np.int64)  # digits up to the last non-zero one
    for i, d in enumerate(digits):
        kept = np.where(d != 0, i + 1, kept)
    tables = {"d5": d5, "end_lo": np.where(kept > 0, 14 + kept, 0).astype(np.uint8),
              "end_hi": np.where(kept > 0, 9 + kept, 8).astype(np.uint8)}
    for lead in (0, 9):
        heads = [(bytes([lead]) if lead else b"") + sign + str(ip).encode() for sign in (b"", b"-") for ip in range(1000)]
        tables[f"int{lead}"] = np.array([int.from_bytes(h.rjust(8, b"\0"), "little") for h in heads], dtype=np.uint64)
        tables[f"start{lead}"] = np.array([8 - len(h) for h in heads], dtype=np.int64)
    return tables


_TABLES: dict = {}


def _format_records(x: np.ndarray, rec: np.ndarray, lead: int, trail: int) -> tuple[np.ndarray, np.ndarray]:
    """The ARPA text of each log10 value, written into ``rec`` ((M, 3) uint64 = (M, 24) bytes).

    Text: [``lead`` byte] sign, integer part, '.' and the 10 decimals of the value rounded to
    10 decimals with trailing zeros dropped (no '.' when all are zero), [``trail`` byte]:
    -1.25 -> "-1.25", -99 -> "-99", 0 -> "0". Record layout: integer part right-aligned to
    byte 7, '.' at byte 8, decimals at bytes 9-18. Returns (first byte, length) of each text
    inside its record. Digits come from lookup tables of 5-digit groups.
    """
    if not _TABLES:
        _TABLES.update(_digit_tables())
    t = _TABLES
    M = len(x)
    k = np.rint(np.asarray(x, dtype=np.float64) * 1e10).astype(np.int64)  # the value in units of 1e-10
    neg = k < 0
    u = np.abs(k).view(np.uint64)
    ip = u // np.uint64(10**10)  # integer part
    fp = u - ip * np.uint64(10**10)  # the 10 decimals as one integer
    hi = fp // np.uint64(10**5)  # decimals 1-5
    lo = fp - hi * np.uint64(10**5)  # decimals 6-10
    head = np.minimum(ip, np.uint64(999)).astype(np.int64)
    head += 1000 * neg
    rec[:, 0] = t[f"int{lead}"][head]
    start = t[f"start{lead}"][head]
    for i in np.nonzero(ip >= 1000)[0]:  # |value| >= 1000: rare, formatted one by one
        if ip[i] >= 10**6:
            raise FormatError(f"value {x[i]!r} too large for an ARPA log10 field")
        h = (bytes([lead]) if lead else b"") + (b"-" if neg[i] else b"") + str(int(ip[i])).encode()
        rec[i, 0] = int.from_bytes(h.rjust(8, b"\0"), "little")
        start[i] = 8 - len(h)
    d_lo = t["d5"][lo]
    rec[:, 1] = (t["d5"][hi] << np.uint64(8)) | (d_lo << np.uint64(48)) | np.uint64(ord("."))
    rec[:, 2] = d_lo >> np.uint64(16)
    end = np.maximum(t["end_lo"][lo], t["end_hi"][hi]).astype(np.int64)  # one past the last character kept
    if trail:
        flat = np.arange(0, M * _REC, _REC)
        flat += end
        rec.view(np.uint8).reshape(-1)[flat] = trail
        end += 1
    return start, end - start


class _Buffers:
    """One chunk's work space, reused from chunk to chunk: [word blob | number records] and the output."""

    def __init__(self, blob: bytes):
        self.base = len(blob)
        self.src = np.empty(self.base + 2 * _CHUNK * _REC, dtype=np.uint8)
        self.src[: self.base] = np.frombuffer(blob, dtype=np.uint8)
        self.blob = self.src[: self.base]  # (the word entries, for the compiled writer)
        self.index = np.empty(0, dtype=np.int64)
        self.out = np.empty(0, dtype=np.uint8)


def _write_number(x, out, at):
    """Write log10 value ``x`` at ``out[at]`` as :func:`_format_records` does (rounded to 10 decimals,
    trailing zeros and a bare '.' dropped); returns the next position, or -1 when it is too large."""
    if not abs(x) < 1e8:
        return -1
    k = np.int64(np.rint(x * 1e10))
    if k < 0:
        out[at] = 45  # '-'
        at += 1
        k = -k
    ip = k // 10_000_000_000
    fp = k - ip * 10_000_000_000
    if ip >= 1_000_000:
        return -1
    digits = 1
    scale = 1
    while ip >= scale * 10:
        scale *= 10
        digits += 1
    for _ in range(digits):
        out[at] = 48 + (ip // scale) % 10
        at += 1
        scale //= 10
    if fp:
        out[at] = 46  # '.'
        at += 1
        scale = 1_000_000_000
        while fp:
            d = fp // scale
            out[at] = 48 + d
            at += 1
            fp -= d * scale
            scale //= 10
    return at


def _format_lines(ids, logprob, backoff, blob, start, length, out):
    """The ARPA lines of M n-grams, formatted into ``out`` in one pass: "prob\tw1 w2 ...[\tbackoff]\n"
    (no back-off field when ``backoff`` is empty: the top order). Word w's bytes are
    ``blob[start[w]:start[w] + length[w]]``. Returns the bytes written, or -(i + 1) when line i's
    value is too large for the field. The same bytes as :func:`_ngram_lines_numpy`."""
    top = len(backoff) == 0
    at = 0
    for i in range(ids.shape[0]):
        at = _write_number_compiled(logprob[i], out, at)
        if at < 0:
            return -(i + 1)
        out[at] = 9
        at += 1
        for j in range(ids.shape[1]):
            if j:
                out[at] = 32
                at += 1
            w = ids[i, j]
            lo = start[w]
            for q in range(length[w]):
                out[at + q] = blob[lo + q]
            at += length[w]
        if not top:
            out[at] = 9
            at = _write_number_compiled(backoff[i], out, at + 1)
            if at < 0:
                return -(i + 1)
        out[at] = 10
        at += 1
    return at


_write_number_compiled = _write_number


def _writer_helpers() -> None:
    global _write_number_compiled
    if _write_number_compiled is _write_number:
        from .._numba import njit

        _write_number_compiled = njit(cache=True, nogil=True, inline="always")(_write_number)


FORMAT_LINES = Kernel(_format_lines, _writer_helpers)


def _ngram_lines(ids: np.ndarray, logprob: np.ndarray, backoff: np.ndarray | None, words: dict,
                 buf: _Buffers) -> np.ndarray:
    """The ARPA lines of M n-grams as bytes: compiled in one pass (:func:`_format_lines`) where numba
    is installed, else with numpy (:func:`_ngram_lines_numpy`); the same bytes either way."""
    if not have_kernels():
        return _ngram_lines_numpy(ids, logprob, backoff, words, buf)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    lengths = words["len_first"]
    bound = len(ids) * 64 + int(lengths[ids].sum()) + ids.size
    if len(buf.out) < bound:
        buf.out = np.empty(bound + bound // 4, dtype=np.uint8)
    values = np.ascontiguousarray(logprob, dtype=np.float64)
    backs = np.zeros(0) if backoff is None else np.ascontiguousarray(backoff, dtype=np.float64)
    size = FORMAT_LINES(ids, values, backs, buf.blob, words["off_first"], lengths, buf.out)
    if size < 0:
        i = -size - 1
        bad = values[i] if len(backs) == 0 or _write_number(values[i], np.empty(32, np.uint8), 0) < 0 else backs[i]
        raise FormatError(f"value {bad!r} too large for an ARPA log10 field")
    return buf.out[:size]


def _ngram_lines_numpy(ids: np.ndarray, logprob: np.ndarray, backoff: np.ndarray | None, words: dict,
                       buf: _Buffers) -> np.ndarray:
    """The ARPA lines of M n-grams as bytes (a view of ``buf.out``): ``ids`` (M, n) word ids,
    ``logprob`` (M,), ``backoff`` (M,) or None at the top order (no back-off field).

    Each line is a few segments of ``buf.src``: "prob\\t" (a number record), each word
    (" word", the first without the space, the last of a top-order line with its "\\n"),
    "\\tbackoff\\n" (a number record). The bytes are gathered in one ``np.take`` with an
    index made by a running sum: +1 inside a segment, a jump at each segment's first byte.
    ``words``: offsets and lengths of each word's entry in the blob (see :class:`ArpaWriter`).
    """
    M, n = ids.shape
    top = backoff is None
    rec_at = np.arange(buf.base, buf.base + M * _REC, _REC)  # (M,) first byte of each line's record
    rec = buf.src[buf.base: buf.base + M * _REC].view(np.uint64).reshape(M, 3)  # (M, 3) = (M, 24 bytes)
    first, length = _format_records(logprob, rec, 0, ord("\t"))
    starts, lengths = [rec_at + first], [length]  # per segment of the line: (M,) each
    for j in range(n):
        w = ids[:, j]
        starts.append(words["off_first" if j == 0 else "off"][w])
        if j == n - 1 and top:
            lengths.append(words["len_first_nl" if j == 0 else "len_nl"][w])
        else:
            lengths.append(words["len_first" if j == 0 else "len"][w])
    if not top:
        at = buf.base + _CHUNK * _REC
        rec = buf.src[at: at + M * _REC].view(np.uint64).reshape(M, 3)
        first, length = _format_records(backoff, rec, ord("\t"), ord("\n"))
        rec_at += _CHUNK * _REC
        rec_at += first
        starts.append(rec_at)
        lengths.append(length)
    line_len = lengths[0].copy()
    for length in lengths[1:]:
        line_len += length
    out_at = np.cumsum(line_len)  # where each segment's first byte goes, starting with the first segments
    total = int(out_at[-1])
    out_at -= line_len
    if len(buf.index) < total:
        buf.index = np.empty(total + total // 4, dtype=np.int64)
        buf.out = np.empty(len(buf.index), dtype=np.uint8)
    index = buf.index[:total]
    index.fill(1)
    prev_end = np.empty(M, dtype=np.int64)  # one past the source of the byte written before each segment
    prev_end[0] = 1  # (so that the running sum starts at the first segment's start)
    np.add(starts[-1][:-1], lengths[-1][:-1], out=prev_end[1:])
    for start, length in zip(starts, lengths):
        jump = start - prev_end
        jump += 1
        index[out_at] = jump
        out_at += length
        np.add(start, length, out=prev_end)
    np.cumsum(index, out=index)
    return np.take(buf.src, index, out=buf.out[:total])


class ArpaWriter:
    """Writes an ARPA file section by section, in pieces (the streaming estimator's writer, and
    :func:`write_arpa`'s): the header from ``sizes``, then :meth:`section` n and its lines by
    :meth:`lines`, in order 1..N; :meth:`end` closes it. ``f``: a binary file open for writing."""

    def __init__(self, f, words: list[str], sizes):
        self.f = f
        self.order = len(sizes)
        blob = (" " + "\n ".join(words) + "\n").encode("utf-8")  # b" word\n" per word
        end = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == ord("\n")) + 1  # one past each entry
        if len(end) != len(words):  # a word with a newline in it: find the entries one by one
            end = np.cumsum([len(w.encode("utf-8")) + 2 for w in words])
        off = np.concatenate(([0], end[:-1]))
        size = end - off
        self.words = {"off": off, "off_first": off + 1, "len": size - 1, "len_first": size - 2,
                      "len_nl": size, "len_first_nl": size - 1}
        self.buf = _Buffers(blob)
        self.blob = blob
        self.n = 0
        self._pool = None  # the threads formatting a long section's chunks side by side (made when needed)
        self._local = None
        f.write(b"\\data\\\n" + "".join(f"ngram {n}={size}\n" for n, size in enumerate(sizes, 1)).encode())

    def section(self, n: int) -> None:
        """Start the order-n section."""
        self.n = n
        self.f.write(f"\n\\{n}-grams:\n".encode())

    def lines(self, ids: np.ndarray, logprob: np.ndarray, backoff: np.ndarray) -> None:
        """Write the lines of M n-grams of the current section: ``ids`` (M, n), log10 values (M,) each
        (the back-off is not written at the top order)."""
        top = self.n == self.order
        spans = [(lo, min(len(ids), lo + _CHUNK)) for lo in range(0, len(ids), _CHUNK)]
        threads = _reader_threads() if len(spans) > 1 else 1
        if threads == 1:
            for lo, hi in spans:
                self.f.write(_ngram_lines(ids[lo:hi], logprob[lo:hi], None if top else backoff[lo:hi],
                                          self.words, self.buf))
            return
        # chunks formatted in a few threads (numpy releases the GIL), each with its own work space,
        # and written in order: the same bytes as one thread writes
        if self._pool is None:
            import threading
            from concurrent.futures import ThreadPoolExecutor

            self._pool, self._local = ThreadPoolExecutor(threads, thread_name_prefix="arpa-format"), threading.local()

        def text(span: tuple[int, int]) -> bytes:
            buf = getattr(self._local, "buf", None)
            if buf is None:
                buf = self._local.buf = _Buffers(self.blob)
            lo, hi = span
            return _ngram_lines(ids[lo:hi], logprob[lo:hi], None if top else backoff[lo:hi], self.words, buf).tobytes()

        for chunk in self._pool.map(text, spans):
            self.f.write(chunk)

    def end(self) -> None:
        self.f.write(b"\n\\end\\\n")
        self.close()

    def close(self) -> None:
        """Stop the formatting threads (:meth:`end` does this)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def write_arpa(model: NgramModel, path: str | os.PathLike) -> None:
    """Write ``model`` as an ARPA file (``.gz`` suffix: gzip), atomically (:func:`lmlab.io.atomic_open`)."""
    path = os.fspath(path)
    with atomic_open(path, gz=path.endswith(".gz")) as f:
        out = ArpaWriter(f, model.vocab.words, model.sizes())
        try:
            for n, size in enumerate(model.sizes(), start=1):
                out.section(n)
                for lo in range(0, size, _CHUNK * 64):
                    hi = min(size, lo + _CHUNK * 64)
                    out.lines(ngram_words(model.keys, model.V, n, np.arange(lo, hi)), model.logprob[n - 1][lo:hi],
                              model.backoff[n - 1][lo:hi])
            out.end()
        finally:
            out.close()


_HEADER = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
_SECTION = re.compile(r"^\\(\d+)-grams:\s*$")


def read_arpa(path: str | os.PathLike) -> NgramModel:
    """Read an ARPA file (plain or ``.gz``) into an :class:`NgramModel`.

    The file is streamed in blocks and each block of a section is parsed with numpy
    (:func:`_read_streaming`; the blocks of one order side by side in :func:`_reader_threads`
    threads, the same model for any number); a file that path does not take (non-ASCII whitespace, n-grams
    whose prefix or suffix is not listed, any malformed line) is read again by the general
    line-by-line reader (:func:`_read_general`), which completes missing n-grams and names
    what is wrong and where.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FormatError(f"{path}: no such ARPA file")
    if os.path.isdir(path):
        raise FormatError(f"{path}: is a folder, not an ARPA or binary n-gram file")
    try:
        return _read_streaming(path)
    except _Fallback:
        return _read_general(path)


def _read_general(path: str) -> NgramModel:
    """The line-by-line reader: any valid ARPA file, and the exact error for an invalid one."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        import gzip
        import zlib

        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:  # (EOFError would reach the user as click's "Aborted.")
            raise FormatError(f"{path}: truncated or corrupt gzip ({err or type(err).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not valid UTF-8 at byte {err.start}") from None
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise FormatError(f"{path}: no \\data\\ header (not an ARPA file)")
    i += 1
    declared: dict[int, int] = {}
    while i < len(lines) and not lines[i].strip().startswith("\\"):
        line = lines[i].strip()
        if line:
            m = _HEADER.match(line)
            if not m:
                raise FormatError(f"{path}:{i + 1}: expected 'ngram N=COUNT', got {line[:60]!r}")
            declared[int(m.group(1))] = int(m.group(2))
        i += 1
    if not declared or sorted(declared) != list(range(1, max(declared) + 1)):
        raise FormatError(f"{path}: \\data\\ must declare ngram 1..N counts, got {sorted(declared)}")
    order = max(declared)
    sections: dict[int, tuple[list[str], int]] = {}
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line == "\\end\\":
            break
        m = _SECTION.match(line)
        if not m:
            raise FormatError(f"{path}:{i}: expected a '\\N-grams:' section header, got {line[:60]!r}")
        n = int(m.group(1))
        if n not in declared:
            raise FormatError(f"{path}:{i}: section \\{n}-grams: not declared in \\data\\")
        start = i
        body = []
        while i < len(lines) and not lines[i].startswith("\\"):
            if lines[i].strip():
                body.append(lines[i])
            i += 1
        if len(body) != declared[n]:
            raise FormatError(f"{path}: \\{n}-grams: has {len(body)} entries, header says {declared[n]}")
        sections[n] = (body, start + 1)
    else:
        raise FormatError(f"{path}: missing \\end\\ (truncated file?)")
    missing = [n for n in range(1, order + 1) if n not in sections]
    if missing:
        raise FormatError(f"{path}: missing section(s) {missing}")
    return _assemble(path, order, sections)


def _parse_section(path, n, body, first_line, top):
    probs = np.empty(len(body))
    bos = np.zeros(len(body))
    grams = []
    for j, line in enumerate(body):
        parts = line.split()
        if len(parts) == n + 2 and not top:
            bos[j] = float(parts[-1])
        elif len(parts) != n + 1:
            raise FormatError(f"{path}:{first_line + j}: expected {n} words and log10 prob(s), got {line[:80]!r}")
        try:
            probs[j] = float(parts[0])
        except ValueError:
            raise FormatError(f"{path}:{first_line + j}: bad log10 probability {parts[0]!r}") from None
        grams.append(parts[1: n + 1])
    return grams, probs, bos


def _assemble(path, order, sections) -> NgramModel:
    body, first = sections[1]
    grams, probs1, bos1 = _parse_section(path, 1, body, first, order == 1)
    words = [g[0] for g in grams]
    if len(set(words)) != len(words):
        raise FormatError(f"{path}: duplicate unigrams")
    if UNK not in words:
        warnings.warn(f"{path}: no <unk> unigram; adding it at log10 prob -99", stacklevel=3)
    vocab = Vocabulary(words)
    V = len(vocab)
    logprob1 = np.full(V, LOG10_ZERO)
    backoff1 = np.zeros(V)
    ids = np.array([vocab.index[w] for w in words], dtype=np.int64)
    logprob1[ids] = probs1
    backoff1[ids] = bos1
    mats = [ids[:, None]]
    probs = [logprob1]
    bos = [backoff1]
    for n in range(2, order + 1):
        body, first = sections[n]
        grams, p, b = _parse_section(path, n, body, first, n == order)
        get = vocab.index.get
        flat = [get(w, -1) for g in grams for w in g]
        m = np.array(flat, dtype=np.int64).reshape(len(grams), n)  # (M, n) word ids
        if (m < 0).any():
            j = int(np.argmax((m < 0).any(axis=1)))
            raise FormatError(f"{path}:{first + j}: n-gram uses a word missing from \\1-grams: {' '.join(grams[j])!r}")
        mats.append(m)
        probs.append(p)
        bos.append(b)
    for w in (BOS, EOS):
        if w not in vocab.index:
            raise FormatError(f"{path}: {w} is not in \\1-grams")
    return _build_tables(path, vocab, mats, probs, bos)


def _lookup(keys, V, m, firsts=None):
    """Rows (or -1) of the n-grams given as a word-id matrix (M, n), using tables keys[0..n-1].

    ``firsts`` (a dict, filled here): per table j >= 1 its first row per prefix; with numba
    each step then searches only the prefix's block (:func:`lmlab.ngram.binary.child_rows`)."""
    row = m[:, 0].copy()
    for j in range(1, m.shape[1]):
        table = keys[j]
        if firsts is not None:
            from .binary import _children, child_rows

            if j not in firsts:
                firsts[j] = _children(table, V, len(keys[j - 1]))
            step = child_rows(table, firsts[j], V, row, m[:, j])
            if step is not None:
                row = step
                continue
        q = row * V + m[:, j]
        hit = np.searchsorted(table, q)
        hit = np.minimum(hit, max(len(table) - 1, 0))
        ok = (row >= 0) & (len(table) > 0)
        ok &= table[hit] == q if len(table) else ok
        row = np.where(ok, hit, -1)
    return row


def _close(vocab, mats, probs, bos):
    """Add missing prefixes/suffixes of listed n-grams (probability NaN = fill by back-off later)."""
    changed = False
    for n in range(len(mats), 2, -1):
        have = set(map(tuple, mats[n - 2].tolist()))
        need = set(map(tuple, mats[n - 1][:, :-1].tolist())) | set(map(tuple, mats[n - 1][:, 1:].tolist()))
        extra = sorted(need - have)
        if extra:
            changed = True
            mats[n - 2] = np.vstack([mats[n - 2], np.array(extra, dtype=np.int64)])
            probs[n - 2] = np.concatenate([probs[n - 2], np.full(len(extra), np.nan)])
            bos[n - 2] = np.concatenate([bos[n - 2], np.zeros(len(extra))])
    return changed


def _build_tables(path, vocab, mats, probs, bos) -> NgramModel:
    V = len(vocab)
    order = len(mats)
    for attempt in range(2):
        keys = [np.arange(V, dtype=np.int64)]
        lp = [probs[0]]
        bo = [bos[0]]
        ok = True
        for n in range(2, order + 1):
            m = mats[n - 1]
            prefix = _lookup(keys, V, m[:, :-1])
            suffix = _lookup(keys, V, m[:, 1:])
            if (prefix < 0).any() or (suffix < 0).any():
                ok = False
                break
            key = prefix * V + m[:, -1]
            sort = np.argsort(key, kind="stable")
            key = key[sort]
            if len(key) > 1 and (np.diff(key) == 0).any():
                j = int(sort[np.argmax(np.diff(key) == 0)])
                raise FormatError(f"{path}: duplicate {n}-gram {m[j].tolist()}")
            p = probs[n - 1][sort]
            holes = np.isnan(p)
            if holes.any():  # an n-gram added for closure: its back-off probability
                suf = suffix[sort][holes]
                p[holes] = bo[n - 2][prefix[sort][holes]] + lp[n - 2][suf]
            keys.append(key)
            lp.append(p)
            bo.append(bos[n - 1][sort])
        if ok:
            return NgramModel(vocab, keys, lp, bo, {"method": "arpa", "source": str(path)})
        if attempt == 0 and not _close(vocab, mats, probs, bos):
            break
    raise FormatError(f"{path}: n-grams whose prefix or suffix is missing could not be completed")


# ----------------------------------------------------------------------------- streaming reader
_BLOCK = 2 << 20  # bytes read and parsed at a time (the per-byte work arrays stay in cache)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9),
        np.uint64(0x27D4EB2F165667C5))


def _reader_threads() -> int:
    """Threads that parse an order's blocks side by side, or format a section's chunks (numpy and the
    compiled kernels release the GIL): :func:`~lmlab.ngram.model.worker_threads` with ``LMLAB_ARPA_THREADS``.
    The model read, or the file written, is the same whatever the number (each block's rows are kept in
    file order, then sorted; the formatted chunks are written in order)."""
    return worker_threads("LMLAB_ARPA_THREADS")


def _parallel_argsort(key: np.ndarray, pool, workers: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")``, its two halves sorted side by side in ``pool`` and then merged
    (a stable sort of two sorted runs is one linear merge). The same permutation as one stable sort."""
    if workers < 2 or len(key) < 1 << 20:
        return np.argsort(key, kind="stable")
    half = len(key) // 2
    left, right = (pool.submit(np.argsort, part, kind="stable") for part in (key[:half], key[half:]))
    order = np.concatenate([left.result(), right.result() + half])
    return order[np.argsort(key[order], kind="stable")]  # (ties keep left before right: still stable)


def _trim_heap() -> None:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    The parsing threads allocate and free many work arrays, each thread in its own malloc arena, and
    freed memory stays in the process: measured on the 1.8 GB ARPA file of a 28.5M-word 5-gram,
    ~360 MB of it at the end of the read. Returned before each order's sort (the read's peaks), it
    is not counted twice."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # (not glibc)
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


class _Fallback(Exception):
    """The streaming reader cannot take this file: the general reader reads it (and names any error)."""


def _blocks(path: str):
    """The file's bytes (gunzipped) in blocks of whole lines, each a uint8 array ending with a newline."""
    import gzip

    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    rest = b""
    try:
        with opener(path, "rb") as f:
            while True:
                chunk = f.read(_BLOCK)
                if not chunk:
                    break
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield np.frombuffer(data, dtype=np.uint8, count=cut)
    except (EOFError, OSError):  # a truncated or corrupt gzip stream
        raise _Fallback from None
    if rest:
        yield np.frombuffer(rest + b"\n", dtype=np.uint8)


def _tokens(b: np.ndarray):
    """(start, end, line) of every whitespace-separated token in ``b`` (whole lines), and the line count."""
    sp = (b == 32) | (b == 9) | (b == 10)
    word = ~sp
    edge = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    start = np.flatnonzero(edge == 1)
    end = np.flatnonzero(edge == -1)
    newlines = np.flatnonzero(b == 10)
    return start, end, np.searchsorted(newlines, start), len(newlines)


def _decimal_floats(b, start, end, out, ok):
    """Tokens written ``[-]digits[.digits]`` with at most 15 significant digits: ``out[i]`` = M / 10^k
    (M the digits as an integer, k the number of decimals), ``ok[i]`` = True; other tokens get
    ``ok[i]`` = False. M < 2^53 and 10^k (k <= 22) are exact doubles and the division is
    correctly rounded, so this is the correctly rounded value of the decimal, as strtod
    gives (Clinger 1990's fast path)."""
    for i in range(len(start)):
        j = start[i]
        e = end[i]
        neg = b[j] == 45  # '-'
        if neg:
            j += 1
        mant = 0
        digits = 0
        decimals = 0
        point = False
        seen = False  # any digit at all ("-", "." and "-." are not numbers)
        good = j < e
        while j < e:
            c = b[j]
            if 48 <= c <= 57:
                seen = True
                if digits or c != 48:
                    digits += 1
                mant = mant * 10 + (c - 48)
                if point:
                    decimals += 1
            elif c == 46 and not point:  # '.'
                point = True
            else:
                good = False
                break
            j += 1
        if good and seen and digits <= 15 and decimals <= 22:
            v = np.float64(mant) / _POW10[decimals]
            out[i] = -v if neg else v
            ok[i] = True
        else:
            ok[i] = False


_POW10 = np.array([10.0 ** k for k in range(23)])  # exact doubles
DECIMALS = Kernel(_decimal_floats)


def _floats(b: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The numbers written in the tokens: with numba the decimal fast path (:func:`_decimal_floats`),
    the rest (and everything without numba) as fixed-width byte strings cast to float64."""
    if not len(start):
        return np.zeros(0)
    if have_kernels():
        out = np.empty(len(start))
        ok = np.empty(len(start), dtype=np.bool_)
        DECIMALS(b, np.ascontiguousarray(start, dtype=np.int64), np.ascontiguousarray(end, dtype=np.int64), out, ok)
        if ok.all():
            return out
        rest = np.flatnonzero(~ok)
        out[rest] = _floats_numpy(b, start[rest], end[rest])
        return out
    return _floats_numpy(b, start, end)


def _floats_numpy(b: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The numbers written in the tokens (vectorised: fixed-width byte strings cast to float64)."""
    length = end - start
    width = int(length.max())
    if width > 40:
        raise _Fallback
    cols = np.arange(width)
    at = start[:, None] + cols  # (T, width) byte positions
    mat = b[np.minimum(at, len(b) - 1)]
    mat[cols >= length[:, None]] = 0
    try:
        return np.ascontiguousarray(mat).view(f"S{width}").ravel().astype(np.float64)
    except ValueError:
        raise _Fallback from None


_POW: dict = {}  # per hash: powers P^j and P^-j mod 2^64 for j < _BLOCK + a line


def _powers(size: int):
    """Tables of P^j and P^-j (mod 2^64) for the two hashes, j < size (made once, grown when needed)."""
    if _POW.get("size", 0) < size:
        size = 1 << max(12, (size - 1).bit_length())  # (a power of two: grown a few times at most)
        out = []
        for base in (_MIX[0], _MIX[1]):  # odd, so invertible mod 2^64
            inv = np.uint64(pow(int(base), -1, 1 << 64))
            pw = np.full(size, base, dtype=np.uint64)
            pw[0] = 1
            iv = np.full(size, inv, dtype=np.uint64)
            iv[0] = 1
            out.append((np.cumprod(pw), np.cumprod(iv)))  # (wrapping products)
        _POW.update(size=size, tables=out)
    return _POW["tables"]


def _word_keys(b: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Two position-independent 64-bit polynomial hashes of each token's bytes, and its length.

    h(token) = sum_i byte_i P^i mod 2^64, computed for all tokens at once: per byte
    byte_j P^j, summed over each token by ``np.add.reduceat``, then shifted by P^-start.
    """
    length = (end - start).astype(np.uint64)
    if not len(start):
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), length
    bounds = np.empty(2 * len(start), dtype=np.int64)
    bounds[0::2] = start
    bounds[1::2] = end
    if bounds[-1] == len(b):
        bounds = bounds[:-1]
    values = b.astype(np.uint64)
    out = []
    for pw, iv in _powers(len(b)):
        v = values * pw[: len(b)]
        h = np.add.reduceat(v, bounds)[0::2]
        h *= iv[start]
        out.append(h)
    return out[0], out[1], length


class _WordTable:
    """Word bytes -> id without a Python object per looked-up token: a hash table of word hashes.

    A token matches a word when its length and both 64-bit hashes agree (a false match needs two
    independent 64-bit collisions); two words of the table with the same hashes send the file to
    the general reader.
    """

    def __init__(self, b: np.ndarray, start: np.ndarray, end: np.ndarray, ids: np.ndarray):
        from .counts import KeyIndex

        h1, h2, lens = _word_keys(b, start, end)
        if len(h1) > 1 and len(np.unique(h1)) != len(h1):
            raise _Fallback
        self.h2, self.lens, self.ids = h2, lens, ids
        self.index = KeyIndex(h1.view(np.int64))  # (open addressing: faster than a binary search here)

    def lookup(self, b: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """The id of each token; -1 for a word that is not in the table."""
        h1, h2, lens = _word_keys(b, start, end)
        at = self.index.lookup(h1.view(np.int64))
        safe = np.maximum(at, 0)
        ok = (at >= 0) & (self.h2[safe] == h2) & (self.lens[safe] == lens)
        return np.where(ok, self.ids[safe], -1)


def _line_tokens(b, n, top, starts, ends):
    """One pass over a block of order-``n`` lines: ``starts[i]``/``ends[i]`` get the byte spans of the
    i-th non-blank line's tokens (probability, n words, back-off; the back-off's span is -1 when the
    line has none). Returns the number of lines, or -1 when a line has the wrong number of tokens
    (n + 1, or n + 2 below the top order). Tokens are separated by spaces and tabs."""
    width = n + 2
    line = 0
    k = 0
    i = 0
    size = len(b)
    while i <= size:
        c = b[i] if i < size else 10  # (a last line without its newline ends at the end)
        if c == 10:
            if k:
                if k == width - 1:
                    starts[line, width - 1] = -1
                    ends[line, width - 1] = -1
                elif k != width or top:
                    return -1
                line += 1
                k = 0
            i += 1
        elif c == 32 or c == 9:
            i += 1
        else:
            j = i + 1
            while j < size and b[j] != 32 and b[j] != 9 and b[j] != 10:
                j += 1
            if k == width:
                return -1
            starts[line, k] = i
            ends[line, k] = j
            k += 1
            i = j
    return line


LINE_TOKENS = Kernel(_line_tokens)


def _section_rows(b, n: int, top: bool):
    """Parse a block of one order's lines: (log10 probs, back-offs, (start, end) of the word tokens, lines)."""
    if have_kernels():  # one compiled pass over the bytes
        lines = int(np.count_nonzero(b == 10)) + 1
        starts = np.empty((lines, n + 2), dtype=np.int64)
        ends = np.empty((lines, n + 2), dtype=np.int64)
        got = LINE_TOKENS(b, n, top, starts, ends)
        if got < 0:
            raise _Fallback
        starts, ends = starts[:got], ends[:got]
        probs = _floats(b, starts[:, 0], ends[:, 0])
        bos = np.zeros(0 if top else got)  # (the top order has none)
        has_bo = np.flatnonzero(starts[:, n + 1] >= 0)
        if len(has_bo):
            bos[has_bo] = _floats(b, starts[has_bo, n + 1], ends[has_bo, n + 1])
        return probs, bos, starts[:, 1: n + 1], ends[:, 1: n + 1]
    start, end, line, n_lines = _tokens(b)
    per_line = np.bincount(line, minlength=n_lines)
    filled = per_line[per_line > 0]
    if not np.all((filled == n + 1) | ((filled == n + 2) & (not top))):
        raise _Fallback
    first = np.cumsum(filled) - filled  # index of each line's first token (its prob)
    probs = _floats(b, start[first], end[first])
    bos = np.zeros(0 if top else len(first))
    has_bo = np.flatnonzero(filled == n + 2)
    if len(has_bo):
        last = first[has_bo] + n + 1
        bos[has_bo] = _floats(b, start[last], end[last])
    word_at = first[:, None] + 1 + np.arange(n)  # (M, n) token index of each word
    return probs, bos, start[word_at], end[word_at]


def _read_streaming(path: str) -> NgramModel:
    """Stream the file: the header in Python, each section's lines in numpy blocks (see :func:`read_arpa`)."""
    from .counts import _only_plain_spaces
    from .textenc import _kernels, lookup_spans

    declared: dict[int, int] = {}
    state = "preamble"  # preamble -> header -> section n -> end
    n = 0
    vocab = table = None
    parts: dict[int, list] = {}
    keys: list[np.ndarray] = []
    lp: list[np.ndarray] = []
    bo: list[np.ndarray] = []

    def finish(order: int) -> None:
        """Sort the finished order's rows into key order (orders >= 2) and check the count."""
        if order == 1:
            return
        got = [g if isinstance(g, tuple) else g.result() for g in parts.pop(order)]
        _trim_heap()  # (the parsing threads' freed work arrays go back to the system before the sort's peak)
        key = np.concatenate([g[0] for g in got]) if got else np.zeros(0, dtype=np.int64)
        got = [(None, *g[1:]) for g in got]  # (the blocks' keys are freed before the sort)
        if len(key) != declared[order]:
            raise FormatError(f"{path}: \\{order}-grams: has {len(key)} entries, header says {declared[order]}")
        top = order == max(declared)  # (the top order has no back-offs: zeros that are never written)
        # the top order, the biggest, is sorted in one piece: the parallel sort's halves and merge would
        # hold about three more copies of its permutation at the model's peak
        sort = np.argsort(key, kind="stable") if top else _parallel_argsort(key, pool, workers)
        gathered = [pool.submit(lambda i: np.concatenate([g[i] for g in got])[sort] if got else np.zeros(0), i)
                    for i in ((1,) if top else (1, 2))]  # the values gathered in the pool while the keys are checked
        key = key[sort]
        if len(key) > 1 and (key[1:] == key[:-1]).any():
            raise _Fallback
        keys.append(key)
        lp.append(gathered[0].result())
        bo.append(np.zeros(len(key)) if top else gathered[1].result())

    def unigrams(b: np.ndarray, top: bool) -> None:
        nonlocal vocab, table
        probs, bos, ws, we = _section_rows(b, 1, top)
        raw = [b[s:e].tobytes() for s, e in zip(ws[:, 0].tolist(), we[:, 0].tolist())]
        try:
            words = [w.decode("utf-8") for w in raw]
        except UnicodeDecodeError:
            raise _Fallback from None
        if len(words) != declared[1] or len(set(words)) != len(words) or BOS not in words or EOS not in words:
            raise _Fallback
        if UNK not in words:
            warnings.warn(f"{path}: no <unk> unigram; adding it at log10 prob -99", stacklevel=4)
        vocab = Vocabulary(words)
        V = len(vocab)
        ids = np.fromiter(map(vocab.index.__getitem__, words), dtype=np.int64, count=len(words))
        keys.append(np.arange(V, dtype=np.int64))
        lp.append(np.full(V, LOG10_ZERO))
        bo.append(np.zeros(V))
        lp[0][ids] = probs
        if len(bos):  # (a unigram model's only order is the top: no back-offs)
            bo[0][ids] = bos
        if _kernels() is None:  # (with numba, words are looked up by textenc's byte hash instead)
            table = _WordTable(b, ws[:, 0], we[:, 0], ids)

    def parse(b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys, log10 probs, back-offs) of a block of order ``n`` >= 2 (run in the pool: it only reads)."""
        if not _only_plain_spaces(b.tobytes()):
            raise _Fallback
        probs, bos, ws, we = _section_rows(b, n, n == order)
        ids = lookup_spans(b, ws.ravel(), we.ravel(), vocab)  # (a compiled byte hash; None without numba)
        ids = (table.lookup(b, ws.ravel(), we.ravel()) if ids is None else ids).reshape(ws.shape)  # (M, n) word ids
        if (ids < 0).any():
            raise _Fallback
        V = len(vocab)
        prefix = _lookup(keys, V, ids[:, :-1], firsts)
        if (prefix < 0).any() or (_lookup(keys, V, ids[:, 1:], firsts) < 0).any():
            raise _Fallback  # a prefix or suffix is not listed: the general reader adds it
        return prefix * V + ids[:, -1], probs, bos

    def body(b: np.ndarray) -> None:
        if not len(b):
            return
        if n == 1:  # the unigrams are gathered whole: the vocabulary is made when their section ends
            if not _only_plain_spaces(b.tobytes()):
                raise _Fallback
            pending.append(b.copy())
            return
        if n not in firsts_ready:  # the lower tables' prefix blocks, made here once, before the workers share them
            for j in range(2, n):
                _lookup(keys[:j], len(vocab), np.zeros((1, j), dtype=np.int64), firsts)
            firsts_ready.add(n)
        parts[n].append(pool.submit(parse, b, n))  # results are kept in file order
        waiting = [i for i, f in enumerate(parts[n]) if not isinstance(f, tuple)]
        if len(waiting) > workers:  # at most a few blocks' work arrays in memory at once
            parts[n][waiting[0]] = parts[n][waiting[0]].result()

    pending: list[np.ndarray] = []  # the unigram section's blocks
    firsts: dict = {}  # per finished order's table: its first row per prefix (for _lookup)
    firsts_ready: set = set()
    workers = _reader_threads()
    order = 0

    def end_section() -> None:
        nonlocal pending
        if n == 1:
            unigrams(np.concatenate(pending) if pending else np.zeros(0, np.uint8), order == 1)
            pending = []
        finish(n)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers, thread_name_prefix="arpa-reader")
    try:
        for b in _blocks(path):
            while len(b):
                if state in ("preamble", "header"):
                    nl = int(np.argmax(b == 10))
                    line = b[:nl].tobytes().decode("utf-8", "replace").strip()
                    b = b[nl + 1:]
                    if state == "preamble":
                        state = "header" if line == "\\data\\" else state
                        continue
                    if line.startswith("\\"):
                        if not declared or sorted(declared) != list(range(1, max(declared) + 1)):
                            raise _Fallback
                        order = max(declared)
                        if _SECTION.match(line) is None or int(_SECTION.match(line).group(1)) != 1:
                            raise _Fallback
                        state, n = "section", 1
                        parts[1] = []
                    elif line:
                        m = _HEADER.match(line)
                        if not m:
                            raise _Fallback
                        declared[int(m.group(1))] = int(m.group(2))
                    continue
                if state == "end":
                    break
                # a section's body runs up to the next line that starts with a backslash
                if b[0] == 92:
                    stop = 0
                else:
                    marks = np.flatnonzero((b[:-1] == 10) & (b[1:] == 92))
                    stop = int(marks[0]) + 1 if len(marks) else len(b)
                body(b[:stop])
                b = b[stop:]
                if not len(b):
                    continue
                nl = int(np.argmax(b == 10))
                line = b[:nl].tobytes().decode("utf-8", "replace").strip()
                b = b[nl + 1:]
                end_section()
                if line == "\\end\\":
                    state = "end"
                    break
                m = _SECTION.match(line)
                if m is None or int(m.group(1)) != n + 1 or n + 1 > order:
                    raise _Fallback
                n += 1
                parts[n] = []
        if state == "section":  # the file ends inside a section: its count is checked first, as the general reader does
            end_section()
            raise FormatError(f"{path}: missing \\end\\ (truncated file?)")
        if state != "end" or n != order:
            raise _Fallback
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return NgramModel(vocab, keys, lp, bo, {"method": "arpa", "source": str(path)})


def load_model(path: str | os.PathLike, verify: bool | str = "auto") -> NgramModel:
    """An n-gram model from an ARPA file (plain or .gz) or a binary one, told apart by the first bytes."""
    from .binary import is_binary, read_binary

    p = Path(path)
    if p.is_file() and is_binary(p):
        return read_binary(p, verify=verify)
    return read_arpa(p)  # (which names a missing file)
