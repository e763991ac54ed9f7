"""ARPA reader/writer: round trips, other tools' conventions, and errors that say what and where."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmlab.errors import FormatError
from lmlab.ngram import build, read_arpa, write_arpa

SRILM_STYLE = """
some comment before the header

\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-99\t<s>\t-0.30103
-0.60206\t</s>
-0.60206 a -0.1
-0.69897\tb
-1.0\t<unk>

\\2-grams:
-0.1\t<s> a
-0.2 a b
-0.3\tb </s>

\\end\\
"""


def test_reads_srilm_style_file(tmp_path):
    path = tmp_path / "s.arpa"
    path.write_text(SRILM_STYLE)
    m = read_arpa(path)
    assert m.sizes() == [5, 3]
    # P(b | a) listed; P(</s> | a) = bo(a) + P(</s>); P(a | b): b has no back-off field -> 0
    lp = m.next_logprobs(["a"])
    assert lp[m.vocab.index["b"]] == pytest.approx(-0.2)
    assert lp[m.vocab.index["</s>"]] == pytest.approx(-0.1 - 0.60206)
    assert m.next_logprobs(["b"])[m.vocab.index["a"]] == pytest.approx(-0.60206)
    logp, oov, _, _ = m.score_sentences([["a", "b", "zz"]])
    assert logp.tolist() == pytest.approx([-0.1, -0.2, -1.0 + 0.0, -0.60206])
    assert oov.tolist() == [False, False, True, False]


def test_missing_prefix_is_added_with_backoff_probability(tmp_path):
    text = SRILM_STYLE.replace("ngram 2=3", "ngram 2=3\nngram 3=1").replace(
        "\\end\\", "\\3-grams:\n-0.05\t<s> b a\n\n\\end\\")
    path = tmp_path / "holes.arpa"
    path.write_text(text)
    m = read_arpa(path)  # "<s> b" (prefix) and "b a" (suffix) are not listed: added
    assert m.sizes() == [5, 5, 1]
    # the added "<s> b" has P(b|<s>) = bo(<s>) + P(b) as before
    assert m.next_logprobs(["<s>"])[m.vocab.index["b"]] == pytest.approx(-0.30103 - 0.69897)
    assert m.next_logprobs(["<s>", "b"])[m.vocab.index["a"]] == pytest.approx(-0.05)


@pytest.mark.parametrize("bad, message", [
    ("no header here\n", "no \\\\data\\\\ header"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n\\end\\\n", "has 1 entries, header says 2"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nxx\t<s>\n\\end\\\n", "bad log10 probability"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\t<s>\n", "missing \\\\end\\\\"),
    ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\t<s>\n\\end\\\n", "duplicate unigrams"),
    ("\\data\\\nngram one=3\n", "expected 'ngram N=COUNT'"),
])
def test_malformed_files_raise_format_error(tmp_path, bad, message):
    path = tmp_path / "bad.arpa"
    path.write_text(bad)
    with pytest.raises(FormatError, match=message):
        read_arpa(path)


def test_gzip_and_formatting_round_trip(tmp_path, train_sentences, test_sentences):
    m = build(train_sentences[:300], 3, "witten-bell")
    write_arpa(m, tmp_path / "m.arpa.gz")
    back = read_arpa(tmp_path / "m.arpa.gz")
    assert np.array_equal(m.sentence_scores(test_sentences[:50]), back.sentence_scores(test_sentences[:50]))
    text = (tmp_path / "m.arpa")
    write_arpa(m, text)
    lines = text.read_text().splitlines()
    assert lines[0] == "\\data\\" and lines[-1] == "\\end\\"
    assert "-99\t<s>\t" in text.read_text()
    for line in lines[6:20]:
        prob, _words, bo = line.split("\t")
        assert float(prob) <= 0 and math.isfinite(float(bo))


@pytest.mark.parametrize("method", ["katz", "jelinek-mercer", "dirichlet", "add-one", "church-gale", "good-turing"])
def test_every_method_round_trips_exactly(tmp_path, method, train_sentences, test_sentences):
    m = build(train_sentences[:200], 3, method, heldout=train_sentences[200:240])
    write_arpa(m, tmp_path / "m.arpa")
    back = read_arpa(tmp_path / "m.arpa")
    for a, b in zip(m.logprob + m.backoff, back.logprob + back.backoff):
        assert np.array_equal(a, b)


def test_compiled_and_numpy_writers_give_identical_bytes(train_sentences):
    from lmlab.ngram import arpa

    if arpa.compiled_kernel() is None:
        pytest.skip("numba not installed: only the numpy writer exists")
    m = build(train_sentences[:300], 3, "mkn")
    enc = [w.encode() for w in m.vocab.words]
    length = np.array([len(b) for b in enc], dtype=np.int64)
    off = np.cumsum(length) - length
    blob = np.frombuffer(b"".join(enc), dtype=np.uint8)
    for n in (1, 2, 3):
        size = m.sizes()[n - 1]
        a = arpa._ngram_lines(m, n, 0, size, blob, off, length)
        b = arpa._ngram_lines_compiled(m, n, 0, size, blob, off, length)
        assert a == b
