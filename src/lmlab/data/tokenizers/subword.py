"""Subword tokenizers through the Hugging Face ``tokenizers`` library.

Four models, each trained on an iterator of texts and saved as the library's
own ``tokenizer.json`` (so the folder also loads in ``transformers``):

| kind | model | pre-tokenizer | as in |
|---|---|---|---|
| ``bpe`` | BPE, ``<unk>`` | Metaspace (``▁`` marks a word start) | Sennrich et al.; SentencePiece-BPE |
| ``wordpiece`` | WordPiece, ``##`` continuation, ``[UNK]`` | BERT's (whitespace, punctuation) | BERT |
| ``bytebpe`` | byte-level BPE, no unknowns | byte-level (``Ġ`` marks a space) | GPT-2, RoBERTa |
| ``unigram`` | Unigram LM (Kudo 2018) | Metaspace (``▁``) | SentencePiece, T5, ALBERT |

Byte-level BPE round-trips any text exactly; the others round-trip modulo the
whitespace their pre-tokenizer normalises.

Determinism: ``bpe`` and ``bytebpe`` train to the same ``tokenizer.json`` on the same text
every time (tested). ``wordpiece`` and ``unigram`` do not (measured: three trainings, three
different files, also with one thread): the ``tokenizers`` library creates WordPiece's ``##``
continuation tokens in hash-map order and breaks ties between equally frequent pairs by id
(huggingface/tokenizers#1794, fix proposed in #2066). Where runs must be reproducible, train
those once and reuse the saved folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ...errors import ConfigError, FormatError, UsageError
from ...io import atomic_write_text

KINDS = ("bpe", "wordpiece", "bytebpe", "unigram")

DEFAULT_SPECIALS = {
    "bpe": ["<unk>", "<s>", "</s>", "<pad>"],
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bytebpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "unigram": ["<pad>", "</s>", "<unk>", "<s>", "<mask>"],
}
UNK_TOKEN = {"bpe": "<unk>", "wordpiece": "[UNK]", "bytebpe": None, "unigram": "<unk>"}


class SubwordTokenizer:
    """``train`` / ``encode`` / ``decode`` / ``save`` / ``load`` around a ``tokenizers.Tokenizer``."""

    def __init__(self, kind: str, tokenizer=None):
        if kind not in KINDS:
            raise UsageError(f"unknown subword tokenizer {kind!r}; choose one of {', '.join(KINDS)}")
        self.kind = kind
        self._tok = tokenizer

    def _build(self, vocab_size: int, min_frequency: int, specials: list[str]):
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        if self.kind == "bpe":
            # word starts marked with "▁" (SentencePiece-style BPE) rather than GPT-1's "</w>" suffix:
            # the library creates suffixed tokens in hash-map order, which makes training
            # non-deterministic (huggingface/tokenizers#1794); without them it is deterministic
            tok = Tokenizer(models.BPE(unk_token="<unk>"))
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            tok.decoder = decoders.Metaspace()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                          special_tokens=specials, show_progress=False)
        elif self.kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece()
            trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                special_tokens=specials, show_progress=False)
        elif self.kind == "bytebpe":
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                          special_tokens=specials,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        else:  # unigram
            tok = Tokenizer(models.Unigram())
            tok.normalizer = normalizers.NFKC()
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            tok.decoder = decoders.Metaspace()
            trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                              unk_token="<unk>", shrinking_factor=0.75, show_progress=False)
        return tok, trainer

    def train(self, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
              specials: list[str] | None = None) -> SubwordTokenizer:
        specials = list(specials or DEFAULT_SPECIALS[self.kind])
        tok, trainer = self._build(vocab_size, min_frequency, specials)
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok
        return self

    @property
    def tokenizer(self):
        if self._tok is None:
            raise UsageError(f"the {self.kind} tokenizer is not trained yet")
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self.tokenizer.id_to_token(index)

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_specials)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "tokenizer.json", self.tokenizer.to_str())
        atomic_write_text(folder / "tokenizer_config.json", json.dumps({"type": self.kind}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, kind: str | None = None) -> SubwordTokenizer:
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FormatError(f"{folder}: no tokenizer.json")
        if kind is None:
            config_path = folder / "tokenizer_config.json"
            kind = json.loads(config_path.read_text("utf-8")).get("type") if config_path.is_file() else None
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # the library raises a plain Exception
            raise FormatError(f"{path}: cannot read tokenizer ({str(err).splitlines()[0]})") from None
        if kind not in KINDS:
            kind = {"BPE": "bpe", "WordPiece": "wordpiece", "Unigram": "unigram"}.get(
                json.loads(path.read_text("utf-8"))["model"]["type"], "bpe")
        return cls(kind, tok)


def special_ids(tokenizer) -> dict:
    """BERT's special-token ids (pad, cls, sep, mask, unk) in a subword tokenizer; RoBERTa's names for bytebpe."""
    if tokenizer.kind == "bytebpe":
        names = {"pad": "<pad>", "cls": "<s>", "sep": "</s>", "mask": "<mask>", "unk": "<unk>"}
    else:
        names = {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]", "unk": "[UNK]"}
    ids = {key: tokenizer.token_to_id(token) for key, token in names.items()}
    if any(v is None for k, v in ids.items() if k != "unk"):
        raise ConfigError(f"the {tokenizer.kind} tokenizer lacks BERT's special tokens {list(names.values())}")
    return ids


def tokenizer_files(tokenizer) -> dict[str, bytes]:
    """The files a SubwordTokenizer saves, as bytes (for a model folder)."""
    return {"tokenizer.json": tokenizer.tokenizer.to_str().encode("utf-8"),
            "tokenizer_config.json": (json.dumps({"type": tokenizer.kind}, indent=2) + "\n").encode("utf-8")}
