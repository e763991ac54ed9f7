"""Feature-based transfer on rotten-tomatoes: a frozen ELMo (scalar mix of its layers, or one layer)
vs averaged word2vec vectors trained on the same corpus, each under a linear head.

    .venv/bin/python benchmarks/elmo_probe.py runs/elmo/model --corpus wiki-vital --seeds 3

ELMo's layers are computed once (frozen; each review wrapped in <S> .. </S>, read as its real
characters) and mean-pooled over the review's tokens per layer; since mean pooling is linear, the
scalar mix of the pooled layers equals the pooled scalar mix, so the mix weights s, gamma and the
head are trained on the pooled (N, L+1, 2P) features. word2vec: CBOW, negative sampling, the ELMo's
vector width, trained on the corpus's training split; a review is the mean of its known words'
vectors. Heads: AdamW, minibatches of 64, 20 epochs, seed = head init and batch order. Prints a
markdown table of test accuracy (mean and spread over the seeds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from lmlab.data import sources
from lmlab.data.corpus import word_sentences
from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig
from lmlab.models import elmo
from lmlab.models.elmo import ScalarMix


def _reviews(split):
    names = ["rotten", "fresh"]
    docs = [d for d in split if d.meta.get("label") in names]
    tokens = [[w for s in word_sentences([d]) for w in s] or ["<unk>"] for d in docs]
    return tokens, torch.tensor([names.index(d.meta["label"]) for d in docs])


@torch.no_grad()
def elmo_features(model: elmo.ElmoLM, reviews: list[list[str]], batch_size: int = 64) -> torch.Tensor:
    """(N, L+1, 2P): each layer mean-pooled over the review's tokens."""
    model.eval()
    out = []
    for start in range(0, len(reviews), batch_size):
        chunk = reviews[start:start + batch_size]
        chars, mask = model.chars.batch(chunk)
        layers, mask, _ = model.bilm(chars, mask)
        inner = mask.clone()
        inner[:, 0] = False
        inner[torch.arange(len(chunk)), mask.sum(1) - 1] = False  # drop <S> and </S>
        w = inner.unsqueeze(-1).float() / inner.sum(1).clamp(min=1)[:, None, None]  # (B, T, 1)
        out.append(torch.stack([(h * w).sum(1) for h in layers], dim=1))  # (B, L+1, 2P)
    return torch.cat(out)


class MixHead(torch.nn.Module):
    def __init__(self, n_layers: int, dim: int):
        super().__init__()
        self.mix = ScalarMix(n_layers)
        self.out = torch.nn.Linear(dim, 2)

    def forward(self, x):  # (B, n, D)
        return self.out(self.mix(list(x.unbind(1))))


def train_head(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 20) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=5e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(x[idx]), y[idx]).backward()
            opt.step()


def accuracy(head, x, y) -> float:
    with torch.no_grad():
        return float((head(x).argmax(-1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = sources.load("rotten-tomatoes").split()
    train_tok, y_train = _reviews(splits.train)
    test_tok, y_test = _reviews(splits.test)
    model, _ = elmo.load(args.model)
    t0 = time.perf_counter()
    f_train, f_test = elmo_features(model, train_tok), elmo_features(model, test_tok)
    t_elmo = time.perf_counter() - t0
    mean, std = f_train.mean((0,), keepdim=True), f_train.std((0,), keepdim=True) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std  # per layer and feature, from train
    t0 = time.perf_counter()
    corpus = word_sentences(sources.load(args.corpus).split().train)
    w2v = Word2Vec(Word2VecConfig(vector_size=f_train.shape[-1], min_count=2, epochs=5, workers=1, seed=1))
    w2v.fit(corpus)
    t_w2v = time.perf_counter() - t0
    wv = w2v.wv

    def average(tokens):
        rows = [wv[w] for w in tokens if w in wv]
        return np.mean(rows, axis=0) if rows else np.zeros(wv.dim, dtype=np.float32)

    v_train = torch.tensor(np.stack([average(t) for t in train_tok]), dtype=torch.float32)
    v_test = torch.tensor(np.stack([average(t) for t in test_tok]), dtype=torch.float32)
    vm, vs = v_train.mean(0, keepdim=True), v_train.std(0, keepdim=True) + 1e-6
    v_train, v_test = (v_train - vm) / vs, (v_test - vm) / vs
    L = f_train.shape[1]
    rows = {}
    variants = {"ELMo scalar mix (all layers)": list(range(L)), "ELMo top layer only": [L - 1],
                **{f"ELMo layer {j} only" + (" (char-CNN tokens)" if j == 0 else ""): [j] for j in range(L - 1)}}
    for name, layers in variants.items():
        accs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            head = MixHead(len(layers), f_train.shape[-1])
            train_head(head, f_train[:, layers], y_train, seed)
            accs.append(accuracy(head, f_test[:, layers], y_test))
        rows[name] = accs
    accs = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        head = torch.nn.Linear(v_train.shape[1], 2)
        train_head(head, v_train, y_train, seed)
        accs.append(accuracy(head, v_test, y_test))
    rows[f"averaged word2vec (CBOW, {args.corpus} train, dim {v_train.shape[1]})"] = accs
    majority = max(float((y_test == c).float().mean()) for c in (0, 1))
    print(f"rotten-tomatoes: {len(y_train)} train / {len(y_test)} test reviews; majority class {majority:.3f}; "
          f"ELMo features {t_elmo:.0f} s, word2vec training {t_w2v:.0f} s\n")
    print(f"| features (frozen) + linear head | test accuracy, mean of {args.seeds} seeds | min – max |")
    print("|---|---|---|")
    for name, a in rows.items():
        print(f"| {name} | {statistics.mean(a):.3f} | {min(a):.3f} – {max(a):.3f} |")


if __name__ == "__main__":
    main()
