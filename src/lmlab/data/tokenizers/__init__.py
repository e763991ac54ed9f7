"""Tokenizers, each implementing :class:`lmlab.protocols.Tokenizer`.

That interface is ``kind``, ``vocab_size``, ``token_to_id(token) -> id | None``,
``id_to_token(id) -> token | None``, ``encode``, ``encode_batch``, ``decode``,
``special_ids() -> {role: id}``, ``files() -> {name: bytes}`` and ``save(folder)``,
which writes exactly ``files()``; :func:`load_tokenizer` reads any saved kind back.
:func:`train_tokenizer` trains one by name.

| name | class | file |
|---|---|---|
| word | :class:`WordTokenizer` (closed vocabulary, ``<unk>``) | word.py |
| char | :class:`CharTokenizer` (Unicode code points) | char.py |
| bpe, wordpiece, bytebpe, unigram | :class:`SubwordTokenizer` (Hugging Face ``tokenizers``) | subword.py |
| zh-word | :class:`ChineseWordTokenizer` (gold segmentation or jieba) | chinese.py |
| (GPT-2's files) | :meth:`SubwordTokenizer.from_gpt2_files`: ``vocab.json`` + ``merges.txt`` as bytebpe | subword.py |

A saved tokenizer is a folder with ``tokenizer_config.json`` naming its type;
:func:`load_tokenizer` reads any of them back, and also a folder holding only a
``tokenizer.json`` or GPT-2's ``vocab.json`` + ``merges.txt`` (a Hugging Face folder).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...errors import FormatError, UsageError, closest
from .char import CharTokenizer
from .chinese import ChineseWordTokenizer
from .subword import KINDS as SUBWORD_KINDS
from .subword import SubwordTokenizer
from .word import WordTokenizer, read_config, word_tokenize

NAMES = ("word", "char", *SUBWORD_KINDS, "zh-word")


CHECK_SUBWORD_ABOVE = 100_000  # below this no corpus makes the Rust trainer run out of memory


def check_learnable(kind: str, texts: list[str], vocab_size: int) -> None:
    """Refuse a subword vocabulary larger than the text can give (the Rust trainer would try to
    allocate for it and abort the process): every entry past the alphabet is a merge, and a word of
    n characters takes at most n - 1 merges, so a vocabulary holds at most the 256 bytes, the
    characters and one entry per character of each distinct word."""
    distinct: set[str] = set()
    for text in texts:
        distinct.update(text.split())
    chars = {c for w in distinct for c in w}
    bound = 256 + len(chars) + sum(len(w) for w in distinct)
    if vocab_size > bound:
        raise UsageError(f"--vocab-size {vocab_size:,} is more than a {kind} tokenizer can learn from this text "
                         f"(at most ~{bound:,} entries: its {len(chars):,} characters and the merges within its "
                         f"{len(distinct):,} distinct words)")


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None, min_count: int = 1,
                    lowercase: bool = True):
    """Train a tokenizer of ``kind`` on ``texts``; ``vocab_size`` caps word/char vocabularies."""
    if kind == "word":
        return WordTokenizer(lowercase=lowercase).train(texts, min_count=min_count, max_size=vocab_size)
    if kind == "char":
        return CharTokenizer(lowercase=False).train(texts, min_count=min_count, max_size=vocab_size)
    if kind == "zh-word":
        return ChineseWordTokenizer().train(texts, min_count=min_count, max_size=vocab_size)
    if kind in SUBWORD_KINDS:
        vocab_size = vocab_size or 8000
        if vocab_size > CHECK_SUBWORD_ABOVE:
            texts = list(texts)
            check_learnable(kind, texts, vocab_size)
        return SubwordTokenizer(kind).train(texts, vocab_size=vocab_size, min_frequency=max(min_count, 2))
    raise UsageError(f"unknown tokenizer {kind!r}{closest(kind, NAMES)}; choose one of {', '.join(NAMES)}")


def load_tokenizer(folder: str | Path):
    """The tokenizer saved in ``folder``, of whatever kind its ``tokenizer_config.json`` names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"tokenizer folder not found: {folder}")
    kind = read_config(folder).get("type")
    if kind == "word":
        return WordTokenizer.load(folder)
    if kind == "char":
        return CharTokenizer.load(folder)
    if kind == "zh-word":
        return ChineseWordTokenizer.load(folder)
    if kind in SUBWORD_KINDS or (folder / "tokenizer.json").is_file():
        return SubwordTokenizer.load(folder, kind)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return SubwordTokenizer.from_gpt2_files(folder)
    raise FormatError(f"{folder}: no tokenizer files (tokenizer_config.json / tokenizer.json / vocab.txt / "
                      "vocab.json + merges.txt)")


__all__ = ["WordTokenizer", "CharTokenizer", "SubwordTokenizer", "ChineseWordTokenizer", "word_tokenize",
           "train_tokenizer", "load_tokenizer", "NAMES"]
