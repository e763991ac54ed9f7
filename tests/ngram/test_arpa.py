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


def _reference_text(x: float) -> str:
    """What the writer must print: the value rounded to 10 decimals, trailing zeros (and a bare '.') dropped."""
    k = int(np.rint(x * 1e10))
    digits = str(abs(k)).rjust(11, "0")
    decimals = digits[-10:].rstrip("0")
    return ("-" if k < 0 else "") + digits[:-10] + ("." + decimals if decimals else "")


def _reference_arpa(m) -> str:
    """The ARPA text of a model written line by line in Python (what the vectorised writer must equal)."""
    out = ["\\data\\"] + [f"ngram {n}={size}" for n, size in enumerate(m.sizes(), 1)]
    for n in range(1, m.order + 1):
        out += ["", f"\\{n}-grams:"]
        for row, ids in enumerate(m.ngram_words(n)):
            line = _reference_text(m.logprob[n - 1][row]) + "\t" + " ".join(m.vocab.words[i] for i in ids)
            if n < m.order:
                line += "\t" + _reference_text(m.backoff[n - 1][row])
            out.append(line)
    return "\n".join(out + ["", "\\end\\", ""])


def test_writer_matches_line_by_line_reference(tmp_path, train_sentences, monkeypatch):
    from lmlab.ngram import arpa

    monkeypatch.setattr(arpa, "_CHUNK", 997)  # many chunks, and a chunk boundary inside every order
    m = build(train_sentences[:300], 3, "mkn")
    # values the writer must handle: integer parts of 1 to 6 digits, both signs, -0.0, no decimals,
    # 1e-10 steps, a decimal that rounds up into the integer part
    special = [-0.0, 0.0, -1e-10, 4e-10, -0.5, -1.0, -99.0, -12.3456789012, -999.9999999999, -1000.25,
               123456.5, -999999.0, 0.99999999996, -5.00000000004, 7.1, -0.1234567891]
    m.backoff[0][: len(special)] = special
    m.logprob[1][: len(special)] = special
    write_arpa(m, tmp_path / "m.arpa")
    assert (tmp_path / "m.arpa").read_text(encoding="utf-8") == _reference_arpa(m)


def test_writer_empty_order_and_unicode(tmp_path):
    from lmlab.ngram import NgramModel, Vocabulary

    vocab = Vocabulary(["héllo", "格物", "x"])
    V = len(vocab)
    m = NgramModel(vocab, [np.arange(V), np.array([1 * V + 3, 3 * V + 4]), np.zeros(0, dtype=np.int64)],
                   [np.full(V, -0.5), np.array([-0.25, -2.0]), np.zeros(0)],
                   [np.zeros(V), np.array([-0.1, 0.0]), np.zeros(0)])
    write_arpa(m, tmp_path / "m.arpa")
    text = (tmp_path / "m.arpa").read_text(encoding="utf-8")
    assert text == _reference_arpa(m)
    assert "ngram 3=0\n" in text and "\\3-grams:\n\n\\end\\" in text


def test_writer_rejects_values_too_large(tmp_path, train_sentences):
    m = build(train_sentences[:50], 2, "mkn")
    m.logprob[1][0] = -1e7
    with pytest.raises(FormatError, match="too large"):
        write_arpa(m, tmp_path / "m.arpa")
    assert not list(tmp_path.iterdir())  # no partial file left behind
