"""word2vec: continuous bag-of-words and skip-gram, with negative sampling and/or hierarchical softmax.

Mikolov, Chen, Corrado, Dean (2013), "Efficient Estimation of Word Representations in
Vector Space"; Mikolov, Sutskever, Chen, Corrado, Dean (2013), "Distributed
Representations of Words and Phrases and their Compositionality"; the training
tricks follow the reference C code (word2vec.c), as gensim does:

* vocabulary: words with count >= ``min_count``, sorted by descending count;
* sub-sampling of frequent words with threshold t: a word of relative frequency f is
  kept with probability P_keep(w) = √(t/f) + t/f (word2vec.c). The paper writes the
  discard probability as P_discard(w) = 1 − √(t/f) (seed 004 quotes that form); the
  code's extra t/f term keeps slightly more words. Sub-sampled words are removed
  before windows are formed;
* dynamic window: for each centre word the window is drawn uniformly from 1..window;
* negative sampling: k noise words from P_n(w) ∝ count(w)^0.75 (``ns_exponent``),
  objective log σ(v'_wO·h) + Σ_k log σ(−v'_wk·h);
* hierarchical softmax: a Huffman tree over the vocabulary (frequent words get short
  codes), P(w | h) = Π_j σ(±v'_n(w,j)·h) along w's path; both output layers may be on
  at once (two output matrices, as in gensim);
* skip-gram: each context word's input vector v_c predicts the centre word;
  CBOW: the mean (``cbow_mean``, default) or sum of the context vectors predicts it,
  and the error is added in full to every context vector;
* the learning rate decays linearly from ``alpha`` to ``min_alpha`` over all epochs;
* Hogwild multi-threading: ``workers`` threads update the shared matrices without
  locks; with ``workers=1`` and a seed the result is bit-for-bit reproducible.

The inner loops are compiled (``_kernels.py``). This file does not do phrase
detection, vocabulary trimming during counting (``max_vocab_size``) or online
vocabulary updates.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, DataError, DivergenceError, UsageError
from . import _kernels as K
from .vectors import Vectors

# ---------------------------------------------------------------------------------------------
# Vocabulary, noise distribution, Huffman tree, sub-sampling: shared with fastText


@dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray  # int64, descending
    index: dict[str, int]

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int) -> Vocab:
        """Count words, keep those with count >= min_count, most frequent first (ties: first seen)."""
        if min_count < 1:
            raise UsageError(f"min_count must be >= 1, got {min_count}")
        check_sentences(sentences)
        counter = Counter(itertools.chain.from_iterable(sentences))
        if not counter:
            raise DataError("the training corpus has no words")
        kept = [(w, c) for w, c in counter.items() if c >= min_count]
        if not kept:
            raise DataError(f"no word occurs min_count={min_count} times in the corpus "
                            f"({len(counter)} distinct words, most frequent {counter.most_common(1)[0][1]} times)")
        kept.sort(key=lambda wc: -wc[1])  # stable: ties keep first-seen order (gensim leaves them arbitrary)
        words = [w for w, _ in kept]
        return cls(words, np.array([c for _, c in kept], dtype=np.int64), {w: i for i, w in enumerate(words)})

    def __len__(self) -> int:
        return len(self.words)


def check_sentences(sentences) -> None:
    """Training reads the corpus several times: refuse one-shot iterators and bare strings."""
    if iter(sentences) is sentences:
        raise UsageError("sentences must be a list of token lists (it is read more than once), "
                         "not a one-shot iterator or generator")
    for s in itertools.islice(sentences, 10):
        if isinstance(s, str):
            raise UsageError("sentences must be lists of tokens, not strings (split them first)")


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """P_n(w) = count(w)^exponent / Σ_v count(v)^exponent (exponent 0.75 in the paper)."""
    weights = counts.astype(np.float64) ** exponent
    return weights / weights.sum()


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction) of a distribution: exact O(1) sampling.

    Draw i uniformly from 0..V-1 and u from [0, 1): the sample is i if u < prob[i] else alias[i].
    (word2vec.c uses a 10^8-entry unigram table and gensim a cumulative table with bisection;
    the alias table samples the same distribution exactly, in constant time, from V entries.)
    """
    V = len(probs)
    scaled = np.asarray(probs, dtype=np.float64) * V
    prob = np.ones(V, dtype=np.float64)
    alias = np.arange(V, dtype=np.int32)
    small = [i for i in range(V) if scaled[i] < 1.0]
    large = [i for i in range(V) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias  # leftovers (rounding) keep prob 1


def noise_table(counts: np.ndarray, exponent: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """The alias table of the noise distribution count^exponent."""
    return alias_table(noise_distribution(counts, exponent))


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's keep probability √(t/f) + t/f, capped at 1 (t = ``sample``; 0 disables)."""
    if sample <= 0:
        return np.ones(len(counts), dtype=np.float64)
    f = counts.astype(np.float64) / counts.sum()
    return np.minimum(1.0, np.sqrt(sample / f) + sample / f)


def huffman_tree(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Huffman codes of a vocabulary sorted by descending count (word2vec.c ``CreateBinaryTree``).

    Returns (codes (V, L) uint8, points (V, L) int32, lengths (V,) int32): for word w,
    ``points[w, :lengths[w]]`` are the inner nodes (0..V-2, root V-2) from the root down and
    ``codes[w, :lengths[w]]`` the branch taken at each (1 = the less frequent child).
    """
    V = len(counts)
    if V < 2:
        return np.zeros((V, 1), np.uint8), np.zeros((V, 1), np.int32), np.zeros(V, np.int32)
    count = np.full(2 * V - 1, np.iinfo(np.int64).max, dtype=np.int64)
    count[:V] = counts
    parent = np.zeros(2 * V - 1, dtype=np.int64)
    binary = np.zeros(2 * V - 1, dtype=np.uint8)
    pos1, pos2 = V - 1, V  # leaves are consumed from the rare end, new nodes from the front
    for a in range(V - 1):
        picks = []
        for _ in range(2):
            if pos1 >= 0 and count[pos1] < count[pos2]:
                picks.append(pos1)
                pos1 -= 1
            else:
                picks.append(pos2)
                pos2 += 1
        count[V + a] = count[picks[0]] + count[picks[1]]
        parent[picks[0]] = V + a
        parent[picks[1]] = V + a
        binary[picks[1]] = 1
    root = 2 * V - 2
    paths = []
    for w in range(V):
        code, point, node = [], [], w
        while node != root:
            code.append(binary[node])
            node = parent[node]
            point.append(node - V)
        paths.append((code[::-1], point[::-1]))
    depth = max(len(c) for c, _ in paths)
    codes = np.zeros((V, depth), dtype=np.uint8)
    points = np.zeros((V, depth), dtype=np.int32)
    lengths = np.zeros(V, dtype=np.int32)
    for w, (code, point) in enumerate(paths):
        codes[w, : len(code)] = code
        points[w, : len(point)] = point
        lengths[w] = len(code)
    return codes, points, lengths


@dataclass
class EncodedCorpus:
    """In-vocabulary word ids of the corpus, flat, with sentence boundaries and chunks."""

    ids: np.ndarray          # int32 (N,)
    sent_bounds: np.ndarray  # int64 (S + 1,)
    chunks: list[tuple[int, int, int]]  # (first sentence, end sentence, words before the chunk)

    @property
    def n_words(self) -> int:
        return int(self.ids.shape[0])


def encode_corpus(sentences: Iterable[Sequence[str]], index: dict[str, int],
                  chunk_words: int = 10000) -> EncodedCorpus:
    """Map words to ids (dropping out-of-vocabulary ones), cut long sentences, group into chunks.

    One pass over ``sentences`` (a list, or a stream such as :class:`LineSentences`); the ids go
    straight into a compact int32 buffer, so no per-word Python object outlives its sentence."""
    flat = array("i")
    pieces = array("q")  # sentence lengths after OOV removal, long ones cut as gensim does
    get = index.get
    for sentence in sentences:
        before = len(flat)
        flat.extend([i for i in map(get, sentence) if i is not None])
        n = len(flat) - before
        while n > K.MAX_SENTENCE_LEN:
            pieces.append(K.MAX_SENTENCE_LEN)
            n -= K.MAX_SENTENCE_LEN
        if n:
            pieces.append(n)
    bounds = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(pieces, dtype=np.int64), out=bounds[1:])
    chunks = []
    s = 0
    while s < len(pieces):
        e = int(np.searchsorted(bounds, bounds[s] + chunk_words, side="left"))
        e = max(e, s + 1)
        e = min(e, len(pieces))
        chunks.append((s, e, int(bounds[s])))
        s = e
    # a view of the array's buffer, not a copy: at 12M words a copy would double the ids' 48 MB at the peak
    # (nothing appends to ``flat`` after this, which the exported buffer would forbid)
    return EncodedCorpus(np.frombuffer(flat, dtype=np.int32), bounds, chunks)


class LineSentences:
    """A user's text file as word2vec.c and gensim's ``LineSentence`` read it: one sentence per
    line, tokens split on whitespace, exactly as written (``lowercase=True`` lower-cases them).

    Re-iterable and streamed from disk (plain, .gz, .bz2 or .xz), so a corpus of any size costs
    only its vocabulary and the int32 ids in memory. Binary files and invalid UTF-8 are refused
    with the file and line."""

    def __init__(self, path: str | Path, lowercase: bool = False):
        from ..data.corpus import COMPRESSED, check_text

        self.path = Path(path)
        self.lowercase = lowercase
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such file")
        self._open = COMPRESSED.get(self.path.suffix.lower(), open)
        try:
            with self._open(self.path, "rb") as handle:
                head = handle.read(8192)
        except (OSError, EOFError) as err:
            raise DataError(f"{self.path}: cannot read ({err})") from None
        check_text(head, str(self.path))
        if not head.strip():
            raise DataError(f"{self.path}: the file is empty")

    def __iter__(self) -> Iterator[list[str]]:
        try:
            with self._open(self.path, "rb") as handle:
                for lineno, raw in enumerate(handle, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise DataError(f"{self.path}:{lineno}: invalid UTF-8 at byte {err.start} of the line")\
                            from None
                    if lineno == 1:
                        line = line.lstrip("\ufeff")
                    tokens = (line.lower() if self.lowercase else line).split()
                    if tokens:
                        yield tokens
        except (OSError, EOFError) as err:
            raise DataError(f"{self.path}: cannot read ({err})") from None


def chunk_seed(seed: int, epoch: int, chunk: int) -> int:
    """A 64-bit seed per (seed, epoch, chunk) (splitmix64), so threads do not change the randomness."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + chunk * 0x94D049BB133111EB + 1) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def untrained_loss(negative: int, code_lens: np.ndarray | None) -> float:
    """The loss per prediction of a model that says 1/2 to every binary decision: ln 2 per sigmoid
    (1 + ``negative`` for negative sampling, the mean Huffman code length for the hierarchical softmax)."""
    decisions = (negative + 1 if negative > 0 else 0) + (float(code_lens.mean()) if code_lens is not None else 0.0)
    return math.log(2) * decisions


@dataclass
class EpochStats:
    epoch: int
    loss: float          # mean loss per prediction
    words: int           # words trained (after sub-sampling)
    seconds: float
    words_per_second: float  # in-vocabulary words (before sub-sampling) per second, as gensim's "effective"
    fraction: float = 1.0    # of the epoch's chunks that ran (below 1 when a ``stop()`` callback cut it)


def check_finite(name: str, epoch: int, loss: float, weights: Sequence[np.ndarray], loss_bound: float) -> None:
    """Stop with one line if an epoch diverged: a NaN/inf loss or weight, or a loss past ``loss_bound``.

    ``loss_bound`` is a multiple of the loss of an untrained model (every prediction at
    probability 1/2 per binary decision), which a run that is learning never approaches."""
    bad = None
    if not math.isfinite(loss):
        bad = f"its loss is {loss}"
    elif loss > loss_bound:
        bad = f"its loss per prediction is {loss:.3g}, over {loss_bound:.3g} (an untrained model's x 20)"
    else:
        for w in weights:
            if not np.isfinite(w).all():
                bad = f"{int((~np.isfinite(w)).any(axis=-1).sum()):,} vectors hold NaN/inf"
                break
    if bad:
        raise DivergenceError(f"{name} diverged in epoch {epoch}: {bad}; nothing was saved "
                              f"(try a smaller alpha, fewer workers, or report it with the command and seed)")


def run_epochs(corpus: EncodedCorpus, epochs: int, workers: int, seed: int, train_chunk: Callable,
               name: str, verbose: bool, progress: Callable[[int, float], None] | None = None,
               weights: Sequence[np.ndarray] = (), loss_bound: float = math.inf,
               stop: Callable[[], bool] | None = None) -> list[EpochStats]:
    """Run ``train_chunk(chunk, epoch, chunk_seed) -> (loss, n_pred, n_trained)`` over every chunk.

    With ``workers > 1`` the chunks of an epoch go to a thread pool (the compiled kernels release
    the GIL; the shared matrices are updated Hogwild-style). ``progress(epoch, fraction)`` is called
    as chunks finish. After every epoch the loss and ``weights`` are checked (:func:`check_finite`).
    ``stop()`` (e.g. :func:`lmlab.train.budget.stop_after`) is asked before each chunk: once it is
    True no further chunk starts, the epoch's stats count the chunks that ran (``fraction``) and
    training ends there.
    """
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    K.announce_speed(name)
    history: list[EpochStats] = []
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    n_chunks = len(corpus.chunks)

    def run(job):
        return None if stop is not None and stop() else train_chunk(*job)

    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            jobs = [(epoch * n_chunks + c, chunk, chunk_seed(seed, epoch, c))
                    for c, chunk in enumerate(corpus.chunks)]
            results = pool.map(run, jobs) if pool else (run(j) for j in jobs)
            loss = 0.0
            n_pred = n_trained = ran = 0
            for done, result in enumerate(results, start=1):
                if result is None:
                    continue
                l, p, t = result
                ran += 1
                loss += l
                n_pred += p
                n_trained += t
                if progress is not None:
                    progress(epoch, done / n_chunks)
            seconds = time.perf_counter() - t0
            stats = EpochStats(epoch + 1, loss / max(n_pred, 1), n_trained, seconds,
                               corpus.n_words * ran / n_chunks / max(seconds, 1e-9), ran / max(n_chunks, 1))
            if ran == 0:
                break
            history.append(stats)
            check_finite(name, epoch + 1, stats.loss, weights, loss_bound)
            if verbose:
                print(f"{name} epoch {epoch + 1}/{epochs}: loss {stats.loss:.4f}, "
                      f"{stats.words_per_second:,.0f} words/s, {seconds:.2f} s", file=sys.stderr)
            if ran < n_chunks:
                break
    finally:
        if pool is not None:
            pool.shutdown()
    return history


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Word2VecConfig:
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    sg: bool = False            # False: CBOW (gensim's and word2vec.c's default)
    hs: bool = False            # hierarchical softmax output layer
    negative: int = 5           # noise words per prediction; 0 turns negative sampling off
    ns_exponent: float = 0.75
    cbow_mean: bool = True
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    workers: int = 2
    seed: int = 1

    def check(self) -> None:
        if not self.hs and self.negative <= 0:
            raise UsageError("word2vec needs an output layer: hs=True and/or negative > 0")
        for name in ("vector_size", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise UsageError(f"word2vec: {name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 0 or self.sample < 0 or self.alpha <= 0:
            raise UsageError("word2vec: negative, sample must be >= 0 and alpha > 0")


class Word2Vec:
    """Train word vectors: ``Word2Vec(Word2VecConfig(sg=True)).fit(sentences).wv``."""

    family = "word2vec"

    def __init__(self, config: Word2VecConfig | None = None):
        self.config = config or Word2VecConfig()
        self.config.check()
        self.vocab: Vocab | None = None
        self.syn0 = self.syn1neg = self.syn1 = None
        self.history: list[EpochStats] = []
        self.train_seconds = 0.0

    def build_vocab(self, sentences: Sequence[Sequence[str]]) -> Word2Vec:
        c = self.config
        self.vocab = Vocab.build(sentences, c.min_count)
        V, dim = len(self.vocab), c.vector_size
        rng = np.random.default_rng(c.seed)
        self.syn0 = ((rng.random((V, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)
        self.syn1neg = np.zeros((V if c.negative else 1, dim), dtype=np.float32)
        self.syn1 = np.zeros((max(V - 1, 1) if c.hs else 1, dim), dtype=np.float32)
        self._noise = noise_table(self.vocab.counts, c.ns_exponent)
        self._codes, self._points, self._code_lens = (
            huffman_tree(self.vocab.counts) if c.hs
            else (np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32), np.zeros(1, np.int32)))
        self._keep = keep_probabilities(self.vocab.counts, c.sample)
        return self

    def train(self, sentences: Sequence[Sequence[str]], verbose: bool = False,
              progress: Callable[[int, float], None] | None = None,
              stop: Callable[[], bool] | None = None) -> Word2Vec:
        if self.vocab is None:
            raise UsageError("word2vec: call build_vocab(sentences) before train()")
        c = self.config
        corpus = encode_corpus(sentences, self.vocab.index)
        if corpus.n_words == 0:
            raise DataError("word2vec: no in-vocabulary words to train on")
        total = float(corpus.n_words) * c.epochs
        sig, logsig = K.make_sigmoid_tables()

        def train_chunk(job, chunk, seed):
            s0, s1, before = chunk
            epoch = job // len(corpus.chunks)
            return K.word2vec_chunk(
                corpus.ids, corpus.sent_bounds, s0, s1, self.syn0, self.syn1neg, self.syn1,
                *self._noise, self._codes, self._points, self._code_lens, self._keep,
                c.sg, c.hs, c.negative, c.window, c.cbow_mean, c.alpha, c.min_alpha,
                float(epoch * corpus.n_words + before), total, np.uint64(seed), sig, logsig)

        t0 = time.perf_counter()
        name = f"word2vec {'sg' if c.sg else 'cbow'}"
        self.history = run_epochs(corpus, c.epochs, c.workers, c.seed, train_chunk, name, verbose, progress,
                                  weights=(self.syn0, self.syn1neg, self.syn1),
                                  loss_bound=untrained_loss(c.negative, self._code_lens if c.hs else None) * 20,
                                  stop=stop)
        self.train_seconds = time.perf_counter() - t0
        return self

    def fit(self, sentences: Sequence[Sequence[str]], verbose: bool = False,
            progress: Callable[[int, float], None] | None = None,
            stop: Callable[[], bool] | None = None) -> Word2Vec:
        return self.build_vocab(sentences).train(sentences, verbose=verbose, progress=progress, stop=stop)

    @property
    def wv(self) -> Vectors:
        if self.vocab is None:
            raise UsageError("word2vec: the model has not been trained")
        return Vectors(self.vocab.words, self.syn0, self.vocab.counts)

    def hs_probabilities(self, h: np.ndarray) -> np.ndarray:
        """P(w | h) for every word under the hierarchical softmax (sums to 1 over the vocabulary)."""
        if not self.config.hs:
            raise UsageError("word2vec: hs_probabilities needs hs=True")
        scores = self.syn1 @ h.astype(np.float64)  # (V-1,) one per inner node
        probs = np.ones(len(self.vocab))
        for w in range(len(self.vocab)):
            n = self._code_lens[w]
            sign = 1.0 - 2.0 * self._codes[w, :n]
            probs[w] = np.prod(1.0 / (1.0 + np.exp(-sign * scores[self._points[w, :n]])))
        return probs

    # -- saving ---------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """A model folder: config.json, model.safetensors (syn0, syn1neg, syn1, counts), vocab.txt."""
        import torch

        from ..pretrained import save_model_folder

        if self.vocab is None:
            raise UsageError("word2vec: nothing to save (the model has not been trained)")
        tensors = {"syn0": torch.from_numpy(self.syn0), "syn1neg": torch.from_numpy(self.syn1neg),
                   "syn1": torch.from_numpy(self.syn1), "counts": torch.from_numpy(self.vocab.counts)}
        vocab = ("\n".join(self.vocab.words) + "\n").encode("utf-8")
        return save_model_folder(folder, self.family, asdict(self.config), tensors,
                                 extra={"vocab.txt": vocab})

    @classmethod
    def load(cls, folder: str | Path) -> Word2Vec:
        from ..config import from_dict
        from ..pretrained import load_model_folder

        config, tensors = load_model_folder(folder)
        if config.get("family") != cls.family:
            raise CheckpointError(f"{folder}: a {config.get('family')!r} model, not {cls.family!r}")
        model = cls(from_dict(Word2VecConfig, config.get("config", {}), where=f"{folder}/config.json"))
        words = (Path(folder) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        counts = tensors["counts"].numpy()
        if len(words) != len(counts) or tensors["syn0"].shape[0] != len(words):
            raise CheckpointError(f"{folder}: vocab.txt and the weights disagree on the vocabulary size")
        model.vocab = Vocab(words, counts, {w: i for i, w in enumerate(words)})
        model.syn0 = tensors["syn0"].numpy().copy()
        model.syn1neg = tensors["syn1neg"].numpy().copy()
        model.syn1 = tensors["syn1"].numpy().copy()
        c = model.config
        model._noise = noise_table(counts, c.ns_exponent)
        model._codes, model._points, model._code_lens = (
            huffman_tree(counts) if c.hs
            else (np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.int32), np.zeros(1, np.int32)))
        model._keep = keep_probabilities(counts, c.sample)
        return model


__all__ = [
    "Vocab",
    "Word2Vec",
    "Word2VecConfig",
    "alias_table",
    "encode_corpus",
    "huffman_tree",
    "keep_probabilities",
    "noise_distribution",
    "noise_table",
    "run_epochs",
]
