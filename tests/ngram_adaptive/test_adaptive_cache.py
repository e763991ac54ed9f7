"""Cache and decaying-cache LMs: proper distributions, vectorised scoring = the definition, resets, tuning."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import UsageError
from lmlab.ngram.adaptive import (
    CacheLM,
    DocumentStream,
    base_logprobs,
    cache_matches,
    cache_probs,
    perplexity,
    tune_cache,
)


def random_history(rng, vocab, n_words, sentence_len=12):
    words = [w for w in vocab.words if w not in ("<s>", "</s>")]
    out = []
    for i in range(n_words):
        out.append(words[rng.integers(len(words))])
        if (i + 1) % sentence_len == 0:
            out.append("</s>")
    return out


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_distribution_sums_to_one(base_model, decay):
    rng = np.random.default_rng(0)
    model = CacheLM(base_model, lam=0.8, size=20, decay=decay)
    histories = [[], ["</s>"], random_history(rng, base_model.vocab, 5),
                 random_history(rng, base_model.vocab, 60),          # longer than the cache
                 ["<unk>", "<unk>", "</s>"]]                       # nothing cacheable: empty cache
    for h in histories:
        p = model.next_probs(h)
        assert p.shape == (len(base_model.vocab),)
        assert abs(p.sum() - 1.0) < 1e-6
        assert p.min() >= 0 and p[base_model.vocab.index["<s>"]] == 0


def test_empty_cache_is_the_ngram(base_model):
    model = CacheLM(base_model, lam=0.5, size=10)
    p_empty = model.next_probs(["<unk>", "</s>"])
    p_base = 10.0 ** base_model.next_logprobs(["<s>"])
    np.testing.assert_allclose(p_empty, np.where(np.isfinite(p_base), p_base, 0), atol=1e-12)


def test_long_history_only_last_k_count(base_model):
    """Words that fell out of the K-word window no longer change the distribution."""
    model = CacheLM(base_model, lam=0.7, size=3)
    tail = ["the", "city", "river"]
    p1 = model.next_probs(["music", "music", "music", *tail])
    p2 = model.next_probs(["war", *tail])
    np.testing.assert_allclose(p1, p2, atol=1e-12)
    assert model.next_probs(["music", "music", *tail[1:]])[base_model.vocab.index["music"]] > p1[
        base_model.vocab.index["music"]]


@pytest.mark.parametrize("size,decay", [(5, 0.0), (50, 0.0), (7, 0.3), (200, 0.02)])
def test_vectorised_scores_match_next_probs(base_model, streams, size, decay):
    """The stream scorer (sort + searchsorted) agrees with P(w | h) built from the definition."""
    model = CacheLM(base_model, lam=0.85, size=size, decay=decay)
    _, valid, _ = streams
    lp = model.token_logprobs(valid)
    rng = np.random.default_rng(1)
    words = valid.vocab.words
    for t in rng.choice(len(valid), size=25, replace=False):
        d = valid.doc[t]
        start = int(np.searchsorted(valid.doc, d))
        history = [words[i] for i in valid.ids[start:t]]
        p = model.next_probs(history)
        assert np.log(p[valid.ids[t]]) == pytest.approx(lp[t], abs=1e-9)


def test_cache_resets_at_document_boundary(base_model, small_docs):
    _, valid_docs, _ = small_docs
    model = CacheLM(base_model, lam=0.8, size=100)
    alone = model.token_logprobs(DocumentStream.from_documents([valid_docs[1]], base_model.vocab))
    after = model.token_logprobs(DocumentStream.from_documents(valid_docs[:2], base_model.vocab))
    np.testing.assert_allclose(after[-len(alone):], alone, atol=1e-12)


def test_decaying_weights_by_hand(base_model):
    """P_cache for a hand-built document: cached a b a, then a: (e^{-α·0} + e^{-α·2}) / (1 + e^{-α} + e^{-2α})."""
    vocab = base_model.vocab
    a, b = "the", "of"
    stream = DocumentStream.from_documents([[[a, b, a, a]]], vocab)
    alpha = 0.5
    p, nonempty = cache_probs(cache_matches(stream, 10), 10, alpha)
    expected = (1 + np.exp(-2 * alpha)) / (1 + np.exp(-alpha) + np.exp(-2 * alpha))
    assert p[3] == pytest.approx(expected)
    assert not nonempty[0] and p[1] == 0.0
    p0, _ = cache_probs(cache_matches(stream, 10), 10, 0.0)
    assert p0[3] == pytest.approx(2 / 3)
    p2, _ = cache_probs(cache_matches(stream, 2), 2, 0.0)           # window of 2: "of a" -> 1/2
    assert p2[3] == pytest.approx(1 / 2)


def test_tuned_cache_beats_the_ngram_on_held_out_text(base_model, streams):
    _, valid, test = streams
    model, rows = tune_cache(base_model, valid, sizes=(20, 100), decays=(0.0, 0.05))
    assert len(rows) == 4 and 0 < model.lam < 1
    assert perplexity(model.token_logprobs(test)) < perplexity(base_logprobs(base_model, test))


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": -3}, {"lam": 1.5}, {"decay": -0.1}])
def test_bad_parameters(base_model, kwargs):
    with pytest.raises(UsageError):
        CacheLM(base_model, **kwargs)


def test_save_load_and_malformed_files(base_model, streams, tmp_path):
    from lmlab.errors import ConfigError, FormatError
    from lmlab.ngram import write_arpa
    from lmlab.ngram.adaptive import adapted_path, save_cache
    from lmlab.ngram.maxent import load_adapted

    arpa = tmp_path / "m.arpa"
    write_arpa(base_model, arpa)
    model = CacheLM(base_model, lam=0.9, size=30, decay=0.01)
    path = save_cache(model, arpa, adapted_path(arpa, "cache"))
    assert path.name == "m.cache.json"
    loaded = load_adapted(path)
    np.testing.assert_allclose(loaded.token_logprobs(streams[1]), model.token_logprobs(streams[1]), atol=1e-12)
    (tmp_path / "bad.json").write_text('{"type": "cache", "base": "m.arpa"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="malformed cache model file"):
        load_adapted(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"type": "lstm"}', encoding="utf-8")
    with pytest.raises(FormatError, match="'type' must be one of cache, mixture, maxent"):
        load_adapted(tmp_path / "other.json")
