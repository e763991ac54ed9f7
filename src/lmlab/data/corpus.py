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


def decode_utf8(data: bytes, where: str, errors: str = "strict") -> str:
    """Decode UTF-8; on failure say which file and byte offset, and how to carry on."""
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
