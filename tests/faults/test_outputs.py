"""Issue 20: no command replaces an existing output without --force, none ever writes over its own
input, and an unwritable output folder is refused before the work starts -- one line, no traceback.

Every file-writing command of ``lmlab ngram``, ``embed``, ``tokenizer`` and ``corpus`` is run (as a
user would, in a subprocess) on a tiny text; the rule itself is :func:`lmlab.cli.common.check_output`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lmlab.cli.common import check_output, check_range
from lmlab.errors import UsageError

PRECIOUS = b"precious bytes the user had\n"
WORDS = "the cat sat on a mat dog ran far city river music art long is was and of".split()


def _text(path: Path, lines: int = 40) -> Path:
    rng = random.Random(0)
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(12)) + " .\n" for _ in range(lines)),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny document-per-line text and a bigram ARPA model built on it."""
    from lmlab.ngram import build, write_arpa

    folder = tmp_path_factory.mktemp("base")
    docs = _text(folder / "docs.txt")
    sentences = [line.split() for line in docs.read_text().splitlines()]
    write_arpa(build(sentences, order=2, smoothing="mkn"), folder / "base.arpa")
    return docs, folder / "base.arpa"


@dataclass
class Case:
    """A command writing ``out``: ``args(text, out)`` (text: its input file or folder); ``folder``: out is a folder;
    ``own_input(tmp, text)``: the (input, out) pair that makes its output its own input."""

    name: str
    args: Callable[[Path, Path, Path], list[str]]  # (text, out, arpa) -> argv
    folder: bool = False
    text_folder: bool = False  # the input is a folder (one text file in it)
    forced_run: bool = True  # the --force case runs the whole command


def _own_is_input(text: Path, out: Path) -> Path:
    return text


CASES = [
    Case("ngram build -o", lambda t, o, a: ["ngram", "build", str(t), "-o", str(o), "--order", "2"]),
    Case("ngram adapt --out", lambda t, o, a: ["ngram", "adapt", "cache", "-m", str(a), "-c", str(t),
                                               "--cache-size", "5", "--decay", "0", "--out", str(o)]),
    Case("ngram compare --out", lambda t, o, a: ["ngram", "compare", str(t), "--methods", "mkn", "--orders", "2",
                                                 "--fractions", "1.0", "--out", str(o.parent)]),
    Case("embed train -o", lambda t, o, a: ["embed", "train", "word2vec", str(t), "-o", str(o), "--size", "8",
                                            "--epochs", "1", "--min-count", "1", "--workers", "1"]),
    Case("embed train --save-model", lambda t, o, a: ["embed", "train", "word2vec", str(t), "-o", str(o.parent / "v.txt"),
                                                      "--save-model", str(o), "--size", "8", "--epochs", "1",
                                                      "--min-count", "1", "--workers", "1"],
         folder=True, text_folder=True),
    Case("embed classify --out", lambda t, o, a: ["embed", "classify", "rotten-tomatoes", "--out", str(o)],
         folder=True, forced_run=False),
    Case("tokenizer train --out", lambda t, o, a: ["tokenizer", "train", str(t), "--out", str(o), "--type", "word"],
         folder=True, text_folder=True),
    Case("corpus prepare --out", lambda t, o, a: ["corpus", "prepare", str(t), "--out", str(o)],
         folder=True, text_folder=True),
]
IDS = [c.name for c in CASES]


def _out_path(case: Case, tmp: Path) -> Path:
    if case.name == "ngram compare --out":
        return tmp / "cmp" / "comparison.md"  # one of the files it writes
    return tmp / ("out" if case.folder else "out.txt")


def _input(case: Case, tmp: Path, base) -> Path:
    if case.text_folder:
        (tmp / "corpus").mkdir()
        _text(tmp / "corpus" / "docs.txt")
        return tmp / "corpus"
    return _text(tmp / "docs.txt")


def _plant(path: Path, folder: bool) -> Path:
    """Something the user had at ``path``: a file, or a folder with a file in it; returns that file."""
    if folder:
        path.mkdir(parents=True, exist_ok=True)
        path = path / "precious.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PRECIOUS)
    return path


def _refused(run, *needles: str) -> str:
    """A refusal: exit code 2, one stderr line 'lmlab: error: ...', no traceback; returns the line."""
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmlab: error: "), run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_existing_output_is_kept(cli, tmp_path, base, case):
    text = _input(case, tmp_path, base)
    out = _out_path(case, tmp_path)
    kept = _plant(out, case.folder)
    line = _refused(cli(*case.args(text, out, base[1])), "--force")
    assert str(out) in line
    assert kept.read_bytes() == PRECIOUS


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "embed classify --out"], ids=IDS[:5] + IDS[6:])
def test_output_that_is_the_input_is_refused_even_with_force(cli, tmp_path, base, case):
    text = _input(case, tmp_path, base)
    if case.name == "ngram compare --out":  # the corpus file is one of the files compare writes
        (tmp_path / "cmp").mkdir()
        text = _text(tmp_path / "cmp" / "comparison.md")
    before = {p: p.read_bytes() for p in ([text] if text.is_file() else text.rglob("*"))}
    out = text
    line = _refused(cli(*case.args(text, out, base[1]), "--force"), "input")
    assert "--force does not change this" in line
    assert {p: p.read_bytes() for p in before} == before
    if text.is_dir():
        assert sorted(text.rglob("*")) == sorted(before)


def test_adapt_output_that_is_the_base_model_is_refused(cli, tmp_path, base):
    docs, arpa = base
    before = arpa.read_bytes()
    _refused(cli("ngram", "adapt", "cache", "-m", str(arpa), "-c", str(docs), "--out", str(arpa), "--force"), "input")
    assert arpa.read_bytes() == before


def test_folder_output_holding_the_input_is_refused(cli, tmp_path):
    """corpus prepare into the folder that holds its input file (or into a folder inside its input folder)."""
    text = _text(tmp_path / "docs.txt")
    _refused(cli("corpus", "prepare", str(text), "--out", str(tmp_path), "--force"), "holds the input")
    (tmp_path / "corpus").mkdir()
    _text(tmp_path / "corpus" / "docs.txt")
    _refused(cli("corpus", "prepare", str(tmp_path / "corpus"), "--out", str(tmp_path / "corpus" / "prep"), "--force"),
             "inside the input")
    assert not (tmp_path / "corpus" / "prep").exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.forced_run], ids=[c.name for c in CASES if c.forced_run])
def test_force_replaces(cli, tmp_path, base, case):
    text = _input(case, tmp_path, base)
    out = _out_path(case, tmp_path)
    kept = _plant(out, case.folder)
    run = cli(*case.args(text, out, base[1]), "--force")
    assert run.returncode == 0, run.stdout + run.stderr
    if case.folder:
        assert out.is_dir() and any(p.name != "precious.txt" for p in out.iterdir())
    else:
        assert out.is_file() and out.read_bytes() != PRECIOUS
    del kept


def test_mixture_sub_model_folder_is_kept(cli, tmp_path, base):
    docs, arpa = base
    kept = _plant(tmp_path / "mx", folder=True)
    line = _refused(cli("ngram", "adapt", "mixture", "-m", str(arpa), "-c", str(docs), "--out", str(tmp_path / "mx.json")),
                    "sub-model folder", "--force")
    assert str(tmp_path / "mx") in line and kept.read_bytes() == PRECIOUS
    assert not (tmp_path / "mx.json").exists()


def test_maxent_weights_file_is_kept(cli, tmp_path, base):
    docs, arpa = base
    kept = _plant(tmp_path / "me.safetensors", folder=False)
    _refused(cli("ngram", "adapt", "maxent", "-m", str(arpa), "-c", str(docs), "--out", str(tmp_path / "me.json")),
             "weights file", "--force")
    assert kept.read_bytes() == PRECIOUS


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_output_under_a_file_is_refused_before_the_work(cli, tmp_path, base, case):
    """The output's folder would have to be created where a file is: refused up front (works as root too)."""
    text = _input(case, tmp_path, base)
    blocker = _plant(tmp_path / "blocker", folder=False)
    out = blocker / "sub" / ("out" if case.folder else "comparison.md")
    _refused(cli(*case.args(text, out, base[1]), "--force"), "not a folder")
    assert blocker.read_bytes() == PRECIOUS


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_unwritable_folder_is_refused_before_the_work(cli, tmp_path, base, case):
    text = _input(case, tmp_path, base)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod 0o500 does not stop writes")
        out = locked / ("out" if case.folder else "comparison.md")
        # one line and nothing else on stderr: the refusal came before any progress of the work
        _refused(cli(*case.args(text, out, base[1])), "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_folder_in_process(tmp_path):
    """The same check through the helper, also for a missing folder below a read-only one."""
    if os.access("/proc", os.W_OK) and Path("/proc/self").exists():
        with pytest.raises(UsageError, match="cannot be created"):
            check_output(Path("/proc/lmlab-nope/x.arpa"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_output(tmp_path / "f" / "x.arpa")
    with pytest.raises(UsageError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output(tmp_path / "f", folder=True, force=True)
    assert check_output(tmp_path / "new" / "deeper" / "x.arpa") == tmp_path / "new" / "deeper" / "x.arpa"
    assert not (tmp_path / "new").exists()  # checked, not created


def test_same_file_through_another_name_is_refused(tmp_path):
    text = _text(tmp_path / "docs.txt")
    (tmp_path / "link.txt").symlink_to(text)
    (tmp_path / "hard.txt").hardlink_to(text)
    for alias in ("link.txt", "hard.txt", "./sub/../docs.txt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UsageError, match="is the input"):
            check_output(tmp_path / alias, inputs=(str(text),), force=True)
    with pytest.raises(UsageError, match="is the input"):
        check_output(text, inputs=(str(tmp_path / "*.txt"),), force=True)  # a glob input
    assert check_output(tmp_path / "new.arpa", inputs=("-", "wiki-vital:train", None, str(text))) == tmp_path / "new.arpa"


# ----------------------------------------------------------------------------- numeric option ranges

RANGES = [
    (["ngram", "build", "{t}", "-o", "{o}", "--order", "0"], "--order"),
    (["ngram", "build", "{t}", "-o", "{o}", "--vocab-min-count", "0"], "--vocab-min-count"),
    (["ngram", "build", "{t}", "-o", "{o}", "--delta", "0"], "--delta"),
    (["ngram", "build", "{t}", "-o", "{o}", "--prune", "-1"], "--prune"),
    (["ngram", "build", "{t}", "-o", "{o}", "--target-size", "0"], "--target-size"),
    (["ngram", "compare", "{t}", "--orders", "0,2"], "--orders"),
    (["ngram", "compare", "{t}", "--fractions", "0"], "--fractions"),
    (["ngram", "compare", "{t}", "--min-count", "0"], "--min-count"),
    (["ngram", "adapt", "maxent", "-m", "{a}", "-c", "{t}", "--epochs", "0"], "--epochs"),
    (["ngram", "adapt", "maxent", "-m", "{a}", "-c", "{t}", "--vocab-size", "-5"], "--vocab-size"),
    (["ngram", "adapt", "maxent", "-m", "{a}", "-c", "{t}", "--triggers", "-1"], "--triggers"),
    (["ngram", "adapt", "mixture", "-m", "{a}", "-c", "{t}", "--k", "0"], "--k"),
    (["embed", "train", "word2vec", "{t}", "-o", "{o}", "--epochs", "0"], "--epochs"),
    (["embed", "train", "word2vec", "{t}", "-o", "{o}", "--size", "0"], "--size"),
    (["embed", "train", "word2vec", "{t}", "-o", "{o}", "--min-count", "0"], "--min-count"),
    (["embed", "train", "word2vec", "{t}", "-o", "{o}", "--alpha", "0"], "--alpha"),
    (["embed", "train", "word2vec", "{t}", "-o", "{o}", "--window", "0"], "--window"),
    (["embed", "train", "fasttext", "{t}", "-o", "{o}", "--min-n", "4", "--max-n", "3"], "--max-n"),
    (["embed", "classify", "--epochs", "0"], "--epochs"),
    (["tokenizer", "train", "{t}", "--out", "{o}", "--vocab-size", "0"], "--vocab-size"),
    (["tokenizer", "train", "{t}", "--out", "{o}", "--vocab-size", "-5"], "--vocab-size"),
    (["corpus", "prepare", "{t}", "--out", "{o}", "--vocab-size", "0"], "--vocab-size"),
    (["corpus", "prepare", "{t}", "--out", "{o}", "--min-count", "0"], "--min-count"),
]


@pytest.mark.parametrize(("argv", "option"), RANGES, ids=[" ".join(a[:2]) + " " + o + "=" + a[-1] for a, o in RANGES])
def test_numeric_ranges(cli, tmp_path, base, argv, option):
    text = _text(tmp_path / "docs.txt")
    out = tmp_path / "out"
    args = [a.format(t=text, o=out, a=base[1]) for a in argv]
    line = _refused(cli(*args), option, "must be")
    assert not out.exists(), line


def test_check_range_keeps_documented_zeros():
    assert check_range("--negative", 0, minimum=0, meaning="0 turns negative sampling off") == 0
    assert check_range("--vocab-size", None, minimum=1) is None
    with pytest.raises(UsageError, match=r"--epochs must be >= 1, got 0"):
        check_range("--epochs", 0, minimum=1)
    with pytest.raises(UsageError, match=r"--lr must be > 0, got -1"):
        check_range("--lr", -1, above=0)
    with pytest.raises(UsageError, match=r"--fractions must be in \(0, 1\]|--fractions must be <= 1"):
        check_range("--fractions", 2, maximum=1)
