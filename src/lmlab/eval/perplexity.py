"""Perplexity, cross-entropy and bits per byte: one scale for every language model in lmlab.

Definitions (seed 004, "困惑度"): for a test text ``T`` of ``W_T`` predicted units,
``H_p(T) = -(1/W_T) log2 p(T)`` and ``PP(T) = 2^{H_p(T)}``. Word-level models predict every
word of a sentence and ``</s>`` (``<s>`` is context only), with out-of-vocabulary words mapped
to ``<unk>`` of the closed training vocabulary. Subword and character models are put on the
same scale by dividing their total log-probability by the number of *words* (per-word
perplexity) or of UTF-8 *bytes* (bits per byte) of the same text.

- :class:`PerplexityResult` holds the sums; :func:`from_log_probs` makes one from
  per-token log-probabilities; :func:`per_word_perplexity` and :func:`bits_per_byte` are the
  conversions other families reuse.
- :func:`encode_sentences` turns word sentences into ids ``w_1 .. w_n </s>`` under a closed
  vocabulary; :func:`word_perplexity` scores them with any model that has
  ``score_sentences(list[list[int]]) -> list[Tensor]`` (natural-log probabilities per token).

What this file does not do: open-vocabulary corrections (OOV rates are reported, not
penalised), or perplexity of models that cannot normalise (they must give exact log-probs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import DataError, UsageError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"


@dataclass
class PerplexityResult:
    """Sums over a test text; every figure is derived from them."""

    nats: float           # -sum of natural-log probabilities of the predicted units
    tokens: int           # predicted units (words + </s> for a word-level model)
    words: int = 0        # words of the text (+ </s> per sentence), for per-word perplexity
    bytes: int = 0        # UTF-8 bytes of the text, for bits per byte
    oov: int = 0          # words mapped to <unk>
    sentences: int = 0

    @property
    def cross_entropy(self) -> float:
        """Bits per predicted unit."""
        return self.nats / max(self.tokens, 1) / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / max(self.tokens, 1))

    @property
    def word_perplexity(self) -> float:
        return per_word_perplexity(self.nats, self.words or self.tokens)

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nats, self.bytes)

    def as_dict(self) -> dict[str, float]:
        out = {"ppl": self.perplexity, "cross_entropy_bits": self.cross_entropy, "tokens": self.tokens,
               "oov": self.oov, "sentences": self.sentences}
        if self.words:
            out["word_ppl"] = self.word_perplexity
        if self.bytes:
            out["bits_per_byte"] = self.bits_per_byte
        return out


def per_word_perplexity(total_nats: float, n_words: int) -> float:
    """``exp(total_nats / n_words)``: a subword model's log-prob spread over the words it covers."""
    if n_words <= 0:
        raise UsageError("per-word perplexity needs at least one word")
    return math.exp(total_nats / n_words)


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """``total_nats / ln 2 / n_bytes``."""
    if n_bytes <= 0:
        raise UsageError("bits per byte needs at least one byte")
    return total_nats / math.log(2) / n_bytes


def from_log_probs(log_probs: Iterable[torch.Tensor | Sequence[float]], words: int = 0, n_bytes: int = 0,
                   oov: int = 0) -> PerplexityResult:
    """A :class:`PerplexityResult` from per-sentence natural-log probabilities of the predicted units."""
    nats, tokens, sentences = 0.0, 0, 0
    for lp in log_probs:
        lp = torch.as_tensor(lp, dtype=torch.float64)
        if not bool(torch.isfinite(lp).all()):
            raise UsageError("a log-probability is -inf or nan: the model gives an event zero probability")
        nats -= float(lp.sum())
        tokens += lp.numel()
        sentences += 1
    return PerplexityResult(nats, tokens, words, n_bytes, oov, sentences)


def encode_sentences(sentences: Iterable[Sequence[str]], vocab: Sequence[str] | dict[str, int]
                     ) -> tuple[list[list[int]], int]:
    """(ids ``w_1 .. w_n </s>`` per sentence, number of OOV words mapped to ``<unk>``)."""
    index = vocab if isinstance(vocab, dict) else {w: i for i, w in enumerate(vocab)}
    for special in (UNK, EOS):
        if special not in index:
            raise DataError(f"the vocabulary has no {special} token")
    unk, eos = index[UNK], index[EOS]
    out, oov = [], 0
    for sent in sentences:
        ids = [index.get(w, unk) for w in sent]
        oov += sum(1 for w in sent if w not in index)
        out.append(ids + [eos])
    return out, oov


class SentenceScorer(Protocol):
    def score_sentences(self, sentences: list[list[int]]) -> list[torch.Tensor]:
        """Natural-log probability of each predicted id of each sentence."""


def word_perplexity(model: SentenceScorer, sentences: Sequence[Sequence[str]], vocab: Sequence[str]
                    ) -> PerplexityResult:
    """Exact per-word perplexity of a word-level model over sentences (``</s>`` counted, ``<s>`` not).

    ``bytes`` (for bits per byte) counts the UTF-8 bytes of the sentences as scored: tokens joined
    by spaces, plus one newline per sentence.
    """
    ids, oov = encode_sentences(sentences, vocab)
    if not ids:
        raise DataError("no sentences to score")
    scores = model.score_sentences(ids)
    words = sum(len(s) for s in ids)
    n_bytes = sum(len(" ".join(s).encode("utf-8")) + 1 for s in sentences)
    return from_log_probs(scores, words=words, n_bytes=n_bytes, oov=oov)


def subword_perplexity(model: SentenceScorer, tokenizer, sentences: Sequence[Sequence[str]],
                       eos_id: int | None) -> PerplexityResult:
    """Perplexity of a subword (or byte) LM on word sentences, on every scale at once.

    Each sentence is joined by spaces, encoded with the model's own tokenizer and followed by
    ``eos_id`` (the end of a sentence is predicted, as ``</s>`` is for the word-level models);
    the model's start id is context only. ``ppl`` is per token, ``word_ppl`` divides the same
    total by the words + one ``</s>`` per sentence, ``bits_per_byte`` by the UTF-8 bytes of the
    text (+ one newline per sentence), so it compares with a word model's numbers.
    """
    texts = [" ".join(s) for s in sentences]
    encoded = tokenizer.encode_batch(texts) if hasattr(tokenizer, "encode_batch") else \
        [tokenizer.encode(t) for t in texts]
    ids = [[*e, eos_id] if eos_id is not None else list(e) for e in encoded]
    if not any(ids):
        raise DataError("no text to score")
    log_probs = model.score_sentences(ids)
    words = sum(len(s) + 1 for s in sentences)
    n_bytes = sum(len(t.encode("utf-8")) + 1 for t in texts)
    return from_log_probs(log_probs, words=words, n_bytes=n_bytes)
