"""Vectors: neighbours, analogies, files (and gensim interop); evaluation scorers on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings.evaluate import (
    evaluate_analogies,
    evaluate_similarity,
    pearson,
    rank,
    read_pairs,
    spearman,
)
from lmlab.embeddings.vectors import Vectors
from lmlab.errors import DataError, FormatError

# a 2-d world where king - man + woman = queen exactly, and cosmul/add can disagree
WORDS = ["man", "woman", "king", "queen", "apple", "pear", "prince"]
VECS = np.array([
    [1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.2, 1.0], [-1.0, -0.1], [-1.0, -0.2], [0.9, 0.3],
], dtype=np.float32)


@pytest.fixture
def vec():
    return Vectors(WORDS, VECS)


def test_lookup_and_similarity(vec):
    assert "king" in vec and "emperor" not in vec
    np.testing.assert_array_equal(vec["queen"], VECS[3])
    expected = VECS[4] @ VECS[5] / np.linalg.norm(VECS[4]) / np.linalg.norm(VECS[5])
    assert np.isclose(vec.similarity("apple", "pear"), expected)
    with pytest.raises(DataError, match="not in the vocabulary"):
        vec["emperor"]


def test_most_similar_excludes_the_query_and_sorts(vec):
    out = vec.most_similar("apple", topn=3)
    assert out[0][0] == "pear" and all(w != "apple" for w, _ in out)
    assert [s for _, s in out] == sorted([s for _, s in out], reverse=True)
    assert vec.most_similar("apple", topn=3, restrict_vocab=2) == vec.most_similar("apple", topn=3)[:0] + [
        (w, s) for w, s in vec.most_similar("apple", topn=10) if w in ("man", "woman")][:3]


def test_analogies_3cosadd_and_3cosmul_by_hand(vec):
    unit = VECS / np.linalg.norm(VECS, axis=1, keepdims=True)
    a, b, c = unit[0], unit[2], unit[1]  # man : king :: woman : ?
    add = unit @ (b - a + c)
    cos = unit @ np.stack([a, b, c]).T
    mul = ((1 + cos[:, 1]) / 2) * ((1 + cos[:, 2]) / 2) / ((1 + cos[:, 0]) / 2 + 1e-6)
    for scores, method in ((add, "add"), (mul, "mul")):
        scores[[0, 1, 2]] = -np.inf
        assert vec.analogy("man", "king", "woman", method=method)[0][0] == WORDS[int(np.argmax(scores))]
    assert vec.analogy("man", "king", "woman")[0][0] == "queen"
    # restricted to the 3 most frequent rows, nothing but the inputs is left
    assert vec.analogy("man", "king", "woman", restrict_vocab=3) == []


@pytest.mark.parametrize("fmt", ["word2vec", "word2vec-binary", "glove"])
def test_file_round_trip(vec, tmp_path, fmt):
    path = tmp_path / f"v.{fmt}"
    vec.save(path, fmt)
    back = Vectors.load(path)  # format sniffed from the bytes
    assert back.words == WORDS
    np.testing.assert_allclose(back.vectors, VECS, rtol=1e-7)
    assert Vectors.load(path, fmt).words == WORDS


def test_malformed_files_raise_format_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("3 2\na 1 2\nb 1\n")
    with pytest.raises(FormatError, match="bad.txt:3"):
        Vectors.load(bad)
    bad.write_bytes(b"2 4\nab " + b"\x00" * 7)
    with pytest.raises(FormatError, match="truncated"):
        Vectors.load(bad, "word2vec-binary")
    with pytest.raises(DataError):
        Vectors.load(tmp_path / "missing.bin")


def test_gensim_reads_lmlab_files_and_lmlab_reads_gensim_files(vec, tmp_path):
    models = pytest.importorskip("gensim.models")
    KeyedVectors = models.KeyedVectors
    for fmt, binary, no_header in (("word2vec", False, False), ("word2vec-binary", True, False),
                                   ("glove", False, True)):
        path = tmp_path / f"lm.{fmt}"
        vec.save(path, fmt)
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
        assert kv.index_to_key == WORDS
        np.testing.assert_allclose(kv.vectors, VECS, rtol=1e-7)
    kv = KeyedVectors(2)
    kv.add_vectors(WORDS, VECS)
    for binary in (False, True):
        path = tmp_path / f"gs{int(binary)}"
        kv.save_word2vec_format(str(path), binary=binary)
        back = Vectors.load(path)
        assert back.words == WORDS
        np.testing.assert_allclose(back.vectors, VECS, rtol=1e-7)
    assert vec.most_similar(["king", "woman"], ["man"], topn=3)[0][0] == kv.most_similar(
        positive=["king", "woman"], negative=["man"], topn=3)[0][0]


def test_rank_and_spearman_by_hand():
    np.testing.assert_allclose(rank(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    x, y = [1.0, 2, 3, 4, 5], [2.0, 1, 4, 3, 5]
    assert spearman(x, y) == pytest.approx(1 - 6 * (1 + 1 + 1 + 1) / (5 * 24))  # no ties: 1 - 6Σd²/(n(n²-1))
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40), rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_similarity_and_analogy_scorers_on_tiny_files(vec, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# comment\napple\tpear\t9.0\nking\tqueen\t7.0\nman\tapple\t1.0\nKing\tunicorn\t5\n")
    assert read_pairs(pairs)[0] == ("apple", "pear", 9.0)
    res = evaluate_similarity(vec, pairs)
    assert res.pairs == 3 and res.oov_pairs == 1
    sims = [vec.similarity("apple", "pear"), vec.similarity("king", "queen"), vec.similarity("man", "apple")]
    assert res.spearman == pytest.approx(spearman(sims, [9, 7, 1]))
    questions = tmp_path / "q.txt"
    questions.write_text(": royal\nman king woman queen\nMan King Woman Queen\nman king woman unicorn\n"
                         ": fruit\napple pear man woman\n")
    out = evaluate_analogies(vec, questions)
    royal, fruit = out.sections
    assert (royal.correct, royal.total, royal.oov) == (2, 2, 1)
    predicted = vec.analogy("apple", "pear", "man")[0][0]
    assert fruit.correct == int(predicted == "woman") and fruit.total == 1
    assert out.total.total == 3 and out.total.oov == 1
    assert out.semantic.total == 3 and out.syntactic.total == 0


def test_evaluation_matches_gensim(tmp_path):
    models = pytest.importorskip("gensim.models")
    pytest.importorskip("scipy")
    rng = np.random.default_rng(3)
    words = ["man", "woman", "king", "queen", "boy", "girl", "prince", "princess", "father", "mother",
             "son", "daughter", "apple", "pear", "tiger", "cat"]
    vecs = rng.normal(size=(len(words), 6)).astype(np.float32)
    vec = Vectors(words, vecs)
    kv = models.KeyedVectors(6)
    kv.add_vectors(words, vecs)
    q = tmp_path / "q.txt"
    lines = [": family"] + [" ".join(rng.choice(words, 4, replace=False)) for _ in range(60)]
    q.write_text("\n".join(lines) + "\n")
    ours = evaluate_analogies(vec, q)
    score, sections = kv.evaluate_word_analogies(str(q))
    assert ours.total.correct == len(sections[-1]["correct"])
    assert ours.accuracy == pytest.approx(score)
    p = tmp_path / "p.tsv"
    pairs = [rng.choice(words, 2, replace=False) for _ in range(30)]  # (a == b would tie at cos 1 ± ulp)
    p.write_text("\n".join(f"{a}\t{b}\t{s:.2f}" for (a, b), s in zip(pairs, rng.uniform(0, 10, 30))) + "\n")
    pear, spear, _ = kv.evaluate_word_pairs(str(p))
    res = evaluate_similarity(vec, p)
    assert res.spearman == pytest.approx(spear.statistic) and res.pearson == pytest.approx(pear.statistic, abs=1e-6)
