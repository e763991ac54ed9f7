"""fastText: subword word vectors, and the fastText text classifier.

Bojanowski, Grave, Joulin, Mikolov (2017), "Enriching Word Vectors with Subword
Information"; Joulin, Grave, Bojanowski, Mikolov (2017), "Bag of Tricks for Efficient
Text Classification". Follows the reference implementation (facebookresearch/fastText):

* a word w is represented by its own row (when in the vocabulary) and the rows of its
  character n-grams, n = ``min_n``..``max_n`` (3..6), taken from ``<`` w ``>`` (boundary
  markers; the whole ``<w>`` counts when short enough). n-grams are hashed with
  fastText's 32-bit FNV-1a (bytes sign-extended, as ``Dictionary::hash`` does) into
  ``bucket`` rows: row = V + hash(g) mod bucket. The input vector is the mean of these
  rows, so out-of-vocabulary words get a vector from their n-grams;
* training is word2vec's skip-gram or CBOW (``word2vec.py`` supplies vocabulary,
  sub-sampling, noise table, Huffman tree and threads) with that input; the gradient is
  added in full to every input row, as fastText does for unsupervised models;
* the classifier: hidden = mean of the embeddings of a document's words and hashed word
  n-grams (fastText's ``h = h * 116049371 + hash(w)``), a linear layer and softmax,
  trained by SGD with a linearly decaying learning rate; the gradient to the inputs is
  divided by their number (fastText's supervised mode).

Not done: fastText's ``.bin`` model format (lmlab saves a model folder and the ``.vec``
/ word2vec files), quantisation, pretrained-vector initialisation, the hierarchical and
one-vs-all losses of the classifier (softmax only), autotuning.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, DataError, UsageError
from . import _kernels as K
from .vectors import Vectors
from .word2vec import (
    Vocab,
    encode_corpus,
    huffman_tree,
    keep_probabilities,
    noise_table,
    run_epochs,
    untrained_loss,
)

# ---------------------------------------------------------------------------------------------
# Hashing and character n-grams


def fnv1a_hashes(strings: Sequence[str]) -> np.ndarray:
    """fastText's FNV-1a (uint32) of each string's UTF-8 bytes."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    return K.fnv1a_batch(data, offsets)


def fnv1a(text: str) -> int:
    """fastText's hash of one string (``Dictionary::hash``)."""
    return int(fnv1a_hashes([text])[0])


def char_ngrams(word: str, min_n: int = 3, max_n: int = 6) -> list[str]:
    """The character n-grams of ``<word>`` with min_n <= n <= max_n, in fastText's order."""
    w = "<" + word + ">"
    out = []
    for i in range(len(w)):
        for n in range(min_n, max_n + 1):
            if i + n > len(w):
                break
            if n == 1 and (i == 0 or i + n == len(w)):
                continue  # fastText skips the bare boundary markers
            out.append(w[i : i + n])
    return out


# ---------------------------------------------------------------------------------------------
# Subword word vectors


@dataclass
class FastTextConfig:
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    sg: bool = False
    hs: bool = False
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    workers: int = 2
    seed: int = 1
    min_n: int = 3
    max_n: int = 6
    bucket: int = 2_000_000

    def check(self) -> None:
        if not self.hs and self.negative <= 0:
            raise UsageError("fastText needs an output layer: hs=True and/or negative > 0")
        for name in ("vector_size", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"fastText: {name} must be >= 1, got {getattr(self, name)}")
        if self.bucket < 0 or (self.bucket > 0 and not 1 <= self.min_n <= self.max_n):
            raise UsageError(f"fastText: need bucket >= 0 and 1 <= min_n <= max_n, got "
                             f"bucket={self.bucket}, min_n={self.min_n}, max_n={self.max_n}")


def initial_input_rows(n_rows: int, dim: int, seed: int) -> np.ndarray:
    """The input matrix before training: uniform(-1/dim, 1/dim) as fastText, from ``seed``."""
    rng = np.random.default_rng(seed)
    wi = rng.random((n_rows, dim), dtype=np.float32)
    wi *= 2.0 / dim
    wi -= 1.0 / dim
    return wi


class FastText:
    """Subword skip-gram / CBOW: ``FastText(FastTextConfig(sg=True)).fit(sentences)``."""

    family = "fasttext"

    def __init__(self, config: FastTextConfig | None = None):
        self.config = config or FastTextConfig()
        self.config.check()
        self.vocab: Vocab | None = None
        self.wi = self.syn1neg = self.syn1 = None
        self.history = []
        self.train_seconds = 0.0

    def subword_rows(self, word: str) -> list[int]:
        """Input rows of ``word``: its own row if in the vocabulary, then its hashed n-grams."""
        c = self.config
        rows = [self.vocab.index[word]] if word in self.vocab.index else []
        if c.bucket > 0:
            grams = char_ngrams(word, c.min_n, c.max_n)
            if grams:
                rows.extend((len(self.vocab) + fnv1a_hashes(grams).astype(np.int64) % c.bucket).tolist())
        return rows

    def _subword_table(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR table of every vocabulary word's input rows (sub_ptr (V+1,), sub_idx (nnz,))."""
        c, V = self.config, len(self.vocab)
        grams = [char_ngrams(w, c.min_n, c.max_n) if c.bucket > 0 else [] for w in self.vocab.words]
        lengths = np.array([1 + len(g) for g in grams], dtype=np.int64)
        sub_ptr = np.zeros(V + 1, dtype=np.int64)
        np.cumsum(lengths, out=sub_ptr[1:])
        sub_idx = np.empty(int(sub_ptr[-1]), dtype=np.int32)
        sub_idx[sub_ptr[:-1]] = np.arange(V)
        flat = [g for gs in grams for g in gs]
        if flat:
            rows = V + fnv1a_hashes(flat).astype(np.int64) % c.bucket
            is_gram = np.ones(len(sub_idx), dtype=bool)
            is_gram[sub_ptr[:-1]] = False
            sub_idx[is_gram] = rows
        return sub_ptr, sub_idx

    def build_vocab(self, sentences: Sequence[Sequence[str]]) -> FastText:
        c = self.config
        self.vocab = Vocab.build(sentences, c.min_count)
        V, dim = len(self.vocab), c.vector_size
        self.wi = initial_input_rows(V + c.bucket, dim, c.seed)
        self.syn1neg = np.zeros((V if c.negative else 1, dim), dtype=np.float32)
        self.syn1 = np.zeros((max(V - 1, 1) if c.hs else 1, dim), dtype=np.float32)
        self._prepare()
        return self

    def _prepare(self) -> None:
        c = self.config
        self._noise = noise_table(self.vocab.counts, c.ns_exponent)
        self._huffman = (huffman_tree(self.vocab.counts) if c.hs else
                         (np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32), np.zeros(1, np.int32)))
        self._keep = keep_probabilities(self.vocab.counts, c.sample)
        self._sub_ptr, self._sub_idx = self._subword_table()

    def train(self, sentences: Sequence[Sequence[str]], verbose: bool = False,
              progress: Callable[[int, float], None] | None = None,
              stop: Callable[[], bool] | None = None) -> FastText:
        if self.vocab is None:
            raise UsageError("fastText: call build_vocab(sentences) before train()")
        c = self.config
        corpus = encode_corpus(sentences, self.vocab.index)
        if corpus.n_words == 0:
            raise DataError("fastText: no in-vocabulary words to train on")
        total = float(corpus.n_words) * c.epochs
        sig, logsig = K.make_sigmoid_tables()

        def train_chunk(job, chunk, seed):
            s0, s1, before = chunk
            epoch = job // len(corpus.chunks)
            return K.fasttext_chunk(
                corpus.ids, corpus.sent_bounds, s0, s1, self.wi, self._sub_ptr, self._sub_idx,
                self.syn1neg, self.syn1, *self._noise, *self._huffman, self._keep,
                c.sg, c.hs, c.negative, c.window, c.alpha, c.min_alpha,
                float(epoch * corpus.n_words + before), total, np.uint64(seed), sig, logsig)

        t0 = time.perf_counter()
        name = f"fasttext {'sg' if c.sg else 'cbow'}"
        self.history = run_epochs(corpus, c.epochs, c.workers, c.seed, train_chunk, name, verbose, progress,
                                  weights=(self.wi, self.syn1neg, self.syn1),
                                  loss_bound=untrained_loss(c.negative, self._huffman[2] if c.hs else None) * 20,
                                  stop=stop)
        self.train_seconds = time.perf_counter() - t0
        return self

    def fit(self, sentences: Sequence[Sequence[str]], verbose: bool = False,
            progress: Callable[[int, float], None] | None = None,
            stop: Callable[[], bool] | None = None) -> FastText:
        return self.build_vocab(sentences).train(sentences, verbose=verbose, progress=progress, stop=stop)

    def word_vector(self, word: str) -> np.ndarray:
        """The mean of the word's input rows; out-of-vocabulary words use their n-grams alone."""
        if self.vocab is None:
            raise UsageError("fastText: the model has not been trained")
        rows = self.subword_rows(word)
        if not rows:
            raise DataError(f"fastText: {word!r} is out of vocabulary and has no character n-grams "
                            f"of length {self.config.min_n}..{self.config.max_n}")
        return self.wi[rows].mean(axis=0)

    @property
    def wv(self) -> Vectors:
        """Vocabulary words' vectors (mean of own row and n-gram rows), for files and evaluation."""
        if self.vocab is None:
            raise UsageError("fastText: the model has not been trained")
        p, idx = self._sub_ptr, self._sub_idx
        sums = np.add.reduceat(self.wi[idx], p[:-1], axis=0)  # (V, dim)
        return Vectors(self.vocab.words, sums / np.diff(p)[:, None], self.vocab.counts)

    def save(self, folder: str | Path) -> Path:
        """Model folder: config.json, model.safetensors, vocab.txt.

        Only the input rows training touched are written -- the words' own rows and the buckets
        their n-grams hash to (``wi_rows`` says which) -- not the whole bucket table: a bucket no
        vocabulary word uses still holds its seeded initial value, which :meth:`load` regenerates
        from the config's seed. A 2M-bucket, 100-dim model is ~800 MB in RAM but only
        (V + used buckets) x dim x 4 bytes on disk, and loads to exactly the same matrix."""
        import torch

        from ..pretrained import save_model_folder

        if self.vocab is None:
            raise UsageError("fastText: nothing to save (the model has not been trained)")
        used = np.unique(self._sub_idx).astype(np.int64)
        tensors = {"wi": torch.from_numpy(np.ascontiguousarray(self.wi[used])), "wi_rows": torch.from_numpy(used),
                   "syn1neg": torch.from_numpy(self.syn1neg), "syn1": torch.from_numpy(self.syn1),
                   "counts": torch.from_numpy(self.vocab.counts)}
        return save_model_folder(folder, self.family, asdict(self.config), tensors,
                                 extra={"vocab.txt": ("\n".join(self.vocab.words) + "\n").encode("utf-8")})

    @classmethod
    def load(cls, folder: str | Path) -> FastText:
        from ..config import from_dict
        from ..pretrained import load_model_folder

        config, tensors = load_model_folder(folder)
        if config.get("family") != cls.family:
            raise CheckpointError(f"{folder}: a {config.get('family')!r} model, not {cls.family!r}")
        model = cls(from_dict(FastTextConfig, config.get("config", {}), where=f"{folder}/config.json"))
        c = model.config
        words = (Path(folder) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        counts = tensors["counts"].numpy()
        n_rows = len(words) + c.bucket
        wi = tensors["wi"].numpy()
        if len(words) != len(counts) or wi.ndim != 2 or wi.shape[1] != c.vector_size:
            raise CheckpointError(f"{folder}: vocab.txt, config and weights disagree on the sizes")
        if "wi_rows" in tensors:  # only the rows training touched; the rest is the seeded initial value
            rows = tensors["wi_rows"].numpy()
            if rows.shape != (wi.shape[0],) or (rows.size and (rows.min() < 0 or rows.max() >= n_rows)):
                raise CheckpointError(f"{folder}: wi_rows does not index the {n_rows:,} input rows")
            model.wi = initial_input_rows(n_rows, c.vector_size, c.seed)
            model.wi[rows] = wi
        elif wi.shape[0] == n_rows:  # a folder written before 0.3: the whole table
            model.wi = wi.copy()
        else:
            raise CheckpointError(f"{folder}: vocab.txt, config and weights disagree on the sizes")
        model.vocab = Vocab(words, counts, {w: i for i, w in enumerate(words)})
        model.syn1neg = tensors["syn1neg"].numpy().copy()
        model.syn1 = tensors["syn1"].numpy().copy()
        model._prepare()
        return model


# ---------------------------------------------------------------------------------------------
# The classifier


@dataclass
class ClassifierConfig:
    vector_size: int = 100
    word_ngrams: int = 2        # 1: bag of words; 2: + hashed bigrams (the paper's "bigram" model)
    bucket: int = 2_000_000
    min_count: int = 1
    alpha: float = 0.1
    min_alpha: float = 0.0
    epochs: int = 5
    seed: int = 1

    def check(self) -> None:
        if self.vector_size < 1 or self.epochs < 1 or self.word_ngrams < 1 or self.min_count < 1:
            raise UsageError("classifier: vector_size, epochs, word_ngrams and min_count must be >= 1")
        if self.word_ngrams > 1 and self.bucket < 1:
            raise UsageError("classifier: word_ngrams > 1 needs bucket >= 1")


class FastTextClassifier:
    """fastText's linear text classifier: ``FastTextClassifier().fit(token_lists, labels)``."""

    family = "fasttext-classifier"

    def __init__(self, config: ClassifierConfig | None = None):
        self.config = config or ClassifierConfig()
        self.config.check()
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.wi = self.wo = None
        self.history: list[float] = []

    def _encode(self, docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Input rows of each document: word ids (OOV dropped) then hashed word n-grams (all words)."""
        c, V = self.config, len(self.vocab)
        rows: list[int] = []
        bounds = [0]
        for tokens in docs:
            rows.extend(self.vocab.index[t] for t in tokens if t in self.vocab.index)
            if c.word_ngrams > 1 and len(tokens) > 1:
                h = fnv1a_hashes(tokens).astype(np.int64)
                h = np.where(h >= 2**31, h - 2**32, h)  # fastText keeps word hashes as int32
                for i in range(len(tokens)):
                    g = int(h[i]) % 2**64
                    for j in range(i + 1, min(len(tokens), i + c.word_ngrams)):
                        g = (g * 116049371 + int(h[j])) % 2**64
                        rows.append(V + g % c.bucket)
            bounds.append(len(rows))
        return np.array(rows, dtype=np.int32), np.array(bounds, dtype=np.int64)

    def fit(self, docs: Sequence[Sequence[str]], labels: Sequence[str], verbose: bool = False
            ) -> FastTextClassifier:
        c = self.config
        if len(docs) != len(labels) or not docs:
            raise DataError(f"classifier: need as many labels as documents (got {len(docs)} and {len(labels)})")
        self.labels = sorted(set(labels))
        if len(self.labels) < 2:
            raise DataError(f"classifier: need at least two labels, got {self.labels}")
        self.vocab = Vocab.build(docs, c.min_count)
        rows, bounds = self._encode(docs)
        y = np.array([self.labels.index(label) for label in labels], dtype=np.int32)
        n_rows = len(self.vocab) + (c.bucket if c.word_ngrams > 1 else 0)
        rng = np.random.default_rng(c.seed)
        self.wi = (rng.random((n_rows, c.vector_size), dtype=np.float32) * 2 - 1) / c.vector_size
        self.wo = np.zeros((len(self.labels), c.vector_size), dtype=np.float32)
        shuffle = random.Random(c.seed)
        order = list(range(len(docs)))
        self.history = []
        K.announce_speed("the fastText classifier")
        for epoch in range(c.epochs):
            shuffle.shuffle(order)
            loss = K.classifier_epoch(rows, bounds, y, np.array(order, dtype=np.int64), self.wi, self.wo,
                                      c.alpha, c.min_alpha, float(epoch * len(docs)),
                                      float(c.epochs * len(docs)))
            self.history.append(loss / len(docs))
            if verbose:
                print(f"classifier epoch {epoch + 1}/{c.epochs}: loss {self.history[-1]:.4f}", file=sys.stderr)
        return self

    def predict_scores(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        if self.wi is None:
            raise UsageError("classifier: the model has not been trained")
        rows, bounds = self._encode(docs)
        return K.classifier_predict(rows, bounds, self.wi, self.wo)

    def predict(self, docs: Sequence[Sequence[str]]) -> list[str]:
        return [self.labels[i] for i in self.predict_scores(docs).argmax(axis=1)]

    def save(self, folder: str | Path) -> Path:
        """Model folder: config.json (config + labels), model.safetensors (wi, wo, counts), vocab.txt."""
        import torch

        from ..pretrained import save_model_folder

        if self.wi is None:
            raise UsageError("classifier: nothing to save (the model has not been trained)")
        tensors = {"wi": torch.from_numpy(self.wi), "wo": torch.from_numpy(self.wo),
                   "counts": torch.from_numpy(self.vocab.counts)}
        return save_model_folder(folder, self.family, asdict(self.config), tensors,
                                 metadata={"labels": self.labels}, extra={"vocab.txt": ("\n".join(self.vocab.words) + "\n").encode("utf-8")})

    @classmethod
    def load(cls, folder: str | Path) -> FastTextClassifier:
        from ..config import from_dict
        from ..pretrained import load_model_folder

        config, tensors = load_model_folder(folder)
        if config.get("family") != cls.family:
            raise CheckpointError(f"{folder}: a {config.get('family')!r} model, not {cls.family!r}")
        model = cls(from_dict(ClassifierConfig, config.get("config", {}), where=f"{folder}/config.json"))
        model.labels = list(config.get("labels", []))
        words = (Path(folder) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        model.vocab = Vocab(words, tensors["counts"].numpy(), {w: i for i, w in enumerate(words)})
        model.wi = tensors["wi"].numpy().copy()
        model.wo = tensors["wo"].numpy().copy()
        expected = len(words) + (model.config.bucket if model.config.word_ngrams > 1 else 0)
        if model.wi.shape[0] != expected or model.wo.shape[0] != len(model.labels):
            raise CheckpointError(f"{folder}: vocab.txt, labels and weights disagree on the sizes")
        return model

    def accuracy(self, docs: Sequence[Sequence[str]], labels: Sequence[str]) -> float:
        if not docs:
            raise DataError("classifier: no documents to score")
        predicted = self.predict(docs)
        return float(np.mean([p == t for p, t in zip(predicted, labels)]))


def labelled_documents(documents, label_key: str = "label") -> tuple[list[list[str]], list[str]]:
    """(lowercased word tokens, label) of every document whose ``meta[label_key]`` is set."""
    from ..data.tokenizers.word import word_tokenize

    docs, labels = [], []
    for d in documents:
        label = d.meta.get(label_key)
        if label is None:
            continue
        docs.append(word_tokenize(d.text, lowercase=True))
        labels.append(str(label))
    return docs, labels


__all__ = [
    "ClassifierConfig",
    "FastText",
    "FastTextClassifier",
    "FastTextConfig",
    "char_ngrams",
    "fnv1a",
    "fnv1a_hashes",
    "labelled_documents",
]
