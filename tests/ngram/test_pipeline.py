"""The one estimation pipeline (``lmlab.ngram.pipeline``): its stage events, that the library and
``lmlab ngram build`` give the same ARPA text, and that ARPA files are written atomically."""

from __future__ import annotations

import gzip
import os
import re

import pytest
from _ngramkit import KENLM
from typer.testing import CliRunner

from lmlab import io
from lmlab.cli.ngram import app
from lmlab.errors import UsageError
from lmlab.ngram import arpa, build, read_arpa, write_arpa
from lmlab.ngram.pipeline import PipelineConfig, StageEvent, Text, min_count_vocabulary
from lmlab.ngram.pipeline import build as pipeline_build

TRAIN = KENLM / "train.txt"
pytestmark = pytest.mark.filterwarnings("ignore::lmlab.ngram.smoothing.SmoothingWarning")  # Katz on small data


@pytest.fixture(scope="module")
def train_bytes() -> bytes:
    return TRAIN.read_bytes()


def _recorder():
    events: list[StageEvent] = []
    return events, events.append


def _arpa_text(model, path) -> str:
    write_arpa(model, path)
    return path.read_text(encoding="utf-8")


def _cli_build(tmp_path, name: str, *args: str) -> tuple[str, str]:
    """(ARPA text, stderr) of ``lmlab ngram build TRAIN -o NAME ARGS``."""
    out = tmp_path / name
    r = CliRunner().invoke(app, ["build", str(TRAIN), "-o", str(out), *args], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    return out.read_text(encoding="utf-8"), r.stderr


# --- stage events -------------------------------------------------------------------------------

def test_stage_events_fire_in_order_with_their_results(train_bytes):
    events, on_stage = _recorder()
    config = PipelineConfig(order=3, smoothing="mkn", prune=(0, 0, 1))
    model = pipeline_build(Text(train_bytes, "train.txt"), config, on_stage)

    assert [(e.stage, e.phase) for e in events] == [
        ("count", "start"), ("count", "end"), ("adjust", "start"), ("adjust", "end"),
        ("estimate", "start"), ("estimate", "end"), ("prune", "start"), ("prune", "end")]
    assert all(e.stages == ("count", "adjust", "estimate", "prune") and e.total == 4 for e in events)
    assert [e.index for e in events[::2]] == [1, 2, 3, 4]
    assert all(e.seconds == 0.0 for e in events[::2]) and all(e.seconds >= 0.0 for e in events[1::2])

    count, adjust, estimate, prune = events[1::2]
    # the KenLM fixture's numbers (tests/fixtures/kenlm/lmplz3.log and test_cli_ngram.py)
    assert (count.sentences, count.tokens, count.types) == (1650, 43330, 7488)
    assert count.sizes == (7488, 26271, 36847)
    assert adjust.count_of_counts[0] == (4602, 1264, 537, 245) and len(adjust.count_of_counts) == 3
    assert estimate.sizes == count.sizes
    assert estimate.info["method"] == "mkn" and estimate.info["order"] == 3
    assert round(estimate.info["discounts"][0][0], 6) == 0.645442
    assert prune.sizes == tuple(model.sizes()) == (7488, 26271, 2390)


@pytest.mark.parametrize(("config", "stages"), [
    (PipelineConfig(smoothing="katz"), ("count", "estimate")),
    (PipelineConfig(smoothing="kn", target_size=10_000), ("count", "adjust", "estimate", "prune")),
    (PipelineConfig(smoothing="witten-bell", prune_entropy=1e-7), ("count", "estimate", "prune")),
])
def test_a_run_has_the_stages_its_config_needs(config, stages, train_sentences):
    events, on_stage = _recorder()
    pipeline_build(train_sentences[:400], config, on_stage)
    assert config.stages() == stages
    assert [e.stage for e in events[1::2]] == list(stages)


def test_loaders_run_inside_their_stage(train_sentences):
    """The training text is read at the start of counting, held-out text only by a method that tunes."""
    calls: list[str] = []

    def on_stage(event):
        calls.append(f"{event.stage}:{event.phase}")

    def source():
        calls.append("read train")
        return train_sentences[:300]

    def heldout():
        calls.append("read heldout")
        return train_sentences[300:400]

    pipeline_build(source, PipelineConfig(smoothing="jelinek-mercer"), on_stage, heldout=heldout)
    assert calls == ["count:start", "read train", "count:end", "estimate:start", "read heldout", "estimate:end"]
    calls.clear()
    pipeline_build(source, PipelineConfig(smoothing="katz"), on_stage, heldout=heldout)
    assert "read heldout" not in calls


def test_no_callback_same_model(train_sentences):
    config = PipelineConfig(order=3, smoothing="mkn")
    quiet = pipeline_build(train_sentences, config)
    events, on_stage = _recorder()
    loud = pipeline_build(train_sentences, config, on_stage)
    assert quiet.sizes() == loud.sizes() and events


# --- one pipeline: library == CLI ----------------------------------------------------------------

@pytest.mark.parametrize(("smoothing", "order"), [("mkn", 3), ("katz", 3), ("jelinek-mercer", 2), ("kn", 4)])
def test_library_build_and_cli_write_the_same_arpa(tmp_path, train_sentences, smoothing, order):
    cli_text, _ = _cli_build(tmp_path, "cli.arpa", "--order", str(order), "-s", smoothing)
    lib_text = _arpa_text(build(train_sentences, order=order, smoothing=smoothing), tmp_path / "lib.arpa")
    assert lib_text == cli_text


def test_pruned_and_closed_vocabulary_builds_match_the_cli(tmp_path, train_bytes):
    cli_text, stderr = _cli_build(tmp_path, "cli.arpa", "-s", "katz", "--vocab-min-count", "2",
                                  "--prune", "0", "--prune", "1", "--prune-entropy", "1e-7")
    config = PipelineConfig(order=3, smoothing="katz", vocab_min_count=2, prune=(0, 1), prune_entropy=1e-7)
    lib_text = _arpa_text(pipeline_build(Text(train_bytes), config), tmp_path / "lib.arpa")
    assert lib_text == cli_text
    assert "=== 3/4 Pruning ===" in stderr


def test_text_and_sentences_count_the_same(tmp_path, train_bytes, train_sentences):
    config = PipelineConfig(order=3, smoothing="mkn")
    from_text = _arpa_text(pipeline_build(Text(train_bytes), config), tmp_path / "a.arpa")
    from_sentences = _arpa_text(pipeline_build(train_sentences, config), tmp_path / "b.arpa")
    assert from_text == from_sentences


def test_cli_prints_the_stages_lmplz_style(tmp_path):
    _, stderr = _cli_build(tmp_path, "m.arpa", "--order", "2", "--prune", "0", "--prune", "1")
    lines = [re.sub(r"\d+\.\d\ds", "T", line) for line in stderr.splitlines()]  # (the old code printed the same)
    assert lines[:7] == [
        "=== 1/4 Counting n-grams ===",
        "Sentences 1650 tokens 43330 types 7488",
        "1-grams: 7488",
        "2-grams: 26271",
        "=== 2/4 Estimating (mkn) [T] ===",
        "1 7488 n1..n4=[4602, 1264, 537, 245] D1=0.645442 D2=1.17737 D3+=1.8221",
        "2 26271 n1..n4=[21834, 2486, 766, 382] D1=0.814519 D2=1.24708 D3+=1.37522",
    ]
    assert lines[7:10] == ["=== 3/4 Pruning ===", "kept: 1-grams 7488, 2-grams 4437",
                           "=== 4/4 Writing ARPA model [T] ==="]
    wrote = re.sub(r"\d+\.\d\ds", "T", " ".join(stderr.split()))  # rich wraps long lines
    assert lines[10].startswith("wrote ") and wrote.endswith("(2-gram mkn model, vocabulary 7488; 1-grams: 7488, "
                                                          "2-grams: 4437) in T; total T")


def test_min_count_vocabulary_is_data_vocab_closed_vocabulary(train_sentences):
    from lmlab.data.vocab import closed_vocabulary

    for k in (2, 3):
        assert min_count_vocabulary(train_sentences, k).words == closed_vocabulary(train_sentences, k)


def test_vocab_and_min_count_together_is_an_error(train_sentences):
    with pytest.raises(UsageError, match="not both"):
        pipeline_build(train_sentences, PipelineConfig(vocab_min_count=2), vocab=["the"])


# --- atomic ARPA writes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model(train_sentences):
    return build(train_sentences[:200], order=3)


def _fail_after_first_chunk(monkeypatch):
    real = arpa._ngram_lines
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("disk full (simulated)")
        return real(*args)

    monkeypatch.setattr(arpa, "_ngram_lines", flaky)


@pytest.mark.parametrize("name", ["m.arpa", "m.arpa.gz"])
def test_error_mid_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, small_model, name):
    out = tmp_path / name
    out.write_bytes(b"the old model\n")
    _fail_after_first_chunk(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        write_arpa(small_model, out)
    assert out.read_bytes() == b"the old model\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_error_mid_write_creates_nothing(tmp_path, monkeypatch, small_model):
    _fail_after_first_chunk(monkeypatch)
    with pytest.raises(OSError):
        write_arpa(small_model, tmp_path / "new.arpa")
    assert list(tmp_path.iterdir()) == []


def test_write_arpa_gz_round_trip(tmp_path, small_model):
    plain, zipped = tmp_path / "m.arpa", tmp_path / "m.arpa.gz"
    write_arpa(small_model, plain)
    write_arpa(small_model, zipped)
    assert gzip.decompress(zipped.read_bytes()) == plain.read_bytes()
    assert read_arpa(zipped).sizes() == small_model.sizes()


def test_atomic_open_on_interrupt_and_permissions(tmp_path):
    out = tmp_path / "f.bin"
    with io.atomic_open(out) as f:
        f.write(b"one")
    assert out.read_bytes() == b"one"
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_open(out) as f:
            f.write(b"two, half")
            raise KeyboardInterrupt
    assert out.read_bytes() == b"one" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with io.atomic_open(tmp_path / "sub" / "g.gz", gz=True) as f:
        f.write(b"zipped")
    assert gzip.decompress((tmp_path / "sub" / "g.gz").read_bytes()) == b"zipped"
