"""Issue 20: SIGKILL at random points of writing, and a disk that fills up, never cost the user a file.

Outputs are written to a hidden temporary file in the same folder and renamed over the old one
(lmlab.io.atomic_open / atomic_dir), so whenever the process dies the output path holds either
the old bytes or the complete new file; a write that fails for want of room (here a file-size
limit, ``ulimit -f``, which fails writes with EFBIG exactly as a full disk fails them with ENOSPC)
is a one-line error naming the file, and the old file is kept. A SIGKILLed run can leave its
hidden ``.NAME.PID.HEX.tmp`` behind (nothing runs after SIGKILL); it never replaces anything.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PRECIOUS = b"precious bytes the user had\n"


def _corpus(path: Path, lines: int) -> Path:
    rng = random.Random(0)
    words = "the cat sat on a mat dog ran far city river music art long".split() + [f"w{i}" for i in range(2000)]
    path.write_text("".join(" ".join(rng.choice(words) for _ in range(14)) + " .\n" for _ in range(lines)))
    return path


def _lmlab(*args: str, limit_bytes: int | None = None) -> subprocess.Popen:
    def limit():
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([sys.executable, "-m", "lmlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=limit)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("command", ["ngram", "embed"])
def test_sigkill_while_writing_leaves_the_old_or_the_complete_file(tmp_path, command):
    corpus = _corpus(tmp_path / "corpus.txt", 12_000)
    out = tmp_path / ("out.arpa" if command == "ngram" else "out.vec")
    args = (["ngram", "build", str(corpus), "-o", str(out), "--order", "3", "--force"] if command == "ngram" else
            ["embed", "train", "word2vec", str(corpus), "-o", str(out), "--min-count", "1", "--epochs", "1",
             "--size", "50", "--workers", "1", "--force"])
    out.write_bytes(PRECIOUS)
    t0 = time.perf_counter()
    full = _lmlab(*args)
    _, err = full.communicate(timeout=300)
    seconds = time.perf_counter() - t0
    assert full.returncode == 0, err
    complete = out.read_bytes()
    assert complete != PRECIOUS
    rng = random.Random(20)
    for _ in range(3):
        out.write_bytes(PRECIOUS)
        run = _lmlab(*args)
        time.sleep(rng.uniform(0.3, 0.95) * seconds)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        assert out.read_bytes() in (PRECIOUS, complete)
        for name in _leftovers(tmp_path, {corpus.name, out.name}):
            assert name.startswith(f".{out.name}.") and name.endswith(".tmp"), name
            (tmp_path / name).unlink()


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    corpus = _corpus(tmp_path / "corpus.txt", 3_000)
    out = tmp_path / "out.arpa"
    out.write_bytes(PRECIOUS)
    run = _lmlab("ngram", "build", str(corpus), "-o", str(out), "--order", "3", "--force", limit_bytes=20_000)
    _, err = run.communicate(timeout=300)
    assert run.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("lmlab: error: cannot write") and str(out) in last and "old file is kept" in last
    assert "Traceback" not in err
    assert out.read_bytes() == PRECIOUS
    assert _leftovers(tmp_path, {corpus.name, out.name}) == []  # the temporary file was removed


def test_a_full_disk_while_saving_a_model_folder_keeps_nothing_half_written(tmp_path):
    corpus = _corpus(tmp_path / "corpus.txt", 800)
    vec, folder = tmp_path / "v.vec", tmp_path / "ft"
    run = _lmlab("embed", "train", "fasttext", str(corpus), "-o", str(vec), "--save-model", str(folder),
                 "--min-count", "1", "--epochs", "1", "--size", "40", "--bucket", "20000", "--workers", "1",
                 limit_bytes=150_000)
    _, err = run.communicate(timeout=300)
    assert run.returncode != 0, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("lmlab: error: cannot write")
    assert not folder.exists() or not any(folder.iterdir())
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture(autouse=True)
def _no_core_dumps():
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, old[1]))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, old)


if os.name != "posix":  # pragma: no cover
    pytest.skip("signals and rlimits are POSIX", allow_module_level=True)
