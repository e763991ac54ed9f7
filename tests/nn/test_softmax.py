"""Output layers: normalisation, tree properties, gradients, sampled-gradient convergence."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from lmlab.errors import ConfigError, DataError
from lmlab.nn.softmax import (
    ClassSoftmax,
    FullSoftmax,
    ImportanceSamplingSoftmax,
    NCESoftmax,
    SoftmaxConfig,
    TreeSoftmax,
    WordNet,
    build_output_layer,
    frequency_classes,
    huffman_tree,
    output_layer_from_state,
    wordnet_tree,
)

torch.set_num_threads(1)
V, D = 60, 8


def zipf_counts(n: int = V) -> torch.Tensor:
    return torch.tensor([int(5000 / (r + 1)) + 1 for r in range(n)])[torch.randperm(n, generator=torch.Generator().manual_seed(3))]


def layers(counts):
    torch.manual_seed(0)
    tree = TreeSoftmax(D, huffman_tree(counts))
    torch.nn.init.normal_(tree.node_weight)
    torch.nn.init.normal_(tree.node_bias)
    return {
        "full": FullSoftmax(D, V, counts),
        "class": ClassSoftmax(D, frequency_classes(counts, 8), counts),
        "huffman": tree,
        "importance": ImportanceSamplingSoftmax(D, V, counts, samples=20),
        "nce": NCESoftmax(D, V, counts, samples=20),
    }


@pytest.mark.parametrize("kind", ["full", "class", "huffman", "importance", "nce"])
def test_distribution_sums_to_one_and_log_prob_is_exact(kind):
    counts = zipf_counts()
    layer = layers(counts)[kind]
    h = torch.randn(16, D) * 3
    with torch.no_grad():
        lp = layer.log_probs(h)
        assert lp.shape == (16, V)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(16), atol=1e-5)
        y = torch.randint(0, V, (16,))
        assert torch.allclose(layer.log_prob(h, y), lp.gather(1, y[:, None]).squeeze(1), atol=1e-5)
        layer.eval()  # eval-mode loss is the exact NLL for every layer
        assert layer.loss(h, y).item() == pytest.approx(-lp.gather(1, y[:, None]).mean().item(), abs=1e-5)


def test_huffman_prefix_free_and_frequent_words_shallower():
    counts = zipf_counts(200)
    tree = huffman_tree(counts)
    codes = ["".join(map(str, bits)) for _, bits in tree.codes()]
    assert len(set(codes)) == 200
    ordered = sorted(codes)
    for a, b in itertools.pairwise(ordered):
        assert not b.startswith(a), (a, b)
    depth = torch.tensor(tree.depths(), dtype=torch.float64)
    c = counts.double()
    more_frequent = c[:, None] > c[None, :]
    assert bool((depth[:, None] <= depth[None, :])[more_frequent].all())
    # Kraft equality for a full binary tree, and Huffman's optimality bound H <= E[len] < H + 1
    assert float((2.0 ** -depth).sum()) == pytest.approx(1.0)
    p = c / c.sum()
    entropy = float(-(p * p.log2()).sum())
    assert entropy <= float((p * depth).sum()) < entropy + 1


def test_class_binning_groups_by_frequency():
    counts = zipf_counts(400)
    classes = frequency_classes(counts, 20)
    assert int(classes.max()) + 1 <= 20
    order = torch.argsort(-counts, stable=True)
    assert bool((classes[order][1:] >= classes[order][:-1]).all())  # monotone in frequency rank
    sizes = torch.bincount(classes)
    assert sizes[0] < sizes[-1]  # frequent words get small classes


@pytest.mark.parametrize("kind", ["class", "huffman"])
def test_gradcheck_float64(kind):
    counts = zipf_counts(12)
    torch.manual_seed(1)
    layer = (ClassSoftmax(4, frequency_classes(counts, 3), counts) if kind == "class"
             else TreeSoftmax(4, huffman_tree(counts))).double()
    names = [n for n, _ in layer.named_parameters()]
    params = [torch.randn_like(p, requires_grad=True) for _, p in layer.named_parameters()]
    h = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 3, 7, 11])

    def f(h, *ps):
        return functional_call(_LogProb(layer), {f"layer.{k}": v for k, v in zip(names, ps)}, (h, y))

    assert torch.autograd.gradcheck(f, (h, *params), eps=1e-6, atol=1e-6)


class _LogProb(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, h, y):
        return self.layer.log_prob(h, y)


def _grad(layer, loss_fn, h):
    layer.zero_grad()
    hh = h.clone().requires_grad_(True)
    loss_fn(layer, hh).backward()
    return torch.cat([layer.word_weight.grad.flatten(), layer.word_bias.grad.flatten(), hh.grad.flatten()])


@pytest.mark.parametrize("cls", [ImportanceSamplingSoftmax, NCESoftmax])
def test_sampled_gradients_converge_to_full_softmax(cls):
    """Mean squared error of the sampled gradient shrinks as k grows (and is small at k=5000)."""
    torch.manual_seed(0)
    v, d = 30, 6
    counts = torch.randint(5, 200, (v,))
    layer = cls(d, v, counts, samples=10).double()
    with torch.no_grad():
        layer.word_weight.normal_(0, 0.5)
        layer.word_bias.normal_(0, 0.5)
    h = torch.randn(1, d, dtype=torch.float64)
    y = torch.tensor([4])
    if cls is NCESoftmax:  # NCE's target is the self-normalised model: compare where Z(h) = 1
        with torch.no_grad():
            layer.word_bias -= layer.log_partition(h)[0]
    layer.eval()
    exact = _grad(layer, lambda m, x: m.loss(x, y), h)
    layer.train()
    errors = []
    for k in (10, 100, 1000, 5000):
        layer.samples = k
        sq = [float(((_grad(layer, lambda m, x: m.loss(x, y), h) - exact) ** 2).sum()) for _ in range(30)]
        errors.append(sum(sq) / len(sq) / float((exact ** 2).sum()))
    assert errors[0] > errors[1] > errors[2] > errors[3], errors
    assert errors[3] < 0.01, errors


def test_nce_bias_init_is_self_normalised_at_start():
    counts = zipf_counts()
    layer = NCESoftmax(D, V, counts)
    with torch.no_grad():
        layer.word_weight.zero_()
        assert layer.log_partition(torch.randn(4, D)).abs().max() < 1e-5


def test_build_and_rebuild_from_state():
    counts = zipf_counts()
    vocab = [f"w{i}" for i in range(V)]
    for kind in ("full", "class", "huffman", "importance", "nce"):
        cfg = SoftmaxConfig(kind=kind, samples=7)
        layer = build_output_layer(cfg, D, vocab, counts)
        state = {k: v.clone() for k, v in layer.state_dict().items()}
        again = output_layer_from_state(cfg, D, V, state, "")
        again.load_state_dict(state)
        h = torch.randn(3, D)
        assert torch.allclose(layer.log_probs(h), again.log_probs(h))
    with pytest.raises(ConfigError):
        build_output_layer(SoftmaxConfig(kind="huffman"), D, vocab, counts, weight=torch.nn.Parameter(torch.zeros(V, D)))


WORDNET = Path("/usr/share/wordnet")


@pytest.mark.skipif(not (WORDNET / "data.noun").is_file(), reason="Debian wordnet-base not installed")
def test_wordnet_tree_is_binary_and_follows_is_a():
    wn = WordNet(WORDNET)
    vocab = ["<unk>", "<s>", "</s>", "the", ",", "dog", "dogs", "cat", "animal", "music", "violin",
             "piano", "church", "ran", "walked", "of", "1901", "xqzzy"]
    counts = torch.tensor([50, 0, 100, 300, 200, 5, 3, 4, 6, 9, 2, 3, 7, 4, 3, 150, 1, 1])
    tree, placed = wordnet_tree(vocab, counts, wn)
    assert placed == 10  # dog dogs cat animal music violin piano church ran walked
    codes = tree.codes()
    assert len(tree.left) == len(vocab) - 1
    layer = TreeSoftmax(4, tree)
    torch.nn.init.normal_(layer.node_weight)
    assert torch.allclose(layer.log_probs(torch.randn(3, 4)).exp().sum(-1), torch.ones(3), atol=1e-5)

    def shared(a, b):
        pa, pb = codes[vocab.index(a)][1], codes[vocab.index(b)][1]
        n = 0
        while n < min(len(pa), len(pb)) and pa[n] == pb[n]:
            n += 1
        return n

    # dog and cat (both animals) share more of their path than dog and church
    assert shared("dog", "cat") > shared("dog", "church")
    assert shared("violin", "piano") > shared("violin", "dog")
    # a WordNet-less word sits in the frequency subtree, away from the nouns
    assert shared("the", "of") > shared("the", "dog")


def test_wordnet_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="wordnet"):
        WordNet(tmp_path)


def test_sampled_loss_is_finite_and_decreases_with_training():
    counts = zipf_counts()
    torch.manual_seed(0)
    for cls in (ImportanceSamplingSoftmax, NCESoftmax):
        layer = cls(D, V, counts, samples=25)
        h = torch.randn(64, D)
        y = torch.multinomial(counts.float(), 64, replacement=True)
        opt = torch.optim.Adam(layer.parameters(), lr=0.05)
        layer.eval()
        before = layer.loss(h, y).item()
        layer.train()
        for _ in range(60):
            opt.zero_grad()
            loss = layer.loss(h, y)
            assert math.isfinite(loss.item())
            loss.backward()
            opt.step()
        layer.eval()
        assert layer.loss(h, y).item() < before - 0.5


# --------------------------------------------------------------------------- fused linear + cross-entropy


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_equals_two_step_form(with_bias, reduction, monkeypatch):
    """Loss and all three gradients equal F.cross_entropy(F.linear(h, W, b), y), across chunk edges
    (chunks of 7 rows over 30), with ignored targets, in float64."""
    import lmlab.nn.softmax as softmax_module
    from lmlab.nn.softmax import linear_cross_entropy

    monkeypatch.setattr(softmax_module, "_chunk_rows", lambda vocab_size: 7)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(30, D, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(V, D, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(V, generator=g, dtype=torch.float64, requires_grad=True) if with_bias else None
    y = torch.randint(0, V, (30,), generator=g)
    y[[3, 17, 29]] = -100
    fused = linear_cross_entropy(h, w, y, bias=b, reduction=reduction)
    grads = torch.autograd.grad(2.5 * fused, [t for t in (h, w, b) if t is not None])
    plain = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w, b), y, reduction=reduction)
    expected = torch.autograd.grad(2.5 * plain, [t for t in (h, w, b) if t is not None])
    assert torch.allclose(fused, plain, atol=1e-12, rtol=1e-12)
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-10)
    assert not grads[0][[3, 17, 29]].any()  # ignored rows get no gradient


def test_linear_cross_entropy_without_grad_and_bad_reduction():
    from lmlab.nn.softmax import linear_cross_entropy

    h, w, y = torch.randn(5, D), torch.randn(V, D), torch.randint(0, V, (5,))
    with torch.no_grad():
        loss = linear_cross_entropy(h, w, y)
    assert not loss.requires_grad
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(h @ w.T, y), atol=1e-6)
    with pytest.raises(ConfigError, match="reduction"):
        linear_cross_entropy(h, w, y, reduction="none")
