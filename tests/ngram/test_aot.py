"""Kernels compiled ahead of time (lmlab.aot, numba.pycc) give exactly what numba's JIT gives.

A module is built here, into a temporary folder, for a few variants (a full build takes about a
minute); the kernels are pointed at it, and a mapped binary model scores text through it, in this
process and in a fresh one that must not import numba at all. Stale manifests and arguments that
fit no variant fall back to the JIT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from _ngramkit import KENLM  # noqa: E402

from lmlab import _numba, aot  # noqa: E402
from lmlab.ngram import read_arpa, read_binary, write_binary  # noqa: E402

SYMBOLS = {"build_table", "count_tokens", "fill", "lookup_spans", "partials", "decimal_floats", "trie_3_f8",
           "child_rows_u4", "probing_3_f4"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aot")
    aot.build(folder, only=SYMBOLS, quiet=True)
    return folder


@pytest.fixture
def pointed(built, monkeypatch):
    """Every kernel looks for its ahead-of-time variants in the folder built above."""
    for kernel, _, _ in aot.variants():
        monkeypatch.setattr(kernel, "aot_folder", built)
    return built


def _models(tmp_path, structure="trie"):
    arpa = read_arpa(KENLM / "mkn3.arpa.gz")
    path = tmp_path / f"m.{structure}.lmbin"
    write_binary(arpa, path, structure=structure)
    return arpa, path


def test_the_manifest_lists_what_was_built(built):
    manifest = json.loads((built / f"{_numba.AOT_MODULE}.json").read_text())
    symbols = {v["symbol"] for variants in manifest["kernels"].values() for v in variants}
    assert symbols == SYMBOLS
    assert manifest["key"] == _numba.aot_key(manifest["sources"])
    assert _numba._aot_variants("lmlab.ngram.binary._trie_kernel", built)


@pytest.mark.parametrize("structure", ["trie", "probing"])
def test_binary_model_scores_the_same_through_the_compiled_module(pointed, tmp_path, test_sentences, monkeypatch,
                                                                   structure):
    arpa, path = _models(tmp_path, structure)
    data = "\n".join(" ".join(s) for s in test_sentences + [["qqqzzz", "the"]]).encode()
    kernel = "lmlab.ngram.binary._" + ("trie" if structure == "trie" else "probing") + "_kernel"
    assert _numba._aot_variants(kernel, pointed)
    with_aot = read_binary(path).evaluate_text(data)
    for k, _, _ in aot.variants():
        monkeypatch.setattr(k, "aot_folder", tmp_path / "nothing-here")
    assert not _numba._aot_variants(kernel, tmp_path / "nothing-here")
    jit = read_binary(path).evaluate_text(data)
    assert with_aot == jit and with_aot.oovs > 0


def test_each_kernel_gives_the_jit_result(pointed):
    from lmlab.ngram import arpa as arpa_mod
    from lmlab.ngram import model as model_mod
    from lmlab.ngram import textenc

    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000) * 10.0 ** rng.integers(-20, 20, size=100_000)
    for kernel, args in ((model_mod.PARTIALS, (values, np.zeros(128))),
                         (textenc.KERNELS[1], (np.frombuffer(b"a bb  ccc\n d\n\n e ", dtype=np.uint8),))):
        aot_out = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        jit_out = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        assert kernel(*aot_out) == kernel.jitted(*jit_out)
        assert all(np.array_equal(x, y) for x, y in zip(aot_out, jit_out) if isinstance(x, np.ndarray))
    text = np.frombuffer(b"-1.25 0.5 -99 3e-2 +7 12345678901234567890", dtype=np.uint8)
    starts, ends = np.array([0, 6, 10, 14, 19, 22]), np.array([5, 9, 13, 18, 21, 42])
    got = [(np.empty(6), np.empty(6, dtype=bool)) for _ in range(2)]
    arpa_mod.DECIMALS(text, starts, ends, *got[0])
    arpa_mod.DECIMALS.jitted(text, starts, ends, *got[1])
    assert np.array_equal(got[0][0][got[0][1]], got[1][0][got[1][1]]) and np.array_equal(got[0][1], got[1][1])


def test_arguments_that_fit_no_variant_go_to_the_jit(pointed, tmp_path, test_sentences):
    """A 5-gram (only the 3-gram trie was built) and float32 values still score, through the JIT."""
    arpa = read_arpa(KENLM / "mkn5.arpa.gz")
    for bits in (64, 32):
        path = tmp_path / f"m{bits}.lmbin"
        write_binary(arpa, path, prob_bits=bits, backoff_bits=bits)
        model = read_binary(path)
        a, b = model.score_stream(*_stream(model, test_sentences), compiled=True), \
            model.score_stream(*_stream(model, test_sentences), compiled=False)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def _stream(model, sentences):
    from lmlab.ngram.counts import encode

    ids, pos, _ = encode(sentences, model.vocab)
    return ids, pos


def test_argument_specs():
    fits = _numba._fits
    a = np.arange(6, dtype=np.int64)
    assert fits(["int64", 1], a) and not fits(["int32", 1], a) and not fits(["int64", 2], a)
    assert not fits(["int64", 1], a[::2])  # not contiguous
    assert fits("int", 3) and fits("int", np.int64(3)) and not fits("int", True) and fits("bool", False)
    assert fits(["tuple", 2, ["int64", 1]], (a, a)) and not fits(["tuple", 3, ["int64", 1]], (a, a))
    assert not fits(["tuple", 2, ["int64", 1]], [a, a])


def test_a_stale_or_broken_manifest_is_not_used(built, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    manifest = json.loads((copy / f"{_numba.AOT_MODULE}.json").read_text())
    assert _numba._load_aot(copy)
    (copy / f"{_numba.AOT_MODULE}.json").write_text(json.dumps({**manifest, "key": "0" * 32}))
    assert _numba._load_aot(copy) == {}  # a kernel source edited since the build
    (copy / f"{_numba.AOT_MODULE}.json").write_text("{not json")
    assert _numba._load_aot(copy) == {}
    (copy / f"{_numba.AOT_MODULE}.json").write_text(json.dumps(manifest))
    for so in copy.glob(f"{_numba.AOT_MODULE}.*"):
        if so.suffix != ".json":
            so.unlink()
    assert _numba._load_aot(copy) == {}  # no module


@pytest.mark.parametrize("structure", ["trie", "probing"])
def test_a_fresh_process_scores_a_binary_model_without_importing_numba(built, tmp_path, test_sentences, structure):
    arpa, path = _models(tmp_path, structure)
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(s) for s in test_sentences) + "\n")
    script = ("import sys; from lmlab.ngram import load_model; m = load_model(sys.argv[1]); "
              "ev = m.evaluate_text(open(sys.argv[2], 'rb').read()); print(repr(ev.log10_prob), 'numba' in sys.modules)")
    env = {**os.environ, "LMLAB_AOT_DIR": str(built)}
    out = subprocess.run([sys.executable, "-c", script, str(path), str(text)], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out[1] == "False"
    assert float(out[0]) == read_binary(path).evaluate_text(text.read_bytes()).log10_prob
