"""Word vectors: lookup, cosine neighbours, analogies, and the interchange file formats.

``Vectors`` is a frozen table word -> row (words in descending frequency order when
they come from training, as word2vec.c and gensim write them). It offers

* ``most_similar`` by cosine, and analogies a : b :: c : ? by 3CosAdd
  (Mikolov et al. 2013, argmax cos(d, b - a + c) over unit vectors) and 3CosMul
  (Levy & Goldberg 2014, argmax cos'(d,b) cos'(d,c) / (cos'(d,a) + ε) with
  cos' = (1 + cos) / 2, ε = 1e-6), both optionally restricted to the ``restrict_vocab``
  most frequent words, as gensim's ``KeyedVectors`` does;
* the word2vec text format (a ``V dim`` header, then ``word x1 ... xdim`` lines), the
  word2vec binary format (the same header, then ``word<space>`` + dim little-endian
  float32 + ``\\n``, as word2vec.c writes it) and the GloVe text format (no header).
  Files written here load with gensim's ``KeyedVectors.load_word2vec_format`` (GloVe
  files with ``no_header=True``) and gensim's files load here.

It does not train anything, and it does not handle out-of-vocabulary words
(fastText models do that through ``lmlab.embeddings.fasttext``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, FormatError, UsageError, closest
from ..io import atomic_open

FORMATS = ("word2vec", "word2vec-binary", "glove")


class Vectors:
    """An immutable word -> vector table (float32, shape (V, dim))."""

    def __init__(self, words: Sequence[str], vectors: np.ndarray, counts: Sequence[int] | None = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise UsageError(f"vectors: expected shape ({len(words)}, dim), got {vectors.shape}")
        self.words = list(words)
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)  # the first (most frequent) wins on duplicates
        self._unit: np.ndarray | None = None

    # -- lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def row(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            hint = closest(word, self.words[:20000])
            raise DataError(f"word {word!r} is not in the vocabulary ({len(self)} words){hint}") from None

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.row(word)]

    @property
    def unit(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero)."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = (self.vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return self._unit

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.row(a)] @ self.unit[self.row(b)])

    # -- neighbours and analogies -------------------------------------------------------------
    def _limit(self, restrict_vocab: int | None) -> int:
        return len(self) if restrict_vocab is None else max(0, min(int(restrict_vocab), len(self)))

    def _top(self, scores: np.ndarray, exclude: Iterable[int], topn: int) -> list[tuple[str, float]]:
        scores = scores.astype(np.float64, copy=True)
        for i in exclude:
            if i < scores.shape[0]:
                scores[i] = -np.inf
        k = min(topn, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best]

    def most_similar(self, positive: str | Sequence[str] = (), negative: str | Sequence[str] = (),
                     topn: int = 10, restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """3CosAdd: nearest words by cosine to the mean of +unit(positive) and -unit(negative).

        The query words themselves are excluded, as in word2vec.c and gensim.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive and not negative:
            raise UsageError("most_similar: give at least one positive or negative word")
        rows = [self.row(w) for w in positive] + [self.row(w) for w in negative]
        weights = np.array([1.0] * len(positive) + [-1.0] * len(negative), dtype=np.float32)
        query = (weights[:, None] * self.unit[rows]).mean(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        limit = self._limit(restrict_vocab)
        return self._top(self.unit[:limit] @ query, rows, topn)

    def most_similar_cosmul(self, positive: str | Sequence[str] = (), negative: str | Sequence[str] = (),
                            topn: int = 10, restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """3CosMul (Levy & Goldberg 2014): Π cos'(d, p) / (Π cos'(d, n) + 1e-6), cos' = (1 + cos) / 2."""
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive:
            raise UsageError("most_similar_cosmul: give at least one positive word")
        limit = self._limit(restrict_vocab)
        unit = self.unit[:limit]
        pos = [self.row(w) for w in positive]
        neg = [self.row(w) for w in negative]
        num = np.ones(limit, dtype=np.float64)
        for i in pos:
            num *= (1.0 + unit @ self.unit[i]) / 2.0
        den = np.ones(limit, dtype=np.float64)
        for i in neg:
            den *= (1.0 + unit @ self.unit[i]) / 2.0
        return self._top(num / (den + 1e-6), pos + neg, topn)

    def analogy(self, a: str, b: str, c: str, method: str = "add", topn: int = 1,
                restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """a : b :: c : ?  (e.g. man : king :: woman : queen), by 3CosAdd or 3CosMul."""
        if method == "add":
            return self.most_similar([b, c], [a], topn=topn, restrict_vocab=restrict_vocab)
        if method == "mul":
            return self.most_similar_cosmul([b, c], [a], topn=topn, restrict_vocab=restrict_vocab)
        raise UsageError(f"analogy method must be 'add' or 'mul', not {method!r}")

    # -- files --------------------------------------------------------------------------------
    def save(self, path: str | Path, fmt: str = "word2vec") -> Path:
        """Write ``path`` in one of FORMATS (atomically)."""
        path = Path(path)
        if fmt not in FORMATS:
            raise UsageError(f"unknown vectors format {fmt!r}{closest(fmt, FORMATS)}; known: {', '.join(FORMATS)}")
        for w in self.words:
            if not w or any(ch.isspace() for ch in w):
                raise FormatError(f"{path}: word {w!r} is empty or contains whitespace; "
                                  "the vector formats cannot store it")
        # streamed in blocks of rows: building the whole file in memory first cost ~7x the matrix
        # (Python floats, then the lines, then one string, then its bytes: 1.7 GB at 12M words)
        block = 4096
        with atomic_open(path) as out:
            if fmt == "word2vec-binary":
                out.write(f"{len(self)} {self.dim}\n".encode())
                for start in range(0, len(self), block):
                    vecs = self.vectors[start:start + block].astype("<f4")
                    out.write(b"".join(w.encode("utf-8") + b" " + v.tobytes() + b"\n"
                                       for w, v in zip(self.words[start:start + block], vecs)))
                return path
            if fmt == "word2vec":
                out.write(f"{len(self)} {self.dim}\n".encode())
            row_format = " ".join(["%.8g"] * self.dim)  # 8 significant digits: float32 to ~1 ulp
            for start in range(0, len(self), block):
                rows = self.vectors[start:start + block].tolist()
                out.write("".join(w + " " + row_format % tuple(v) + "\n"
                                  for w, v in zip(self.words[start:start + block], rows)).encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path, fmt: str = "auto") -> Vectors:
        """Read a vectors file; ``fmt='auto'`` tells the three formats apart from the bytes."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vectors file not found: {path}")
        data = path.read_bytes()
        if fmt == "auto":
            fmt = sniff_format(data, path)
        if fmt == "word2vec-binary":
            return cls(*_parse_binary(data, path))
        if fmt in ("word2vec", "glove"):
            return cls(*_parse_text(data, path, header=fmt == "word2vec"))
        raise UsageError(f"unknown vectors format {fmt!r}{closest(fmt, FORMATS)}; known: {', '.join(FORMATS)}")


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


def sniff_format(data: bytes, path: Path) -> str:
    """'word2vec', 'word2vec-binary' or 'glove', from the first line and the bytes after it."""
    if not data.strip():
        raise FormatError(f"{path}: empty vectors file")
    first, _, rest = data.partition(b"\n")
    if _header(first) is None:
        return "glove"
    sample = rest[:65536]
    try:
        sample.decode("utf-8")
        textual = b"\x00" not in sample
    except UnicodeDecodeError as err:  # a cut multi-byte character at the end is still text
        textual = err.start >= len(sample) - 4 and b"\x00" not in sample
    return "word2vec" if textual else "word2vec-binary"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_header(path: Path, head: tuple[int, int]) -> tuple[int, int]:
    n, dim = head
    if dim < 1:
        raise FormatError(f"{path}:1: the header's dimension is {dim}; it must be at least 1")
    return n, dim


def _check_row(where: str, ref: str, word: str, row: np.ndarray, seen: dict[str, str]) -> None:
    """One loaded vector (``where``: the error prefix, ``ref``: how a later duplicate names it):
    finite values, a word not seen before (``seen``: word -> its ``ref``)."""
    if not np.isfinite(row).all():
        bad = row[~np.isfinite(row)][0]
        raise FormatError(f"{where}: word {word!r} has a non-finite value ({bad}); "
                          "vectors must be finite numbers")
    if word in seen:
        raise FormatError(f"{where}: duplicate word {word!r} (first at {seen[word]})")
    seen[word] = ref


def _parse_text(data: bytes, path: Path, header: bool) -> tuple[list[str], np.ndarray]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise FormatError(f"{path}:{line}: not valid UTF-8 at byte {err.start}") from None
    lines = text.splitlines()
    start = 0
    n_expected = dim = None
    if header:
        head = _header(lines[0].encode()) if lines else None
        if head is None:
            raise FormatError(f"{path}:1: expected a 'count dim' header line")
        n_expected, dim = _check_header(path, head)
        start = 1
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: dict[str, str] = {}
    dim_from = "the header" if header else "line"
    for lineno in range(start, len(lines)):
        line = lines[lineno].rstrip()
        if not line:
            continue
        parts = line.split(" ")
        if dim is None:
            dim = len(parts) - 1
            dim_from = f"line {lineno + 1}"
            if dim < 1:
                raise FormatError(f"{path}:{lineno + 1}: expected 'word x1 ... xd'")
        if len(parts) < dim + 1:
            raise FormatError(f"{path}:{lineno + 1}: expected {dim} numbers after the word (as {dim_from} says), "
                              f"got {len(parts) - 1}")
        if len(parts) > dim + 1 and all(_is_number(t) for t in parts[1:]):
            # a word with spaces is kept (GloVe has a few), but not a word followed by too many numbers
            raise FormatError(f"{path}:{lineno + 1}: {len(parts) - 1} numbers after the word, but {dim_from} "
                              f"says the dimension is {dim}")
        try:
            row = np.array(parts[-dim:], dtype=np.float32)
        except ValueError:
            raise FormatError(f"{path}:{lineno + 1}: not a number among the {dim} values") from None
        word = " ".join(parts[:-dim])
        _check_row(f"{path}:{lineno + 1}", f"line {lineno + 1}", word, row, seen)
        rows.append(row)
        words.append(word)
        if n_expected is not None and len(words) > n_expected:
            raise FormatError(f"{path}:{lineno + 1}: more words than the header's count ({n_expected})")
    if n_expected is not None and n_expected != len(words):
        raise FormatError(f"{path}:1: header says {n_expected} words, file has {len(words)}")
    if not words:
        raise FormatError(f"{path}: no vectors in the file")
    return words, np.stack(rows)


def _parse_binary(data: bytes, path: Path) -> tuple[list[str], np.ndarray]:
    first, _, _ = data.partition(b"\n")
    head = _header(first)
    if head is None:
        raise FormatError(f"{path}:1: expected a 'count dim' header line")
    n, dim = _check_header(path, head)
    pos = len(first) + 1
    width = 4 * dim
    words: list[str] = []
    out = np.empty((n, dim), dtype=np.float32)
    seen: dict[str, str] = {}
    hint = f"is the header's dimension ({dim}) right?"
    for i in range(n):
        while pos < len(data) and data[pos] in (0x0A, 0x20):  # the '\n' after a vector (optional)
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + width > len(data):
            raise FormatError(f"{path}: truncated binary vectors file at word {i + 1} of {n} "
                              f"(byte {pos}); is the header's count ({n}) or dimension ({dim}) right?")
        raw = data[pos:space]
        try:
            word = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{path}: word {i + 1} (byte {pos}) is not valid UTF-8; {hint}") from None
        if any(ord(ch) < 32 or ch == "\x7f" for ch in word):
            raise FormatError(f"{path}: word {i + 1} (byte {pos}) has control characters; {hint}")
        out[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        _check_row(f"{path}: word {i + 1} (byte {pos})", f"word {i + 1}", word, out[i], seen)
        words.append(word)
        pos = space + 1 + width
    if data[pos:].strip(b"\n "):
        raise FormatError(f"{path}: data after word {n} (byte {pos}); the header says {n} words of dimension {dim}")
    return words, out
