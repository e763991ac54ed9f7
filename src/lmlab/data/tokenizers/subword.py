"""Subword tokenizers through the Hugging Face ``tokenizers`` library.

Four models, each trained on an iterator of texts and saved as the library's
own ``tokenizer.json`` (so the folder also loads in ``transformers``):

| kind | model | pre-tokenizer | as in |
|---|---|---|---|
| ``bpe`` | BPE, ``<unk>`` | Metaspace (``▁`` marks a word start) | Sennrich et al.; SentencePiece-BPE |
| ``wordpiece`` | WordPiece, ``##`` continuation, ``[UNK]`` | BERT's (whitespace, punctuation) | BERT |
| ``bytebpe`` | byte-level BPE, no unknowns | byte-level (``Ġ`` marks a space) | GPT-2, RoBERTa |
| ``unigram`` | Unigram LM (Kudo 2018) | Metaspace (``▁``) | SentencePiece, T5, ALBERT |

:meth:`SubwordTokenizer.from_gpt2_files` reads GPT-2's own ``vocab.json`` + ``merges.txt`` as a
``bytebpe`` tokenizer.

Byte-level BPE round-trips any text exactly; the others round-trip modulo the
whitespace their pre-tokenizer normalises.

Determinism: every kind trains to the same ``tokenizer.json`` on the same text every time
(tested). The ``tokenizers`` library's own WordPiece trainer does not (measured: three trainings,
three different vocabularies, also with one thread): it creates the ``##`` continuation tokens in
hash-map order and breaks ties between equally frequent pairs by id (huggingface/tokenizers#1794).
So ``wordpiece`` is learned as a BPE over BERT's pre-tokens, each marked with a leading ``▁``
(BPE without prefixes is deterministic), and the merges are read back as a WordPiece vocabulary:
``▁piece`` is a word-initial ``piece``, any other piece a ``##piece`` continuation, every
character in both forms; the pieces merged last are dropped if that exceeds ``vocab_size``.
The Unigram trainer returns the same pieces each time but sums its EM scores in hash-map order
(scores differ in the 15th digit, and ids with them) and gives the characters it adds at the end
their made-up, evenly spaced scores in hash-map order: the pieces are re-ordered by score rounded
to 10 decimals, then by the piece, and that tail of characters takes its scores in character order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ...errors import ConfigError, FormatError, UsageError
from .base import find_special_ids, write_files

KINDS = ("bpe", "wordpiece", "bytebpe", "unigram")

DEFAULT_SPECIALS = {
    "bpe": ["<unk>", "<s>", "</s>", "<pad>"],
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bytebpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "unigram": ["<pad>", "</s>", "<unk>", "<s>", "<mask>"],
}
UNK_TOKEN = {"bpe": "<unk>", "wordpiece": "[UNK]", "bytebpe": None, "unigram": "<unk>"}
GPT2_END_OF_TEXT = "<|endoftext|>"

# (role, token) for special_ids(), first match per role; the tokens are the defaults above,
# bytebpe plays RoBERTa's roles (<s> as cls, </s> as sep) and falls back to GPT-2's <|endoftext|>
SPECIAL_ROLES = {
    "bpe": (("unk", "<unk>"), ("bos", "<s>"), ("eos", "</s>"), ("pad", "<pad>"), ("mask", "<mask>")),
    "wordpiece": (("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]")),
    "bytebpe": (("bos", "<s>"), ("cls", "<s>"), ("eos", "</s>"), ("sep", "</s>"), ("pad", "<pad>"),
                ("unk", "<unk>"), ("mask", "<mask>"), ("bos", GPT2_END_OF_TEXT), ("eos", GPT2_END_OF_TEXT)),
    "unigram": (("pad", "<pad>"), ("eos", "</s>"), ("unk", "<unk>"), ("bos", "<s>"), ("mask", "<mask>")),
}
BERT_ROLES = ("pad", "cls", "sep", "mask")


class SubwordTokenizer:
    """:class:`lmlab.protocols.Tokenizer` around a ``tokenizers.Tokenizer``: ``train`` one, ``load`` a saved
    folder, or read GPT-2's own ``vocab.json`` + ``merges.txt`` with :meth:`from_gpt2_files`."""

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
        if self.kind == "wordpiece":
            self._tok = _train_wordpiece(texts, vocab_size, min_frequency, specials)
            return self
        tok, trainer = self._build(vocab_size, min_frequency, specials)
        tok.train_from_iterator(texts, trainer=trainer)
        if self.kind == "unigram":
            tok = _canonical_unigram(tok)
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

    def special_ids(self) -> dict[str, int]:
        """``{role: id}`` of the specials this vocabulary has (roles: :data:`SPECIAL_ROLES`)."""
        return find_special_ids(SPECIAL_ROLES[self.kind], self.token_to_id)

    def files(self) -> dict[str, bytes]:
        """The library's ``tokenizer.json`` (it also loads in ``transformers``) and ``tokenizer_config.json``."""
        return {"tokenizer.json": self.tokenizer.to_str().encode("utf-8"),
                "tokenizer_config.json": (json.dumps({"type": self.kind}, indent=2) + "\n").encode("utf-8")}

    def save(self, folder: str | Path) -> None:
        write_files(folder, self.files())

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
            kind = _kind_of(json.loads(path.read_text("utf-8")))
        return cls(kind, tok)

    @classmethod
    def from_gpt2_files(cls, folder: str | Path) -> SubwordTokenizer:
        """GPT-2's own tokenizer files (``vocab.json`` + ``merges.txt``) as a ``bytebpe`` tokenizer.

        Byte-level BPE with GPT-2's pre-tokenizer (no prefix space) and decoder; ``<|endoftext|>``,
        when the vocabulary has it, is marked special (as in ``transformers``' GPT-2 tokenizer), so
        text containing it encodes to its id and ``decode(..., skip_specials=True)`` drops it.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        folder = Path(folder)
        vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
        for path in (vocab_path, merges_path):
            if not path.is_file():
                raise FormatError(f"{folder}: no {path.name} (GPT-2 tokenizer files are vocab.json + merges.txt)")
        try:
            model = models.BPE.from_file(str(vocab_path), str(merges_path))
        except Exception as err:  # the library raises a plain Exception
            raise FormatError(f"{folder}: cannot read vocab.json + merges.txt ({str(err).splitlines()[0]})") from None
        tok = Tokenizer(model)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        if tok.token_to_id(GPT2_END_OF_TEXT) is not None:
            tok.add_special_tokens([GPT2_END_OF_TEXT])
        return cls("bytebpe", tok)


def _kind_of(tokenizer_json: dict) -> str:
    """The kind of a ``tokenizer.json`` saved without lmlab's config: from its model and pre-tokenizer."""
    model_type = (tokenizer_json.get("model") or {}).get("type")
    pre_tokenizer = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre_tokenizer.get("pretokenizers", [pre_tokenizer]) if pre_tokenizer.get("type") == "Sequence" \
        else [pre_tokenizer]
    if model_type == "BPE" and any(step.get("type") == "ByteLevel" for step in steps):
        return "bytebpe"
    return {"BPE": "bpe", "WordPiece": "wordpiece", "Unigram": "unigram"}.get(model_type, "bpe")


def special_ids(tokenizer) -> dict:
    """BERT's special-token ids (pad, cls, sep, mask, and unk or None) of a tokenizer, from ``tokenizer.special_ids()``.

    Raises :class:`ConfigError` when one of pad, cls, sep, mask is missing (bpe and unigram have
    no cls / sep; bytebpe plays them with RoBERTa's ``<s>`` / ``</s>``).
    """
    ids = tokenizer.special_ids()
    missing = [role for role in BERT_ROLES if role not in ids]
    if missing:
        raise ConfigError(f"the {tokenizer.kind} tokenizer lacks BERT's special tokens for {', '.join(missing)} "
                          f"(it has {', '.join(sorted(ids)) or 'none'})")
    return {role: ids.get(role) for role in (*BERT_ROLES, "unk")}


def tokenizer_files(tokenizer) -> dict[str, bytes]:
    """The files ``tokenizer.save`` writes, as bytes (for a model folder): ``tokenizer.files()``."""
    return tokenizer.files()


WORD_START = "\u2581"  # "▁", the mark a word-initial piece carries while the BPE is learned


def _wordpiece_shell(vocab: dict[str, int], specials: list[str]):
    """A BERT-style WordPiece ``Tokenizer`` over ``vocab`` (NFC, BERT's pre-tokenizer, ``##``)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)
    return tok


def _train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int, specials: list[str]):
    """WordPiece vocabulary learned deterministically (see the module docstring): a BPE over
    ``▁``-marked BERT pre-tokens, its pieces read back in merge order as word-initial / ``##`` pieces."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.BertPreTokenizer(),
        pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=specials, show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    learned = sorted(bpe.get_vocab().items(), key=lambda item: item[1])  # ids follow merge order
    pieces = [piece for piece, _ in learned if piece not in specials]
    chars = sorted({ch for piece in pieces for ch in piece if ch != WORD_START})
    vocab: dict[str, int] = {}
    for token in [*specials, *chars, *("##" + ch for ch in chars)]:
        vocab.setdefault(token, len(vocab))
    for piece in pieces:
        if len(vocab) >= vocab_size:
            break
        if piece.startswith(WORD_START):
            piece = piece[1:]
            if piece:
                vocab.setdefault(piece, len(vocab))
        else:
            vocab.setdefault("##" + piece, len(vocab))
    return _wordpiece_shell(vocab, specials)


def _canonical_unigram(tok):
    """The trained Unigram tokenizer with its pieces in a deterministic order (module docstring):
    special pieces first as trained, the rest by score rounded to 10 decimals, then by piece."""
    from tokenizers import Tokenizer

    state = json.loads(tok.to_str())
    model = state["model"]
    special = {entry["content"] for entry in state.get("added_tokens", []) if entry.get("special")}
    unk = model["vocab"][model["unk_id"]][0] if model.get("unk_id") is not None else None
    head = [entry for entry in model["vocab"] if entry[0] in special]
    rest = sorted((entry for entry in model["vocab"] if entry[0] not in special),
                  key=lambda entry: (-round(entry[1], 10), entry[0]))
    # the characters the trainer adds at the end get scores min - 1e-4, min - 2e-4, ... (the last ones
    # equal) in hash-map order: that tail is handed the same scores in the characters' own order
    tail = len(rest)
    while tail > 1 and len(rest[tail - 1][0]) == 1 and len(rest[tail - 2][0]) == 1 \
            and min(abs(rest[tail - 2][1] - rest[tail - 1][1] - step) for step in (0.0, 1e-4)) < 1e-7:
        tail -= 1
    tail -= 1  # the run's first character, whose pair with the one before it ended the loop
    if len(rest) - tail > 1:
        scores = [score for _, score in rest[tail:]]
        rest[tail:] = [[piece, score] for (piece, _), score in zip(sorted(rest[tail:]), scores)]
    model["vocab"] = [[piece, round(score, 10)] for piece, score in head + rest]
    if unk is not None:
        model["unk_id"] = [piece for piece, _ in model["vocab"]].index(unk)
    order = {piece: index for index, (piece, _) in enumerate(model["vocab"])}
    for entry in state.get("added_tokens", []):
        if entry["content"] in order:
            entry["id"] = order[entry["content"]]
    return Tokenizer.from_str(json.dumps(state))
