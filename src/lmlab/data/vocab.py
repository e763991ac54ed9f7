"""Closed word vocabularies, built one way for every word-level family.

A closed vocabulary is the list of word types a model can predict; every other word is
``<unk>``. Two orders are in use, each with a reason:

- :func:`frequent_vocabulary` (and :func:`by_count`, which the word tokenizer trains with):
  the specials, then the words by falling count (ties by word), at most ``max_size`` in all:
  the word LMs, the demo's shared vocabulary, ``WordTokenizer.train_from_tokens``. Frequent
  words get small ids and a size cap keeps the most useful words.
- :func:`closed_vocabulary`: ``<unk> <s> </s>``, then every word seen at least ``min_count``
  times in alphabetical order: the n-gram method comparison and the adaptive LMs, where the
  set (not the ids) matters and must not depend on the size of the training slice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

SENTENCE_SPECIALS = ("<unk>", "<s>", "</s>")
WORD_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")


def by_count(counts: Counter, specials: Sequence[str] = WORD_SPECIALS, min_count: int = 1,
             max_size: int | None = None) -> list[str]:
    """``specials`` + the words seen at least ``min_count`` times by falling count, ``max_size`` in all."""
    specials = list(dict.fromkeys(specials))
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in specials),
                   key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(specials))]
    return specials + words


def frequent_vocabulary(sentences: Iterable[Sequence[str]], max_size: int | None, min_count: int = 1,
                        specials: Sequence[str] = WORD_SPECIALS) -> list[str]:
    """:func:`by_count` over the words of ``sentences``."""
    return by_count(Counter(w for s in sentences for w in s), specials, min_count, max_size)


def closed_vocabulary(sentences: Iterable[Sequence[str]], min_count: int = 2) -> list[str]:
    """``<unk> <s> </s>`` + the words seen at least ``min_count`` times, sorted."""
    counts = Counter(w for s in sentences for w in s)
    return list(SENTENCE_SPECIALS) + sorted(w for w, c in counts.items()
                                            if c >= min_count and w not in SENTENCE_SPECIALS)
