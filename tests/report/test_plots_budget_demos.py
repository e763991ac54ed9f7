"""Issue 19: the smoothing grid and softmax speed-up builders on fixed records, the demo's hard time
limit, and the ELMo / Transformer-XL demo rows on a slice of real text (the kenlm fixture's sentences)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from lmlab.data.vocab import closed_vocabulary
from lmlab.recipes.ngram import ComparisonRow
from lmlab.report import DemoData
from lmlab.report.html import (
    plot_smoothing,
    plot_softmax_speedups,
    records_from_page,
    render,
    smoothing_cells,
    smoothing_table_html,
)
from lmlab.report.records import (
    SMOOTHING_GROUP,
    SOFTMAX_GROUP,
    Record,
    from_comparison_rows,
    from_softmax_bench,
    read_records,
)
from lmlab.train.budget import OverBudget, stop_training_at

pytestmark = pytest.mark.usefixtures("one_thread")

KENLM = Path(__file__).resolve().parents[1] / "fixtures" / "kenlm"


def _sentences(name: str) -> list[list[str]]:
    return [line.split() for line in (KENLM / name).read_text(encoding="utf-8").splitlines()]


def _grid() -> list[Record]:
    rows = [ComparisonRow("add-one", 2, 1000, 900.0, 950.0, 5, 100, 0.1),
            ComparisonRow("add-one", 2, 10000, 600.0, 650.0, 5, 100, 0.2),
            ComparisonRow("mkn", 2, 1000, 300.0, 320.0, 5, 100, 0.1),
            ComparisonRow("mkn", 2, 10000, 200.0, 210.0, 5, 100, 0.2),
            ComparisonRow("mkn", 3, 10000, 180.0, 190.0, 5, 100, 0.3)]
    return from_comparison_rows(rows, corpus="wiki-vital-small", seed=0, commit="abc", host={"cpus": 2})


BENCH = {"ppl": {"command": "benchmarks/softmax_bench.py --part ppl --steps 400",
                 "lstm": {"full": {"steps": 400, "test_ppl": 113.7, "train_s": 90.0, "tokens_per_s": 2700.0},
                          "class": {"steps": 400, "test_ppl": 120.2, "train_s": 20.0, "tokens_per_s": 12000.0}},
                 "nnlm": {"full": {"steps": 400, "test_ppl": 163.9, "train_s": 50.0, "tokens_per_s": 5000.0}}}}


def test_smoothing_grid_table_and_plot_from_fixed_records():
    records = _grid()
    assert all(r.group == SMOOTHING_GROUP for r in records)
    cells = smoothing_cells(records)
    assert cells[("mkn", 2, 10000)] == 200.0 and cells[("add-one", 2, 1000)] == 900.0 and len(cells) == 5
    table = smoothing_table_html(records)
    # a row per method, a column per (order, size): 2-gram 1k, 2-gram 10k, 3-gram 10k
    assert table.count("<tr data-model=") == 2 and table.count("words</th>") == 3
    assert "<td class='num' data-metric='comparison ppl'>200.0</td>" in table
    assert table.split("data-model='add-one'>")[1].split("</tr>")[0].endswith("<td class='num' "
                                                                              "data-metric='comparison ppl'>-</td>")
    pytest.importorskip("matplotlib")
    svg = plot_smoothing(records)
    assert svg.startswith("<svg") and "2-gram" in svg and "3-gram" in svg and "mkn" in svg and "add-one" in svg
    assert plot_smoothing([]) is None


def test_softmax_bench_results_become_records_and_a_plot(tmp_path):
    records = from_softmax_bench(BENCH, "bench.json")
    assert [r.model for r in records] == ["LSTM full softmax", "LSTM class softmax", "NNLM full softmax"]
    assert records[1].metrics == {"softmax test ppl": 120.2, "tokens/s": 12000.0} and records[1].group == SOFTMAX_GROUP
    path = tmp_path / "softmax.json"
    path.write_text(json.dumps(BENCH))
    assert read_records([path]) == records  # lmlab report reads the benchmark's --json file as it is
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ppl": {"lstm": {"full": {"steps": 1}}}}))
    with pytest.raises(Exception, match="needs test_ppl"):
        read_records([bad])
    pytest.importorskip("matplotlib")
    svg = plot_softmax_speedups(records)
    assert svg.startswith("<svg") and "LSTM class softmax" in svg and "tokens per second" in svg


def test_page_shows_grid_and_speedups_outside_the_lineage_tables():
    lineage = Record("MKN 5-gram", "statistical", {"test ppl": 250.0}, year=1998, train_seconds=2.0)
    records = [lineage, *_grid(), *from_softmax_bench(BENCH, "bench.json")]
    page = render(records)
    assert page.count("<details class='card'>") == 1  # grid cells and benchmark rows get no cards
    assert "id='smoothing-grid'" in page and "Smoothing methods" in page
    assert records_from_page(page) == [json.loads(r.to_json()) for r in records]
    pytest.importorskip("matplotlib")
    assert "id='smoothing-methods'" in page and "id='softmax-speedups'" in page


def test_training_is_stopped_between_steps_at_the_hard_limit(tmp_path):
    import numpy as np
    import torch

    from lmlab.data.stream import WindowBatches
    from lmlab.models import nnlm
    from lmlab.objectives.nextword import WindowObjective
    from lmlab.train.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    model = nnlm.build(nnlm.NNLMConfig(order=3, embed_dim=8, hidden_dim=8), ["<unk>", "<s>", "</s>", "a", "b"],
                       np.ones(5))
    windows = nnlm.ngram_windows([[3, 4, 2], [4, 3, 3, 2]], 3, 1)
    trainer = Trainer(model, WindowObjective(), WindowBatches(windows, 4, 0),
                      TrainConfig.quiet(seed=0, max_steps=100, lr=1e-2), tmp_path)
    original = Trainer.train_step
    with stop_training_at(time.monotonic() + 60, "x"):
        trainer.train_step()  # before the limit: a normal step
    assert trainer.step == 1 and Trainer.train_step is original
    with pytest.raises(OverBudget, match="gpt: .*before optimiser step 2"), stop_training_at(time.monotonic(), "gpt"):
        trainer.train_step()
    assert trainer.step == 1 and Trainer.train_step is original  # restored when the block raised


def _demo_data(tmp_path, seconds: float) -> DemoData:
    train, test = _sentences("train.txt")[:600], _sentences("test.txt")[:80]
    vocab = closed_vocabulary(train, 2)
    return DemoData("kenlm-fixture", [], [], [], train, train[-40:], test, vocab, tmp_path, seed=0,
                    deadline=time.monotonic() + seconds)


@pytest.mark.parametrize("name", ["elmo_demo", "transfo_xl_demo"])
def test_elmo_and_transfo_xl_demo_rows_learn_and_use_the_shared_counting(tmp_path, name):
    from lmlab.recipes import demos

    data = _demo_data(tmp_path, 22)
    (row,) = getattr(demos, name)(data)
    ppl = row.metrics["test ppl"]
    assert math.isfinite(ppl) and 1 < ppl < 0.5 * len(data.vocab)  # well below the uniform distribution's |V|
    assert row.train_seconds <= 0.6 * 22 + 5 and row.config["steps"] > 0 and row.year in (2018, 2019)
    if name == "elmo_demo":  # the mean of the two directions' log-probs: the geometric mean of their perplexities
        assert ppl == pytest.approx(math.sqrt(row.metrics["forward ppl"] * row.metrics["backward ppl"]), rel=1e-6)
    late = _demo_data(tmp_path, 5)
    assert "skipped" in getattr(demos, name)(late)[0].model


def test_finetune_runs_get_a_record_and_a_card_that_lmlab_report_keeps_true(tmp_path, cli):
    yaml = pytest.importorskip("yaml")
    from lmlab.report.cards import finetune_record

    run = tmp_path / "ft"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    scores = {"task": "rotten-tomatoes", "accuracy": 0.75, "macro_f1": 0.74, "majority_baseline": 0.5,
              "n_train": 800, "n_test": 200, "seconds": 12.5, "train_loss": 0.4, "head": "not a number"}
    record = finetune_record(run, "rotten-tomatoes", "runs/bert/model", scores,
                             "lmlab finetune runs/bert/model rotten-tomatoes --out ft")
    assert record.metrics == {"test accuracy": 0.75, "test macro-F1": 0.74, "majority-class accuracy (baseline)": 0.5}
    assert read_records([run]) == [record]  # lmlab report reads the run folder
    card = (run / "model" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    results = meta["model-index"][0]["results"]
    assert [r["metrics"][0]["value"] for r in results] == [0.75, 0.74, 0.5]
    assert results[0]["task"]["type"] == "text-classification" and results[0]["dataset"]["name"] == "rotten-tomatoes"
    assert "lmlab finetune runs/bert/model rotten-tomatoes --out ft" in card and "800" in card
    (run / "model" / "README.md").write_text("stale\n")
    done = cli("report", str(run), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert (run / "model" / "README.md").read_text() == card  # rewritten from the record


def test_demo_writes_the_smoothing_grid_records_and_page(cli, tmp_path):
    out = tmp_path / "demo"
    done = cli("demo", "--small", "--only", "ngram", "--budget", "60", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "smoothing methods x orders" in done.stderr and "share" in done.stderr
    records = read_records([out])
    grid = [r for r in records if r.group == SMOOTHING_GROUP]
    assert {r.config["method"] for r in grid} >= {"add-one", "kn", "mkn"} and {r.config["order"] for r in grid} == {2, 3}
    cells = smoothing_cells(grid)
    smallest = min(w for _, _, w in cells)
    assert cells[("mkn", 3, smallest)] < cells[("add-one", 3, smallest)]  # Chen & Goodman's ordering holds here too
    page = (out / "report.html").read_text()
    assert "id='smoothing-grid'" in page and "MKN 5-gram" in page
