"""Text -> id stream in pieces (lmlab.ngram.textenc): the compiled byte-hash encoder gives exactly
what ``encode`` of the split lines gives, in one piece or many, and evaluating text piece by
piece gives the Evaluation of the whole sentence list, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from _ngramkit import KENLM

from lmlab.errors import DataError
from lmlab.ngram import read_arpa, read_binary, textenc, write_binary
from lmlab.ngram.counts import Vocabulary, encode
from lmlab.ngram.textenc import encode_text

pytest.importorskip("numba")


def _reference(data: bytes | str, vocab):
    text = data.decode() if isinstance(data, bytes) else data
    sentences = [line.split() for line in text.splitlines() if line.strip()]
    ids, pos, oov = encode(sentences, vocab)
    return ids, pos, oov, len(sentences)


def _check(data, vocab, size=None):
    parts = list(textenc.encode_pieces(data, vocab, size=size))
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    pos = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    ref_ids, ref_pos, ref_oov, ref_n = _reference(data, vocab)
    assert np.array_equal(ids, ref_ids) and np.array_equal(pos, ref_pos)
    assert (sum(p[2] for p in parts), sum(p[3] for p in parts)) == (ref_oov, ref_n)
    return parts


def test_hand_checked_stream():
    vocab = Vocabulary(["a", "ab", "b", "é", "日本"])  # ids: <unk> 0, <s> 1, </s> 2, a 3, ab 4, b 5, é 6, 日本 7
    data = "ab a\t zz\n\n   \n日本 é <unk> a\nb".encode()
    (ids, pos, oov, n), = textenc.encode_pieces(data, vocab)
    assert ids.tolist() == [1, 4, 3, 0, 2, 1, 7, 6, 0, 3, 2, 1, 5, 2]
    assert pos.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert (oov, n) == (1, 3)  # "zz" is an OOV; a literal <unk> is the word <unk>, as encode() has it


@pytest.mark.parametrize("size", [None, 1, 37, 500])
def test_matches_encode_in_one_or_many_pieces(size, test_sentences):
    model = read_arpa(KENLM / "mkn3.arpa.gz")
    text = "\n".join(" ".join(s) for s in test_sentences[:80])
    for data in (text.encode(), ("\t " + text.replace(" ", " \t ") + "\n\n").encode(), text.encode() + b"\n"):
        parts = _check(data, model.vocab, size)
        if size == 1:  # every piece is one line: a sentence never straddles two pieces
            assert len(parts) == 80


def test_many_words_probe_past_collisions():
    """A vocabulary of 20000 words (many share a home slot): every word found, every near-miss an OOV."""
    words = [f"w{i}" for i in range(20000)]
    vocab = Vocabulary(words)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, 20000, size=3000)
    lines = [" ".join(f"w{i}" if i % 7 else f"w{i}x" for i in picks[j: j + 30]) for j in range(0, 3000, 30)]
    _check("\n".join(lines).encode(), vocab)


def test_whitespace_other_than_plain_goes_through_split_text(test_sentences):
    model = read_arpa(KENLM / "mkn3.arpa.gz")
    text = "\n".join(" ".join(s) for s in test_sentences[:30])
    for odd in ("\u00a0", "\r\n", "\x0c", "\u2028"):
        _check(text.replace(" ", odd, 5).replace("\n", odd if odd in ("\r\n", "\u2028") else "\n", 3), model.vocab, 300)


def test_without_numba_same_stream(test_sentences, monkeypatch):
    model = read_arpa(KENLM / "mkn3.arpa.gz")
    data = "\n".join(" ".join(s) for s in test_sentences[:60]).encode()
    fast = encode_text(data, model.vocab)
    monkeypatch.setattr(textenc, "_kernels", lambda: None)
    slow = encode_text(data, model.vocab)
    assert all(np.array_equal(x, y) for x, y in zip(fast[:2], slow[:2])) and fast[2:] == slow[2:]


def test_binary_model_vocabulary_and_piecewise_evaluation(tmp_path, test_sentences, monkeypatch):
    """A mapped model hashes its own vocabulary section; text evaluated in many pieces (with OOVs)
    gives the Evaluation of the sentence list, exactly (the sums are exact over all pieces)."""
    arpa = read_arpa(KENLM / "mkn5.arpa.gz")
    path = tmp_path / "m.lmbin"
    write_binary(arpa, path)
    binary = read_binary(path)
    sentences = [s + (["qqqzzz"] if i % 5 == 0 else []) for i, s in enumerate(test_sentences)]
    data = "\n".join(" ".join(s) for s in sentences).encode()
    _check(data, binary.vocab, 2000)
    monkeypatch.setattr(textenc, "PIECE", 2000)
    ev = binary.evaluate_text(data)
    assert ev.oovs > 0 and ev == arpa.evaluate(sentences) == binary.evaluate(sentences)


def test_utf8_error_names_the_offset_in_the_whole_text(monkeypatch):
    import io

    monkeypatch.setattr(textenc, "PIECE", 100)
    vocab = Vocabulary(["a"])
    for data in (b"a a\n" * 250 + b"aaa\xff\n", io.BytesIO(b"a a\n" * 250 + b"aaa\xff\n")):  # bytes, or a file
        with pytest.raises(DataError, match=r"^t.txt: not valid UTF-8 at byte 1003$"):
            list(textenc.encode_pieces(data, vocab, "t.txt"))


@pytest.mark.parametrize("size", [7, 100, 1 << 20])
def test_a_file_read_in_pieces_encodes_as_its_bytes(size, test_sentences):
    """A binary file object is read ``size`` bytes at a time (lines longer than that carried over): the
    same pieces' contents, the same evaluation, as the whole bytes."""
    import io

    arpa = read_arpa(KENLM / "mkn3.arpa.gz")
    data = ("\n".join(" ".join(s) for s in test_sentences[:400]) + "\n\n  \nlast line without newline").encode()
    whole = list(textenc.encode_pieces(data, arpa.vocab, size=size))
    streamed = list(textenc.encode_pieces(io.BytesIO(data), arpa.vocab, size=size))
    assert np.array_equal(np.concatenate([p[0] for p in whole]), np.concatenate([p[0] for p in streamed]))
    assert sum(p[3] for p in whole) == sum(p[3] for p in streamed)
    parts = list(textenc.stream_pieces(io.BytesIO(data), size))
    assert b"".join(piece for _, piece in parts) == data and all(p.endswith(b"\n") for _, p in parts[:-1])
    assert [lo for lo, _ in parts] == list(np.cumsum([0] + [len(p) for _, p in parts[:-1]]))
    assert arpa.evaluate_text(io.BytesIO(data)) == arpa.evaluate_text(data)


def test_arpa_decimal_fast_path_is_strtod_bit_for_bit():
    """The ARPA reader's compiled number parser gives numpy's (correctly rounded) float64 of every
    token, bit for bit, and leaves what is not a plain decimal to numpy (which refuses non-numbers)."""
    from lmlab.ngram.arpa import _floats, _floats_numpy

    rng = np.random.default_rng(0)
    tokens = [f"{x:.{d}f}" for x, d in zip(rng.normal(0, 3, 20000), rng.integers(0, 10, 20000))]
    tokens += ["-99", "0", "-0", "-0.0", "1e-05", "-1.5e+2", "12345678901234567", "0.0000001234567", "-7.", "-.5",
               "-3.14159265358979", "0.30000000000000004"]
    b = np.frombuffer((" ".join(tokens) + "\n").encode(), dtype=np.uint8)
    start = np.array([0] + [i + 1 for i in np.flatnonzero(b == 32)])
    end = np.array(list(np.flatnonzero(b == 32)) + [len(b) - 1])
    fast, ref = _floats(b, start, end), _floats_numpy(b, start, end)
    assert np.array_equal(fast.view(np.int64), ref.view(np.int64))
    assert np.signbit(fast[20003]) and fast[20006] == 12345678901234567.0
    bad = np.frombuffer(b"-. x\n", dtype=np.uint8)
    from lmlab.ngram.arpa import _Fallback

    with pytest.raises(_Fallback):  # (the general reader then names the line)
        _floats(bad, np.array([0, 3]), np.array([2, 4]))
