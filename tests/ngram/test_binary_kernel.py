"""The compiled scorer of binary models (numba over the mapped sorted tables) and the one-pass text path.

Every variant must give the numbers of the numpy path bit for bit: plain float64 and quantised
columns, files with and without the per-prefix ``children`` sections, suffix-closed or not,
bigram models (no back-off tables above order 1), and text read in one pass vs sentence lists.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from _ngramkit import KENLM

from lmlab.errors import DataError
from lmlab.ngram import read_arpa, read_binary, write_binary
from lmlab.ngram.binary import _PREFIX, _children, _header_crc
from lmlab.ngram.counts import encode
from lmlab.ngram.textenc import encode_text

pytest.importorskip("numba")


def _both(model, sentences):
    ids, pos, _ = encode(sentences, model.vocab)
    return model.score_stream(ids, pos, compiled=True), model.score_stream(ids, pos, compiled=False)


@pytest.mark.parametrize("order", [3, 5])
@pytest.mark.parametrize("bits", [(64, 64), (32, 32), (8, 6)])
def test_compiled_trie_scorer_matches_numpy_path(order, bits, tmp_path, test_sentences):
    arpa = read_arpa(KENLM / f"mkn{order}.arpa.gz")
    path = tmp_path / "m.lmbin"
    write_binary(arpa, path, prob_bits=bits[0], backoff_bits=bits[1])
    model = read_binary(path)
    assert model.use_compiled() and model.info["binary"]["suffix_closed"]
    # the children sections are each prefix's first row, plus the end
    assert np.array_equal(model._cache[("children", 2)], _children(arpa.keys[1], arpa.V, arpa.V))
    fast, slow = _both(model, test_sentences)
    for x, y in zip(fast, slow):
        assert np.array_equal(x, y)
    if bits == (64, 64):  # exact columns: the ARPA model's own numbers
        for x, y in zip(fast, arpa.score_sentences(test_sentences, compiled=False)):
            assert np.array_equal(x, y)


def test_files_without_children_sections_or_suffix_flag_score_the_same(tmp_path, test_sentences):
    """A file written before the children sections (header rewritten without them) searches whole tables."""
    arpa = read_arpa(KENLM / "mkn5.arpa.gz")
    path = tmp_path / "m.lmbin"
    write_binary(arpa, path)
    raw = bytearray(path.read_bytes())
    _, version, length, _, payload_crc, size = _PREFIX.unpack(raw[: _PREFIX.size])
    header = json.loads(raw[_PREFIX.size: _PREFIX.size + length])
    header["sections"] = [e for e in header["sections"] if not e["name"].startswith("children.")]
    del header["suffix_closed"]
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * (length - len(text))
    raw[: _PREFIX.size] = struct.pack("<8sIIIIQ", raw[:8], version, length,
                                      _header_crc(version, length, payload_crc, size, text), payload_crc, size)
    raw[_PREFIX.size: _PREFIX.size + length] = text
    old = tmp_path / "old.lmbin"
    old.write_bytes(bytes(raw))
    model = read_binary(old)
    assert ("children", 2) not in model._cache and not model.info["binary"]["suffix_closed"]
    ref = read_binary(path).score_sentences(test_sentences)
    for x, y in zip(model.score_sentences(test_sentences), ref):
        assert np.array_equal(x, y)


def test_bigram_binary_model(tmp_path, test_sentences, train_sentences):
    from lmlab.ngram import build

    model = build(train_sentences[:300], order=2)
    path = tmp_path / "b.lmbin"
    write_binary(model, path)
    binary = read_binary(path)
    fast, slow = _both(binary, test_sentences)
    for x, y in zip(fast, slow):
        assert np.array_equal(x, y)
    assert binary.evaluate(test_sentences) == model.evaluate(test_sentences)


@pytest.mark.parametrize("piece", [4 << 20, 1000])
def test_encode_text_is_encode_of_the_lines(test_sentences, piece, monkeypatch):
    import lmlab.ngram.textenc as textenc

    monkeypatch.setattr(textenc, "PIECE", piece)  # 1000: the text is read in many pieces
    model = read_arpa(KENLM / "mkn3.arpa.gz")
    text = "\n".join(" ".join(s) for s in test_sentences[:50])
    for data in (text.encode(), "  " + text.replace(" ", " \t ") + "\n\n", text.replace(" ", "\u00a0 ", 3)):
        sentences = [line.split() for line in (data.decode() if isinstance(data, bytes) else data).splitlines()
                     if line.strip()]
        ids, pos, oov, n = encode_text(data, model.vocab)
        ref_ids, ref_pos, ref_oov = encode(sentences, model.vocab)
        assert np.array_equal(ids, ref_ids) and np.array_equal(pos, ref_pos) and (oov, n) == (ref_oov, len(sentences))
    assert model.evaluate_text(text) == model.evaluate(test_sentences[:50])
    with pytest.raises(DataError, match=r"^t.txt: not valid UTF-8 at byte 1500$"):
        encode_text(b"a" * 1400 + b"\n" + b"b" * 99 + b"\xff\n", model.vocab, "t.txt")
