"""The streaming, vectorised ARPA reader gives exactly what the general line-by-line reader gives."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _ngramkit import KENLM

from lmlab.errors import FormatError
from lmlab.ngram import arpa, build, write_arpa


def _same(a, b):
    assert a.vocab.words == b.vocab.words
    assert a.sizes() == b.sizes()
    for x, y in zip(a.keys + a.logprob + a.backoff, b.keys + b.logprob + b.backoff):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert a.info == b.info


@pytest.mark.parametrize("name", ["mkn3.arpa.gz", "mkn5.arpa.gz"])
@pytest.mark.parametrize("block", [arpa._BLOCK, 4093])
def test_kenlm_files_read_identically(name, block, monkeypatch):
    monkeypatch.setattr(arpa, "_BLOCK", block)  # 4 KB: section boundaries inside blocks, unigrams over many blocks
    path = str(KENLM / name)
    _same(arpa._read_streaming(path), arpa._read_general(path))


def test_lmlab_files_and_spacing(tmp_path, train_sentences, monkeypatch):
    m = build(train_sentences[:300], 4, "katz")
    write_arpa(m, tmp_path / "m.arpa")
    monkeypatch.setattr(arpa, "_BLOCK", 1000)
    _same(arpa._read_streaming(str(tmp_path / "m.arpa")), arpa._read_general(str(tmp_path / "m.arpa")))
    # spaces instead of tabs, blank lines, missing back-off fields, comments before \data\, no final newline
    text = (tmp_path / "m.arpa").read_text()
    lines = text.splitlines()
    odd = ["# made by hand", ""] + [ln.replace("\t", "   ") if i % 3 else ln for i, ln in enumerate(lines)]
    odd = [ln.rsplit("\t", 1)[0] if ln.endswith("\t0") else ln for ln in odd]
    odd.insert(len(odd) // 2, "")
    (tmp_path / "odd.arpa").write_text("\n".join(odd))
    back = arpa._read_streaming(str(tmp_path / "odd.arpa"))
    _same(back, arpa._read_general(str(tmp_path / "odd.arpa")))
    for x, y in zip(back.logprob + back.backoff, m.logprob + m.backoff):
        assert np.array_equal(x, y)


def test_unusual_files_go_to_the_general_reader(tmp_path, monkeypatch):
    base = ("\\data\\\nngram 1=5\nngram 2=3\nngram 3=1\n\n\\1-grams:\n-99\t<s>\t-0.3\n-0.6\t</s>\n-0.6 a -0.1\n"
            "-0.69\tb\n-1.0\t<unk>\n\n\\2-grams:\n-0.1\t<s> a\n-0.2 a b\n-0.3\tb </s>\n\n\\3-grams:\n{tri}\n\n\\end\\\n")
    calls = []
    general = arpa._read_general
    monkeypatch.setattr(arpa, "_read_general", lambda path: calls.append(path) or general(path))
    cases = {"plain": "-0.05\t<s> a b", "holes": "-0.05\t<s> b a", "nbsp": "-0.05\t<s> a\u00a0b"}
    for name, tri in cases.items():
        (tmp_path / f"{name}.arpa").write_text(base.format(tri=tri), encoding="utf-8")
    plain = arpa.read_arpa(tmp_path / "plain.arpa")
    assert calls == []  # taken by the streaming reader
    holes = arpa.read_arpa(tmp_path / "holes.arpa")  # "<s> b", "b a" are added by the general reader
    assert holes.sizes() == [5, 5, 1] and len(calls) == 1
    nbsp = arpa.read_arpa(tmp_path / "nbsp.arpa")
    assert nbsp.vocab.words == plain.vocab.words and np.array_equal(nbsp.keys[2], plain.keys[2])  # str.split() splits at U+00A0: "<s> a b"
    assert len(calls) == 2


def test_truncated_file_is_named_without_the_general_reader(tmp_path, monkeypatch):
    m = build([["a", "b", "c"], ["b", "c", "d"]] * 5, 3, "witten-bell")
    write_arpa(m, tmp_path / "m.arpa")
    text = (tmp_path / "m.arpa").read_text()
    monkeypatch.setattr(arpa, "_read_general", lambda path: pytest.fail("not the general reader"))
    (tmp_path / "cut.arpa").write_text(text[: text.index("\\end\\")])
    with pytest.raises(FormatError, match="missing \\\\end\\\\"):
        arpa.read_arpa(tmp_path / "cut.arpa")
    at = text.index("\\3-grams:\n") + len("\\3-grams:\n")
    (tmp_path / "short.arpa").write_text(text[: text.index("\n", at) + 1])  # one whole 3-gram line
    with pytest.raises(FormatError, match="3-grams: has 1 entries, header says"):
        arpa.read_arpa(tmp_path / "short.arpa")


@pytest.mark.parametrize("threads", ["1", "3"])
def test_blocks_parsed_in_threads_read_identically(threads, monkeypatch):
    """An order's blocks are parsed side by side in a thread pool; the model is the same for any number of
    threads, and a block that the streaming reader cannot take (parsed in a worker) still sends the file
    to the general reader."""
    monkeypatch.setattr(arpa, "_BLOCK", 2039)  # many blocks per section, so several are in flight at once
    monkeypatch.setenv("LMLAB_ARPA_THREADS", threads)
    path = str(KENLM / "mkn5.arpa.gz")
    _same(arpa._read_streaming(path), arpa._read_general(path))


def test_a_bad_block_in_a_worker_falls_back(tmp_path, train_sentences, monkeypatch):
    m = build(train_sentences[:300], 3, "kn")
    write_arpa(m, tmp_path / "m.arpa")
    lines = (tmp_path / "m.arpa").read_text().splitlines()
    at = lines.index("\\3-grams:") + 40  # a 3-gram line far inside its section: parsed by a worker
    prob, words = lines[at].split("\t", 1)
    lines[at] = prob + "\t" + words.replace(" ", "\u00a0", 1)  # non-ASCII whitespace: only the general reader splits it
    (tmp_path / "odd.arpa").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(arpa, "_BLOCK", 1500)
    monkeypatch.setenv("LMLAB_ARPA_THREADS", "2")
    with pytest.raises(arpa._Fallback):
        arpa._read_streaming(str(tmp_path / "odd.arpa"))
    _same(arpa.read_arpa(tmp_path / "odd.arpa"), arpa._read_general(str(tmp_path / "odd.arpa")))


def test_parallel_argsort_is_the_stable_argsort():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    with ThreadPoolExecutor(2) as pool:
        for n in (10, 1 << 20, (1 << 21) + 3):
            x = rng.integers(0, 1000, n)  # many ties: the merge must keep them in input order
            assert np.array_equal(arpa._parallel_argsort(x, pool, 2), np.argsort(x, kind="stable"))


def test_sections_formatted_in_threads_write_the_same_bytes(tmp_path, train_sentences, monkeypatch):
    """ArpaWriter.lines formats a long section's chunks side by side (LMLAB_ARPA_THREADS) and writes them
    in order: the file is byte for byte the one a single thread writes."""
    m = build(train_sentences[:300], 4, "mkn")
    monkeypatch.setattr(arpa, "_CHUNK", 97)  # many chunks per section
    files = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("LMLAB_ARPA_THREADS", threads)
        write_arpa(m, tmp_path / f"m{threads}.arpa")
        files[threads] = (tmp_path / f"m{threads}.arpa").read_bytes()
    assert files["1"] == files["3"] and len(files["1"]) > 97 * 50
    assert arpa.read_arpa(tmp_path / "m3.arpa").sizes() == m.sizes()


def test_compiled_line_tokenizer_matches_the_numpy_one(monkeypatch):
    """The one-pass kernel (:func:`arpa._line_tokens`) and the numpy tokenizer give the same rows,
    and both refuse a line with the wrong number of tokens."""
    pytest.importorskip("numba")
    block = np.frombuffer(b"-1.5\ta b c\t-0.25\n\n  \t\n-2 x  y z\n-0.125 p q r -1e-3\n-3\tu v w", dtype=np.uint8)

    def rows(kernels: bool, b, n=3, top=False):
        monkeypatch.setattr(arpa, "have_kernels", lambda: kernels)
        return arpa._section_rows(b, n, top)

    fast, slow = rows(True, block), rows(False, np.concatenate([block, np.frombuffer(b"\n", dtype=np.uint8)]))
    for x, y in zip(fast, slow):
        assert np.array_equal(x, y)
    assert np.array_equal(fast[0], [-1.5, -2.0, -0.125, -3.0]) and np.array_equal(fast[1], [-0.25, 0, -1e-3, 0])
    for kernels in (True, False):
        for bad, n, top in ((b"-1 a b\n", 3, False), (b"-1 a b c d e\n", 3, False), (b"-1 a b c -0.5\n", 3, True)):
            with pytest.raises(arpa._Fallback):
                rows(kernels, np.frombuffer(bad, dtype=np.uint8), n, top)


@pytest.mark.parametrize("order", [1, 2])
def test_unigram_and_bigram_files(order, tmp_path, train_sentences):
    """The top order's back-offs are zeros that are never parsed or gathered; a unigram model's only order is its top."""
    m = build(train_sentences[:200], order)
    write_arpa(m, tmp_path / "m.arpa")
    streamed = arpa._read_streaming(str(tmp_path / "m.arpa"))
    _same(streamed, arpa._read_general(str(tmp_path / "m.arpa")))
    assert not streamed.backoff[-1].any() and len(streamed.backoff[-1]) == m.sizes()[-1]


def test_reading_without_malloc_trim(monkeypatch):
    """Where the C library has no ``malloc_trim`` (not glibc) the heap is simply not trimmed."""
    monkeypatch.setattr(arpa, "_MALLOC_TRIM", False)
    path = str(KENLM / "mkn3.arpa.gz")
    _same(arpa._read_streaming(path), arpa._read_general(path))


def test_compiled_line_writer_writes_the_numpy_bytes(monkeypatch):
    """The one-pass ARPA line writer (:func:`arpa._format_lines`) gives the numpy writer's bytes, edge
    values included (-99, 0, -0.0, values that round to 0 or to a whole number, |value| >= 1000), and
    refuses a value too large for the field with the same one-line error."""
    pytest.importorskip("numba")
    words = ["<unk>", "<s>", "</s>"] + [f"w{i}é" for i in range(300)]
    writer = arpa.ArpaWriter(open(os.devnull, "wb"), words, [len(words)])
    rng = np.random.default_rng(0)
    M = 5000
    ids = rng.integers(0, len(words), (M, 3))
    lp = -np.abs(rng.normal(0, 3, M)) * 10.0 ** rng.integers(-12, 3, M)
    lp[:16] = [-99, 0, -0.0, 1e-11, -1e-11, -5e-11, -0.5, -1.25, -999.99999999996, -1000.5, -123456.7, 5e-11,
               -1.00000000005, 2.5, -1e-10, -99.0000000001]
    bo = rng.normal(0, 1, M)
    for backoff in (bo, None):
        fast = arpa._ngram_lines(ids, lp, backoff, writer.words, arpa._Buffers(writer.blob)).tobytes()
        slow = arpa._ngram_lines_numpy(ids, lp, backoff, writer.words, arpa._Buffers(writer.blob)).tobytes()
        assert fast == slow
    for bad in (1e6, -2e6, float("inf"), float("nan")):
        values = lp[:3].copy()
        values[1] = bad
        for f in (arpa._ngram_lines, arpa._ngram_lines_numpy):
            with pytest.raises(FormatError, match="too large for an ARPA log10 field"), np.errstate(invalid="ignore"):
                f(ids[:3], values, bo[:3], writer.words, arpa._Buffers(writer.blob))
