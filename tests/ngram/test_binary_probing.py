"""The probing structure of binary models (KenLM's ``build_binary probing``): hash tables per order.

The scores must be the trie's bit for bit (same value width) and, with float64 values, the ARPA
model's; every listed n-gram must sit in its table under its hash with its own values; the
structure's refusals (quantised values, hash collisions, a table that does not fit) are one-line
errors; the CLI writes it (``binarize --structure probing``, ``build --format binary``).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _ngramkit import KENLM
from typer.testing import CliRunner

from lmlab.errors import FormatError, UsageError
from lmlab.ngram import binary as binary_mod
from lmlab.ngram import build, read_arpa, read_binary, write_binary
from lmlab.ngram.binary import _PREFIX, _header_crc, ngram_hashes
from lmlab.ngram.counts import encode

pytest.importorskip("numba")


def _stream(model, sentences):
    ids, pos, _ = encode(sentences, model.vocab)
    return ids, pos


@pytest.mark.parametrize("order", [3, 5])
@pytest.mark.parametrize("bits", [64, 32])
def test_probing_scores_equal_the_trie_and_the_arpa_model(order, bits, tmp_path, test_sentences):
    arpa = read_arpa(KENLM / f"mkn{order}.arpa.gz")
    write_binary(arpa, tmp_path / "p.lmbin", prob_bits=bits, backoff_bits=bits, structure="probing")
    write_binary(arpa, tmp_path / "t.lmbin", prob_bits=bits, backoff_bits=bits)
    probing, trie = read_binary(tmp_path / "p.lmbin"), read_binary(tmp_path / "t.lmbin")
    assert probing.info["binary"]["structure"] == "probing" and trie.info["binary"]["structure"] == "trie"
    ids, pos = _stream(probing, test_sentences)
    fast = probing.score_stream(ids, pos, compiled=True)
    assert "probing" in probing._cache  # (the hash tables were used, not the trie)
    for x, y in zip(fast, trie.score_stream(ids, pos, compiled=True)):
        assert np.array_equal(x, y)
    for x, y in zip(fast, probing.score_stream(ids, pos, compiled=False)):  # the numpy path reads the trie
        assert np.array_equal(x, y)
    if bits == 64:
        for x, y in zip(fast, arpa.score_sentences(test_sentences, compiled=False)):
            assert np.array_equal(x, y)
    text = (KENLM / "test.txt").read_bytes()
    assert probing.evaluate_text(text) == trie.evaluate_text(text)
    # the trie's sections are all there: the model is a whole NgramModel
    assert probing.sizes() == arpa.sizes()
    assert all(np.array_equal(probing.keys[n], arpa.keys[n]) for n in range(order))


def test_every_ngram_is_in_its_table_with_its_values(tmp_path):
    arpa = read_arpa(KENLM / "mkn5.arpa.gz")
    write_binary(arpa, tmp_path / "p.lmbin", prob_bits=64, backoff_bits=64, structure="probing")
    model = read_binary(tmp_path / "p.lmbin")
    hashes = ngram_hashes(arpa)
    binary_mod._jit_helpers()
    for n in range(2, arpa.order + 1):
        words = model._cache[("probing", n)]
        count = arpa.sizes()[n - 1]
        assert len(words) == int(count * binary_mod.PROBING_MULTIPLIER) + 1  # KenLM's 1.5 slots per n-gram
        stored = (words[:, 1].astype(np.uint64) << np.uint64(32)) | words[:, 0].astype(np.uint64)
        assert np.count_nonzero(stored) == count
        assert len(np.unique(hashes[n - 2])) == count and not np.any(hashes[n - 2] == 0)
        slots = np.array([binary_mod._probe_compiled(words, h) for h in hashes[n - 2]])
        assert np.all(slots >= 0) and np.array_equal(stored[slots], hashes[n - 2])
        vals = words.view(np.float64)
        assert np.array_equal(vals[slots, 1], arpa.logprob[n - 1])
        if n < arpa.order:
            assert np.array_equal(vals[slots, 2], arpa.backoff[n - 1])
        # the numpy hashes are the kernel's: extend each n-gram's prefix hash by its last word
        for r in (0, count // 2, count - 1):
            key = int(arpa.keys[n - 1][r])
            prefix, w = divmod(key, arpa.V)
            before = (binary_mod._unigram_hash_compiled(prefix) if n == 2 else hashes[n - 3][prefix])
            assert binary_mod._extend_compiled(np.uint64(before), w) == hashes[n - 2][r]
    # an n-gram that is not listed is not found
    missing = binary_mod._extend_compiled(np.uint64(hashes[0][0]), arpa.V + 5)
    assert binary_mod._probe_compiled(model._cache[("probing", 3)], missing) == -1


def test_bigram_and_unigram_models(tmp_path, test_sentences):
    train = [line.split() for line in (KENLM / "train.txt").read_text().splitlines()[:300]]
    for order in (1, 2):
        model = build(train, order=order)
        write_binary(model, tmp_path / f"{order}.lmbin", prob_bits=64, backoff_bits=64, structure="probing")
        mapped = read_binary(tmp_path / f"{order}.lmbin")
        assert mapped.info["binary"]["structure"] == ("probing" if order == 2 else "trie")
        for x, y in zip(mapped.score_sentences(test_sentences), model.score_sentences(test_sentences, compiled=False)):
            assert np.array_equal(x, y)


def test_refusals(tmp_path, monkeypatch):
    arpa = read_arpa(KENLM / "mkn3.arpa.gz")
    with pytest.raises(UsageError, match="quantised values need the trie"):
        write_binary(arpa, tmp_path / "q.lmbin", prob_bits=8, backoff_bits=8, structure="probing")
    with pytest.raises(UsageError, match="one width"):
        write_binary(arpa, tmp_path / "q.lmbin", prob_bits=64, backoff_bits=32, structure="probing")
    with pytest.raises(UsageError, match="trie, probing"):
        write_binary(arpa, tmp_path / "q.lmbin", structure="hash")
    assert not (tmp_path / "q.lmbin").exists()
    real = binary_mod._hash_orders

    def colliding(model):  # (the tables are made one order at a time, from these hashes)
        for n, hashes in enumerate(real(model), start=2):
            if n == 3:
                hashes[7] = hashes[3]
            yield hashes

    monkeypatch.setattr(binary_mod, "_hash_orders", colliding)
    with pytest.raises(FormatError, match="1 3-grams share a 64-bit hash"):
        write_binary(arpa, tmp_path / "c.lmbin", structure="probing")
    assert not (tmp_path / "c.lmbin").exists()


def test_a_probing_section_that_does_not_fit_is_refused(tmp_path):
    """A header whose probing table is too short for its n-grams (CRCs made consistent) is refused on load."""
    arpa = read_arpa(KENLM / "mkn3.arpa.gz")
    path = tmp_path / "p.lmbin"
    write_binary(arpa, path, structure="probing")  # (float32 values by default: 4 words a bigram slot)
    assert read_binary(path).info["binary"]["prob_bits"] == 32
    raw = bytearray(path.read_bytes())
    _, version, length, _, payload_crc, size = _PREFIX.unpack(raw[: _PREFIX.size])
    header = json.loads(raw[_PREFIX.size: _PREFIX.size + length])
    entry = next(e for e in header["sections"] if e["name"] == "probing.2")
    entry["length"] = 4 * (arpa.sizes()[1] - 1)
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * (length - len(text))
    raw[: _PREFIX.size] = _PREFIX.pack(raw[:8], version, length, _header_crc(version, length, payload_crc, size, text),
                                       payload_crc, size)
    raw[_PREFIX.size: _PREFIX.size + length] = text
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="'probing.2' does not fit its n-grams"):
        read_binary(path)


def test_cli_probing(tmp_path, cli):
    from lmlab.cli.ngram import app

    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    def ppl(stdout):
        return float(re.search(r"Perplexity including OOVs:\s+(\S+)", stdout).group(1))

    f32, out = tmp_path / "m32.lmbin", tmp_path / "m.lmbin"
    r = run("binarize", "--structure", "probing", KENLM / "mkn5.arpa.gz", f32)
    assert r.exit_code == 0, r.stderr
    assert read_binary(f32).info["binary"]["structure"] == "probing"
    assert read_binary(f32).info["binary"]["prob_bits"] == 32  # KenLM's probing values by default
    assert "binary probing, float32 values" in " ".join(run("check", f32).stdout.split())  # (rich wraps lines)
    ref = run("eval", KENLM / "mkn5.arpa.gz", KENLM / "test.txt").stdout
    assert ppl(run("eval", f32, KENLM / "test.txt").stdout) == pytest.approx(ppl(ref), rel=1e-7)
    r = run("binarize", "--structure", "probing", "-q", "64", "-b", "64", KENLM / "mkn5.arpa.gz", out)
    assert r.exit_code == 0, r.stderr
    assert run("eval", out, KENLM / "test.txt").stdout.splitlines()[:5] == ref.splitlines()[:5]  # exact values
    ref_score = run("score", KENLM / "mkn5.arpa.gz", KENLM / "test20.txt", "--per", "word").stdout
    assert run("score", out, KENLM / "test20.txt", "--per", "word").stdout == ref_score
    built = tmp_path / "built.lmbin"
    r = run("build", KENLM / "train.txt", "-o", built, "--order", "3", "--format", "binary", "--structure", "probing")
    assert r.exit_code == 0, r.stderr
    assert read_binary(built).info["binary"]["structure"] == "probing"
    assert ppl(run("eval", built, KENLM / "test.txt").stdout) == pytest.approx(292.50465845833617, rel=1e-6)  # KenLM
    proc = cli("ngram", "binarize", "--structure", "probing", "-q", "8", str(KENLM / "mkn3.arpa.gz"),
               str(tmp_path / "q.lmbin"))
    assert proc.returncode != 0 and "quantised values need the trie" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "q.lmbin").exists()
    proc = cli("ngram", "build", str(KENLM / "train.txt"), "-o", str(tmp_path / "x.lmbin"), "--format", "binary",
               "--structure", "hashed")
    assert proc.returncode != 0 and "--structure must be one of trie, probing" in proc.stderr
