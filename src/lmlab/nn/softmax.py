"""Output layers for word-level language models: the |V|-way softmax and its speed-ups.

Every layer maps hidden states ``h`` (``N x d``) and target word ids ``y`` (``N``) to

- ``loss(h, y)``: the training loss (mean over the ``N`` positions). In ``train()`` mode the
  sampled layers use their approximation; in ``eval()`` mode every layer returns the exact
  negative log-likelihood, so validation numbers are always comparable;
- ``log_prob(h, y)``: the exact, normalised ``log P(y | h)`` (``N``) used for perplexity;
- ``log_probs(h)``: the exact distribution over the whole vocabulary (``N x |V|``), for tests,
  sampling and interpolation.

The layers (seed 004, "大词汇表上softmax计算的改进"; the papers rule where they differ):

- :class:`FullSoftmax` -- ``y = softmax(O h + b)``.
- :class:`ClassSoftmax` -- two-level, ``P(w|h) = P(c(w)|h) P(w|c(w),h)`` with classes made by
  frequency binning (Goodman 2001; Mikolov et al. 2011, "Extensions of recurrent neural network
  language model").
- :class:`TreeSoftmax` -- hierarchical softmax over a binary tree (Morin & Bengio 2005):
  ``P(v|h) = prod_j sigma(s_j (q_{n(v,j)} . h + b_{n(v,j)}))`` with ``s_j = +1`` for a left
  branch (code bit 0) and ``-1`` for a right one. Trees: :func:`huffman_tree` (Huffman code by
  frequency, as in word2vec) and :func:`wordnet_tree` (WordNet IS-A hypernym paths, binarised;
  words WordNet does not know are attached by frequency).
- :class:`ImportanceSamplingSoftmax` -- Bengio & Senecal (2003, 2008): the gradient
  ``grad s(w,h) - E_P[grad s(w',h)]`` with the expectation estimated from ``k`` samples of the
  unigram proposal ``Q`` with self-normalised weights ``exp(s(w'))/Q(w')``.
- :func:`linear_cross_entropy` -- the exact full-softmax loss ``-log softmax(h W^T + b)_y`` fused
  with the output matmul and computed in row chunks, gradients included, so the ``N x |V|``
  logits never exist all at once (the layout of Wijmans et al. 2024, "Cut your losses in
  large-vocabulary language models", done here with plain torch ops). Used by the GPT and
  :class:`FullSoftmax` training losses; same numbers as ``F.cross_entropy(F.linear(h, W, b), y)``.
- :class:`AdaptiveSoftmax` -- the adaptive softmax of Grave et al. (2017, "Efficient softmax
  approximation for GPUs") with the projections and ``div_val`` of Baevski & Auli (2019,
  "Adaptive input representations") as Transformer-XL uses it: the ``cutoffs`` split the
  frequency-sorted vocabulary into a head (the shortlist plus one logit per tail cluster) and tail
  clusters, ``P(w|h) = P_head(w|h)`` for a shortlist word and ``P_head(c|h) P_c(w|h)`` for a word of
  cluster ``c``; cluster ``i`` has ``d_embed / div_val^i`` dimensions, reached from ``h`` through a
  projection. Exact and normalised in training and evaluation alike.
- :class:`NCESoftmax` -- noise-contrastive estimation (Gutmann & Hyvarinen 2010; Mnih & Teh
  2012): logistic regression between the data and ``k`` unigram noise samples with the
  unnormalised model ``p~(w|h) = exp(s(w,h))`` (the normaliser fixed to 1: self-normalised).

Sampled layers draw one set of ``k`` samples per call and share it across the ``N`` positions
(as in Jean et al. 2015), which turns the sampled scores into one ``N x d`` by ``d x k`` matmul;
each position's estimator is unchanged in expectation. Samples come from torch's global RNG,
which the Trainer seeds.

What this file does not do: sampled softmax with the target forced into the
sample, n-gram proposals for importance sampling (the seed mentions them; the unigram is used).
"""

from __future__ import annotations

import abc
import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DataError

SoftmaxKind = Literal["full", "class", "huffman", "wordnet", "importance", "nce", "adaptive"]
SOFTMAX_KINDS: tuple[str, ...] = ("full", "class", "huffman", "wordnet", "importance", "nce", "adaptive")


@dataclass
class SoftmaxConfig:
    """Which output layer a language model uses, with its knobs."""

    kind: SoftmaxKind = "full"
    n_classes: int = 0                           # class softmax: 0 means round(sqrt(|V|))
    class_binning: Literal["unigram", "sqrt"] = "sqrt"  # mass binned: p(w) or sqrt(p(w)) (Mikolov 2011)
    samples: int = 100                           # importance sampling: k proposals; NCE: k noise words
    wordnet_dir: str = ""                        # "" = $WORDNET_DIR or /usr/share/wordnet
    cutoffs: list[int] = field(default_factory=list)  # adaptive: ids where the tail clusters start (ids sorted by frequency)
    div_val: int = 1                             # adaptive: cluster i has dim / div_val^i dimensions


def _init_word_bias(counts: Tensor | None, vocab_size: int) -> Tensor:
    """Output biases start at log unigram probabilities: the model starts as the unigram LM."""
    if counts is None:
        return torch.zeros(vocab_size)
    return torch.log(noise_distribution(counts))


def noise_distribution(counts: Tensor | Sequence[int]) -> Tensor:
    """Unigram distribution from counts; zero counts (``<s>``, ``<pad>``) are floored at 1."""
    counts = torch.as_tensor(counts, dtype=torch.float64).clamp_min(1.0)
    return (counts / counts.sum()).float()


# --------------------------------------------------------------------------- fused exact loss


def _chunk_rows(vocab_size: int) -> int:
    """Rows per chunk: about 8 MiB of fp32 logits (a quarter of a 32 MiB L3), at least 128 rows
    so the chunk's matrix products stay efficient."""
    return max(128, (1 << 21) // max(vocab_size, 1))


class _LinearCrossEntropy(torch.autograd.Function):
    """Σ_i [log Σ_w exp(z_iw) - z_iy_i] with z = h W^T + b, and its gradients, chunk by chunk.

    The loss is the last node of the graph, so its gradient is known during the forward pass:
    ∂/∂z_i = softmax(z_i) - onehot(y_i). Each chunk's logits are turned into that gradient in
    place and immediately multiplied into ∂h = G W and ∂W += G^T h (∂b += Σ G), then dropped;
    backward only scales the stored gradients by the incoming scalar.
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                ignore_index: int, need_grads: bool) -> Tensor:
        N = h.shape[0]
        valid = targets != ignore_index                      # (N,)
        safe_targets = torch.where(valid, targets, 0)        # any id for the ignored rows
        acc = torch.float64 if h.dtype == torch.float64 else torch.float32
        total = h.new_zeros((), dtype=acc)
        grad_h = torch.empty_like(h) if need_grads else None
        grad_w = torch.zeros_like(weight) if need_grads else None
        grad_b = torch.zeros_like(bias) if (need_grads and bias is not None) else None
        step = _chunk_rows(weight.shape[0])
        for start in range(0, N, step):
            end = min(start + step, N)
            h_c, y_c, keep = h[start:end], safe_targets[start:end], valid[start:end]
            z = F.linear(h_c, weight, bias).to(acc)                    # (n, V) logits
            z_y = z.gather(1, y_c[:, None])[:, 0]                      # (n,)
            z_max = z.amax(dim=1, keepdim=True)                        # (n, 1)
            z.sub_(z_max).exp_()                                       # exp(z - max)
            sum_exp = z.sum(dim=1, keepdim=True)                       # (n, 1)
            nll = (z_max + sum_exp.log())[:, 0] - z_y                  # (n,)
            total += nll.masked_fill(~keep, 0.0).sum()
            if not need_grads:
                continue
            z.div_(sum_exp)                                            # softmax(z)
            z[torch.arange(end - start, device=z.device), y_c] -= 1.0  # softmax - onehot = ∂nll/∂z
            if not bool(keep.all()):
                z.masked_fill_(~keep[:, None], 0.0)
            g = z.to(h.dtype)
            torch.mm(g, weight, out=grad_h[start:end])                 # ∂h = G W      (n, C)
            grad_w.addmm_(g.t(), h_c)                                  # ∂W += G^T h   (V, C)
            if grad_b is not None:
                grad_b += g.sum(dim=0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.has_bias = bias is not None
        return total

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return (grad_h * grad_total, grad_w * grad_total,
                grad_b * grad_total if ctx.has_bias else None, None, None, None)


def linear_cross_entropy(h: Tensor, weight: Tensor, targets: Tensor, bias: Tensor | None = None,
                         ignore_index: int = -100, reduction: Literal["mean", "sum"] = "mean") -> Tensor:
    """``F.cross_entropy(F.linear(h, weight, bias), targets)`` without the (N, V) logits in memory.

    h (N, d), weight (V, d), targets (N,) with ``ignore_index`` rows left out; ``mean`` divides by
    the number of rows kept (as ``F.cross_entropy`` does). Gradients flow to h, weight and bias.
    Faster than the two-step form on a CPU because each chunk of logits is made, normalised,
    turned into its gradient and used while it is still in cache.
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"linear_cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    need_grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (h, weight, bias))
    total = _LinearCrossEntropy.apply(h, weight, bias, targets, ignore_index, need_grads)
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp(min=1)


class OutputLayer(nn.Module, abc.ABC):
    """Interface every output layer implements (see the module docstring)."""

    vocab_size: int

    @abc.abstractmethod
    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        """Exact ``log P(y | h)``: (N, d), (N,) -> (N,)."""

    @abc.abstractmethod
    def log_probs(self, h: Tensor) -> Tensor:
        """Exact ``log P(. | h)`` over the vocabulary: (N, d) -> (N, |V|)."""

    def loss(self, h: Tensor, y: Tensor) -> Tensor:
        return -self.log_prob(h, y).mean()


class _WordVectors(OutputLayer):
    """Shared parametrisation of full / IS / NCE: scores ``s(w,h) = O_w . h + b_w``."""

    def __init__(self, dim: int, vocab_size: int, counts: Tensor | None, weight: nn.Parameter | None):
        super().__init__()
        self.vocab_size = vocab_size
        if weight is not None:
            if tuple(weight.shape) != (vocab_size, dim):
                raise ConfigError(f"tied output weight has shape {tuple(weight.shape)}, needs ({vocab_size}, {dim})")
            self.word_weight = weight
        else:
            self.word_weight = nn.Parameter(torch.randn(vocab_size, dim) * dim ** -0.5)
        self.word_bias = nn.Parameter(_init_word_bias(counts, vocab_size))

    def scores(self, h: Tensor) -> Tensor:
        return F.linear(h, self.word_weight, self.word_bias)  # (N, V)

    def log_probs(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.scores(h), dim=-1)

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        return -F.cross_entropy(self.scores(h), y, reduction="none")

    def log_partition(self, h: Tensor) -> Tensor:
        """``log Z(h) = log sum_w exp(s(w,h))`` (0 for a self-normalised model)."""
        return torch.logsumexp(self.scores(h), dim=-1)

    def loss(self, h: Tensor, y: Tensor) -> Tensor:
        if self.training:
            return self.sampled_loss(h, y)
        return linear_cross_entropy(h, self.word_weight, y, bias=self.word_bias)

    def sampled_loss(self, h: Tensor, y: Tensor) -> Tensor:
        return linear_cross_entropy(h, self.word_weight, y, bias=self.word_bias)

    def target_scores(self, h: Tensor, y: Tensor) -> Tensor:
        return (h * self.word_weight[y]).sum(-1) + self.word_bias[y]  # (N,)


class FullSoftmax(_WordVectors):
    """``y = softmax(O h + b)``: exact, |V| dot products per position."""

    def __init__(self, dim: int, vocab_size: int, counts: Tensor | None = None,
                 weight: nn.Parameter | None = None):
        super().__init__(dim, vocab_size, counts, weight)


class ImportanceSamplingSoftmax(_WordVectors):
    """Bengio & Senecal's importance-sampled gradient with a unigram proposal ``Q``.

    With ``k`` samples ``w'_i ~ Q``, ``log Z(h)`` is estimated by
    ``log (1/k) sum_i exp(s(w'_i,h)) / Q(w'_i)``; the training loss
    ``-s(w,h) + log Z_hat`` has gradient ``-grad s(w,h) + sum_i r_i grad s(w'_i,h)`` with the
    self-normalised importance weights ``r_i = softmax_i(s(w'_i,h) - log Q(w'_i))``, which is the
    seed's sampled estimate of ``E_P[grad s]`` (biased for finite ``k``, consistent as k grows).
    """

    def __init__(self, dim: int, vocab_size: int, counts: Tensor | Sequence[int], samples: int = 100,
                 weight: nn.Parameter | None = None):
        counts = torch.as_tensor(counts)
        super().__init__(dim, vocab_size, counts, weight)
        if samples < 1:
            raise ConfigError(f"importance sampling needs samples >= 1, got {samples}")
        self.samples = samples
        self.register_buffer("noise", noise_distribution(counts))

    def sampled_loss(self, h: Tensor, y: Tensor) -> Tensor:
        sample = torch.multinomial(self.noise, self.samples, replacement=True)  # (k,)
        s_sample = F.linear(h, self.word_weight[sample], self.word_bias[sample])  # (N, k)
        log_z = torch.logsumexp(s_sample - self.noise[sample].log(), dim=-1) - math.log(self.samples)
        return (log_z - self.target_scores(h, y)).mean()


class NCESoftmax(_WordVectors):
    """Noise-contrastive estimation with ``k`` unigram noise words, normaliser fixed to 1.

    ``Delta(w,h) = s(w,h) - log(k Q(w))`` is the log-odds that ``w`` came from the data;
    the loss is ``-log sigma(Delta(w,h)) - sum_j log sigma(-Delta(w'_j,h))`` (Mnih & Teh 2012).
    Evaluation still normalises exactly; :meth:`log_partition` reports how close to
    self-normalised the trained model is.
    """

    def __init__(self, dim: int, vocab_size: int, counts: Tensor | Sequence[int], samples: int = 25,
                 weight: nn.Parameter | None = None):
        counts = torch.as_tensor(counts)
        super().__init__(dim, vocab_size, counts, weight)
        if samples < 1:
            raise ConfigError(f"NCE needs samples >= 1, got {samples}")
        self.samples = samples
        self.register_buffer("noise", noise_distribution(counts))

    def sampled_loss(self, h: Tensor, y: Tensor) -> Tensor:
        log_kq = self.noise.log() + math.log(self.samples)
        sample = torch.multinomial(self.noise, self.samples, replacement=True)  # (k,)
        delta_data = self.target_scores(h, y) - log_kq[y]  # (N,)
        delta_noise = F.linear(h, self.word_weight[sample], self.word_bias[sample]) - log_kq[sample]  # (N, k)
        return (-F.logsigmoid(delta_data) - F.logsigmoid(-delta_noise).sum(-1)).mean()


# ----------------------------------------------------------------------------------------------
# class-based two-level softmax


def frequency_classes(counts: Tensor | Sequence[int], n_classes: int,
                      binning: Literal["unigram", "sqrt"] = "sqrt") -> Tensor:
    """Class id of each word by frequency binning (Mikolov et al. 2011).

    Words sorted by count (most frequent first) fill classes in order so that each class holds
    about ``1/n_classes`` of the total mass of ``p(w)`` (``"unigram"``) or of ``sqrt(p(w))``
    (``"sqrt"``, the RNNLM toolkit's default, which gives less lopsided class sizes). Class ids
    are compact ``0..C'-1`` with ``C' <= n_classes`` (a word heavier than one bin fills it alone).
    """
    counts = torch.as_tensor(counts, dtype=torch.float64).clamp_min(1.0)
    if n_classes < 1:
        raise ConfigError(f"class softmax needs n_classes >= 1, got {n_classes}")
    mass = counts.sqrt() if binning == "sqrt" else counts
    order = torch.argsort(-counts, stable=True)
    share = mass[order] / mass.sum()
    start = torch.cumsum(share, 0) - share  # mass before each word
    bins = torch.clamp((start * n_classes).floor().long(), max=n_classes - 1)
    _, compact = torch.unique_consecutive(bins, return_inverse=True)
    word_class = torch.empty_like(compact)
    word_class[order] = compact
    return word_class


class ClassSoftmax(OutputLayer):
    """``P(w|h) = softmax(U h + a)[c(w)] * softmax_{w' in c(w)}(O_{w'} . h + b_{w'})[w]``.

    Training and evaluation cost ``C + |c(w)|`` dot products per position instead of ``|V|``;
    both are exact. The batch is processed class by class (one small matmul per class present).
    """

    def __init__(self, dim: int, word_class: Tensor, counts: Tensor | None = None,
                 weight: nn.Parameter | None = None):
        super().__init__()
        word_class = torch.as_tensor(word_class, dtype=torch.long)
        self.vocab_size = vocab_size = int(word_class.numel())
        n_classes = int(word_class.max()) + 1
        if sorted(set(word_class.tolist())) != list(range(n_classes)):
            raise ConfigError("class softmax: class ids must be 0..C-1 with no empty class")
        self.n_classes = n_classes
        self.register_buffer("word_class", word_class)
        # words listed class by class; class c owns members[offsets[c]:offsets[c+1]]
        members = torch.argsort(word_class, stable=True)
        sizes = torch.bincount(word_class, minlength=n_classes)
        offsets = torch.zeros(n_classes + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(sizes, 0)
        position = torch.empty(vocab_size, dtype=torch.long)  # index of each word inside its class
        position[members] = torch.arange(vocab_size) - offsets[word_class[members]]
        self.register_buffer("members", members, persistent=False)
        self.register_buffer("position", position, persistent=False)
        self.offsets = offsets.tolist()
        self.class_weight = nn.Parameter(torch.randn(n_classes, dim) * dim ** -0.5)
        self.class_bias = nn.Parameter(torch.zeros(n_classes))
        if weight is not None:
            if tuple(weight.shape) != (vocab_size, dim):
                raise ConfigError(f"tied output weight has shape {tuple(weight.shape)}, needs ({vocab_size}, {dim})")
            self.word_weight = weight
        else:
            self.word_weight = nn.Parameter(torch.randn(vocab_size, dim) * dim ** -0.5)
        self.word_bias = nn.Parameter(torch.zeros(vocab_size))
        if counts is not None:  # start at the unigram: P(c) and P(w|c) from counts
            p = noise_distribution(counts)
            p_class = torch.zeros(n_classes).index_add_(0, word_class, p)
            with torch.no_grad():
                self.class_bias.copy_(p_class.log())
                self.word_bias.copy_(p.log() - p_class.log()[word_class])

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        c = self.word_class[y]  # (N,)
        log_p_class = F.log_softmax(F.linear(h, self.class_weight, self.class_bias), dim=-1)
        out = log_p_class.gather(1, c[:, None]).squeeze(1)  # (N,)
        # Sort the positions by class and gather the word vectors of the classes present once;
        # torch.split then hands each class its rows as views (one gather / one scatter in backward).
        order = torch.argsort(c, stable=True)
        present, n_rows = torch.unique_consecutive(c[order], return_counts=True)
        present = present.tolist()
        words = torch.cat([self.members[self.offsets[k]:self.offsets[k + 1]] for k in present])
        sizes = [self.offsets[k + 1] - self.offsets[k] for k in present]
        n_rows = n_rows.tolist()
        pieces = zip(torch.split(h[order], n_rows), torch.split(self.word_weight[words], sizes),
                     torch.split(self.word_bias[words], sizes), torch.split(self.position[y[order]], n_rows))
        within_sorted = torch.cat([
            F.log_softmax(F.linear(h_k, w_k, b_k), dim=-1).gather(1, pos_k[:, None]).squeeze(1)  # (n_k, |c|) -> (n_k,)
            for h_k, w_k, b_k, pos_k in pieces])
        within = torch.empty_like(within_sorted).scatter(0, order, within_sorted)
        return out + within

    def log_probs(self, h: Tensor) -> Tensor:
        log_p_class = F.log_softmax(F.linear(h, self.class_weight, self.class_bias), dim=-1)  # (N, C)
        out = h.new_empty(h.shape[0], self.vocab_size)
        for cls in range(self.n_classes):
            words = self.members[self.offsets[cls]:self.offsets[cls + 1]]
            scores = F.linear(h, self.word_weight[words], self.word_bias[words])  # (N, |c|)
            out[:, words] = F.log_softmax(scores, dim=-1) + log_p_class[:, cls:cls + 1]
        return out


# ----------------------------------------------------------------------------------------------
# binary trees and the hierarchical softmax


@dataclass
class BinaryTree:
    """A full binary tree over ``V`` leaves (the words ``0..V-1``) and ``V-1`` internal nodes.

    Internal node ``i`` (``0 <= i < V-1``) has children ``left[i]`` and ``right[i]``, each a leaf
    (``< V``) or an internal node stored as ``V + j``. The root is internal node ``root``.
    """

    vocab_size: int
    left: list[int]
    right: list[int]
    root: int

    def codes(self) -> list[tuple[list[int], list[int]]]:
        """For every word: (internal nodes root..parent, code bits 0=left 1=right)."""
        V = self.vocab_size
        out: list[tuple[list[int], list[int]] | None] = [None] * V
        stack: list[tuple[int, list[int], list[int]]] = [(self.root, [], [])]
        while stack:
            node, path, bits = stack.pop()
            for bit, child in ((0, self.left[node]), (1, self.right[node])):
                if child < V:
                    out[child] = (path + [node], bits + [bit])
                else:
                    stack.append((child - V, path + [node], bits + [bit]))
        if any(entry is None for entry in out):
            raise ConfigError("binary tree does not reach every word")
        return out  # type: ignore[return-value]

    def depths(self) -> list[int]:
        return [len(path) for path, _ in self.codes()]

    @classmethod
    def from_children(cls, vocab_size: int, children: dict[int, list[int]], root: int,
                      weight: dict[int, float]) -> BinaryTree:
        """Binarise a rooted tree (node -> children; leaves are the words ``0..V-1``).

        Each node's children are merged pairwise, lightest first (a Huffman merge weighted by the
        subtree counts), so heavy subtrees stay near the top; one-child chains are collapsed.
        """
        V = vocab_size
        left: list[int] = []
        right: list[int] = []

        def new_node(a: int, b: int) -> int:
            left.append(a)
            right.append(b)
            return V + len(left) - 1

        # post-order without recursion (WordNet paths can be deep)
        built: dict[int, tuple[int, float]] = {}
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            kids = children.get(node, [])
            if 0 <= node < V:  # a word
                built[node] = (node, weight.get(node, 1.0))
                continue
            if not expanded:
                stack.append((node, True))
                stack.extend((k, False) for k in kids)
                continue
            heap = [(built[k][1], i, built[k][0]) for i, k in enumerate(kids) if k in built]
            if not heap:
                continue  # an internal node with no word below it
            heapq.heapify(heap)
            tiebreak = len(heap)
            while len(heap) > 1:
                wa, _, a = heapq.heappop(heap)
                wb, _, b = heapq.heappop(heap)
                heapq.heappush(heap, (wa + wb, tiebreak, new_node(a, b)))
                tiebreak += 1
            built[node] = (heap[0][2], heap[0][0])
        top = built[root][0]
        if top < V:
            raise ConfigError("a binary tree needs at least two words")
        if len(left) != V - 1:
            raise ConfigError(f"tree covers {len(left) + 1} of {V} words")
        return cls(V, left, right, top - V)


def huffman_tree(counts: Tensor | Sequence[int]) -> BinaryTree:
    """Huffman tree of the words by count (ties broken by word id, so it is deterministic)."""
    counts = torch.as_tensor(counts, dtype=torch.float64).clamp_min(1.0).tolist()
    V = len(counts)
    if V < 2:
        raise ConfigError("a Huffman tree needs at least two words")
    return BinaryTree.from_children(V, {-1: list(range(V))}, -1, dict(enumerate(counts)))


class TreeSoftmax(OutputLayer):
    """Hierarchical softmax over a :class:`BinaryTree` (Morin & Bengio 2005).

    Each internal node ``n`` has a vector ``q_n`` and bias ``b_n``; going left has probability
    ``sigma(q_n . h + b_n)``. ``log P(v|h)`` sums ``log sigma(+-(q . h + b))`` along the word's
    path, ``depth(v)`` dot products instead of ``|V|``; the leaves' probabilities sum to 1 by
    construction.
    """

    def __init__(self, dim: int, tree: BinaryTree):
        super().__init__()
        self.vocab_size = V = tree.vocab_size
        codes = tree.codes()
        depth = torch.tensor([len(p) for p, _ in codes])
        L = int(depth.max())
        nodes = torch.zeros(V, L, dtype=torch.long)
        signs = torch.zeros(V, L)
        for v, (path, bits) in enumerate(codes):
            nodes[v, :len(path)] = torch.tensor(path)
            signs[v, :len(bits)] = 1.0 - 2.0 * torch.tensor(bits, dtype=torch.float32)
        self.register_buffer("tree_left", torch.tensor(tree.left, dtype=torch.long))
        self.register_buffer("tree_right", torch.tensor(tree.right, dtype=torch.long))
        self.register_buffer("tree_root", torch.tensor(tree.root, dtype=torch.long))
        self.register_buffer("path_nodes", nodes, persistent=False)  # (V, L), 0-padded
        self.register_buffer("path_signs", signs, persistent=False)  # (V, L), 0 on padding
        self.register_buffer("depth", depth, persistent=False)
        self.node_weight = nn.Parameter(torch.zeros(V - 1, dim))
        self.node_bias = nn.Parameter(torch.zeros(V - 1))

    @classmethod
    def from_state(cls, dim: int, tensors: dict[str, Tensor], prefix: str) -> TreeSoftmax:
        left = tensors[prefix + "tree_left"].tolist()
        tree = BinaryTree(len(left) + 1, left, tensors[prefix + "tree_right"].tolist(),
                          int(tensors[prefix + "tree_root"]))
        return cls(dim, tree)

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        signs = self.path_signs[y]  # (N, L)
        row, step = signs.nonzero(as_tuple=True)  # the real (unpadded) path steps
        node = self.path_nodes[y][row, step]
        score = (h[row] * self.node_weight[node]).sum(-1) + self.node_bias[node]
        step_lp = F.logsigmoid(signs[row, step] * score)
        return h.new_zeros(h.shape[0]).index_add(0, row, step_lp)

    def log_probs(self, h: Tensor) -> Tensor:
        score = F.linear(h, self.node_weight, self.node_bias)  # (N, V-1)
        out = h.new_zeros(h.shape[0], self.vocab_size)
        for j in range(self.path_nodes.shape[1]):  # one pass per tree level
            sign = self.path_signs[:, j]  # (V,)
            lp = F.logsigmoid(score[:, self.path_nodes[:, j]] * sign)  # (N, V)
            out = out + lp * (sign != 0)
        return out


# ----------------------------------------------------------------------------------------------
# the WordNet IS-A tree

_DETACH = [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
           ("men", "man"), ("ies", "y")]
_VERB_DETACH = [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
                ("ing", "e"), ("ing", "")]


class WordNet:
    """The noun and verb IS-A (hypernym) graphs of a WordNet 3.0 database folder.

    Reads the plain database files (``index.noun``, ``data.noun``, ``noun.exc`` and the verb
    ones) that Debian's ``wordnet-base`` installs in ``/usr/share/wordnet``. Only what the tree
    needs: lemma -> synsets (most frequent sense first), synset -> first hypernym, and a small
    ``morphy`` (exception lists, then the WordNet suffix rules).
    """

    def __init__(self, folder: str | Path = ""):
        import os

        folder = Path(folder or os.environ.get("WORDNET_DIR") or "/usr/share/wordnet")
        if not (folder / "data.noun").is_file():
            raise DataError(f"no WordNet database in {folder} (install Debian's wordnet-base "
                            "or set softmax.wordnet_dir / $WORDNET_DIR)")
        self.folder = folder
        self.index: dict[str, dict[str, list[int]]] = {}
        self.hypernym: dict[str, dict[int, int]] = {}
        self.exceptions: dict[str, dict[str, str]] = {}
        for pos, tag in (("noun", "n"), ("verb", "v")):
            self.index[tag] = self._read_index(folder / f"index.{pos}")
            self.hypernym[tag] = self._read_hypernyms(folder / f"data.{pos}", tag)
            exc = folder / f"{pos}.exc"
            self.exceptions[tag] = {}
            if exc.is_file():
                for line in exc.read_text(encoding="latin-1").splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        self.exceptions[tag].setdefault(parts[0], parts[1])

    @staticmethod
    def _read_index(path: Path) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue  # licence header
            parts = line.split()
            n_synsets = int(parts[2])
            out[parts[0]] = [int(x) for x in parts[-n_synsets:]]
        return out

    @staticmethod
    def _read_hypernyms(path: Path, tag: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split(" | ", 1)[0].split()
            offset = int(fields[0])
            n_words = int(fields[3], 16)
            i = 4 + 2 * n_words
            n_pointers = int(fields[i])
            i += 1
            for _ in range(n_pointers):
                symbol, target, pos = fields[i], int(fields[i + 1]), fields[i + 2]
                i += 4
                if symbol in ("@", "@i") and pos == tag:
                    out[offset] = target
                    break
        return out

    def lemma(self, word: str, tag: str) -> str | None:
        """WordNet's morphy, reduced: exceptions, the word itself, then suffix rules."""
        index = self.index[tag]
        word = word.lower().replace(" ", "_")
        if word in self.exceptions[tag] and self.exceptions[tag][word] in index:
            return self.exceptions[tag][word]
        if word in index:
            return word
        for suffix, repl in (_DETACH if tag == "n" else _VERB_DETACH):
            if word.endswith(suffix) and len(word) > len(suffix) + 1:
                base = word[: len(word) - len(suffix)] + repl
                if base in index:
                    return base
        return None

    def hypernym_path(self, word: str) -> list[tuple[str, int]] | None:
        """Synsets from the root down to the word's most frequent sense (nouns before verbs)."""
        if not re.fullmatch(r"[a-z][a-z'\-.]*", word.lower()):
            return None
        for tag in ("n", "v"):
            lemma = self.lemma(word, tag)
            if lemma is None:
                continue
            synset = self.index[tag][lemma][0]
            path = [(tag, synset)]
            seen = {synset}
            while synset in self.hypernym[tag] and self.hypernym[tag][synset] not in seen:
                synset = self.hypernym[tag][synset]
                seen.add(synset)
                path.append((tag, synset))
            return path[::-1]
        return None


def wordnet_tree(vocab: Sequence[str], counts: Tensor | Sequence[int], wordnet: WordNet | None = None
                 ) -> tuple[BinaryTree, int]:
    """A binary tree from WordNet's IS-A hierarchy; returns (tree, number of words WordNet placed).

    Each word hangs under the synset of its most frequent sense; the synsets form the tree of
    their (first-)hypernym paths. Words WordNet does not know (function words, numbers,
    punctuation, the specials) form a separate subtree under the root, arranged by frequency.
    Every node with more than two children is binarised by a Huffman merge of its children's
    subtree counts (the seed: "需要通过进一步聚类来转换为二叉树"); one-child chains collapse.
    """
    wordnet = wordnet or WordNet()
    counts_f = torch.as_tensor(counts, dtype=torch.float64).clamp_min(1.0).tolist()
    V = len(vocab)
    if len(counts_f) != V:
        raise ConfigError(f"wordnet tree: {len(counts_f)} counts for {V} words")
    ids: dict[tuple[str, int], int] = {}
    children: dict[int, list[int]] = {}
    weight: dict[int, float] = dict(enumerate(counts_f))
    root, unknown = -1, -2
    children[root] = [unknown]
    children[unknown] = []
    placed = 0

    def node_id(key: tuple[str, int]) -> int:
        if key not in ids:
            ids[key] = -3 - len(ids)
        return ids[key]

    for w, word in enumerate(vocab):
        path = wordnet.hypernym_path(word)
        if path is None:
            children[unknown].append(w)
            continue
        placed += 1
        parent = root
        for key in path:
            nid = node_id(key)
            siblings = children.setdefault(parent, [])
            if nid not in siblings:
                siblings.append(nid)
            parent = nid
        children.setdefault(parent, []).append(w)
    # subtree weights (children lists are a tree: each synset has one parent on our paths)
    order: list[int] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(children.get(node, []))
    for node in reversed(order):
        if node < 0:
            weight[node] = sum(weight.get(k, 0.0) for k in children.get(node, []))
    return BinaryTree.from_children(V, children, root, weight), placed


# ----------------------------------------------------------------------------------------------
# the adaptive softmax (Grave et al. 2017; Baevski & Auli 2019)


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int, div_val: int, d_embed: int, where: str) -> list[int]:
    """The cutoffs as a list, refused unless ``0 < c_1 < ... < c_n < vocab_size`` and every
    cluster keeps at least one dimension."""
    cutoffs = [int(c) for c in cutoffs]
    if any(b <= a for a, b in zip([0, *cutoffs], [*cutoffs, vocab_size])):
        raise ConfigError(f"{where}.cutoffs must rise strictly inside (0, vocab_size={vocab_size}), got {cutoffs}")
    if div_val < 1:
        raise ConfigError(f"{where}.div_val must be >= 1, got {div_val}")
    if d_embed // div_val ** len(cutoffs) < 1:
        raise ConfigError(f"{where}: d_embed={d_embed} / div_val^{len(cutoffs)} leaves a cluster no dimension")
    return cutoffs


class AdaptiveSoftmax(OutputLayer):
    """``log P(w|h)`` over a vocabulary cut by ``cutoffs`` into a head and ``n`` tail clusters.

    The head scores the shortlist ``[0, c_1)`` and one logit per tail cluster (``cluster_weight``,
    ``cluster_bias``); tail cluster ``i`` scores ``[c_i, c_{i+1})``. With ``div_val == 1`` every
    part shares one ``V x d_embed`` matrix (``out_layers.0``, sliced); otherwise part ``i`` has its
    own ``out_layers.i`` of ``d_embed / div_val^i`` columns. ``out_projs.i`` (``d_proj x d_i``)
    maps ``h`` into part ``i``'s space; there are none when ``div_val == 1`` and
    ``d_proj == d_embed``. The parameter names are Transformer-XL's (``crit.*``), so its
    checkpoints load as they are. ``log_prob`` computes a tail only for the rows whose target is in it.
    """

    def __init__(self, vocab_size: int, d_embed: int, d_proj: int, cutoffs: Sequence[int], div_val: int = 1,
                 init_std: float = 0.02, proj_init_std: float = 0.01):
        super().__init__()
        self.vocab_size = vocab_size
        self.cutoffs = check_cutoffs(cutoffs, vocab_size, div_val, d_embed, "softmax")
        self.cutoff_ends = [0, *self.cutoffs, vocab_size]
        self.shortlist = self.cutoff_ends[1]
        self.n_clusters = len(self.cutoffs)
        self.div_val = div_val
        if self.n_clusters:
            self.cluster_weight = nn.Parameter(torch.randn(self.n_clusters, d_embed) * init_std)
            self.cluster_bias = nn.Parameter(torch.zeros(self.n_clusters))
        self.out_layers = nn.ModuleList()
        self.out_projs = nn.ParameterList()
        if div_val == 1:
            self.out_layers.append(nn.Linear(d_embed, vocab_size))
            if d_proj != d_embed:
                for _ in range(self.n_clusters + 1):
                    self.out_projs.append(nn.Parameter(torch.randn(d_proj, d_embed) * proj_init_std))
        else:
            for i, (lo, hi) in enumerate(zip(self.cutoff_ends, self.cutoff_ends[1:])):
                d_i = d_embed // div_val ** i
                self.out_layers.append(nn.Linear(d_i, hi - lo))
                self.out_projs.append(nn.Parameter(torch.randn(d_proj, d_i) * proj_init_std))
        for layer in self.out_layers:
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def _part(self, i: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """(weight, bias, projection) of part ``i`` (0 = the head, with the cluster logits appended)."""
        if self.div_val == 1:
            lo, hi = self.cutoff_ends[i], self.cutoff_ends[i + 1]
            weight, bias = self.out_layers[0].weight[lo:hi], self.out_layers[0].bias[lo:hi]
        else:
            weight, bias = self.out_layers[i].weight, self.out_layers[i].bias
        if i == 0 and self.n_clusters:
            weight = torch.cat([weight, self.cluster_weight], dim=0)
            bias = torch.cat([bias, self.cluster_bias], dim=0)
        proj = self.out_projs[i] if len(self.out_projs) else None
        return weight, bias, proj

    def _part_log_softmax(self, h: Tensor, i: int) -> Tensor:
        weight, bias, proj = self._part(i)
        if proj is not None:
            h = h @ proj  # (N, d_proj) -> (N, d_i)
        z = F.linear(h, weight, bias)
        return F.log_softmax(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, dim=-1)

    def log_probs(self, h: Tensor) -> Tensor:
        head = self._part_log_softmax(h, 0)                               # (N, shortlist + n_clusters)
        if not self.n_clusters:
            return head
        parts = [head[:, :self.shortlist]]
        for i in range(1, self.n_clusters + 1):
            cluster = head[:, self.shortlist + i - 1:self.shortlist + i]  # (N, 1): log P(cluster i | h)
            parts.append(cluster + self._part_log_softmax(h, i))          # (N, |cluster i|)
        return torch.cat(parts, dim=1)

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        head = self._part_log_softmax(h, 0)
        if not self.n_clusters:
            return head.gather(1, y[:, None])[:, 0]
        # the head's column for each target: the word itself, or its cluster's logit
        cluster = torch.bucketize(y, torch.tensor(self.cutoffs, device=y.device), right=True)  # (N,) 0 = shortlist
        head_column = torch.where(cluster == 0, y, self.shortlist + cluster - 1)
        out = head.gather(1, head_column[:, None])[:, 0]
        for i in range(1, self.n_clusters + 1):
            rows = (cluster == i).nonzero()[:, 0]
            if rows.numel() == 0:
                continue
            tail = self._part_log_softmax(h[rows], i)                     # (n_i, |cluster i|)
            within = tail.gather(1, (y[rows] - self.cutoff_ends[i])[:, None])[:, 0]
            out = out.index_add(0, rows, within)
        return out


# ----------------------------------------------------------------------------------------------
# building a layer from a config (and back from saved tensors)


def supports_tying(kind: str) -> bool:
    return kind in ("full", "class", "importance", "nce")


def build_output_layer(config: SoftmaxConfig, dim: int, vocab: Sequence[str], counts: Tensor | Sequence[int],
                       weight: nn.Parameter | None = None) -> OutputLayer:
    """The output layer ``config`` names, with its structure computed from the training counts."""
    V = len(vocab)
    counts = torch.as_tensor(counts, dtype=torch.long)
    if counts.numel() != V:
        raise ConfigError(f"output layer: {counts.numel()} counts for a vocabulary of {V}")
    if weight is not None and not supports_tying(config.kind):
        raise ConfigError(f"softmax.kind={config.kind!r} has no word vectors to tie to the embeddings")
    if config.kind == "full":
        return FullSoftmax(dim, V, counts, weight)
    if config.kind == "class":
        n_classes = config.n_classes or max(1, round(math.sqrt(V)))
        return ClassSoftmax(dim, frequency_classes(counts, n_classes, config.class_binning), counts, weight)
    if config.kind == "huffman":
        return TreeSoftmax(dim, huffman_tree(counts))
    if config.kind == "wordnet":
        tree, _ = wordnet_tree(vocab, counts, WordNet(config.wordnet_dir))
        return TreeSoftmax(dim, tree)
    if config.kind == "importance":
        return ImportanceSamplingSoftmax(dim, V, counts, config.samples, weight)
    if config.kind == "nce":
        return NCESoftmax(dim, V, counts, config.samples, weight)
    if config.kind == "adaptive":
        return _adaptive(config, dim, V)
    raise ConfigError(f"unknown softmax.kind {config.kind!r}; known: {', '.join(SOFTMAX_KINDS)}")


def output_layer_from_state(config: SoftmaxConfig, dim: int, vocab_size: int, tensors: dict[str, Tensor],
                            prefix: str, weight: nn.Parameter | None = None) -> OutputLayer:
    """Rebuild a saved output layer's structure (tree, classes, noise) from its saved buffers."""
    try:
        if config.kind == "full":
            return FullSoftmax(dim, vocab_size, None, weight)
        if config.kind == "class":
            return ClassSoftmax(dim, tensors[prefix + "word_class"], None, weight)
        if config.kind in ("huffman", "wordnet"):
            return TreeSoftmax.from_state(dim, tensors, prefix)
        if config.kind in ("importance", "nce"):
            layer_cls = ImportanceSamplingSoftmax if config.kind == "importance" else NCESoftmax
            # the saved noise distribution is a valid count vector up to scale
            noise = tensors[prefix + "noise"].double()
            return layer_cls(dim, vocab_size, noise / noise.min(), config.samples, weight)
        if config.kind == "adaptive":
            return _adaptive(config, dim, vocab_size)
    except KeyError as err:
        raise ConfigError(f"saved output layer is missing {err.args[0]!r}") from None
    raise ConfigError(f"unknown softmax.kind {config.kind!r}; known: {', '.join(SOFTMAX_KINDS)}")


def _adaptive(config: SoftmaxConfig, dim: int, vocab_size: int) -> AdaptiveSoftmax:
    """The adaptive softmax of a recurrent LM: ``d_embed = d_proj = dim`` (no projection unless div_val > 1)."""
    if not config.cutoffs:
        raise ConfigError("softmax.kind='adaptive' needs softmax.cutoffs (ids where the tail clusters start, "
                          "e.g. [2000, 6000] for a 10k vocabulary sorted by frequency)")
    return AdaptiveSoftmax(vocab_size, dim, dim, config.cutoffs, config.div_val, dim ** -0.5, dim ** -0.5)
