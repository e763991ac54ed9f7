"""The adaptive demo rows on a small slice of real text: every model present, the MKN row is the
shared stream's MKN 3-gram, and the cache lowers its perplexity."""

from __future__ import annotations

import time

import pytest

from lmlab.data.corpus import word_sentences
from lmlab.data.vocab import closed_vocabulary
from lmlab.ngram import build
from lmlab.report import DemoData


@pytest.fixture(scope="module")
def demo_data(wiki_small_splits, tmp_path_factory):
    train, valid, test = wiki_small_splits.train[:250], wiki_small_splits.valid[:50], wiki_small_splits.test[:50]
    sents = [word_sentences(d) for d in (train, valid, test)]
    return DemoData("wiki-vital-small (slice)", train, valid, test, *sents,
                    vocab=closed_vocabulary(sents[0], 2), out_dir=tmp_path_factory.mktemp("demo"),
                    deadline=time.monotonic() + 300)


def test_run_demo_rows(demo_data):
    from lmlab.recipes.adaptive import run_demo

    rows = {r.model: r for r in run_demo(demo_data)}
    assert len(rows) == 6, list(rows)
    mkn = rows["MKN 3-gram (per document)"].metrics["test ppl"]
    expected = build(demo_data.train_sentences, 3, "mkn", vocab=demo_data.vocab).evaluate(
        demo_data.test_sentences).perplexity
    assert mkn == pytest.approx(expected, rel=1e-9)             # same stream, same counting rules
    assert rows["cache LM"].metrics["test ppl"] < mkn
    for row in rows.values():
        assert row.family == "adaptive" and row.metrics["test ppl"] > 1
