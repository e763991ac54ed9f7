"""Small real-text fixtures for the adaptive models: a slice of wiki-vital-small, an MKN 3-gram on it."""

from __future__ import annotations

import pytest

from lmlab.data.corpus import document_sentences
from lmlab.data.vocab import closed_vocabulary
from lmlab.ngram import build
from lmlab.ngram.adaptive import DocumentStream


@pytest.fixture(scope="session")
def small_docs(wiki_small_splits):
    train = document_sentences(wiki_small_splits.train[:300])
    valid = document_sentences(wiki_small_splits.valid[:60])
    test = document_sentences(wiki_small_splits.test[:60])
    return train, valid, test


@pytest.fixture(scope="session")
def base_model(small_docs):
    train = [s for d in small_docs[0] for s in d]
    return build(train, order=3, smoothing="mkn", vocab=closed_vocabulary(train, 2))


@pytest.fixture(scope="session")
def streams(small_docs, base_model):
    return tuple(DocumentStream.from_documents(d, base_model.vocab) for d in small_docs)
