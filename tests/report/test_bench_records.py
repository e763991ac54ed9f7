"""Benchmark records (``--record DIR``), training FLOPs in demo records, the seq2seq baselines and tables."""

from __future__ import annotations

import json
import sys

import pytest

from lmlab.report import DemoRow
from lmlab.report.bench import FLOPS_6ND, metrics_from_text, transformer_train_flops
from lmlab.report.html import render
from lmlab.report.records import Record, demo_train_flops, from_demo_row, read_records

PRINTED = """repeat 0: train 1,234 vs 1,000 tok/s
{"texts": 1000, "speedup_median_of_rounds": 1.83, "rounds": {"lmlab": [1.0, 2.0]}, "load_average": [1.0, 2.0, 3.0],
 "nested": {"a": 2}, "ok": true}
| model | tokens/s (median step) | fastest step s |
|---|---|---|
| lmlab | 5,100 | 0.120 s |
| hf | **3,900** | n/a |

lmlab / HF: **1.29x**
"""


def test_numbers_come_out_of_printed_json_and_markdown_tables():
    metrics = metrics_from_text(PRINTED)
    assert metrics == {"texts": 1000.0, "speedup_median_of_rounds": 1.83, "nested.a": 2.0,
                       "lmlab | tokens/s (median step)": 5100.0, "lmlab | fastest step s": 0.12,
                       "hf | tokens/s (median step)": 3900.0}


def test_record_at_exit_writes_one_record_of_what_the_script_printed(tmp_path, capsys, monkeypatch):
    import atexit

    from lmlab.report.bench import record_at_exit

    monkeypatch.setattr(sys, "argv", ["benchmarks/tiny_bench.py", "--record", str(tmp_path / "rec")])
    before = sys.stdout
    write = record_at_exit(tmp_path / "rec", "benchmarks/tiny_bench.py")
    try:
        print("| what | wall |\n|---|---:|\n| lmlab | 1.50 s |")
        print(json.dumps({"ratio": 0.8}))
    finally:
        sys.stdout = before
        atexit.unregister(write)
    assert "| lmlab | 1.50 s |" in capsys.readouterr().out  # the output itself is unchanged
    write()
    (record,) = read_records([tmp_path / "rec"])
    assert record.metrics == {"lmlab | wall": 1.5, "ratio": 0.8}
    assert record.group == "benchmark" and record.model == "benchmarks/tiny_bench.py"
    assert record.notes == "python benchmarks/tiny_bench.py --record " + str(tmp_path / "rec") and record.machine["cpus"]
    page = render([record])
    assert "<h2>Benchmarks</h2>" in page and "data-metric='lmlab | wall'" in page
    write = record_at_exit(tmp_path / "none", "x.py")
    try:
        print("no numbers")
    finally:
        sys.stdout = before
        atexit.unregister(write)
    write()
    assert not (tmp_path / "none").exists()  # printed no number: no record


def test_demo_records_carry_training_flops_with_their_formula():
    row = DemoRow("transformer", "Transformer-XL 2x128", {"test ppl": 500.0}, 10.0, parameters=1000,
                  config={"steps": 10, "batch": 16, "segment": 32})
    flops, formula = demo_train_flops(row)
    assert flops == transformer_train_flops(1000, 10 * 16 * 32) == 6 * 1000 * 5120
    assert formula.startswith(FLOPS_6ND) and "10 steps x 16 x 32 tokens" in formula
    record = from_demo_row(row, "transfo-xl", corpus="c", corpus_sha256="0" * 64, tokenizer="word",
                           counting_rule="rule", seed=0, commit="abc", host={})
    assert record.train_flops == flops and record.flops_formula == formula
    assert Record.from_dict(json.loads(record.to_json()), "x") == record
    assert "training FLOPs 3.07e+07" in render([record])
    counted = DemoRow("statistical", "MKN 3-gram", {"test ppl": 100.0}, 1.0)  # n-grams count: no FLOPs
    assert demo_train_flops(counted) == (None, "")


def test_seq2seq_baselines_and_their_table():
    from lmlab.recipes.demos import seq2seq_baselines
    from lmlab.tasks.seq2seq import score_outputs

    pairs = {"train": [("cat", "K AE T"), ("bat", "B AE T"), ("at", "AE T"), ("at's", "AE T")],
             "test": [("dog", "D AO G"), ("it", "IH T")]}
    (copy, copied, _), (frequent, outputs, what) = seq2seq_baselines(pairs)
    assert copied == ["D O G", "I T"] and outputs == ["AE T", "AE T"] and "'AE T'" in what
    scores = score_outputs("g2p", copied, [t for _, t in pairs["test"]])
    # by hand: D O G vs D AO G one substitution, I T vs IH T one: 2 errors in 5 reference phonemes; no word right
    assert scores["per"] == pytest.approx(100 * 2 / 5) and scores["wer"] == pytest.approx(100.0)
    row = DemoRow("seq2seq", copy, {"PER": scores["per"], "WER": scores["wer"]}, 0.0)
    record = from_demo_row(row, "seq2seq", corpus="cmudict", corpus_sha256="", tokenizer="", counting_rule="",
                           seed=0, commit="", host={})
    assert record.units["PER"].startswith("percent") and "<h2>Sequence-to-sequence</h2>" in render([record])
