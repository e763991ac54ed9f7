"""Word-level tokenizer with a closed vocabulary.

Tokens are found by one regular expression, tried left to right:

1. numbers: digits with inner ``.`` ``,`` ``:`` groups (``1,000.5``, ``12:30``),
   optionally glued to letters (``20th``, ``1990s``) and hyphen-joined words
   (``20th-century``);
2. words: runs of letters (any script, accents included), with inner
   apostrophes and hyphens (``don't``, ``co-wrote``, ``o'neill``);
3. any other single non-space character (punctuation, symbols, a CJK character
   when text has not been segmented).

Lowercasing is optional (on for the shared word-level LM stream). The
vocabulary is closed: words below ``min_count`` or beyond ``max_size`` map to
``<unk>``. Special tokens come first, in a fixed order, so their ids never move:
``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<pad>`` = 3, then any extra
specials a family asks for (``[MASK]``, ...), then words by descending count
(ties alphabetical).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ...errors import FormatError
from ...io import atomic_write_text

_LETTERS = r"[^\W\d_]"
_WORD_RE = re.compile(
    rf"""
    \d+(?:[.,:]\d+)*(?:{_LETTERS}+)?(?:-(?:{_LETTERS}|\d)+)*     # numbers, 20th, 20th-century
    | {_LETTERS}+(?:['’\-]{_LETTERS}+)*                           # words, don't, co-wrote
    | \S                                                          # anything else, one char
    """,
    re.VERBOSE,
)

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIALS = (UNK, BOS, EOS, PAD)


def word_tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Split text into word, number and punctuation tokens (see the module docstring)."""
    if lowercase:
        text = text.lower()
    return _WORD_RE.findall(text)


class WordTokenizer:
    """Closed-vocabulary word tokenizer: ``train``, ``encode``, ``decode``, ``save``, ``load``."""

    kind = "word"

    def __init__(self, vocab: list[str] | None = None, lowercase: bool = True,
                 extra_specials: tuple[str, ...] = ()):
        self.lowercase = lowercase
        self.extra_specials = tuple(extra_specials)
        self.id_to_token: list[str] = list(vocab) if vocab is not None else list(SPECIALS) + list(extra_specials)
        self.token_to_id = {t: i for i, t in enumerate(self.id_to_token)}

    # -- training -------------------------------------------------------------------------
    def train(self, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(word_tokenize(text, self.lowercase))
        return self.train_from_counts(counts, min_count, max_size)

    def train_from_tokens(self, sentences: Iterable[list[str]], min_count: int = 1,
                          max_size: int | None = None) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence)
        return self.train_from_counts(counts, min_count, max_size)

    def train_from_counts(self, counts: Counter, min_count: int = 1,
                          max_size: int | None = None) -> WordTokenizer:
        specials = list(SPECIALS) + [s for s in self.extra_specials if s not in SPECIALS]
        words = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in specials),
            key=lambda w: (-counts[w], w),
        )
        if max_size is not None:
            words = words[: max(0, max_size - len(specials))]
        self.id_to_token = specials + words
        self.token_to_id = {t: i for i, t in enumerate(self.id_to_token)}
        return self

    # -- use ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    @property
    def unk_id(self) -> int:
        return self.token_to_id[UNK]

    def tokenize(self, text: str) -> list[str]:
        return word_tokenize(text, self.lowercase)

    def encode_tokens(self, tokens: Iterable[str]) -> list[int]:
        get, unk = self.token_to_id.get, self.token_to_id[UNK]
        return [get(t, unk) for t in tokens]

    def encode(self, text: str) -> list[int]:
        return self.encode_tokens(self.tokenize(text))

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        specials = set(SPECIALS) | set(self.extra_specials)
        tokens = [self.id_to_token[int(i)] for i in ids]
        if skip_specials:
            tokens = [t for t in tokens if t not in specials or t == UNK]
        return " ".join(tokens)

    # -- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "vocab.txt", "\n".join(self.id_to_token) + "\n")
        atomic_write_text(folder / "tokenizer_config.json", json.dumps(
            {"type": self.kind, "lowercase": self.lowercase, "extra_specials": list(self.extra_specials)},
            indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> WordTokenizer:
        folder = Path(folder)
        vocab_path = folder / "vocab.txt"
        if not vocab_path.is_file():
            raise FormatError(f"{folder}: no vocab.txt (not a word tokenizer folder)")
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
        vocab = vocab_path.read_text("utf-8").split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        if len(set(vocab)) != len(vocab):
            raise FormatError(f"{vocab_path}: duplicate entries in the vocabulary")
        if vocab[: len(SPECIALS)] != list(SPECIALS):
            raise FormatError(f"{vocab_path}: must start with {', '.join(SPECIALS)}")
        return cls(vocab, lowercase=config.get("lowercase", True),
                   extra_specials=tuple(config.get("extra_specials", ())))
