"""Counting under a memory budget: spilled sorted runs + k-way merge give the in-memory counts exactly."""

from __future__ import annotations

import numpy as np
import pytest
from _ngramkit import KENLM
from typer.testing import CliRunner

from lmlab.errors import UsageError
from lmlab.ngram import Vocabulary, write_arpa
from lmlab.ngram.counts import count_text
from lmlab.ngram.extsort import _as_rows, count_text_external, merge_runs, parse_memory
from lmlab.ngram.pipeline import PipelineConfig, Text, build

TRAIN = (KENLM / "train.txt").read_bytes()


def _same_counts(a, b):
    assert a.vocab.words == b.vocab.words
    assert (a.order, a.n_sentences, a.n_tokens) == (b.order, b.n_sentences, b.n_tokens)
    for n in range(a.order):
        assert np.array_equal(a.keys[n], b.keys[n]) and np.array_equal(a.counts[n], b.counts[n])


def test_merge_runs_by_hand():
    def run(*grams):
        rows = _as_rows(np.array([g[:-1] for g in grams]))
        return rows, np.array([g[-1] for g in grams], dtype=np.int64)

    a = run((0, 1, 2), (0, 300, 1), (2, 0, 5))  # (w1, w2, count), sorted by (w1, w2)
    b = run((0, 1, 1), (1, 7, 1), (2, 0, 1), (70000, 1, 4))
    c = run((0, 2, 3),)
    for block in (1, 2, 100):
        rows, counts = merge_runs([a, b, c], block)
        got = [tuple(r) + (k,) for r, k in zip(rows.view(">u4").reshape(-1, 2).tolist(), counts.tolist())]
        assert got == [(0, 1, 3), (0, 2, 3), (0, 300, 1), (1, 7, 1), (2, 0, 6), (70000, 1, 4)]


@pytest.mark.parametrize("order", [1, 3, 5])
def test_spilled_counts_equal_in_memory(order, tmp_path):
    # 64K budget: ~1.6 KB chunks, ~160 runs per order, merged in blocks of ~100 rows
    spilled = count_text_external(TRAIN, order, memory="64K", temp=tmp_path)
    _same_counts(spilled, count_text(TRAIN, order))
    assert not list(tmp_path.iterdir())  # the runs are removed afterwards


def test_text_that_fits_one_chunk_is_counted_in_memory(tmp_path):
    _same_counts(count_text_external(TRAIN, 3, memory="2G", temp=tmp_path), count_text(TRAIN, 3))


def test_closed_vocabulary_and_str_tokens(tmp_path):
    vocab = Vocabulary(["the", "of", ",", "zebra"])
    _same_counts(count_text_external(TRAIN, 3, vocab, memory="64K"), count_text(TRAIN, 3, vocab))
    text = TRAIN.replace(b" of ", "\u00a0of ".encode())  # non-ASCII whitespace: tokens split as str
    _same_counts(count_text_external(text, 3, memory="64K"), count_text(text, 3))


def test_worker_processes_give_the_same_counts():
    _same_counts(count_text_external(TRAIN, 3, memory="256K", workers=2), count_text(TRAIN, 3))


@pytest.mark.parametrize("method", ["mkn", "katz", "witten-bell", "absolute"])
def test_arpa_byte_identical(method, tmp_path):
    text = Text(TRAIN, "train.txt")
    write_arpa(build(text, PipelineConfig(order=4, smoothing=method)), tmp_path / "mem.arpa")
    write_arpa(build(text, PipelineConfig(order=4, smoothing=method, memory="64K", temp=str(tmp_path))),
               tmp_path / "disk.arpa")
    assert (tmp_path / "mem.arpa").read_bytes() == (tmp_path / "disk.arpa").read_bytes()


def test_cli_memory_and_temp(tmp_path):
    from lmlab.cli.ngram import app

    runner = CliRunner()
    ref, out = tmp_path / "ref.arpa", tmp_path / "budget.arpa"
    assert runner.invoke(app, ["build", str(KENLM / "train.txt"), "-o", str(ref), "-n", "5"]).exit_code == 0
    r = runner.invoke(app, ["build", str(KENLM / "train.txt"), "-o", str(out), "-n", "5", "-S", "100K", "-T", str(tmp_path)])
    assert r.exit_code == 0, r.stderr
    assert ref.read_bytes() == out.read_bytes()
    with pytest.raises(UsageError, match="--memory"):
        runner.invoke(app, ["build", str(KENLM / "train.txt"), "-o", str(tmp_path / "x"), "--memory", "lots"],
                      catch_exceptions=False)
    with pytest.raises(UsageError, match="not a folder"):
        runner.invoke(app, ["build", str(KENLM / "train.txt"), "-o", str(tmp_path / "x"), "-S", "1G", "-T",
                            str(tmp_path / "nowhere")], catch_exceptions=False)


def test_parse_memory():
    assert parse_memory("2G") == 2 << 30 and parse_memory("500M") == 500 << 20 and parse_memory("64k") == 65536
    assert parse_memory("1.5G") == int(1.5 * (1 << 30)) and parse_memory("100000") == 100000
    assert parse_memory("10%") > 0
    for bad in ("", "two", "1K", "-5G"):
        with pytest.raises(UsageError):
            parse_memory(bad)


def test_interner_numbers_words_by_first_appearance_and_grows():
    from lmlab.ngram.textenc import Interner, _kernels

    if _kernels() is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(0)
    vocab = [f"w{i}".encode() for i in range(5000)] + ["naïve".encode(), b"x" * 70000]  # a word over the blob's start
    lines = [b" ".join(vocab[j] for j in rng.integers(0, len(vocab), rng.integers(0, 9))) for _ in range(3000)]
    text = b"\n".join(lines) + b"\n\t \n"
    interner = Interner([b"<unk>", b"<s>", b"</s>"])  # starts with room for 1,024 words: grows several times
    seen = {b"<unk>": 0, b"<s>": 1, b"</s>": 2}
    expected = [seen.setdefault(t, len(seen)) for t in text.split()]
    half = text.index(b"\n", len(text) // 2) + 1
    ids_a, len_a = interner.encode(text[:half])
    ids_b, len_b = interner.encode(text[half:])                     # the table persists across pieces
    assert np.concatenate([ids_a, ids_b]).tolist() == expected
    assert np.concatenate([len_a, len_b]).tolist() == [len(x.split()) for x in lines if x.split()]
    assert interner.n == len(seen) and interner.words(0) == list(seen)
    interner.add([b"late"])                                         # words learnt elsewhere join at the end
    assert interner.encode(b"late w1\n")[0].tolist() == [len(seen), seen[b"w1"]]


def test_chunks_counted_by_the_interner_and_by_the_dict_share_one_numbering(tmp_path):
    # some chunks have non-ASCII whitespace (split as str, the dict learns their words), the others are
    # numbered by the byte hash, which must first learn the dict's new words
    lines = TRAIN.split(b"\n")
    text = b"\n".join(line.replace(b" ", "\u00a0".encode(), 1) if i % 50 == 7 else line for i, line in enumerate(lines))
    _same_counts(count_text_external(text, 3, memory="64K", temp=tmp_path), count_text(text, 3))
