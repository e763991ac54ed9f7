"""``lmlab ngram`` through the CLI with KenLM's habits (in-process runner; one subprocess for errors)."""

from __future__ import annotations

import re

import pytest
from _ngramkit import KENLM
from typer.testing import CliRunner

from lmlab.cli.ngram import app
from lmlab.errors import ConfigError


class _Result:
    def __init__(self, r):
        self.returncode, self.stdout, self.stderr = r.exit_code, r.stdout, r.stderr


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return _Result(runner.invoke(app, list(args), catch_exceptions=False))

    return invoke


def test_build_eval_score_sample(run, tmp_path):
    arpa = tmp_path / "m.arpa"
    r = run("build", str(KENLM / "train.txt"), "-o", str(arpa), "--order", "3")
    assert r.returncode == 0, r.stderr
    assert "=== 1/3 Counting n-grams ===" in r.stderr and "D1=0.645442" in r.stderr
    r = run("eval", str(arpa), str(KENLM / "test.txt"))
    assert r.returncode == 0, r.stderr
    ppl = float(re.search(r"Perplexity including OOVs:\s+(\S+)", r.stdout).group(1))
    assert abs(ppl / 292.50465845833617 - 1) < 1e-4  # KenLM query on the same data
    assert re.search(r"OOVs:\s+694", r.stdout) and re.search(r"Tokens:\s+5691", r.stdout)
    r = run("score", str(arpa), str(KENLM / "test20.txt"), "--per", "word")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0].split("\t")
    assert first[0] == "acting=549 1 -4.299633" and first[-1].startswith("Total: ")
    r = run("sample", str(arpa), "-n", "2", "--seed", "3")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) >= 2


def test_build_with_pruning_and_method(run, tmp_path):
    arpa = tmp_path / "p.arpa"
    r = run("build", str(KENLM / "train.txt"), "-o", str(arpa), "--order", "3", "-s", "katz",
            "--prune", "0", "--prune", "0", "--prune", "1")
    assert r.returncode == 0, r.stderr
    assert "=== 3/4 Pruning ===" in r.stderr
    assert "ngram 3=2390" in arpa.read_text()[:200]


def test_errors_are_one_line(cli, run, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'mkn'"):
        run("build", str(KENLM / "train.txt"), "-o", str(tmp_path / "x.arpa"), "-s", "mkm")
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n\\end\\\n")
    r = cli("ngram", "eval", str(bad), str(KENLM / "test.txt"))
    assert r.returncode == 2 and "header says 2" in r.stderr and "Traceback" not in r.stderr


def test_compare_writes_table(run, tmp_path):
    out = tmp_path / "cmp"
    r = run("compare", str(KENLM / "train.txt"), "--methods", "mkn,katz,witten-bell",
            "--orders", "2", "--fractions", "0.5,1.0", "--out", str(out))
    assert r.returncode == 0, r.stderr
    table = (out / "comparison.md").read_text()
    assert table.count("\n") == 5 and "| mkn |" in table
    assert len((out / "comparison.csv").read_text().splitlines()) == 1 + 3 * 2
