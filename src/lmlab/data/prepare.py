"""Prepare a corpus for training: split, train a tokenizer on the train split, write token streams.

Used by ``lmlab corpus prepare`` and by the demo. Word- and char-level streams
are written sentence by sentence with ``</s>`` after each sentence (the
word-level LM convention); subword streams document by document, with the
tokenizer's end-of-text token after each document when it has one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_text
from .corpus import Corpus, Splits, sentences_of, word_sentences
from .stream import TokenStream, encode_word_sentences, write_stream
from .tokenizers import CharTokenizer, SubwordTokenizer, WordTokenizer, train_tokenizer
from .tokenizers.subword import KINDS as SUBWORD_KINDS


@dataclass
class SplitStats:
    split: str
    documents: int
    sentences: int
    tokens: int
    types: int
    oov_rate: float
    bytes: int


def _text_hash(documents) -> str:
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def prepare(corpus: Corpus, tokenizer_kind: str, out: Path, vocab_size: int | None = None,
            min_count: int = 1, splits: Splits | None = None, progress=None) -> tuple[object, list[SplitStats]]:
    """Write ``out/tokenizer`` and ``out/{train,valid,test}``; return the tokenizer and per-split stats."""
    splits = splits or corpus.split()
    say = progress or (lambda message: None)
    say(f"training the {tokenizer_kind} tokenizer on {len(splits.train):,} training documents")
    word_level = tokenizer_kind in ("word", "char")
    if tokenizer_kind == "word":
        tokenizer = WordTokenizer(lowercase=True).train_from_tokens(
            word_sentences(splits.train), min_count=min_count, max_size=vocab_size)
    else:
        tokenizer = train_tokenizer(tokenizer_kind, (d.text for d in splits.train), vocab_size=vocab_size,
                                    min_count=min_count)
    tokenizer.save(out / "tokenizer")
    stats = []
    for name, docs in splits.items():
        say(f"encoding the {name} split ({len(docs):,} documents)")
        if tokenizer_kind == "word":
            sents = word_sentences(docs)
            encoded = encode_word_sentences(sents, tokenizer)
            unk = tokenizer.unk_id
        elif tokenizer_kind == "char" or isinstance(tokenizer, CharTokenizer):
            sents = sentences_of(docs)
            eos = tokenizer.token_to_id("</s>")
            encoded = [tokenizer.encode(s) + [eos] for s in sents]
            unk = tokenizer.unk_id
        else:
            sents = sentences_of(docs)
            sub: SubwordTokenizer = tokenizer
            eos_token = {"bpe": "</s>", "wordpiece": "[SEP]", "bytebpe": "</s>", "unigram": "</s>"}[sub.kind]
            eos = sub.token_to_id(eos_token)
            encoded = [ids + ([eos] if eos is not None else []) for ids in sub.encode_batch([d.text for d in docs])]
            unk_token = {"bpe": "<unk>", "wordpiece": "[UNK]", "unigram": "<unk>"}.get(sub.kind)
            unk = sub.token_to_id(unk_token) if unk_token else -1
        write_stream(out / name, encoded, tokenizer.vocab_size,
                     meta={"tokenizer": tokenizer_kind, "split": name, "corpus": corpus.name,
                           "unit": "sentence" if word_level else "document"},
                     source_text_hash=_text_hash(docs))
        stream = TokenStream(out / name)
        import numpy as np

        ids = np.asarray(stream.ids, dtype=np.int64)
        n_tokens = int(ids.size)
        stats.append(SplitStats(
            split=name, documents=len(docs), sentences=len(sents), tokens=n_tokens,
            types=int(np.unique(ids).size) if n_tokens else 0,
            oov_rate=float((ids == unk).sum() / n_tokens) if n_tokens and unk >= 0 else 0.0,
            bytes=sum(len(d.text.encode("utf-8")) for d in docs),
        ))
    atomic_write_text(out / "stats.json", json.dumps(
        {"corpus": corpus.name, "tokenizer": tokenizer_kind, "vocab_size": tokenizer.vocab_size,
         "splits": [s.__dict__ for s in stats]}, indent=2) + "\n")
    return tokenizer, stats


__all__ = ["prepare", "SplitStats", "SUBWORD_KINDS"]
