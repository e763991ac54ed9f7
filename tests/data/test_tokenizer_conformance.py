"""Every tokenizer against :class:`lmlab.protocols.Tokenizer`, minbpe-style: train -> encode -> decode ->
save -> load -> same ids, one parametrized test over every kind.

Each kind trains on the first 50 documents of ``wiki-vital-small``; ``zh-word`` on the first 50 of
``peoples-daily``. ``gpt2-files`` is GPT-2's own file format, ``vocab.json`` + ``merges.txt``, written
from a byte-level BPE trained on the same slice and read back with
``SubwordTokenizer.from_gpt2_files``.

What ``decode(encode(text))`` gives, kind by kind (:func:`expected_decode`):

| kind | decode(encode(text)) |
|---|---|
| bytebpe, gpt2-files | ``text``, for any text (byte-level: lossless) |
| bpe / unigram | ``text`` after NFC / NFKC; lossy on characters unseen in training (``<unk>``) and a leading space |
| wordpiece | the NFC text's characters, but not its whitespace (BERT splits on it and decodes with single spaces) |
| char | ``text`` with each character outside the vocabulary as ``<unk>`` (``\\n`` always is) |
| word | the text's tokens, lowercased, out-of-vocabulary ones as ``<unk>``, joined by one space |
| zh-word | the text's words (jieba, or characters without it), unknown ones as ``<unk>``, no whitespace |
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from lmlab import protocols
from lmlab.data import sources
from lmlab.data.tokenizers import NAMES, SubwordTokenizer, load_tokenizer, train_tokenizer
from lmlab.data.tokenizers.base import ROLES
from lmlab.data.tokenizers.subword import GPT2_END_OF_TEXT, special_ids, tokenizer_files
from lmlab.errors import ConfigError

KINDS = (*NAMES, "gpt2-files")
SUBWORD_VOCAB = 600
HARD_TEXT = "Zürich 東京 🙂 naïve — ok\ttabs\nnewline  double ﬁ"


@pytest.fixture(scope="module")
def corpora() -> dict[str, tuple[list[str], list[str]]]:
    """(first 50 documents, the next 10) of an English and a Chinese built-in corpus."""
    wiki = [d.text for d in sources.load("wiki-vital-small").documents[:60]]
    chinese = [d.text for d in sources.load("peoples-daily").documents[:60]]
    return {"en": (wiki[:50], wiki[50:]), "zh": (chinese[:50], chinese[50:])}


def write_gpt2_files(texts: list[str], folder: Path) -> Path:
    """GPT-2-style vocab.json + merges.txt of a byte-level BPE trained on ``texts`` (``<|endoftext|>`` = 0)."""
    trained = SubwordTokenizer("bytebpe").train(texts, vocab_size=SUBWORD_VOCAB, specials=[GPT2_END_OF_TEXT])
    folder.mkdir(parents=True)
    trained.tokenizer.model.save(str(folder))  # the library writes exactly these two files
    return folder


def make_tokenizer(kind: str, texts: list[str], folder: Path):
    if kind == "gpt2-files":
        return SubwordTokenizer.from_gpt2_files(write_gpt2_files(texts, folder))
    return train_tokenizer(kind, texts, vocab_size=SUBWORD_VOCAB if kind in ("bpe", "wordpiece", "bytebpe",
                                                                              "unigram") else None)


def expected_decode(kind: str, tok, text: str) -> str:
    """What decode(encode(text)) must equal (see the table in the module docstring)."""
    def known(token: str) -> str:
        return token if tok.token_to_id(token) is not None else "<unk>"

    if kind == "word":
        return " ".join(known(t) for t in tok.tokenize(text))
    if kind == "zh-word":
        return "".join(known(t) for t in tok.tokenize(text))
    if kind == "char":
        return "".join(known(c) for c in text)
    if kind in ("bpe", "wordpiece"):
        return unicodedata.normalize("NFC", text)
    if kind == "unigram":
        return unicodedata.normalize("NFKC", text)
    return text  # bytebpe, gpt2-files


def comparable(kind: str, text: str) -> str:
    """WordPiece keeps the characters but not the whitespace: compare without it."""
    return "".join(text.split()) if kind == "wordpiece" else text


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_conformance(kind, corpora, tmp_path):
    train, held_out = corpora["zh" if kind == "zh-word" else "en"]
    tok = make_tokenizer(kind, train, tmp_path / "gpt2")

    # the interface, with methods where methods are due (a dict token_to_id would pass isinstance alone)
    assert isinstance(tok, protocols.Tokenizer)
    assert isinstance(tok.kind, str) and isinstance(tok.vocab_size, int) and tok.vocab_size > 0
    assert callable(tok.token_to_id) and callable(tok.id_to_token)

    # encode -> decode; kinds whose expectation covers unseen text also round-trip held-out documents
    lossless_on_any_text = kind in ("word", "char", "zh-word", "bytebpe", "gpt2-files")
    texts = train + (held_out if lossless_on_any_text else [])
    if kind in ("bytebpe", "gpt2-files"):
        texts = [*texts, HARD_TEXT]
    ids = [tok.encode(text) for text in texts]
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for row in ids for i in row)
    for text, row in zip(texts, ids, strict=True):
        assert comparable(kind, tok.decode(row)) == comparable(kind, expected_decode(kind, tok, text)), text[:60]
    assert tok.encode_batch(texts) == ids

    # every id has a token that maps back to it; outside the vocabulary there is None
    for index in range(tok.vocab_size):
        token = tok.id_to_token(index)
        assert isinstance(token, str) and tok.token_to_id(token) == index, (index, token)
    assert tok.id_to_token(tok.vocab_size) is None
    assert tok.token_to_id("no such token \u2717 12345") is None

    specials = tok.special_ids()
    assert specials and set(specials) <= set(ROLES)
    assert all(0 <= i < tok.vocab_size and tok.id_to_token(i) is not None for i in specials.values())

    # save writes exactly files(); load_tokenizer reads it back to the same tokenizer
    folder = tmp_path / "saved"
    tok.save(folder)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == tok.files()
    assert tokenizer_files(tok) == tok.files()
    again = load_tokenizer(folder)
    assert isinstance(again, protocols.Tokenizer) and type(again) is type(tok) and again.kind == tok.kind
    assert again.vocab_size == tok.vocab_size and again.special_ids() == specials
    assert again.encode_batch(texts) == ids
    if kind == "unigram":
        # the library reads unigram's log-probabilities back to within one ulp (serde_json's float
        # parsing), so its tokenizer.json changes on the first reload and is stable from then on
        again.save(tmp_path / "resaved")
        tok, again = again, load_tokenizer(tmp_path / "resaved")
    assert again.files() == tok.files()


def gpt2_byte_alphabet() -> list[str]:
    """GPT-2's ``bytes_to_unicode`` in its vocabulary order: the 188 printable bytes stand for
    themselves (ids 0-187), the other 68 become U+0100 onwards (ids 188-255; the space is ``Ġ`` = 220)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def test_gpt2_files_worked_example(tmp_path):
    """Nine hand-written merges on GPT-2's byte alphabet; the ids are worked out by hand."""
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]  # ids 256-264
    vocab = gpt2_byte_alphabet()
    vocab += ["".join(merge.split()) for merge in merges] + [GPT2_END_OF_TEXT]  # <|endoftext|> = 265
    (tmp_path / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}), "utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    assert vocab[220] == "Ġ"

    tok = load_tokenizer(tmp_path)  # vocab.json + merges.txt and nothing else: GPT-2's files
    assert tok.kind == "bytebpe" and tok.vocab_size == 266
    assert tok.encode("hello world") == [259, 264]  # hello, Ġworld
    assert tok.encode("held") == [256, 263]  # "h e" first, then "l d" (rank 7); no "l l" to take
    byte_id = {char: i for i, char in enumerate(gpt2_byte_alphabet())}
    assert tok.encode("Hello") == [byte_id["H"], byte_id["e"], 257, byte_id["o"]]  # no "H e" merge: only ll
    assert tok.encode(f"hello{GPT2_END_OF_TEXT}") == [259, 265]  # special, as in transformers' GPT-2
    assert tok.decode([259, 264, 265]) == f"hello world{GPT2_END_OF_TEXT}"
    assert tok.decode([259, 264, 265], skip_specials=True) == "hello world"
    assert tok.special_ids() == {"bos": 265, "eos": 265}
    with pytest.raises(ConfigError, match="lacks BERT's special tokens"):
        special_ids(tok)


def test_gpt2_files_match_transformers(corpora, tmp_path):
    """transformers' GPT-2 tokenizer reads the same two files to the same ids."""
    transformers = pytest.importorskip("transformers")
    train, held_out = corpora["en"]
    folder = write_gpt2_files(train, tmp_path / "gpt2")
    ours = SubwordTokenizer.from_gpt2_files(folder)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(str(folder))
    for text in [*held_out, HARD_TEXT, f"one{GPT2_END_OF_TEXT}two"]:
        assert ours.encode(text) == theirs.encode(text), text[:60]


def test_special_ids_function_keeps_bert_roles(corpora):
    """``subword.special_ids(tok)`` is ``tok.special_ids()`` cut to BERT's roles, refusing a tokenizer without them."""
    train, _ = corpora["en"]
    wordpiece = train_tokenizer("wordpiece", train, vocab_size=SUBWORD_VOCAB)
    assert special_ids(wordpiece) == {"pad": 0, "cls": 2, "sep": 3, "mask": 4, "unk": 1}
    bytebpe = train_tokenizer("bytebpe", train, vocab_size=SUBWORD_VOCAB)  # RoBERTa's <s> </s> as cls / sep
    assert special_ids(bytebpe) == {"pad": 1, "cls": 0, "sep": 2, "mask": 4, "unk": 3}
    with pytest.raises(ConfigError, match="cls, sep, mask"):
        special_ids(train_tokenizer("word", train))
