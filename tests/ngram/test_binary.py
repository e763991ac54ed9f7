"""The binary model file (.lmbin): round trip against KenLM's ARPA files, quantisation, refusals, CLI."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
from _ngramkit import KENLM, read_sentences
from typer.testing import CliRunner

from lmlab.errors import FormatError, UsageError
from lmlab.ngram import build, load_model, read_arpa, read_binary, write_arpa, write_binary
from lmlab.ngram.binary import MAGIC, VERSION, BinaryNgramModel, Quantized, is_binary


@pytest.fixture(scope="module", params=[3, 5])
def kenlm_pair(request, tmp_path_factory):
    order = request.param
    arpa = read_arpa(KENLM / f"mkn{order}.arpa.gz")
    path = tmp_path_factory.mktemp("bin") / f"mkn{order}.lmbin"
    write_binary(arpa, path)
    return arpa, path


def test_round_trip_is_exact_on_kenlm_files(kenlm_pair, test_sentences, tmp_path):
    arpa, path = kenlm_pair
    assert is_binary(path)
    binary = load_model(path)  # sniffed by its magic bytes, whatever the suffix
    assert isinstance(binary, BinaryNgramModel)
    assert binary.sizes() == arpa.sizes() and binary.vocab.words == arpa.vocab.words
    for n in range(1, arpa.order + 1):
        assert isinstance(binary.keys[n - 1], np.ndarray) and np.array_equal(binary.keys[n - 1], arpa.keys[n - 1])
        assert np.array_equal(np.asarray(binary.logprob[n - 1]), arpa.logprob[n - 1])
        assert np.array_equal(np.asarray(binary.backoff[n - 1]), arpa.backoff[n - 1])
    if arpa.order > 1:
        assert isinstance(binary.keys[1], np.memmap) or isinstance(binary.keys[1].base, np.memmap)
    # same log10 probabilities token by token (searchsorted on the mapped tables vs the ARPA model's hash)
    a, b = arpa.score_sentences(test_sentences), binary.score_sentences(test_sentences)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert binary.evaluate(test_sentences) == arpa.evaluate(test_sentences)
    hist = test_sentences[3][:4]
    assert np.array_equal(binary.next_logprobs(hist), arpa.next_logprobs(hist))
    assert binary.sample(3, seed=7, max_words=12) == arpa.sample(3, seed=7, max_words=12)
    # the binary model writes the same ARPA text as the model it was made from
    write_arpa(arpa, tmp_path / "a.arpa")
    write_arpa(binary, tmp_path / "b.arpa")
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()


def test_kenlm_perplexity_from_binary(tmp_path, test_sentences):
    path = tmp_path / "m.lmbin"
    write_binary(read_arpa(KENLM / "mkn3.arpa.gz"), path)
    text = (KENLM / "query3.txt").read_text()
    ref = float(re.search(r"^Perplexity including OOVs:\s+(\S+)", text, flags=re.MULTILINE).group(1))
    assert read_binary(path).evaluate(test_sentences).perplexity == pytest.approx(ref, rel=1e-6)


def test_built_model_to_binary(train_sentences, test_sentences, tmp_path):
    model = build(train_sentences[:400], order=4, smoothing="witten-bell")
    write_binary(model, tmp_path / "wb.lmbin")
    loaded = load_model(tmp_path / "wb.lmbin")
    assert loaded.info["method"] == model.info["method"]
    assert loaded.evaluate(test_sentences) == model.evaluate(test_sentences)


@pytest.mark.parametrize("bits", [32, 8, 4])
def test_quantised(kenlm_pair, test_sentences, tmp_path, bits):
    arpa, _ = kenlm_pair
    path = tmp_path / f"q{bits}.lmbin"
    write_binary(arpa, path, prob_bits=bits, backoff_bits=bits)
    q = load_model(path)
    exact = arpa.evaluate(test_sentences).perplexity
    got = q.evaluate(test_sentences).perplexity
    # float32 (KenLM's own precision) moves perplexity by ~1e-9; 8-bit bins ~1%, 4-bit ~3% on this model
    assert got == pytest.approx(exact, rel={32: 1e-6, 8: 0.03, 4: 0.06}[bits])
    assert np.array_equal(np.asarray(q.logprob[0]), arpa.logprob[0])  # unigrams are never quantised
    if bits < 32 and arpa.order > 1:
        col = q.backoff[1]
        assert isinstance(col, Quantized) and len(col.centers) <= 2 ** bits
        zero = arpa.backoff[1] == 0.0
        assert np.array_equal(np.asarray(col)[zero], arpa.backoff[1][zero])  # back-off 0 is kept exactly
        err = np.abs(np.asarray(q.logprob[1]) - arpa.logprob[1])
        assert err.max() < 1.0 and err.mean() < {8: 0.02, 4: 0.2}[bits]
    smaller = path.stat().st_size
    write_binary(arpa, tmp_path / "full.lmbin")
    assert smaller < (tmp_path / "full.lmbin").stat().st_size
    with pytest.raises(UsageError, match="prob_bits"):
        write_binary(arpa, tmp_path / "bad.lmbin", prob_bits=20)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.lmbin"
    write_binary(read_arpa(KENLM / "mkn3.arpa.gz"), path)
    return path, path.read_bytes()


def _refused(tmp_path, data: bytes, match: str, verify="auto"):
    bad = tmp_path / "bad.lmbin"
    bad.write_bytes(data)
    with pytest.raises(FormatError, match=match) as err:
        read_binary(bad, verify=verify)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_refusals(good, tmp_path):
    path, data = good
    _refused(tmp_path, b"", "wrong magic")
    _refused(tmp_path, b"\\data\\\nngram 1=3\n" + data[20:], "wrong magic")
    _refused(tmp_path, data[:20], "truncated")
    _refused(tmp_path, data[: len(data) // 2], "truncated")
    _refused(tmp_path, data[:-1], "truncated")
    _refused(tmp_path, data[:8] + struct.pack("<I", VERSION + 1) + data[12:], f"version {VERSION + 1}.*reads version {VERSION}")
    json_at = 32 + data[32:].index(b'"order"')
    flipped = data[:json_at] + data[json_at:json_at + 9].replace(b"order", b"ordeR") + data[json_at + 9:]
    _refused(tmp_path, flipped, "header checksum")
    _refused(tmp_path, data + b"\0", "header says")  # the size is in the checksummed header
    corrupt = bytearray(data)
    corrupt[-5] ^= 0xFF  # a payload byte (a probability of the top order)
    _refused(tmp_path, bytes(corrupt), "payload checksum")
    _refused(tmp_path, bytes(corrupt), "payload checksum", verify=True)
    bad = tmp_path / "bad.lmbin"
    assert read_binary(bad, verify=False).sizes() == read_binary(path).sizes()  # unchecked: maps it anyway
    with pytest.raises(FormatError, match="no such ARPA file"):
        load_model(tmp_path / "missing.lmbin")
    assert data[:8] == MAGIC


def test_cli_binarize_and_every_command(tmp_path, cli):
    from lmlab.cli.ngram import app

    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    out = tmp_path / "m.lmbin"
    r = run("binarize", KENLM / "mkn3.arpa.gz", out)
    assert r.exit_code == 0, r.stderr
    assert is_binary(out)
    ref_eval = run("eval", KENLM / "mkn3.arpa.gz", KENLM / "test.txt").stdout
    assert run("eval", out, KENLM / "test.txt").stdout.splitlines()[:5] == ref_eval.splitlines()[:5]
    ref_score = run("score", KENLM / "mkn3.arpa.gz", KENLM / "test20.txt", "--per", "word").stdout
    assert run("score", out, KENLM / "test20.txt", "--per", "word").stdout == ref_score
    assert run("sample", out, "-n", "2").stdout == run("sample", KENLM / "mkn3.arpa.gz", "-n", "2").stdout
    r = run("check", out)
    assert r.exit_code == 0 and "OK" in r.stdout
    proc = cli("eval", "ppl", str(out), str(KENLM / "test.txt"), "--pretokenized", "--json")  # a subprocess
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens"] == 5691
    (tmp_path / "cut.lmbin").write_bytes(out.read_bytes()[:1000])
    proc = cli("ngram", "eval", str(tmp_path / "cut.lmbin"), str(KENLM / "test.txt"))
    assert proc.returncode != 0 and "truncated binary model" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(UsageError, match="already exists"):  # refused without --force
        run("binarize", KENLM / "mkn3.arpa.gz", out)
    built = tmp_path / "built.lmbin"
    r = run("build", KENLM / "train.txt", "-o", built, "--order", "3", "--format", "binary", "--prob-bits", "32")
    assert r.exit_code == 0, r.stderr
    ppl = float(re.search(r"Perplexity including OOVs:\s+(\S+)", run("eval", built, KENLM / "test.txt").stdout).group(1))
    assert ppl == pytest.approx(292.50465845833617, rel=1e-6)  # KenLM query on the same data
    with pytest.raises(UsageError, match="--format"):
        run("build", KENLM / "train.txt", "-o", tmp_path / "x", "--format", "trie")


def test_adapted_model_on_a_binary_base(tmp_path):
    from lmlab.ngram.adaptive import CacheLM, adapted_path, save_cache
    from lmlab.ngram.maxent import load_adapted

    base = read_arpa(KENLM / "mkn3.arpa.gz")
    path = tmp_path / "m.lmbin"
    write_binary(base, path)
    json_path = save_cache(CacheLM(base, lam=0.9, size=30), path, adapted_path(path, "cache"))
    assert json_path.name == "m.cache.json"
    loaded = load_adapted(json_path)
    assert isinstance(loaded.base, BinaryNgramModel)
    sents = read_sentences("test20.txt")
    assert np.array_equal(loaded.base.sentence_scores(sents), base.sentence_scores(sents))
