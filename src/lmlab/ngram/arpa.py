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
so reading a written file gives back bit-identical numbers and scores. The text
is assembled with numpy (a byte gather per chunk of lines), not a Python loop
per n-gram. ``<s>`` is written at -99 (SRILM's convention; KenLM writes 0 -- both
mean "never predicted").

Reader: any valid ARPA file (KenLM, SRILM, IRSTLM, lmlab): tabs or spaces,
missing back-off fields (= 0), blank lines, ``\\data\\`` preceded by comments.
Missing prefixes or suffixes of listed n-grams (legal in ARPA, written by some
pruning tools) are added with their back-off probability and weight 0, as
KenLM does, so scores do not change. A file without ``<unk>`` gets
``<unk>`` at -99 with a warning (KenLM does the same at -100).
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .counts import BOS, EOS, UNK, Vocabulary, ngram_words
from .model import LOG10_ZERO, NgramModel

_CHUNK = 200_000
_COMPILED_ABOVE = 1_000_000  # n-grams
_W = 18  # float field: 7 chars of sign + integer part, '.', 10 decimals


def _format_floats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed 10-decimal text of each value, trailing zeros dropped: (chars (M, _W), start, length)."""
    k = np.rint(np.asarray(x, dtype=np.float64) * 1e10).astype(np.int64)
    neg = k < 0
    a = np.abs(k)
    ip, fp = a // 10**10, a % 10**10
    if len(ip) and ip.max() >= 10**6:
        raise FormatError(f"value {x[np.argmax(ip)]!r} too large for an ARPA log10 field")
    chars = np.empty((len(k), _W), dtype=np.uint8)  # (M, _W)
    chars[:, 0] = ord("0")
    rest = ip
    for j in range(6, 0, -1):  # integer digits, right-aligned in columns 1..6
        rest, digit = np.divmod(rest, 10)
        chars[:, j] = digit + ord("0")
    ndig = 1 + sum((ip >= 10**d).astype(np.int64) for d in range(1, 6))
    rest = fp
    for j in range(17, 7, -1):  # 10 decimals in columns 8..17
        rest, digit = np.divmod(rest, 10)
        chars[:, j] = digit + ord("0")
    chars[:, 7] = ord(".")
    rows = np.arange(len(k))
    start = 7 - ndig - neg.astype(np.int64)
    chars[rows[neg], start[neg]] = ord("-")
    # decimals kept: up to the last non-zero one (trailing zeros dropped); none when fp == 0
    last_nonzero = _W - 1 - np.argmax(chars[:, :7:-1] != ord("0"), axis=1)  # column, (M,)
    nfrac = np.where(fp > 0, last_nonzero - 7, 0)
    end = np.where(nfrac > 0, 8 + nfrac, 7)
    neg_zero = neg & (a == 0)
    start[neg_zero] += 1
    return chars, start, end - start


def _ngram_lines(model: NgramModel, n: int, lo: int, hi: int, word_blob, word_off, word_len) -> bytes:
    rows = np.arange(lo, hi)
    M = len(rows)
    words = ngram_words(model.keys, model.V, n, rows)  # (M, n)
    pchars, pstart, plen = _format_floats(model.logprob[n - 1][lo:hi])
    top = n == model.order
    if not top:
        bchars, bstart, blen = _format_floats(model.backoff[n - 1][lo:hi])
    sep = np.frombuffer(b"\t \n", dtype=np.uint8)
    parts = [pchars.ravel()] + ([] if top else [bchars.ravel()]) + [word_blob, sep]
    offs = np.cumsum([0] + [len(p) for p in parts])
    src = np.concatenate(parts)
    o_p, o_b = offs[0], offs[1]
    o_w, o_s = offs[-3], offs[-2]
    S = 2 * n + (3 if not top else 1) + 1
    seg_start = np.empty((M, S), dtype=np.int64)  # (M, S) segments per line
    seg_len = np.empty((M, S), dtype=np.int64)
    seg_start[:, 0] = o_p + np.arange(M) * _W + pstart
    seg_len[:, 0] = plen
    seg_start[:, 1], seg_len[:, 1] = o_s, 1  # tab
    col = 2
    for j in range(n):
        if j:
            seg_start[:, col], seg_len[:, col] = o_s + 1, 1  # space
            col += 1
        seg_start[:, col] = o_w + word_off[words[:, j]]
        seg_len[:, col] = word_len[words[:, j]]
        col += 1
    if not top:
        seg_start[:, col], seg_len[:, col] = o_s, 1
        col += 1
        seg_start[:, col] = o_b + np.arange(M) * _W + bstart
        seg_len[:, col] = blen
        col += 1
    seg_start[:, col], seg_len[:, col] = o_s + 2, 1  # newline
    seg_start, seg_len = seg_start[:, : col + 1].ravel(), seg_len[:, : col + 1].ravel()
    out_pos = np.cumsum(seg_len) - seg_len
    total = int(seg_len.sum())
    itype = np.int32 if max(total, len(src)) < 2**31 else np.int64  # half the memory traffic
    gather = np.repeat((seg_start - out_pos).astype(itype), seg_len)
    gather += np.arange(total, dtype=itype)
    return src[gather].tobytes()


# The compiled line writer. Plain Python functions here; compiled_kernel() jits them on
# first use (numba is imported lazily: it is slow to import) and caches the machine code.
def _put_float(out, pos, x):
    k = np.int64(np.rint(x * 1e10))
    if k < 0:
        out[pos] = 45  # '-'
        pos += 1
        k = -k
    ip, fp = k // 10_000_000_000, k % 10_000_000_000
    nd = 1  # number of integer digits (no scratch buffer: this runs millions of times)
    p10 = 10
    while ip >= p10:
        nd += 1
        p10 *= 10
    for j in range(nd - 1, -1, -1):
        out[pos + j] = 48 + ip % 10
        ip //= 10
    pos += nd
    if fp > 0:
        out[pos] = 46  # '.'
        pos += 1
        width = 10
        while fp % 10 == 0:
            fp //= 10
            width -= 1
        for j in range(width - 1, -1, -1):
            out[pos + j] = 48 + fp % 10
            fp //= 10
        pos += width
    return pos


def _lines_kernel(out, words, blob, off, length, lp, bo, has_bo):
    pos = 0
    M, n = words.shape
    for i in range(M):
        pos = _put_float(out, pos, lp[i])
        out[pos] = 9
        pos += 1
        for j in range(n):
            if j:
                out[pos] = 32
                pos += 1
            w = words[i, j]
            o = off[w]
            for b in range(length[w]):
                out[pos + b] = blob[o + b]
            pos += length[w]
        if has_bo:
            out[pos] = 9
            pos += 1
            pos = _put_float(out, pos, bo[i])
        out[pos] = 10
        pos += 1
    return pos


_KERNEL: list = []  # [jitted _lines_kernel or None], filled on first use


def compiled_kernel():
    """The numba-compiled line writer, or None without numba (the optional ``fast`` extra)."""
    if not _KERNEL:
        try:
            from numba import njit
        except ImportError:
            _KERNEL.append(None)
            return None
        global _put_float
        _put_float = njit(cache=True)(_put_float)  # the kernel calls it through this global
        _KERNEL.append(njit(cache=True)(_lines_kernel))
    return _KERNEL[0]


def _ngram_lines_compiled(model: NgramModel, n: int, lo: int, hi: int, word_blob, word_off, word_len) -> bytes:
    words = ngram_words(model.keys, model.V, n, np.arange(lo, hi))  # (M, n)
    top = n == model.order
    lp = np.ascontiguousarray(model.logprob[n - 1][lo:hi], dtype=np.float64)
    bo = np.ascontiguousarray(model.backoff[n - 1][lo:hi] if not top else lp, dtype=np.float64)
    if len(lp) and max(np.abs(lp).max(), np.abs(bo).max()) >= 1e6:
        raise FormatError("a log10 value is too large for an ARPA field")
    size = int(word_len[words].sum()) + len(lp) * (2 * 20 + n + 3)
    out = np.empty(size, dtype=np.uint8)
    used = compiled_kernel()(out, words, word_blob, word_off, word_len, lp, bo, not top)
    return out[:used].tobytes()


def write_arpa(model: NgramModel, path: str | os.PathLike) -> None:
    """Write ``model`` as an ARPA file (``.gz`` suffix: gzip). Atomic: temp file, then rename."""
    path = Path(path)
    encoded = [w.encode("utf-8") for w in model.vocab.words]
    word_len = np.array([len(b) for b in encoded], dtype=np.int64)
    word_off = np.cumsum(word_len) - word_len
    word_blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    # the compiled writer pays ~0.5 s to import numba and load its cache: only worth it for big files
    use_compiled = sum(model.sizes()) > _COMPILED_ABOVE and compiled_kernel() is not None
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(tmp, "wb") as f:
            f.write(b"\\data\\\n")
            for n, size in enumerate(model.sizes(), start=1):
                f.write(f"ngram {n}={size}\n".encode())
            for n, size in enumerate(model.sizes(), start=1):
                f.write(f"\n\\{n}-grams:\n".encode())
                lines = _ngram_lines_compiled if use_compiled else _ngram_lines
                for lo in range(0, size, _CHUNK):
                    f.write(lines(model, n, lo, min(size, lo + _CHUNK), word_blob, word_off, word_len))
            f.write(b"\n\\end\\\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_HEADER = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
_SECTION = re.compile(r"^\\(\d+)-grams:\s*$")


def read_arpa(path: str | os.PathLike) -> NgramModel:
    """Read an ARPA file (plain or ``.gz``) into an :class:`NgramModel`."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such ARPA file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
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


def _lookup(keys, V, m):
    """Rows (or -1) of the n-grams given as a word-id matrix (M, n), using tables keys[0..n-1]."""
    row = m[:, 0].copy()
    for j in range(1, m.shape[1]):
        table = keys[j]
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
