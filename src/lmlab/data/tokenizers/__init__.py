"""Tokenizers behind one small protocol: ``train``, ``encode``, ``decode``, ``save``, ``load``.

| name | class | file |
|---|---|---|
| word | :class:`WordTokenizer` (closed vocabulary, ``<unk>``) | word.py |
| char | :class:`CharTokenizer` (Unicode code points) | char.py |
| bpe, wordpiece, bytebpe, unigram | :class:`SubwordTokenizer` (Hugging Face ``tokenizers``) | subword.py |
| zh-word | :class:`ChineseWordTokenizer` (gold segmentation or jieba) | chinese.py |

A saved tokenizer is a folder with ``tokenizer_config.json`` naming its type;
:func:`load_tokenizer` reads any of them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ...errors import FormatError, UsageError, closest
from .char import CharTokenizer
from .chinese import ChineseWordTokenizer
from .subword import KINDS as SUBWORD_KINDS
from .subword import SubwordTokenizer
from .word import WordTokenizer, word_tokenize

NAMES = ("word", "char", *SUBWORD_KINDS, "zh-word")


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
        return SubwordTokenizer(kind).train(texts, vocab_size=vocab_size or 8000, min_frequency=max(min_count, 2))
    raise UsageError(f"unknown tokenizer {kind!r}{closest(kind, NAMES)}; choose one of {', '.join(NAMES)}")


def load_tokenizer(folder: str | Path):
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"tokenizer folder not found: {folder}")
    config_path = folder / "tokenizer_config.json"
    kind = None
    if config_path.is_file():
        try:
            kind = json.loads(config_path.read_text("utf-8")).get("type")
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(f"{config_path}: not valid JSON ({err})") from None
    if kind == "word":
        return WordTokenizer.load(folder)
    if kind == "char":
        return CharTokenizer.load(folder)
    if kind == "zh-word":
        return ChineseWordTokenizer.load(folder)
    if kind in SUBWORD_KINDS or (folder / "tokenizer.json").is_file():
        return SubwordTokenizer.load(folder, kind)
    raise FormatError(f"{folder}: no tokenizer files (tokenizer_config.json / tokenizer.json / vocab.txt)")


__all__ = ["WordTokenizer", "CharTokenizer", "SubwordTokenizer", "ChineseWordTokenizer", "word_tokenize",
           "train_tokenizer", "load_tokenizer", "NAMES"]
