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

``decode`` joins tokens with single spaces, so ``decode(encode(text))`` is the
text's tokens, lowercased when ``lowercase`` is on, with out-of-vocabulary words
as ``<unk>``: not the text itself.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ...errors import FormatError
from ..vocab import by_count
from .base import find_special_ids, write_files

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
# (role, token) for special_ids(): the fixed four, then the extra specials a family may ask for
SPECIAL_ROLES = (("unk", UNK), ("bos", BOS), ("eos", EOS), ("pad", PAD),
                 ("mask", "[MASK]"), ("mask", "<mask>"), ("cls", "[CLS]"), ("sep", "[SEP]"))


def word_tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Split text into word, number and punctuation tokens (see the module docstring)."""
    if lowercase:
        text = text.lower()
    return _WORD_RE.findall(text)


class WordTokenizer:
    """Closed-vocabulary word tokenizer implementing :class:`lmlab.protocols.Tokenizer`.

    ``tokens`` is the vocabulary in id order and ``vocab`` maps each token to its id;
    :meth:`token_to_id` / :meth:`id_to_token` look them up one at a time.
    """

    kind = "word"
    lowercase_by_default = True

    def __init__(self, tokens: list[str] | None = None, lowercase: bool | None = None,
                 extra_specials: tuple[str, ...] = ()):
        self.lowercase = self.lowercase_by_default if lowercase is None else lowercase
        self.extra_specials = tuple(extra_specials)
        self._set_tokens(list(tokens) if tokens is not None else list(SPECIALS) + list(extra_specials))

    def _set_tokens(self, tokens: list[str]) -> None:
        self.tokens: list[str] = tokens
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    # -- training -------------------------------------------------------------------------
    def train(self, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        return self.train_from_counts(counts, min_count, max_size)

    def train_from_tokens(self, sentences: Iterable[list[str]], min_count: int = 1,
                          max_size: int | None = None) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence)
        return self.train_from_counts(counts, min_count, max_size)

    def train_from_counts(self, counts: Counter, min_count: int = 1,
                          max_size: int | None = None) -> WordTokenizer:
        self._set_tokens(by_count(counts, [*SPECIALS, *self.extra_specials], min_count, max_size))
        return self

    # -- use ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return self.vocab[UNK]

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, index: int) -> str | None:
        return self.tokens[index] if 0 <= index < len(self.tokens) else None

    def special_ids(self) -> dict[str, int]:
        """``{role: id}``: unk, bos, eos, pad, and mask / cls / sep when they are extra specials."""
        return find_special_ids(SPECIAL_ROLES, self.token_to_id)

    def tokenize(self, text: str) -> list[str]:
        return word_tokenize(text, self.lowercase)

    def encode_tokens(self, tokens: Iterable[str]) -> list[int]:
        get, unk = self.vocab.get, self.vocab[UNK]
        return [get(t, unk) for t in tokens]

    def encode(self, text: str) -> list[int]:
        return self.encode_tokens(self.tokenize(text))

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode_tokens(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """The tokens of ``ids`` (``skip_specials`` drops every special except ``<unk>``)."""
        tokens = [self.tokens[int(i)] for i in ids]
        if skip_specials:
            specials = set(SPECIALS) | set(self.extra_specials)
            tokens = [t for t in tokens if t not in specials or t == UNK]
        return tokens

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        return " ".join(self.decode_tokens(ids, skip_specials))

    # -- files ----------------------------------------------------------------------------
    def config_json(self) -> bytes:
        return (json.dumps({"type": self.kind, "lowercase": self.lowercase,
                            "extra_specials": list(self.extra_specials)}, indent=2) + "\n").encode("utf-8")

    def files(self) -> dict[str, bytes]:
        """``vocab.txt`` (one token a line, in id order) and ``tokenizer_config.json``."""
        return {"vocab.txt": ("\n".join(self.tokens) + "\n").encode("utf-8"),
                "tokenizer_config.json": self.config_json()}

    def save(self, folder: str | Path) -> None:
        write_files(folder, self.files())

    @classmethod
    def load(cls, folder: str | Path) -> WordTokenizer:
        folder = Path(folder)
        vocab_path = folder / "vocab.txt"
        if not vocab_path.is_file():
            raise FormatError(f"{folder}: no vocab.txt (not a word tokenizer folder)")
        config = read_config(folder)
        tokens = vocab_path.read_text("utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if len(set(tokens)) != len(tokens):
            raise FormatError(f"{vocab_path}: duplicate entries in the vocabulary")
        if tokens[: len(SPECIALS)] != list(SPECIALS):
            raise FormatError(f"{vocab_path}: must start with {', '.join(SPECIALS)}")
        return cls(tokens, lowercase=config.get("lowercase"),
                   extra_specials=tuple(config.get("extra_specials", ())))


def read_config(folder: Path) -> dict:
    """``tokenizer_config.json`` of ``folder`` as a dict ({} when absent)."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise FormatError(f"{path}: must be a JSON object")
    return config
