"""Issue 19: results as records, the self-contained HTML page built from them, model cards, lmlab report."""

from __future__ import annotations

import json
import re
import statistics

import pytest

from lmlab.errors import DataError, FormatError
from lmlab.report.cards import CardMetric, front_matter, write_card
from lmlab.report.html import aggregate, pareto_front, records_from_page, render
from lmlab.report.records import Record, compare, place, read_records, write_records


def _records() -> list[Record]:
    base = dict(corpus="wiki-vital-small", corpus_sha256="ab" * 32, seed=0, machine={"cpus": 2, "torch": "2.13.0"},
                git_commit="0123abc", lmlab_version="0.1.0")
    return [
        Record("add-one unigram", "baseline", {"test ppl": 900.0}, generation="counting", year=1948,
               train_seconds=0.1, **base),
        Record("MKN 5-gram", "statistical", {"test ppl": 250.0, "OOVs": 40.0}, generation="statistical n-gram",
               year=1998, train_seconds=2.0, notes="modified Kneser-Ney", verified="ARPA equal to KenLM's", **base),
        Record("LSTM 1x128", "neural LM", {"test ppl": 230.0}, generation="neural LM", year=2014,
               train_seconds=60.0, config={"hidden": 128}, **base),
        Record("LSTM 1x128", "neural LM", {"test ppl": 236.0}, generation="neural LM", year=2014,
               train_seconds=61.0, **{**base, "seed": 1}),
        Record("bert (tiny) -> rotten-tomatoes", "transformer", {"accuracy": 0.61, "macro-F1": 0.6}, year=2019,
               **base),
    ]


def test_lineage_places_models_by_name():
    assert place("MKN 5-gram") == ("statistical n-gram", 1998)
    assert place("NNLM 5-gram (Bengio 2003)") == ("neural LM", 2003)
    assert place("GPT 2x128, pre-LN") == ("Transformer", 2018)
    assert place("Transformer-XL 2x128")[1] == 2019
    assert place("something new") == ("other", None)


def test_records_round_trip_and_refuse_bad_files(tmp_path):
    records = _records()
    paths = write_records(records, tmp_path / "records")
    assert [p.name for p in paths][:2] == ["000-add-one-unigram.json", "001-mkn-5-gram.json"]
    back = read_records([tmp_path])  # a run folder: its records/
    assert back == records
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(records[0].to_json()), "metricz": {}}))
    with pytest.raises(FormatError, match="unknown record field 'metricz'"):
        read_records([bad])
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not an lmlab record"):
        read_records([bad])
    with pytest.raises(DataError, match="no such record"):
        read_records([tmp_path / "missing"])


def test_seeds_are_merged_as_mean_and_spread():
    rows = {model: stats for model, _, stats in aggregate(_records())}
    mean, std, n = rows["LSTM 1x128"]["test ppl"]
    assert (mean, n) == (233.0, 2) and std == pytest.approx(statistics.stdev([230.0, 236.0]))
    assert rows["MKN 5-gram"]["test ppl"] == (250.0, None, 1)


def test_pareto_front_keeps_only_undominated_points():
    assert pareto_front([(1, 900), (2, 250), (3, 300), (60, 230), (61, 236)]) == [(1, 900), (2, 250), (60, 230)]


def test_the_page_is_self_contained_and_its_numbers_are_the_records():
    records = _records()
    page = render(records)
    assert page.startswith("<!DOCTYPE html>") and len(page.encode()) < 5_000_000
    stripped = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
    assert "http" not in stripped  # no URL at all: nothing can be requested
    assert "<link" not in page and "src=" not in page
    assert records_from_page(page) == [json.loads(r.to_json()) for r in records]
    assert "Language models" in page and "Classifiers and taggers" in page
    assert "233 ± 4.24 (n=2)" in page.replace("233.0", "233")  # the two seeds of the LSTM
    assert page.count("<details class='card'>") == len(records)
    pytest.importorskip("matplotlib")
    assert page.count("<svg") >= 2 and "id='perplexity-by-year'" in page and "id='quality-vs-cost'" in page
    assert render(records) == page  # the same records give the same page


def test_compare_lists_what_changed():
    old, new = _records(), _records()
    new[1].metrics["test ppl"] = 251.0
    del new[4].metrics["macro-F1"]
    assert compare(old, old) == []
    assert compare(old, new) == [("MKN 5-gram", "test ppl", 250.0, 251.0),
                                 ("bert (tiny) -> rotten-tomatoes", "macro-F1", 0.6, None)]


def test_model_card_front_matter_is_yaml_with_a_model_index(tmp_path):
    yaml = pytest.importorskip("yaml")
    metrics = [CardMetric("text-generation", "Language modelling", "perplexity", "eval perplexity", 123.4,
                          "wiki-vital", "valid")]
    path = write_card(tmp_path, name="gpt-tiny", family="gpt", summary="a GPT", corpus="wiki-vital",
                      metrics=metrics, command="lmlab train configs/gpt.toml")
    text = path.read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "lmlab" and meta["license"] == "cc-by-sa-4.0"
    result = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "gpt-tiny"
    assert result["task"]["type"] == "text-generation" and result["dataset"]["split"] == "valid"
    assert result["metrics"][0] == {"type": "perplexity", "value": 123.4, "name": "eval perplexity"}
    assert "lmlab train configs/gpt.toml" in text and "CC BY-SA" in text
    assert yaml.safe_load(front_matter("x", "ngram", "", []).split("---\n")[1])["model-index"][0]["results"] == []


def test_lmlab_report_writes_the_page_and_compares(cli, tmp_path):
    write_records(_records(), tmp_path / "a" / "records")
    changed = _records()
    changed[0].metrics["test ppl"] = 901.0
    write_records(changed, tmp_path / "b" / "records")
    out = tmp_path / "r.html"
    run = cli("report", str(tmp_path / "a"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert records_from_page(out.read_text())[1]["model"] == "MKN 5-gram"
    run = cli("report", str(tmp_path / "a"), "--out", str(out))
    assert run.returncode == 2 and "--force" in run.stderr  # never replaced silently
    assert cli("report", str(tmp_path / "a"), str(tmp_path / "a"), "--compare").returncode == 0
    run = cli("report", str(tmp_path / "a"), str(tmp_path / "b"), "--compare")
    assert run.returncode == 1 and "add-one unigram" in run.stdout
