"""A user's file is trained on in full and as written, as word2vec.c and gensim read it (issue 20).

Built-in corpora keep lmlab's shared word stream (train split, lower-cased, tokenized);
``--split``, ``--lowercase`` and ``--tokenize`` opt a file into the same treatment.
"""

from __future__ import annotations

import gzip

import pytest

from lmlab.embeddings.vectors import Vectors
from lmlab.embeddings.word2vec import LineSentences, Vocab, encode_corpus
from lmlab.errors import DataError

LINES = ["Paris is the Capital of France .", "", "Berlin is the capital of Germany .", "  Rome   is old  "]


def test_line_sentences_reads_every_line_as_written(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\ufeff" + "\n".join(LINES) + "\n", encoding="utf-8")
    sents = LineSentences(path)
    assert list(sents) == [LINES[0].split(), LINES[2].split(), ["Rome", "is", "old"]]
    assert list(sents) == list(sents)  # re-iterable: training reads it more than once
    assert list(LineSentences(path, lowercase=True))[0][0] == "paris"


def test_line_sentences_reads_gzip_and_refuses_bad_files(tmp_path):
    gz = tmp_path / "c.txt.gz"
    gz.write_bytes(gzip.compress(b"a b\nc\n"))
    assert list(LineSentences(gz)) == [["a", "b"], ["c"]]
    png = tmp_path / "p.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match="PNG image, not text"):
        LineSentences(png)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"bad.txt:2: invalid UTF-8"):
        list(LineSentences(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(DataError, match="empty"):
        LineSentences(empty)
    with pytest.raises(DataError, match="no such file"):
        LineSentences(tmp_path / "missing.txt")


def test_streamed_and_listed_corpora_encode_identically(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(LINES) + "\n")
    listed = [line.split() for line in LINES if line.split()]
    vocab = Vocab.build(listed, min_count=1)
    a, b = encode_corpus(LineSentences(path), vocab.index), encode_corpus(listed, vocab.index)
    assert a.ids.tolist() == b.ids.tolist() and a.sent_bounds.tolist() == b.sent_bounds.tolist()
    assert a.n_words == sum(len(s) for s in listed)


def test_embed_train_on_a_file_uses_all_of_it_as_written(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["Alpha beta gamma delta", "alpha Beta gamma", "UniqueLast word here"] * 4) + "\n")
    out = tmp_path / "v.txt"
    run = cli("embed", "train", "word2vec", str(corpus), "-o", str(out), "--min-count", "1", "--epochs", "1",
              "--size", "8", "--workers", "1")
    assert run.returncode == 0, run.stderr
    assert "as written" in run.stderr
    wv = Vectors.load(out)
    assert "Alpha" in wv and "alpha" in wv and "UniqueLast" in wv  # every line, case kept
    out2 = tmp_path / "v2.txt"
    run = cli("embed", "train", "word2vec", str(corpus), "-o", str(out2), "--min-count", "1", "--epochs", "1",
              "--size", "8", "--workers", "1", "--lowercase")
    assert run.returncode == 0, run.stderr
    wv2 = Vectors.load(out2)
    assert "alpha" in wv2 and "Alpha" not in wv2 and "uniquelast" in wv2
