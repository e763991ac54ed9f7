"""Documents, corpora, the deterministic train/valid/test split, and user text files.

A corpus is a list of :class:`Document` (an id, cleaned text, metadata). The
split is by document and depends only on each document's *split key* (its id,
or a group such as the movie of a review) and a seed: the key is hashed with
SHA-1 to a number in [0, 1) that picks the split by the fractions. So the same
corpus always splits the same way, a document never changes split when others
are added or removed ("stable when the corpus grows"), and documents that share
a key (all reviews of one movie) always land in the same split.

User corpora (:func:`read_user_corpus`): a text file with one document per line
(``doc_sep="line"``) or documents separated by blank lines (``doc_sep="blank"``),
a directory or glob of such files (``*.txt``, ``*.jsonl``, compressed too), or
JSONL with a ``text`` field (other fields become metadata). ``.gz``, ``.bz2``
and ``.xz`` files are read transparently. Invalid UTF-8 is an error that names
the file and byte offset, unless ``errors="replace"``.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import json
import lzma
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .clean import clean_text, split_sentences

SPLITS = ("train", "valid", "test")
TEXT_SUFFIXES = {".txt", ".text", ".jsonl", ".json", ".md", ".csv", ".tsv"}
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass
class Document:
    id: str
    text: str
    meta: dict = field(default_factory=dict)


@dataclass
class Splits:
    train: list[Document]
    valid: list[Document]
    test: list[Document]

    def __getitem__(self, name: str) -> list[Document]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def items(self):
        return [(name, getattr(self, name)) for name in SPLITS]


def split_fraction(key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on ``key`` and ``seed``."""
    digest = hashlib.sha1(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Corpus:
    name: str
    documents: list[Document]
    split_key: Callable[[Document], str] | None = None  # default: the document id
    description: str = ""

    def __len__(self) -> int:
        return len(self.documents)

    def split(self, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> Splits:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
            raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
        cut_train, cut_valid = fractions[0], fractions[0] + fractions[1]
        parts: dict[str, list[Document]] = {name: [] for name in SPLITS}
        key = self.split_key or (lambda d: d.id)
        for doc in self.documents:
            u = split_fraction(key(doc), seed)
            name = "train" if u < cut_train else "valid" if u < cut_valid else "test"
            parts[name].append(doc)
        return Splits(**parts)


def sentences_of(documents: Iterable[Document]) -> list[str]:
    """All sentences of the documents, in order."""
    out: list[str] = []
    for doc in documents:
        out.extend(split_sentences(doc.text))
    return out


def word_sentences(documents: Iterable[Document], lowercase: bool = True) -> list[list[str]]:
    """THE shared word-level stream: sentence-split, word-tokenized, (lowercased) sentences.

    Every word-level language model in lmlab (n-grams, NNLM, LSTM, word-level GPT)
    is scored on this stream, so their perplexities are comparable: ``</s>`` is
    predicted once per sentence and counted, ``<s>`` is context only.
    """
    from .tokenizers.word import word_tokenize

    out: list[list[str]] = []
    for sentence in sentences_of(documents):
        tokens = word_tokenize(sentence, lowercase)
        if tokens:
            out.append(tokens)
    return out


# -- reading user files ----------------------------------------------------------------------

def _open_bytes(path: Path) -> bytes:
    opener = COMPRESSED.get(path.suffix.lower())
    try:
        if opener is None:
            return path.read_bytes()
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


# Magic numbers of binary formats users hand in by mistake: (prefix, what it is). Checked before
# decoding, so that neither "invalid UTF-8" nor --errors replace turns an image into a corpus.
BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x7fELF", "an ELF executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE (old Microsoft Office) document"),
)


def sniff_binary(data: bytes) -> str | None:
    """What a non-text file is ("a ZIP archive", "a PNG image", ...), or None when it may be text."""
    for magic, what in BINARY_MAGIC:
        if data.startswith(magic):
            return what
    if len(data) >= 10 and data[:3] == b"BZh" and data[3:4] in b"123456789" and \
            data[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "a bzip2 file"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "a tar archive"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text (convert it to UTF-8)"
    nul = data.find(b"\x00", 0, 8192)
    if nul >= 0:
        return f"binary data (a NUL byte at offset {nul})"
    return None


def check_text(data: bytes, where: str) -> None:
    """Raise ``DataError("WHERE: this is a ZIP archive, not text")`` when ``data`` is a known binary
    format; every reader of user text files calls this (through :func:`decode_utf8`)."""
    what = sniff_binary(data)
    if what is None:
        return
    hint = ""
    if what in ("a gzip file", "a bzip2 file", "an xz file") and not where.lower().endswith((".gz", ".bz2", ".xz")):
        ext = {"a gzip file": ".gz", "a bzip2 file": ".bz2", "an xz file": ".xz"}[what]
        hint = f" (compressed text is read from files named *{ext})"
    raise DataError(f"{where}: this is {what}, not text{hint}")


def decode_utf8(data: bytes, where: str, errors: str = "strict") -> str:
    """Decode UTF-8; on failure say which file and byte offset, and how to carry on. Known binary
    formats (ZIP, PNG, PDF, ...) are refused first, whatever ``errors`` says (:func:`check_text`)."""
    check_text(data, where)
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{where}: invalid UTF-8 at byte offset {err.start}; fix the file or pass --errors replace"
        ) from None
    return text.lstrip("\ufeff")


def _logical_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_text_file(path: Path, doc_sep: str = "line", errors: str = "strict") -> list[Document]:
    text = decode_utf8(_open_bytes(path), str(path), errors)
    docs: list[Document] = []
    if _logical_suffix(path) == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(f"{path}:{lineno}: JSONL record has no string 'text' field")
            body = clean_text(record.pop("text"))
            if body:
                doc_id = str(record.pop("id", f"{path.name}:{lineno}"))
                docs.append(Document(doc_id, body, record))
        return docs
    if doc_sep == "line":
        chunks = [(i, line) for i, line in enumerate(text.splitlines(), 1)]
    elif doc_sep == "blank":
        chunks, current, first = [], [], 1
        for i, line in enumerate(text.splitlines() + [""], 1):
            if line.strip():
                if not current:
                    first = i
                current.append(line)
            elif current:
                chunks.append((first, "\n".join(current)))
                current = []
    else:
        raise DataError(f"unknown document separator {doc_sep!r}; use 'line' or 'blank'")
    for lineno, chunk in chunks:
        body = clean_text(chunk)
        if body:
            docs.append(Document(f"{path.name}:{lineno}", body, {"source": str(path)}))
    return docs


def read_user_corpus(spec: str | Path, doc_sep: str = "line", errors: str = "strict") -> Corpus:
    """A corpus from a file, a directory (all text files below it) or a glob."""
    spec_str = str(spec)
    path = Path(spec_str).expanduser()
    if any(ch in spec_str for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec_str, recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"no files match {spec_str}")
    elif path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and _logical_suffix(p) in TEXT_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"{path}: directory has no text files (.txt, .jsonl, optionally .gz/.bz2/.xz)")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"no such file or directory: {path}")
    documents: list[Document] = []
    for file in files:
        documents.extend(read_text_file(file, doc_sep, errors))
    if not documents:
        raise DataError(f"{spec_str}: the corpus is empty (no non-blank documents)")
    return Corpus(name=path.name if not any(ch in spec_str for ch in "*?[") else spec_str, documents=documents)


def document_sentences(documents) -> list[list[list[str]]]:
    """Documents -> one list of word-level sentences per document (the shared stream's rules)."""
    return [word_sentences([d]) for d in documents]
