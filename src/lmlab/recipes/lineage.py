"""The lineage demo's shared data and its baseline row (``lmlab demo``).

:func:`build_data` loads a built-in corpus, splits it by document, builds the shared
word-level stream and the closed vocabulary every family is scored on, and the corpus
statistics the report opens with. :func:`unigram_baseline` is the first row of the table.

The counting rule for every perplexity: per word on the test split's sentences, each
sentence followed by ``</s>`` which is predicted and counted; ``<s>`` is context only and
never counted; words outside the closed training vocabulary are ``<unk>`` and counted
(perplexity *including* OOVs, as KenLM's "Perplexity including OOVs").
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

from ..data import sources
from ..data.corpus import word_sentences
from ..data.tokenizers import WordTokenizer
from ..report import DemoData, DemoRow


def unigram_baseline(data: DemoData) -> DemoRow:
    """Add-one unigram over the closed vocabulary (``<s>`` and ``<pad>`` are never predicted)."""
    start = time.monotonic()
    known = set(data.vocab)
    predicted = [w for w in data.vocab if w not in ("<s>", "<pad>")]
    counts: Counter[str] = Counter()
    for sentence in data.train_sentences:
        counts.update(w if w in known else "<unk>" for w in sentence)
        counts["</s>"] += 1
    total = sum(counts.values()) + len(predicted)
    log_prob, n = 0.0, 0
    oov = 0
    for sentence in data.test_sentences:
        for w in sentence:
            if w not in known:
                oov += 1
                w = "<unk>"
            log_prob += math.log((counts[w] + 1) / total)
        log_prob += math.log((counts["</s>"] + 1) / total)
        n += len(sentence) + 1
    return DemoRow("baseline", "add-one unigram",
                   {"test ppl": math.exp(-log_prob / n), "OOVs": oov, "bits/word": -log_prob / n / math.log(2)},
                   time.monotonic() - start, f"V={len(predicted)} predicted types")


def build_data(corpus_name: str, out_dir: Path, seed: int, budget: float, vocab_size: int,
               min_count: int) -> tuple[DemoData, list[list]]:
    corpus = sources.load(corpus_name)
    splits = corpus.split()
    sents = {name: word_sentences(docs) for name, docs in splits.items()}
    tokenizer = WordTokenizer(lowercase=True).train_from_tokens(sents["train"], min_count=min_count,
                                                                 max_size=vocab_size)
    known = set(tokenizer.tokens)
    stats = []
    for name, docs in splits.items():
        tokens = sum(len(s) for s in sents[name])
        oov = sum(1 for s in sents[name] for w in s if w not in known)
        types = len({w for s in sents[name] for w in s})
        stats.append([name, len(docs), len(sents[name]), tokens, types, f"{100 * oov / max(tokens, 1):.2f}%",
                      sum(len(d.text.encode("utf-8")) for d in docs)])
    data = DemoData(
        corpus_name=corpus_name, train_documents=splits.train, valid_documents=splits.valid,
        test_documents=splits.test, train_sentences=sents["train"], valid_sentences=sents["valid"],
        test_sentences=sents["test"], vocab=list(tokenizer.tokens), out_dir=out_dir, seed=seed,
        deadline=time.monotonic() + budget,
    )
    return data, stats
