"""Estimation on disk under a memory budget (lmlab.ngram.ondisk): the same ARPA bytes as the in-memory build.

The KenLM fixture text (tests/fixtures/kenlm/train.txt) is counted with a 64K budget: 4 KB
text chunks (tens of spilled runs per order, merged in rounds) and passes over 64-row chunks,
so every chunk boundary case (a history's children split by the size, cut at the history's
end) is met many times.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from _ngramkit import KENLM
from typer.testing import CliRunner

from lmlab.cli.ngram import app
from lmlab.ngram import read_arpa, write_arpa
from lmlab.ngram.ondisk import FileArray, OnDisk, _bisect
from lmlab.ngram.pipeline import PipelineConfig, Text, Written, build, build_arpa, on_disk

TRAIN = (KENLM / "train.txt").read_bytes()


_MEMORY: dict = {}


def _in_memory(tmp_path, order, method, vocab=None):
    """The ARPA bytes of the in-memory build (made once per configuration)."""
    key = (order, method, tuple(vocab or ()))
    if key not in _MEMORY:
        out = tmp_path / "mem.arpa"
        write_arpa(build(Text(TRAIN, "train"), PipelineConfig(order=order, smoothing=method), vocab=vocab), out)
        _MEMORY[key] = out.read_bytes()
    return _MEMORY[key]


@pytest.mark.parametrize(("method", "order"), [("mkn", 3), ("mkn", 1), ("kn", 2), ("absolute", 3)])
def test_spilled_on_disk_build_is_byte_identical(tmp_path, method, order):
    temp = tmp_path / "temp"
    temp.mkdir()
    config = PipelineConfig(order=order, smoothing=method, memory="64K", temp=str(temp))
    assert on_disk(config)
    written = build_arpa(Text(TRAIN, "train"), config, tmp_path / "disk.arpa")
    assert isinstance(written, Written) and written.order == order
    assert (tmp_path / "disk.arpa").read_bytes() == _in_memory(tmp_path, order, method)
    assert not list(temp.iterdir())  # the runs and per-order files are removed


def test_the_kenlm_fixture_5gram_from_disk_matches_lmplz(tmp_path):
    build_arpa(Text(TRAIN, "train"), PipelineConfig(order=5, memory="64K"), tmp_path / "m.arpa.gz")
    ours = read_arpa(tmp_path / "m.arpa.gz")
    theirs = read_arpa(KENLM / "mkn5.arpa.gz")
    assert ours.sizes() == theirs.sizes()
    test = [line.split() for line in (KENLM / "test.txt").read_text(encoding="utf-8").splitlines()]
    assert ours.perplexity(test) == pytest.approx(theirs.perplexity(test), rel=1e-6)
    with gzip.open(tmp_path / "m.arpa.gz") as f:  # .gz: the same bytes, compressed
        assert f.read() == _in_memory(tmp_path, 5, "mkn")


@pytest.mark.filterwarnings("ignore::lmlab.ngram.smoothing.SmoothingWarning")  # 4 words: fallback discounts
def test_one_run_when_the_text_fits_and_a_closed_vocabulary(tmp_path):
    vocab = ["the", "of", ",", "zebra"]
    build_arpa(Text(TRAIN, "train"), PipelineConfig(order=3, memory="2G"), tmp_path / "a.arpa", vocab=vocab)
    assert (tmp_path / "a.arpa").read_bytes() == _in_memory(tmp_path, 3, "mkn", vocab=vocab)


def test_worker_processes_give_the_same_file(tmp_path):
    config = PipelineConfig(order=3, memory="256K", workers=2)
    build_arpa(Text(TRAIN, "train"), config, tmp_path / "w.arpa")
    assert (tmp_path / "w.arpa").read_bytes() == _in_memory(tmp_path, 3, "mkn")


@pytest.mark.parametrize("method", ["witten-bell", "katz"])
def test_other_methods_under_a_budget_are_estimated_in_memory_from_spilled_counts(tmp_path, method):
    config = PipelineConfig(order=3, smoothing=method, memory="64K")
    assert not on_disk(config)
    model = build_arpa(Text(TRAIN, "train"), config, tmp_path / "b.arpa")
    assert not isinstance(model, Written)
    assert (tmp_path / "b.arpa").read_bytes() == _in_memory(tmp_path, 3, method)


def test_stages_report_counts_and_discounts(tmp_path):
    events = []
    build_arpa(Text(TRAIN, "train"), PipelineConfig(order=3, memory="64K"), tmp_path / "m.arpa", events.append)
    ends = {e.stage: e for e in events if e.phase == "end"}
    assert [e.stage for e in events if e.phase == "start"] == ["count", "adjust", "estimate"]
    memory_events = []
    build(Text(TRAIN, "train"), PipelineConfig(order=3), memory_events.append)
    mem = {e.stage: e for e in memory_events if e.phase == "end"}
    for stage, fields in [("count", ("sizes", "sentences", "tokens", "types")), ("adjust", ("count_of_counts",)),
                          ("estimate", ("sizes",))]:
        for name in fields:
            assert getattr(ends[stage], name) == getattr(mem[stage], name), (stage, name)
    assert ends["estimate"].info["discounts"] == mem["estimate"].info["discounts"]


def test_file_array_reads_pieces_and_bisects_like_searchsorted(tmp_path):
    values = np.array([1, 3, 3, 3, 7, 9, 12], dtype=np.int64)
    np.save(tmp_path / "v.npy", values, allow_pickle=False)
    a = FileArray.npy(tmp_path / "v.npy")
    assert len(a) == 7 and a[2:5].tolist() == [3, 3, 7] and a[6] == 12 and a[5:99].tolist() == [9, 12]
    for x in range(0, 14):
        for right in (False, True):
            assert _bisect(a, x, right) == np.searchsorted(values, x, side="right" if right else "left")


def test_merged_prefix_rows_point_at_their_prefixes(tmp_path):
    disk = OnDisk(tmp_path, 3, 1 << 16)
    disk.count(TRAIN, None, "train")
    for n in (2, 3):
        ids = disk.rows[n][0: disk.sizes[n - 1]].view(">u4").reshape(-1, n)
        prefix = disk.prefix[n][0: disk.sizes[n - 1]]
        if n == 2:
            assert np.array_equal(prefix, ids[:, 0])
        else:
            below = disk.rows[n - 1][0: disk.sizes[n - 2]].view(">u4").reshape(-1, n - 1)
            assert np.array_equal(below[prefix], ids[:, :-1])
    assert len(list((tmp_path / "runs").iterdir())) == 0  # merged runs are deleted as each order is done


def test_cli_build_with_a_budget_writes_the_same_file(tmp_path):
    train = tmp_path / "train.txt"
    train.write_bytes(TRAIN)
    temp = tmp_path / "tmp"
    temp.mkdir()
    runner = CliRunner()
    got = runner.invoke(app, ["build", str(train), "-o", str(tmp_path / "a.arpa"), "-n", "3",
                              "--memory", "64K", "--temp", str(temp)])
    assert got.exit_code == 0, got.output
    assert "written while estimating" in got.output
    assert (tmp_path / "a.arpa").read_bytes() == _in_memory(tmp_path, 3, "mkn")
    assert not list(temp.iterdir())


@pytest.mark.parametrize("width", [2, 3, 4])
def test_merge_join_is_searchsorted_for_sorted_queries(width):
    """The compiled merge-join the on-disk merge uses for big models' prefixes (ondisk._searchsorted_sorted)
    gives np.searchsorted's left positions, for queries in the table and not, repeated, before and after it."""
    from lmlab.ngram.ondisk import _searchsorted_sorted

    rng = np.random.default_rng(width)
    rows = lambda a: a.astype(">u4").view(f"S{4 * width}").ravel()  # noqa: E731 - word ids -> sortable bytes
    table = np.unique(rows(rng.integers(1, 60, (3000, width))))
    queries = np.sort(np.concatenate([rng.choice(table, 5000), rows(rng.integers(0, 62, (500, width)))]))
    for compiled in (True, False):
        assert np.array_equal(_searchsorted_sorted(table, queries, compiled), np.searchsorted(table, queries))
    assert np.array_equal(_searchsorted_sorted(table[:0], queries[:4]), np.zeros(4, dtype=np.int64))
