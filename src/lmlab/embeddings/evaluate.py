"""Intrinsic evaluation of word vectors: Google analogies and word-similarity benchmarks.

* Analogies (Mikolov et al. 2013, ``questions-words.txt``): for each question
  a b c d, predict argmax over the vocabulary (minus a, b, c) by 3CosAdd or 3CosMul;
  accuracy per section and in total, over the questions whose four words are among the
  ``restrict_vocab`` most frequent words (gensim's default 300,000), with the skipped
  (out-of-vocabulary) questions counted. Words are compared case-insensitively.
  Predictions are computed in batches with one matrix product per batch.
* Similarity (WordSim-353, Finkelstein et al. 2002; SimLex-999, Hill et al. 2015):
  Spearman's ρ (and Pearson's r) between human scores and cosine similarities over the
  pairs with both words in the vocabulary; OOV pairs are counted and skipped, as gensim's
  ``evaluate_word_pairs`` does by default.

The files come from the ``word-vector-eval`` built-in source
(``lmlab.data.sources.fetch_member``) unless a path is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, UsageError
from .vectors import Vectors

SOURCE = "word-vector-eval"
ANALOGY_FILE = "questions-words.txt"
SIMILARITY_FILES = {"ws353": "wordsim353.tsv", "simlex": "simlex999.txt"}


def eval_file(member: str) -> Path:
    """A file of the ``word-vector-eval`` source (fetched and checked by lmlab.data)."""
    from ..data.sources import fetch_member

    return fetch_member(SOURCE, member)


# ---------------------------------------------------------------------------------------------
# Statistics


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1..ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson's r of the (tie-averaged) ranks."""
    return pearson(rank(x), rank(y))


# ---------------------------------------------------------------------------------------------
# Similarity


@dataclass
class SimilarityResult:
    name: str
    spearman: float
    pearson: float
    pairs: int          # pairs scored
    oov_pairs: int      # pairs skipped because a word is not in the vocabulary

    @property
    def oov_ratio(self) -> float:
        return self.oov_pairs / max(self.pairs + self.oov_pairs, 1)


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    """Tab- or space-separated ``word1 word2 score`` lines; lines starting with '#' are comments."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 3:
            raise FormatError(f"{path}:{lineno}: expected 'word1<TAB>word2<TAB>score'")
        try:
            pairs.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
        except ValueError:
            raise FormatError(f"{path}:{lineno}: score {parts[2]!r} is not a number") from None
    if not pairs:
        raise FormatError(f"{path}: no word pairs")
    return pairs


def _lower_index(vectors: Vectors, restrict_vocab: int | None = None) -> dict[str, int]:
    """lowercased word -> row of its most frequent spelling (among the first restrict_vocab rows)."""
    limit = len(vectors) if restrict_vocab is None else min(restrict_vocab, len(vectors))
    index: dict[str, int] = {}
    for i, w in enumerate(vectors.words[:limit]):
        index.setdefault(w.lower(), i)
    return index


def evaluate_similarity(vectors: Vectors, dataset: str | Path = "ws353") -> SimilarityResult:
    """Spearman/Pearson between cosine similarity and human scores (``ws353``, ``simlex`` or a path)."""
    if isinstance(dataset, str) and dataset in SIMILARITY_FILES:
        name, path = dataset, eval_file(SIMILARITY_FILES[dataset])
    else:
        path = Path(dataset)
        name = path.stem
    index = _lower_index(vectors)
    model, human, oov = [], [], 0
    unit = vectors.unit
    for a, b, score in read_pairs(path):
        ia, ib = index.get(a.lower()), index.get(b.lower())
        if ia is None or ib is None:
            oov += 1
            continue
        model.append(float(unit[ia] @ unit[ib]))
        human.append(score)
    if len(model) < 2:
        return SimilarityResult(name, float("nan"), float("nan"), len(model), oov)
    return SimilarityResult(name, spearman(model, human), pearson(model, human), len(model), oov)


# ---------------------------------------------------------------------------------------------
# Analogies


@dataclass
class SectionResult:
    section: str
    correct: int = 0
    total: int = 0      # questions answered (all four words in the vocabulary)
    oov: int = 0        # questions skipped

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass
class AnalogyResult:
    method: str
    sections: list[SectionResult] = field(default_factory=list)

    def _sum(self, sections) -> SectionResult:
        out = SectionResult("")
        for s in sections:
            out.correct += s.correct
            out.total += s.total
            out.oov += s.oov
        return out

    @property
    def total(self) -> SectionResult:
        t = self._sum(self.sections)
        t.section = "total"
        return t

    @property
    def semantic(self) -> SectionResult:
        s = self._sum([x for x in self.sections if not x.section.startswith("gram")])
        s.section = "semantic"
        return s

    @property
    def syntactic(self) -> SectionResult:
        s = self._sum([x for x in self.sections if x.section.startswith("gram")])
        s.section = "syntactic"
        return s

    @property
    def accuracy(self) -> float:
        return self.total.accuracy


def read_questions(path: Path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """Sections of ``: name`` followed by ``a b c d`` lines."""
    sections: list[tuple[str, list]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        parts = line.split()
        if len(parts) != 4:
            raise FormatError(f"{path}:{lineno}: expected four words, got {len(parts)}")
        if not sections:
            raise FormatError(f"{path}:{lineno}: question before the first ': section' line")
        sections[-1][1].append(tuple(p.lower() for p in parts))
    if not sections:
        raise FormatError(f"{path}: no analogy questions")
    return sections


def evaluate_analogies(vectors: Vectors, path: str | Path | None = None, method: str = "add",
                       restrict_vocab: int = 300000, batch: int = 512) -> AnalogyResult:
    """Accuracy on the Google analogy questions (3CosAdd ``add`` or 3CosMul ``mul``)."""
    if method not in ("add", "mul"):
        raise UsageError(f"analogy method must be 'add' or 'mul', not {method!r}")
    path = eval_file(ANALOGY_FILE) if path is None else Path(path)
    index = _lower_index(vectors, restrict_vocab)
    limit = min(restrict_vocab, len(vectors))
    unit = vectors.unit[:limit]  # (V', dim)
    result = AnalogyResult(method)
    for name, questions in read_questions(path):
        sec = SectionResult(name)
        rows = []
        for q in questions:
            ids = [index.get(w) for w in q]
            if any(i is None for i in ids):
                sec.oov += 1
            else:
                rows.append(ids)
        if rows:
            q = np.array(rows, dtype=np.int64)  # (Q, 4): a, b, c, expected d
            for s in range(0, len(q), batch):
                part = q[s : s + batch]
                cos = [unit[part[:, k]] @ unit.T for k in range(3)]  # 3 × (B, V')
                if method == "add":
                    scores = cos[1] - cos[0] + cos[2]  # ∝ cos(d, b − a + c) for unit vectors
                else:
                    scores = ((1 + cos[1]) / 2) * ((1 + cos[2]) / 2) / ((1 + cos[0]) / 2 + 1e-6)
                r = np.arange(len(part))
                for k in range(3):
                    scores[r, part[:, k]] = -np.inf
                sec.correct += int((scores.argmax(axis=1) == part[:, 3]).sum())
            sec.total = len(q)
        result.sections.append(sec)
    return result


@dataclass
class Report:
    ws353: SimilarityResult
    simlex: SimilarityResult
    analogy: AnalogyResult

    def summary(self) -> dict[str, float]:
        t = self.analogy.total
        return {"ws353 spearman": self.ws353.spearman, "simlex spearman": self.simlex.spearman,
                "analogy acc": t.accuracy, "analogy coverage": t.total / max(t.total + t.oov, 1)}


def evaluate_all(vectors: Vectors, method: str = "add", restrict_vocab: int = 300000) -> Report:
    """WordSim-353, SimLex-999 and the Google analogies in one go."""
    return Report(evaluate_similarity(vectors, "ws353"), evaluate_similarity(vectors, "simlex"),
                  evaluate_analogies(vectors, method=method, restrict_vocab=restrict_vocab))


__all__ = [
    "AnalogyResult",
    "Report",
    "SectionResult",
    "SimilarityResult",
    "evaluate_all",
    "evaluate_analogies",
    "evaluate_similarity",
    "pearson",
    "rank",
    "spearman",
]
