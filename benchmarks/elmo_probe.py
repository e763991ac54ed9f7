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

``--vector-files name=path,...`` adds averaged rows for cached vector files (fastText, GloVe trained
by ``benchmarks/elmo_transfer.py``'s ``static_vectors`` on the same corpus). ``--ner wnut16`` adds
the NER probe: per-token ELMo layers (each tweet wrapped in <S> .. </S>, lowercased as the ELMo was
trained) under a trained scalar mix + linear per-token head, and per-token static vectors under a
linear head, test entity F1 (BIO spans, default mode) over the seeds. ``--cache DIR``: ELMo
features are kept there as safetensors and reused.

    .venv/bin/python benchmarks/elmo_probe.py /work/cache/r3-elmo/elmo-wiki-vital --seeds 3 --ner wnut16 \
        --vector-files fasttext=/work/cache/r3-elmo/fasttext-wiki-vital-64.txt,glove=/work/cache/r3-elmo/glove-wiki-vital-64.txt \
        --cache /work/cache/r3-elmo
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


def _cached(cache: str, name: str, make) -> torch.Tensor:
    if not cache:
        return make()
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    path = Path(cache) / f"{name}.safetensors"
    if path.is_file():
        return load_file(path)["x"]
    x = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"x": x.contiguous()}, path)
    return x


@torch.no_grad()
def elmo_token_features(model: elmo.ElmoLM, sentences: list[list[str]], batch_size: int = 64) -> torch.Tensor:
    """(N_tokens, L+1, 2P): every word's layers, sentences in order, boundaries dropped."""
    model.eval()
    out = []
    for start in range(0, len(sentences), batch_size):
        chunk = [[w.lower() for w in s] for s in sentences[start:start + batch_size]]
        chars, mask = model.chars.batch(chunk)
        layers, _, _ = model.bilm(chars, mask)
        stacked = torch.stack(layers, dim=2)  # (B, T, L+1, 2P)
        out.extend(stacked[i, 1:len(s) + 1] for i, s in enumerate(chunk))
    return torch.cat(out)


class TokenMixHead(torch.nn.Module):
    def __init__(self, n_layers: int, dim: int, n_labels: int):
        super().__init__()
        self.mix = ScalarMix(n_layers)
        self.out = torch.nn.Linear(dim, n_labels)

    def forward(self, x):  # (N, n, D)
        return self.out(self.mix(list(x.unbind(1))))


def ner_probe(model, args, vector_tables: dict) -> dict:
    from lmlab.eval.metrics import entity_scores
    from lmlab.tasks import tagging

    data = tagging.builtin_data(args.ner)
    labels = sorted({x for _, ls in data.train + data.test for x in ls})
    index = {x: i for i, x in enumerate(labels)}
    train_words, test_words = [w for w, _ in data.train], [w for w, _ in data.test]
    y_train = torch.tensor([index[x] for _, ls in data.train for x in ls])
    gold = [ls for _, ls in data.test]
    f_train = _cached(args.cache, f"ner-{args.ner}-train", lambda: elmo_token_features(model, train_words))
    f_test = _cached(args.cache, f"ner-{args.ner}-test", lambda: elmo_token_features(model, test_words))
    mean, std = f_train.mean(0, keepdim=True), f_train.std(0, keepdim=True) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std

    def f1(predicted_ids) -> float:
        flat, out = [labels[i] for i in predicted_ids.tolist()], []
        for words in test_words:
            out.append(flat[:len(words)])
            flat = flat[len(words):]
        return entity_scores(gold, out, data.scheme, "default").f1

    L = f_train.shape[1]
    rows = {}
    variants = {"ELMo scalar mix (all layers)": list(range(L)), "ELMo top layer only": [L - 1],
                **{f"ELMo layer {j} only" + (" (char-CNN tokens)" if j == 0 else ""): [j] for j in range(L - 1)}}
    for name, layers in variants.items():
        scores = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            head = TokenMixHead(len(layers), f_train.shape[-1], len(labels))
            train_head(head, f_train[:, layers], y_train, seed, epochs=args.ner_epochs)
            with torch.no_grad():
                scores.append(f1(head(f_test[:, layers]).argmax(-1)))
        rows[name] = scores
    for name, table in vector_tables.items():
        def lookup(sentences, table=table):
            return torch.tensor(np.stack([table[w.lower()] if w.lower() in table else np.zeros(table.dim, np.float32)
                                          for s in sentences for w in s]), dtype=torch.float32)
        v_train, v_test = lookup(train_words), lookup(test_words)
        vm, vs = v_train.mean(0, keepdim=True), v_train.std(0, keepdim=True) + 1e-6
        v_train, v_test = (v_train - vm) / vs, (v_test - vm) / vs
        scores = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            head = torch.nn.Linear(v_train.shape[1], len(labels))
            train_head(head, v_train, y_train, seed, epochs=args.ner_epochs)
            with torch.no_grad():
                scores.append(f1(head(v_test).argmax(-1)))
        rows[f"{name} (per token, frozen)"] = scores
    rows["_info"] = (f"{args.ner}: {len(data.train)} train / {len(data.test)} test sentences, {len(y_train):,} train "
                     f"tokens, {len(labels)} labels ({data.scheme}); linear per-token head, {args.ner_epochs} epochs")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--corpus", default="wiki-vital")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--vector-files", default="", help="name=path,... of vector files for averaged rows")
    ap.add_argument("--ner", default="", help="also the NER probe on this tagging set (wnut16)")
    ap.add_argument("--ner-epochs", type=int, default=10)
    ap.add_argument("--skip-rt", action="store_true", help="only the NER probe")
    ap.add_argument("--cache", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = elmo.load(args.model)
    from lmlab.embeddings.vectors import Vectors

    tables = {}
    for item in filter(None, args.vector_files.split(",")):
        name, path = item.split("=", 1)
        tables[name] = Vectors.load(path)
    if args.ner:
        rows = ner_probe(model, args, tables)
        print(rows.pop("_info") + "\n")
        print(f"| features (frozen) + linear per-token head | test entity F1, mean of {args.seeds} seeds | min – max |")
        print("|---|---|---|")
        for name, a in rows.items():
            print(f"| {name} | {statistics.mean(a):.3f} | {min(a):.3f} – {max(a):.3f} |")
        print(flush=True)
    if not args.skip_rt:
        rotten_tomatoes(model, args, tables)


def rotten_tomatoes(model, args, tables) -> None:
    splits = sources.load("rotten-tomatoes").split()
    train_tok, y_train = _reviews(splits.train)
    test_tok, y_test = _reviews(splits.test)
    t0 = time.perf_counter()
    f_train = _cached(args.cache, "rt-train", lambda: elmo_features(model, train_tok))
    f_test = _cached(args.cache, "rt-test", lambda: elmo_features(model, test_tok))
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
    for name, table in tables.items():
        def avg(tokens, table=table):
            known = [table[w] for w in tokens if w in table]
            return np.mean(known, axis=0) if known else np.zeros(table.dim, dtype=np.float32)
        a_train = torch.tensor(np.stack([avg(t) for t in train_tok]), dtype=torch.float32)
        a_test = torch.tensor(np.stack([avg(t) for t in test_tok]), dtype=torch.float32)
        am, av = a_train.mean(0, keepdim=True), a_train.std(0, keepdim=True) + 1e-6
        a_train, a_test = (a_train - am) / av, (a_test - am) / av
        accs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            head = torch.nn.Linear(a_train.shape[1], 2)
            train_head(head, a_train, y_train, seed)
            accs.append(accuracy(head, a_test, y_test))
        rows[f"averaged {name} (dim {a_train.shape[1]})"] = accs
    majority = max(float((y_test == c).float().mean()) for c in (0, 1))
    print(f"rotten-tomatoes: {len(y_train)} train / {len(y_test)} test reviews; majority class {majority:.3f}; "
          f"ELMo features {t_elmo:.0f} s, word2vec training {t_w2v:.0f} s\n")
    print(f"| features (frozen) + linear head | test accuracy, mean of {args.seeds} seeds | min – max |")
    print("|---|---|---|")
    for name, a in rows.items():
        print(f"| {name} | {statistics.mean(a):.3f} | {min(a):.3f} – {max(a):.3f} |")


if __name__ == "__main__":
    main()
