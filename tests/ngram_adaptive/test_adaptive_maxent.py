"""Maximum-entropy LM: gradient checks in float64, the maxent gradient identity
(expected minus observed feature counts, from a direct re-implementation of the features),
a planted trigger pair is selected and learned, proper distributions, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.ngram.adaptive import DocumentStream, base_logprobs, perplexity
from lmlab.ngram.counts import Vocabulary
from lmlab.ngram.maxent import (
    MaxentConfig,
    MaxentLM,
    MaxentModel,
    Positions,
    build_features,
    load_adapted,
    train_maxent,
)

torch.set_num_threads(1)


def tiny_stream(seed=0, n_docs=6):
    rng = np.random.default_rng(seed)
    words = ["a", "b", "c", "d", "e", "f", "g"]
    docs = [[list(rng.choice(words, size=rng.integers(2, 6))) for _ in range(rng.integers(1, 4))]
            for _ in range(n_docs)]
    vocab = Vocabulary(words)
    return DocumentStream.from_documents(docs, vocab)


TINY = MaxentConfig(vocab_size=5, min_count=1, trigger_words=10, trigger_min_count=1, n_triggers=12)


def tiny_net(seed=0):
    stream = tiny_stream(seed)
    tables, pos = build_features(stream, TINY)
    net = MaxentLM(tables, stream.vocab, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return net, tables, pos


def nll_sum(net, params, pos, tables):
    """Σ_t -ln P(w_t | h_t) with the network's parameters replaced by ``params`` (for gradcheck)."""
    index = np.arange(len(pos.y))
    active = net.active(pos, index, net.entries(pos))
    saved = dict(net.named_parameters())
    try:
        for k, v in params.items():                       # swap in the inputs gradcheck perturbs
            _set(net, k, v)
        logits = net.logits(active, len(index))
    finally:
        for k, v in saved.items():
            _set(net, k, v)
    y = torch.from_numpy(tables.class_of[pos.y])
    return torch.nn.functional.cross_entropy(logits, y, reduction="sum")


def _set(net, name, value):
    if name == "bias":
        net._parameters["bias"] = value
    else:
        net.theta._parameters[name.split(".", 1)[1]] = value


def test_every_family_has_features():
    _, tables, _ = tiny_net()
    assert all(len(f.keys) > 0 for f in tables.families.values())
    assert tables.n_classes == 6                           # 5 words + <other>


def test_gradcheck_float64():
    net, tables, pos = tiny_net()
    names = [k for k, _ in net.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for _, p in net.named_parameters())

    def f(*values):
        return nll_sum(net, dict(zip(names, values)), pos, tables)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def direct_feature_counts(tables, pos, cls):
    """f_i(h_t, c) for every family by the definition, without the model's lookup code: {family: (T, n)}."""
    V = tables.V
    out = {}
    fam = tables.families
    out["bigram"] = (pos.w1[:, None] == fam["bigram"].keys[None]) & (cls == fam["bigram"].cls[None])
    tri_key = np.where(pos.w2 >= 0, pos.w2 * V + pos.w1, -1)
    out["trigram"] = (tri_key[:, None] == fam["trigram"].keys[None]) & (cls == fam["trigram"].cls[None])
    out["distance2"] = (pos.w2[:, None] == fam["distance2"].keys[None]) & (cls == fam["distance2"].cls[None])
    seen = np.zeros((len(pos.y), len(fam["trigger"].keys)), dtype=bool)
    for t in range(len(pos.y)):
        earlier = set(pos.y[(pos.doc == pos.doc[t]) & (pos.p < pos.p[t])].tolist())
        seen[t] = [a in earlier for a in fam["trigger"].keys]
    out["trigger"] = seen & (cls == fam["trigger"].cls[None])
    return out


def test_gradient_is_expected_minus_observed_feature_counts():
    """∂/∂θ_i Σ_t -ln P(w_t | h_t) = Σ_t (E_P[f_i(h_t, .)] - f_i(h_t, w_t))  (the maxent identity)."""
    net, tables, pos = tiny_net(seed=3)
    index = np.arange(len(pos.y))
    logits = net.logits(net.active(pos, index, net.entries(pos)), len(index))
    y = torch.from_numpy(tables.class_of[pos.y])
    torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    P = torch.softmax(logits, -1).detach().numpy()                  # (T, C)
    C = tables.n_classes
    observed = direct_feature_counts(tables, pos, tables.class_of[pos.y][:, None])
    for name, theta in net.theta.items():
        expected = np.zeros(len(theta))
        for c in range(C):
            f = direct_feature_counts(tables, pos, np.full((len(pos.y), 1), c))[name]
            expected += (P[:, c:c + 1] * f).sum(axis=0)
        np.testing.assert_allclose(theta.grad.numpy(), expected - observed[name].sum(axis=0), atol=1e-9)
    unigram = P.sum(axis=0) - np.bincount(tables.class_of[pos.y], minlength=C)
    np.testing.assert_allclose(net.bias.grad.numpy(), unigram, atol=1e-9)


def planted_corpus(seed=0, n_docs=240):
    """Half the documents contain 'alpha' in their first sentence and then 'omega' twice later;
    the others have 'beta' instead and never 'omega'."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(30)]
    docs = []
    for i in range(n_docs):
        sents = [list(rng.choice(filler, size=8)) for _ in range(3)]
        trigger = "alpha" if i % 2 == 0 else "beta"
        sents[0].insert(int(rng.integers(0, 8)), trigger)
        if trigger == "alpha":
            sents[1].insert(int(rng.integers(0, 8)), "omega")
            sents[2].insert(int(rng.integers(0, 8)), "omega")
        docs.append(sents)
    return docs, Vocabulary(filler + ["alpha", "beta", "omega"])


def test_planted_trigger_is_selected_and_learned():
    docs, vocab = planted_corpus()
    stream = DocumentStream.from_documents(docs, vocab)
    cfg = MaxentConfig(vocab_size=40, min_count=2, trigger_words=40, n_triggers=20, trigger_min_count=3,
                       epochs=25, lr=0.1, batch_size=256, l2=1e-4)
    model, log = train_maxent(stream, cfg)
    pairs = [(a, b) for a, b, _ in model.top_triggers(5)]
    assert ("alpha", "omega") in pairs[:2]
    assert log.epoch_loss[-1] < log.epoch_loss[0]
    fam = model.net.tables.families["trigger"]
    i = next(k for k in range(len(fam.keys)) if vocab.words[fam.keys[k]] == "alpha"
             and vocab.words[model.net.tables.classes[fam.cls[k]]] == "omega")
    assert float(model.net.theta["trigger"].detach()[i]) > 1.0
    local = ["w1", "w2", "w3", "</s>", "w4", "w5"]
    omega = vocab.index["omega"]
    p_with = model.next_probs(["w7", "alpha", "w8", "</s>", *local])[omega]
    p_without = model.next_probs(["w7", "beta", "w8", "</s>", *local])[omega]
    assert p_with > 10 * p_without


@pytest.fixture(scope="module")
def trained(streams):
    train = streams[0]
    cfg = MaxentConfig(vocab_size=300, n_triggers=300, trigger_words=300, epochs=1, batch_size=512, lr=0.05)
    model, log = train_maxent(train, cfg)
    return model, log


def test_distribution_sums_to_one(trained, base_model):
    model, _ = trained
    words = [w for w in base_model.vocab.words if w not in ("<s>", "</s>")]
    rng = np.random.default_rng(0)
    long = [words[i] for i in rng.integers(len(words), size=400)]
    for mu in (0.0, 0.6):
        m = MaxentModel(model.net, model.cfg, base_model if mu else None, mu)
        for h in ([], ["the"], long[:30] + ["</s>"], long + ["</s>", "the", "city"]):
            p = m.next_probs(h)
            assert abs(p.sum() - 1.0) < 1e-6 and p.min() >= 0


def test_vectorised_scores_match_next_probs(trained, streams, base_model):
    model, _ = trained
    _, valid, _ = streams
    m = MaxentModel(model.net, model.cfg, base_model, 0.5)
    lp = m.token_logprobs(valid)
    words = valid.vocab.words
    rng = np.random.default_rng(4)
    for t in rng.choice(len(valid), size=15, replace=False):
        start = int(np.searchsorted(valid.doc, valid.doc[t]))
        p = m.next_probs([words[i] for i in valid.ids[start:t]])
        assert np.log(p[valid.ids[t]]) == pytest.approx(lp[t], abs=1e-5)   # float32 weights


def test_learns_and_interpolation_helps(trained, streams, base_model):
    model, log = trained
    _, valid, _ = streams
    uniform = np.log(len(base_model.vocab) - 1)
    assert log.epoch_loss[0] < uniform - 1.0
    mu = model.fit_mu(base_model, valid)
    assert 0 < mu < 1
    assert perplexity(model.token_logprobs(valid)) <= perplexity(base_logprobs(base_model, valid))


def test_positions_histories():
    stream = tiny_stream(1, n_docs=2)
    pos = Positions.from_stream(stream)
    first = np.r_[True, stream.sent[1:] != stream.sent[:-1]]
    assert np.all(pos.w1[first] == 1) and np.all(pos.w2[first] == -1)   # <s> id 1
    assert np.all(pos.p[stream.doc == 0] == np.arange((stream.doc == 0).sum()))


def test_save_load_round_trip(trained, base_model, streams, tmp_path):
    from lmlab.ngram import write_arpa

    model, _ = trained
    _, valid, _ = streams
    arpa = tmp_path / "base.arpa"
    write_arpa(base_model, arpa)
    m = MaxentModel(model.net, model.cfg, base_model, 0.4)
    path = m.save(tmp_path / "base.maxent.json", arpa)
    loaded = load_adapted(path)
    np.testing.assert_allclose(loaded.token_logprobs(valid), m.token_logprobs(valid), atol=1e-6)
