"""Character-level tokenizer over Unicode code points (Chinese, accents and emoji work).

The vocabulary is the set of characters seen in training (optionally cut by
``min_count`` / ``max_size``), after the fixed specials ``<unk>`` ``<s>`` ``</s>``
``<pad>``; unseen characters (and ``\\n``, which training leaves out) map to
``<unk>``. Decoding joins characters back with no separator, so
``decode(encode(text)) == text`` for in-vocabulary text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ...errors import FormatError
from .word import SPECIALS, WordTokenizer, read_config


class CharTokenizer(WordTokenizer):
    """Same specials as the word tokenizer; tokens are characters, saved as a JSON list (``vocab.json``)."""

    kind = "char"
    lowercase_by_default = False

    def tokenize(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def train(self, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> CharTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        counts.pop("\n", None)
        return self.train_from_counts(counts, min_count, max_size)

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        return "".join(self.decode_tokens(ids, skip_specials))

    def files(self) -> dict[str, bytes]:
        """``vocab.json`` (characters may be whitespace, so a JSON list, not lines) and ``tokenizer_config.json``."""
        return {"vocab.json": (json.dumps(self.tokens, ensure_ascii=False) + "\n").encode("utf-8"),
                "tokenizer_config.json": self.config_json()}

    @classmethod
    def load(cls, folder: str | Path) -> CharTokenizer:
        folder = Path(folder)
        path = folder / "vocab.json"
        if not path.is_file():
            raise FormatError(f"{folder}: no vocab.json (not a char tokenizer folder)")
        try:
            tokens = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(f"{path}: not a JSON list ({err})") from None
        if not isinstance(tokens, list) or tokens[: len(SPECIALS)] != list(SPECIALS):
            raise FormatError(f"{path}: must be a JSON list starting with {', '.join(SPECIALS)}")
        config = read_config(folder)
        return cls(tokens, lowercase=config.get("lowercase"), extra_specials=tuple(config.get("extra_specials", ())))
