"""Inputs built from sentences: NSP and SOP pairs, RoBERTa's packings, and the rows batch source.

- Next sentence prediction (BERT, Devlin et al. 2019 §3.1 "Task #2" and
  ``create_pretraining_data.py``): ``[CLS] A [SEP] B [SEP]``; A is one or more consecutive
  sentences of a document; B is what follows A in the same document (label 0, IsNext) or, with
  probability 1/2, sentences from a different, random document (label 1, NotNext). As in BERT,
  a target length shorter than ``max_len`` is used with probability ``short_seq_prob`` (0.1), and
  an over-long pair is truncated one token at a time from a random end of the longer side.
- Sentence-order prediction (ALBERT, Lan et al. 2020 §3): A and B are two consecutive segments of
  one document; label 0 keeps their order, label 1 (probability 1/2) swaps them.
  Unlike BERT's script, a chunk that is a single sentence at the end of a document is skipped
  *before* the coin is tossed, so the labels are exactly Bernoulli(1/2).
- RoBERTa (Liu et al. 2019 §4.2) inputs without NSP: FULL-SENTENCES packs contiguous sentences
  up to ``max_len`` and may cross document boundaries (an extra separator marks one);
  DOC-SENTENCES stops at the end of a document. SpanBERT uses single DOC-SENTENCES-style rows.

Rows are LongTensors. Pair rows carry their label in the last column (``[N, max_len + 1]``);
:func:`segment_ids_from_sep` recovers the segments from the first [SEP]. :class:`Rows` serves a
fixed row tensor to the Trainer (``batch(step, shard, shards)``, reshuffled every epoch).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from ..errors import DataError, UsageError

NSP, SOP = "nsp", "sop"


def encode_documents(texts: Iterable[str], tokenizer) -> list[list[list[int]]]:
    """Documents -> sentences -> token ids (empty sentences dropped, documents with none dropped)."""
    from ..data.clean import split_sentences

    out = []
    for text in texts:
        sentences = [s for s in split_sentences(text) if s.strip()]
        if not sentences:
            continue
        ids = [row for row in tokenizer.encode_batch(sentences) if row]
        if ids:
            out.append(ids)
    return out


def _python_rng(generator: torch.Generator) -> random.Random:
    return random.Random(int(torch.randint(2**62, (1,), generator=generator)))


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> None:
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def pair_rows(documents: Sequence[Sequence[Sequence[int]]], max_len: int, cls_id: int, sep_id: int, pad_id: int,
              generator: torch.Generator, task: str = NSP, short_seq_prob: float = 0.1,
              duplicates: int = 1) -> Tensor:
    """``[CLS] A [SEP] B [SEP] [PAD]...`` rows with the NSP / SOP label in the last column.

    ``documents``: each a list of sentences, each a list of token ids. (N, max_len + 1) int64.
    ``duplicates``: passes over the data with fresh pairings (BERT's dupe_factor).
    """
    if task not in (NSP, SOP):
        raise UsageError(f"sentence task must be 'nsp' or 'sop', got {task!r}")
    if max_len < 8:
        raise UsageError(f"max_len={max_len} is too short for a sentence pair")
    if task == NSP and len(documents) < 2:
        raise DataError("next sentence prediction needs at least two documents (for random B segments)")
    rng = _python_rng(generator)
    max_tokens = max_len - 3
    rows: list[list[int]] = []
    for _ in range(duplicates):
        for doc_index, doc in enumerate(documents):
            target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
            chunk: list[Sequence[int]] = []
            length = 0
            i = 0
            while i < len(doc):
                chunk.append(doc[i])
                length += len(doc[i])
                if i == len(doc) - 1 or length >= target:
                    if len(chunk) == 1 and i + 1 < len(doc):   # a pair needs two segments: take one more
                        i += 1
                        chunk.append(doc[i])
                    if len(chunk) >= 2:
                        a_end = rng.randint(1, len(chunk) - 1)
                        a = [t for s in chunk[:a_end] for t in s]
                        b = [t for s in chunk[a_end:] for t in s]
                        label = int(rng.random() < 0.5)
                        if task == NSP and label == 1:
                            b, unused = _random_segment(documents, doc_index, target - len(a), rng), len(chunk) - a_end
                            i -= unused  # the real continuation is not wasted: it starts the next chunk
                        elif task == SOP and label == 1:
                            a, b = b, a
                        _truncate_pair(a, b, max_tokens, rng)
                        if a and b:
                            rows.append([cls_id, *a, sep_id, *b, sep_id] + [pad_id] * (max_len - len(a) - len(b) - 3)
                                        + [label])
                    chunk, length = [], 0
                i += 1
    if not rows:
        raise DataError("no sentence pairs could be built (documents need at least two sentences)")
    return torch.tensor(rows, dtype=torch.long)


def _random_segment(documents, doc_index: int, target: int, rng: random.Random) -> list[int]:
    other = doc_index
    while other == doc_index:
        other = rng.randrange(len(documents))
    doc = documents[other]
    start = rng.randrange(len(doc))
    out: list[int] = []
    for sentence in doc[start:]:
        out.extend(sentence)
        if len(out) >= max(target, 1):
            break
    return out


def packed_rows(documents: Sequence[Sequence[Sequence[int]]], max_len: int, bos_id: int, eos_id: int, pad_id: int,
                cross_documents: bool, doc_separator: int | None = None) -> Tensor:
    """``<s> sentences... </s>`` rows of whole sentences (FULL-SENTENCES or DOC-SENTENCES). (N, max_len).

    Sentences are added while they fit (a longer sentence is cut into pieces of max_len - 2).
    ``cross_documents`` (FULL-SENTENCES) continues a row into the next document, with
    ``doc_separator`` (default ``eos_id``) between them; otherwise (DOC-SENTENCES) a row ends with
    its document.
    """
    if max_len < 4:
        raise UsageError(f"max_len={max_len} is too short")
    room = max_len - 2
    separator = eos_id if doc_separator is None else doc_separator
    rows: list[list[int]] = []
    current: list[int] = []

    def flush() -> None:
        if cross_documents and current and current[-1] == separator:
            current.pop()  # a separator is only ever between two documents of one row
        if current:
            rows.append([bos_id, *current, eos_id] + [pad_id] * (room - len(current)))
            current.clear()

    for doc in documents:
        if cross_documents and current:
            if len(current) + 1 > room:
                flush()
            else:
                current.append(separator)
        for sentence in doc:
            pieces = [list(sentence[k:k + room]) for k in range(0, len(sentence), room)]
            for piece in pieces:
                if len(current) + len(piece) > room:
                    flush()
                current.extend(piece)
        if not cross_documents:
            flush()
    flush()
    if not rows:
        raise DataError("no rows could be packed (no tokens)")
    return torch.tensor(rows, dtype=torch.long)


def segment_ids_from_sep(ids: Tensor, sep_id: int) -> Tensor:
    """(B, T): 0 up to and including the first [SEP], 1 after it."""
    is_sep = (ids == sep_id).long()
    before = is_sep.cumsum(dim=1) - is_sep  # separators strictly before each position
    return (before >= 1).long()
