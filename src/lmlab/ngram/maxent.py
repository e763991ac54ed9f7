"""Maximum-entropy (log-linear) language model with n-gram, distance-2 and trigger features.

Rosenfeld (1996), "A maximum entropy approach to adaptive statistical language
modeling" (Computer Speech and Language 10); Lau, Rosenfeld & Roukos (1993), "Trigger-based
language models"; Chen & Rosenfeld (2000) for the Gaussian (L2) prior. Seed 004 describes
it as combining information sources, each a set of constraints, in one model::

    P(w | h) = exp(Σ_i θ_i f_i(h, w)) / Z(h),    Z(h) = Σ_{w'} exp(Σ_i θ_i f_i(h, w'))

Feature families (indicator functions f_i), all selected on the training split:

* unigram      f_w(h, w') = [w' = w]                                  (a bias per word)
* bigram       f_{u,w}    = [w_{-1} = u][w' = w]        for pairs seen >= ``min_count`` times
* trigram      f_{v,u,w}  = [w_{-2} w_{-1} = v u][w' = w]   likewise
* distance-2   f_{v,*,w}  = [w_{-2} = v][w' = w]        (the seed's distance-2 bigram g(w_i, w_{i-2}))
* trigger      f_{A→B}    = [A occurs earlier in the document][w' = B], for the pairs A→B with
  the highest average mutual information (Rosenfeld 1996, sec. 4.2) over training positions::

      AMI(A; B) = Σ_{a in {A, ¬A}} Σ_{b in {B, ¬B}} P(a, b) log P(a, b) / (P(a) P(b))

  where "A" is the event "A is in the document history" and "B" is "the next word is B";
  only pairs that raise B (P(B | A) > P(B)) are kept. The document history resets at
  each document boundary; triggers see only earlier tokens of the same document.

Normalisation is exact over a capped output vocabulary: the ``vocab_size`` most frequent
words (``</s>`` and ``<unk>`` always among them) each have their own class, every other
word shares one class ``<other>`` and is spread by its training unigram frequency
(add-one): P(w | h) = P_me(<other> | h) q(w). So the model is a proper distribution over
the whole closed vocabulary of the base n-gram model and its perplexity is comparable.

Each family is a sorted table of (history key, class) pairs with one weight each; a batch's
logits are the class biases plus one scatter-add of the weights of every active feature
(found with ``searchsorted`` on the history keys), so the cost is the number of active
features, not the number of possible ones.

Training: the mean negative log-likelihood plus (l2 / 2) Σ θ² (the Gaussian prior of
Chen & Rosenfeld 2000; the class biases are not penalised), minimised with Adam on shuffled
mini-batches, in PyTorch (float32; float64 in the gradient checks), seeded. Not done here: iterative
scaling (GIS/IIS), feature induction, or class-based speed-ups beyond the ``<other>`` class.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, UsageError
from .adaptive import (
    CacheLM,
    DocumentStream,
    MixtureLM,
    check_same_vocab,
    em_two_way,
    evaluation,
    read_config,
    split_history,
)
from .counts import BOS_ID, EOS_ID, UNK_ID, Vocabulary
from .model import Evaluation, NgramModel

FAMILIES = ("bigram", "trigram", "distance2", "trigger")


@dataclass
class MaxentConfig:
    vocab_size: int = 2000        # words with their own output class (the rest share <other>)
    min_count: int = 2            # n-gram features seen fewer times are not used
    n_triggers: int = 5000        # trigger pairs A -> B kept (highest average mutual information)
    trigger_words: int = 2000     # candidate triggers A: the most frequent words by document frequency
    trigger_min_count: int = 3    # a pair must co-occur at least this often
    l2: float = 1e-5              # Gaussian prior: + (l2 / 2) Σ θ² on the mean per-token NLL
    lr: float = 0.05              # Adam
    epochs: int = 3
    batch_size: int = 1024
    seed: int = 0
    families: tuple = FAMILIES    # which feature families to use (unigram always)

    def check(self) -> None:
        for name in ("vocab_size", "batch_size", "epochs", "min_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"maxent {name} must be >= 1, got {getattr(self, name)}")
        if self.l2 < 0 or self.lr <= 0:
            raise ConfigError("maxent l2 must be >= 0 and lr > 0")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ConfigError(f"unknown maxent feature family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")


# ----------------------------------------------------------------------------- positions
@dataclass
class Positions:
    """Per predicted token of a stream: target, n-gram histories, document and index within it."""

    y: np.ndarray      # (T,) word id
    w1: np.ndarray     # (T,) w_{-1} (``<s>`` at a sentence start)
    w2: np.ndarray     # (T,) w_{-2} (``<s>`` one word in, -1 at a sentence start)
    doc: np.ndarray    # (T,)
    p: np.ndarray      # (T,) index of the token within its document

    @classmethod
    def from_stream(cls, stream: DocumentStream) -> Positions:
        ids, sent, doc = stream.ids, stream.sent, stream.doc
        T = len(ids)
        first = np.r_[True, sent[1:] != sent[:-1]]          # first token of each sentence
        w1 = np.where(first, BOS_ID, np.r_[BOS_ID, ids[:-1]])
        second = np.r_[False, first[:-1]] & ~first
        w2 = np.where(first, -1, np.where(second, BOS_ID, np.r_[-1, -1, ids[:-2]][:T]))
        doc_start = np.searchsorted(doc, doc)               # doc is non-decreasing
        return cls(ids, w1, w2, doc, np.arange(T) - doc_start)


# ----------------------------------------------------------------------------- features
@dataclass
class Family:
    """One feature family: feature i fires when the history key is ``keys[i]`` and the next class is
    ``cls[i]``. Keys are sorted, so the features of one history are contiguous."""

    keys: np.ndarray   # (n,) int64 history key: w_{-1}, w_{-2} * V + w_{-1}, w_{-2}, or trigger word A
    cls: np.ndarray    # (n,) int64 target class

    def expand(self, query: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For query keys (one per ``row``): (row, feature index) of every feature with that key."""
        lo = np.searchsorted(self.keys, query, side="left")
        hi = np.searchsorted(self.keys, query, side="right")
        n = hi - lo
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        return np.repeat(row, n), np.repeat(lo, n) + offset


@dataclass
class FeatureTables:
    """Which features exist: the output classes and the four families."""

    V: int
    classes: np.ndarray        # (C-1,) word ids with their own class; class C-1 is <other>
    class_of: np.ndarray       # (V,) class of each word
    rest_logq: np.ndarray      # (V,) ln q(w) inside <other>; 0 for words with their own class
    families: dict             # name -> Family
    trigger_ami: np.ndarray    # (n_trigger,) AMI of each selected pair (nats)

    @property
    def n_classes(self) -> int:
        return len(self.classes) + 1

    def trigger_words(self) -> np.ndarray:
        return np.unique(self.families["trigger"].keys)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"classes": self.classes, "class_of": self.class_of, "rest_logq": self.rest_logq,
               "trigger_ami": self.trigger_ami}
        for name, fam in self.families.items():
            out[f"{name}.keys"], out[f"{name}.cls"] = fam.keys, fam.cls
        return out


def _ngram_family(hist: np.ndarray, target: np.ndarray, n_classes: int, min_count: int) -> Family:
    """Every (history, class) pair seen >= min_count times (histories < 0 have none)."""
    ok = hist >= 0
    pair, cnt = np.unique(hist[ok] * n_classes + target[ok], return_counts=True)   # sorted by history
    sel = pair[cnt >= min_count]
    return Family(sel // n_classes, sel % n_classes)


def trigger_entries(pos: Positions, is_trigger: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """First occurrence of each trigger word in each document: (sorted keys doc * L + p, word, L)."""
    L = int(pos.p.max()) + 2 if len(pos.p) else 2
    t = np.nonzero(is_trigger[pos.y])[0]
    V = len(is_trigger)
    _, first = np.unique(pos.doc[t] * V + pos.y[t], return_index=True)   # first occurrence per (doc, A)
    t = t[first]
    key = pos.doc[t] * L + pos.p[t]
    order = np.argsort(key, kind="stable")
    return key[order], pos.y[t][order], L


def active_triggers(pos: Positions, index: np.ndarray, entries) -> tuple[np.ndarray, np.ndarray]:
    """(row in ``index``, trigger word A) for every trigger word earlier in the same document."""
    keys, words, L = entries
    lo = np.searchsorted(keys, pos.doc[index] * L)
    hi = np.searchsorted(keys, pos.doc[index] * L + pos.p[index])
    n = hi - lo
    row = np.repeat(np.arange(len(index)), n)
    offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return row, words[np.repeat(lo, n) + offset]


def select_triggers(pos: Positions, class_of: np.ndarray, n_classes: int, V: int, cfg: MaxentConfig,
                    chunk: int = 50_000) -> tuple[Family, np.ndarray]:
    """Trigger pairs A -> B by average mutual information over training positions."""
    N = len(pos.y)
    docs_with = np.unique(pos.doc * V + pos.y) % V                  # one entry per (doc, word)
    df = np.bincount(docs_with, minlength=V)
    df[[UNK_ID, BOS_ID, EOS_ID]] = 0
    cands = np.argsort(-df, kind="stable")[: cfg.trigger_words]
    cands = np.sort(cands[df[cands] > 0])
    nA = len(cands)
    if nA == 0 or cfg.n_triggers == 0:
        return Family(np.zeros(0, np.int64), np.zeros(0, np.int64)), np.zeros(0)
    is_cand = np.zeros(V, dtype=bool)
    is_cand[cands] = True
    slot_of = np.searchsorted(cands, np.arange(V))                  # row of a candidate A
    entries = trigger_entries(pos, is_cand)
    B = class_of[pos.y]
    n_AB = np.zeros(nA * n_classes, dtype=np.int64)
    for start in range(0, N, chunk):                                # (A, B) co-occurrence counts
        index = np.arange(start, min(start + chunk, N))
        row, a = active_triggers(pos, index, entries)
        n_AB += np.bincount(slot_of[a] * n_classes + B[index][row], minlength=nA * n_classes)
    n_AB = n_AB.reshape(nA, n_classes).astype(np.float64)          # (nA, C)
    keys, words, L = entries
    doc_len = np.bincount(pos.doc)
    n_A = np.bincount(slot_of[words], weights=doc_len[keys // L] - (keys % L) - 1, minlength=nA)[:, None]  # (nA, 1)
    n_B = np.bincount(B, minlength=n_classes).astype(np.float64)[None, :]                               # (1, C)
    cells = [(n_AB, n_A, n_B), (n_A - n_AB, n_A, N - n_B), (n_B - n_AB, N - n_A, n_B),
             (N - n_A - n_B + n_AB, N - n_A, N - n_B)]
    ami = np.zeros_like(n_AB)
    with np.errstate(divide="ignore", invalid="ignore"):
        for joint, pa, pb in cells:
            ami += np.where(joint > 0, joint / N * np.log(joint * N / (pa * pb)), 0.0)
        raises = n_AB / n_A > n_B / N
    eligible = raises & (n_AB >= cfg.trigger_min_count)
    eligible[:, [n_classes - 1, class_of[UNK_ID], class_of[EOS_ID]]] = False   # B: a real word
    flat = np.flatnonzero(eligible)
    best = flat[np.argsort(-ami.ravel()[flat], kind="stable")][: cfg.n_triggers]
    best = np.sort(best)                                            # sorted by A, then B
    return Family(cands[best // n_classes], best % n_classes), ami.ravel()[best]


def build_features(train: DocumentStream, cfg: MaxentConfig) -> tuple[FeatureTables, Positions]:
    cfg.check()
    V = len(train.vocab)
    pos = Positions.from_stream(train)
    counts = np.bincount(pos.y, minlength=V).astype(np.float64)
    counts[BOS_ID] = 0
    by_freq = np.argsort(-counts, kind="stable")
    by_freq = by_freq[counts[by_freq] > 0]
    keep = [EOS_ID, UNK_ID] + [w for w in by_freq[: cfg.vocab_size] if w not in (EOS_ID, UNK_ID)]
    classes = np.asarray(keep[: max(cfg.vocab_size, 2)], dtype=np.int64)
    C = len(classes) + 1
    class_of = np.full(V, C - 1, dtype=np.int64)
    class_of[classes] = np.arange(len(classes))
    rest = class_of == C - 1
    rest[BOS_ID] = False
    q = np.where(rest, counts + 1.0, 0.0)
    with np.errstate(divide="ignore"):
        rest_logq = np.where(rest, np.log(q / max(q.sum(), 1.0)), 0.0)
    rest_logq[BOS_ID] = -np.inf
    y = class_of[pos.y]
    empty = Family(np.zeros(0, np.int64), np.zeros(0, np.int64))
    fam = set(cfg.families)
    families = {
        "bigram": _ngram_family(pos.w1, y, C, cfg.min_count) if "bigram" in fam else empty,
        "trigram": _ngram_family(np.where(pos.w2 >= 0, pos.w2 * V + pos.w1, -1), y, C, cfg.min_count)
        if "trigram" in fam else empty,
        "distance2": _ngram_family(pos.w2, y, C, cfg.min_count) if "distance2" in fam else empty,
    }
    trig, ami = select_triggers(pos, class_of, C, V, cfg) if "trigger" in fam else (empty, np.zeros(0))
    families["trigger"] = trig
    return FeatureTables(V, classes, class_of, rest_logq, families, ami), pos


# ----------------------------------------------------------------------------- the model
class MaxentLM(torch.nn.Module):
    """θ: a bias per class (unigram features) and one weight per selected feature of each family.

    logits[t, c] = bias[c] + Σ_{features i active at h_t with class c} θ_i  (a scatter-add over the
    active features of the batch); P_me(c | h_t) = softmax(logits[t])."""

    def __init__(self, tables: FeatureTables, vocab: Vocabulary, dtype=torch.float32):
        super().__init__()
        self.tables, self.vocab = tables, vocab
        self.bias = torch.nn.Parameter(torch.zeros(tables.n_classes, dtype=dtype))
        self.theta = torch.nn.ParameterDict({
            name: torch.nn.Parameter(torch.zeros(len(fam.keys), dtype=dtype))
            for name, fam in tables.families.items()
        })
        self._cls = {name: torch.from_numpy(fam.cls) for name, fam in tables.families.items()}
        self.is_trigger = np.zeros(tables.V, dtype=bool)
        self.is_trigger[tables.trigger_words()] = True

    def n_features(self) -> dict[str, int]:
        return {"unigram": self.tables.n_classes, **{k: len(f.keys) for k, f in self.tables.families.items()}}

    def entries(self, pos: Positions):
        return trigger_entries(pos, self.is_trigger)

    def active(self, pos: Positions, index: np.ndarray, entries) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per family, (row in the batch, feature index) of every active feature at the positions ``index``."""
        fam, V = self.tables.families, self.tables.V
        rows = np.arange(len(index))
        w1, w2 = pos.w1[index], pos.w2[index]
        out = {
            "bigram": fam["bigram"].expand(w1, rows),
            "trigram": fam["trigram"].expand(np.where(w2 >= 0, w2 * V + w1, -1), rows),
            "distance2": fam["distance2"].expand(w2, rows),
        }
        trow, words = active_triggers(pos, index, entries)
        out["trigger"] = fam["trigger"].expand(words, trow)
        return {k: (torch.from_numpy(r), torch.from_numpy(i)) for k, (r, i) in out.items()}

    def logits(self, active: dict, n: int) -> torch.Tensor:
        """(n, C) logits from the active features."""
        C = self.tables.n_classes
        where, values = [], []
        for name, (row, idx) in active.items():
            if len(idx):
                where.append(row * C + self._cls[name][idx])
                values.append(self.theta[name][idx])
        flat = self.bias.repeat(n)                                   # (n * C,) row-major logits
        if where:
            flat = flat.index_add(0, torch.cat(where), torch.cat(values))
        return flat.view(n, C)                                       # (n, C)

    def penalty(self) -> torch.Tensor:
        """Σ θ² over every feature weight (the Gaussian prior; the class biases are not penalised)."""
        return sum((p * p).sum() for p in self.theta.values())

    def class_logprobs(self, pos: Positions, index: np.ndarray, entries) -> torch.Tensor:
        return torch.log_softmax(self.logits(self.active(pos, index, entries), len(index)), dim=-1)

    def word_logprobs(self, pos: Positions, index: np.ndarray, entries) -> np.ndarray:
        """ln P(w_t | h_t) of the actual next words (with the <other> share), shape (len(index),)."""
        t = self.tables
        with torch.no_grad():
            lp = self.class_logprobs(pos, index, entries)
        y = pos.y[index]
        out = lp.gather(1, torch.from_numpy(t.class_of[y])[:, None])[:, 0].double().numpy()
        return out + t.rest_logq[y]


@dataclass
class TrainLog:
    epoch_loss: list      # mean training NLL over the classes (nats) of each (possibly partial) epoch
    seconds: float
    n_features: dict
    epochs_done: float    # passes over the training tokens (fractional if the deadline cut one short)


@contextmanager
def single_thread():
    """Run torch on one thread: the per-batch kernels here are small (a scatter-add and a softmax over
    ~2M entries), and on a shared machine intra-op threads cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_maxent(train: DocumentStream, cfg: MaxentConfig, deadline: float = math.inf,
                 log=None) -> tuple[MaxentModel, TrainLog]:
    """Select features on ``train`` and fit θ (Adam on shuffled mini-batches); stops early past ``deadline``."""
    with single_thread():
        return _train(train, cfg, deadline, log)


def _train(train: DocumentStream, cfg: MaxentConfig, deadline: float, log) -> tuple[MaxentModel, TrainLog]:
    start = time.monotonic()
    torch.manual_seed(cfg.seed)
    tables, pos = build_features(train, cfg)
    net = MaxentLM(tables, train.vocab)
    entries = net.entries(pos)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    y = torch.from_numpy(tables.class_of[pos.y])
    T = len(pos.y)
    losses, seen_total = [], 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(T)
        total, seen = 0.0, 0
        for b in range(0, T, cfg.batch_size):
            index = np.sort(order[b:b + cfg.batch_size])
            nll = F.cross_entropy(net.logits(net.active(pos, index, entries), len(index)), y[index])
            loss = nll + 0.5 * cfg.l2 * net.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(nll.detach()) * len(index)
            seen += len(index)
            if time.monotonic() > deadline:
                break
        losses.append(total / max(seen, 1))
        seen_total += seen
        if log:
            log(f"maxent epoch {epoch + 1}: train NLL {losses[-1]:.4f} ({time.monotonic() - start:.1f} s)")
        if time.monotonic() > deadline:
            break
    return MaxentModel(net, cfg), TrainLog(losses, time.monotonic() - start, net.n_features(), seen_total / max(T, 1))


# ----------------------------------------------------------------------------- the LM interface
class MaxentModel:
    """The trained maximum-entropy LM, optionally interpolated with an n-gram model:
    P = μ P_ngram + (1 - μ) P_me (μ = 0: maxent alone)."""

    def __init__(self, net: MaxentLM, cfg: MaxentConfig, base: NgramModel | None = None, mu: float = 0.0):
        self.net, self.cfg, self.base, self.mu = net, cfg, base, float(mu)
        if base is not None:
            check_same_vocab(base.vocab, net.vocab, "maxent base model")
        if not 0.0 <= self.mu <= 1.0 or (self.mu > 0 and base is None):
            raise UsageError("maxent interpolation weight mu must be in [0, 1] and needs a base n-gram model")

    @property
    def vocab(self) -> Vocabulary:
        return self.net.vocab

    @property
    def kind(self) -> str:
        return "maxent" if self.mu == 0 else "maxent + n-gram"

    def maxent_logprobs(self, stream: DocumentStream, batch_size: int = 4096) -> np.ndarray:
        check_same_vocab(stream.vocab, self.vocab, "scored text")
        pos = Positions.from_stream(stream)
        entries = self.net.entries(pos)
        T = len(pos.y)
        with single_thread():
            return np.concatenate([self.net.word_logprobs(pos, np.arange(b, min(b + batch_size, T)), entries)
                                   for b in range(0, T, batch_size)])

    def token_logprobs(self, stream: DocumentStream, base_lp: np.ndarray | None = None,
                       me_lp: np.ndarray | None = None) -> np.ndarray:
        me_lp = self.maxent_logprobs(stream) if me_lp is None else me_lp
        if self.mu == 0:
            return me_lp
        from .adaptive import base_logprobs

        base_lp = base_logprobs(self.base, stream) if base_lp is None else base_lp
        return np.logaddexp(math.log(self.mu) + base_lp, math.log1p(-self.mu) + me_lp) if self.mu < 1 else base_lp

    def next_probs(self, history: list[str]) -> np.ndarray:
        """P(. | history) over the vocabulary; ``history``: the document so far (``</s>`` ends sentences)."""
        tokens, current = split_history(history)
        get = self.vocab.index.get
        ids = np.asarray([get(w, UNK_ID) for w in tokens] + [UNK_ID], dtype=np.int64)   # + a dummy target
        sent = np.cumsum(np.r_[0, ids[:-1] == EOS_ID])
        stream = DocumentStream(self.vocab, [], ids, np.zeros(len(ids), dtype=np.int64), sent,
                                ids == UNK_ID, 1)
        pos = Positions.from_stream(stream)
        entries = self.net.entries(pos)
        t = self.net.tables
        with torch.no_grad():
            lp = self.net.class_logprobs(pos, np.array([len(ids) - 1]), entries)[0].double().numpy()
        p = np.exp(lp[t.class_of] + t.rest_logq)
        p[BOS_ID] = 0.0
        if self.mu > 0:
            from .adaptive import base_next_probs

            p = self.mu * base_next_probs(self.base, current) + (1 - self.mu) * p
        return p

    def evaluate(self, stream: DocumentStream) -> Evaluation:
        return evaluation(self.token_logprobs(stream), stream)

    def fit_mu(self, base: NgramModel, valid: DocumentStream) -> float:
        """μ for μ P_ngram + (1 - μ) P_me by EM on held-out text."""
        from .adaptive import base_logprobs

        self.base = base
        check_same_vocab(base.vocab, self.vocab, "maxent base model")
        self.mu = em_two_way(np.exp(base_logprobs(base, valid)), np.exp(self.maxent_logprobs(valid)), lam=0.5)
        return self.mu

    def params(self) -> dict:
        return {"mu": self.mu, "n_features": self.net.n_features(),
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.cfg).items()}}

    # ------------------------------------------------------------------ files
    def top_triggers(self, n: int = 20) -> list[tuple[str, str, float]]:
        """The ``n`` selected trigger pairs with the highest AMI: (A, B, AMI in nats)."""
        t, words = self.net.tables, self.vocab.words
        fam = t.families["trigger"]
        order = np.argsort(-t.trigger_ami, kind="stable")[:n]
        return [(words[fam.keys[i]], words[t.classes[fam.cls[i]]], float(t.trigger_ami[i])) for i in order]

    def save(self, json_path: str | Path, base_arpa: str | Path | None, extra: dict | None = None) -> Path:
        """``X.maxent.json`` (config, vocabulary, μ) + ``X.maxent.safetensors`` (θ and feature tables)."""
        import json

        from ..io import atomic_write_text, save_tensors
        from .adaptive import _relative

        json_path = Path(json_path)
        weights = json_path.with_suffix(".safetensors")
        tensors = {"bias": self.net.bias.detach().float()}
        tensors.update({f"theta.{k}": v.detach().float() for k, v in self.net.theta.items()})
        tensors.update({f"tables.{k}": torch.from_numpy(np.ascontiguousarray(v))
                        for k, v in self.net.tables.tensors().items()})
        save_tensors(weights, tensors)
        config = {"type": "maxent", "base": _relative(base_arpa, json_path) if base_arpa else None,
                  "weights": weights.name, "vocab": self.vocab.words,
                  "top_triggers": [list(t) for t in self.top_triggers(50)],
                  **self.params(), **(extra or {})}
        atomic_write_text(json_path, json.dumps(config, indent=1) + "\n")
        return json_path


def load_maxent(path: Path, config: dict) -> MaxentModel:
    """Read ``X.maxent.json`` and its safetensors file (and the base ARPA when μ > 0)."""
    from ..io import load_tensors
    from .arpa import load_model

    here = path.resolve().parent
    tensors = {k: v.numpy() for k, v in load_tensors(here / config["weights"]).items()}
    vocab = Vocabulary(config["vocab"])
    try:
        families = {name: Family(tensors[f"tables.{name}.keys"], tensors[f"tables.{name}.cls"])
                    for name in FAMILIES}
        tables = FeatureTables(len(vocab), tensors["tables.classes"], tensors["tables.class_of"],
                               tensors["tables.rest_logq"], families, tensors["tables.trigger_ami"])
    except KeyError as err:
        raise ConfigError(f"{path}: weights file lacks {err.args[0]}") from None
    if len(tables.class_of) != len(vocab):
        raise ConfigError(f"{path}: feature tables are for {len(tables.class_of)} words, the vocabulary has {len(vocab)}")
    cfg_dict = dict(config["config"])
    cfg_dict["families"] = tuple(cfg_dict.get("families", FAMILIES))
    cfg = MaxentConfig(**cfg_dict)
    net = MaxentLM(tables, vocab)
    with torch.no_grad():
        net.bias.copy_(torch.from_numpy(tensors["bias"]))
        for k, p in net.theta.items():
            if tuple(p.shape) != tensors[f"theta.{k}"].shape:
                raise ConfigError(f"{path}: theta.{k} has shape {tensors[f'theta.{k}'].shape}, "
                                  f"the tables say {tuple(p.shape)}")
            p.copy_(torch.from_numpy(tensors[f"theta.{k}"]))
    mu = float(config.get("mu", 0.0))
    base = load_model(here / config["base"]) if config.get("base") and mu > 0 else None
    return MaxentModel(net, cfg, base, mu if base is not None else 0.0)


def load_adapted(path: str | Path):
    """Load a saved adapted model (cache, mixture or maxent) from its JSON file.

    It lives here, not in :mod:`lmlab.ngram.adaptive`, because only this module sees all three kinds
    (maxent builds on adaptive, never the other way round)."""
    from .arpa import load_model

    path = Path(path)
    config = read_config(path)
    here = path.resolve().parent

    def arpa(rel: str) -> NgramModel:
        return load_model(here / rel)

    try:
        if config["type"] == "cache":
            return CacheLM(arpa(config["base"]), float(config["lambda"]), int(config["cache_size"]),
                           float(config["decay"]))
        if config["type"] == "mixture":
            comps = config["components"]
            return MixtureLM([arpa(c["arpa"]) for c in comps], [c["name"] for c in comps],
                             np.array([c["weight"] for c in comps]), float(config.get("beta", 0.0)))
        return load_maxent(path, config)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: malformed {config['type']} model file ({type(err).__name__}: {err})") from None
