"""Character-level tokenizer over Unicode code points (Chinese, accents and emoji work).

The vocabulary is the set of characters seen in training (optionally cut by
``min_count`` / ``max_size``), after the fixed specials ``<unk>`` ``<s>`` ``</s>``
``<pad>``; unseen characters map to ``<unk>``. Decoding joins characters back
with no separator, so ``decode(encode(text)) == text`` for in-vocabulary text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .word import SPECIALS, WordTokenizer


class CharTokenizer(WordTokenizer):
    """Same vocabulary file format and specials as the word tokenizer; tokens are characters."""

    kind = "char"

    def __init__(self, vocab: list[str] | None = None, lowercase: bool = False,
                 extra_specials: tuple[str, ...] = ()):
        super().__init__(vocab, lowercase=lowercase, extra_specials=extra_specials)

    def tokenize(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def train(self, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> CharTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        counts.pop("\n", None)
        return self.train_from_counts(counts, min_count, max_size)

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        specials = set(SPECIALS) | set(self.extra_specials)
        tokens = [self.id_to_token[int(i)] for i in ids]
        if skip_specials:
            tokens = [t for t in tokens if t not in specials or t == "<unk>"]
        return "".join(tokens)

    def save(self, folder: str | Path) -> None:
        # characters may be whitespace: store one code point per line as its hex number
        import json

        from ...io import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "vocab.json", json.dumps(self.id_to_token, ensure_ascii=False) + "\n")
        atomic_write_text(folder / "tokenizer_config.json", json.dumps(
            {"type": self.kind, "lowercase": self.lowercase, "extra_specials": list(self.extra_specials)},
            indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> CharTokenizer:
        import json

        from ...errors import FormatError

        folder = Path(folder)
        path = folder / "vocab.json"
        if not path.is_file():
            raise FormatError(f"{folder}: no vocab.json (not a char tokenizer folder)")
        try:
            vocab = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(f"{path}: not a JSON list ({err})") from None
        if not isinstance(vocab, list) or vocab[: len(SPECIALS)] != list(SPECIALS):
            raise FormatError(f"{path}: must be a JSON list starting with {', '.join(SPECIALS)}")
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
        return cls(vocab, lowercase=config.get("lowercase", False),
                   extra_specials=tuple(config.get("extra_specials", ())))
