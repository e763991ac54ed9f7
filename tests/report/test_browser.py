"""Issue 19: the report page in a real headless browser (Debian's chromium; skipped without it).

The page built from fixed records loads with no console message, makes no request besides itself,
shows every table and plot, and the numbers chromium parsed equal the records; a page that does
request things and log errors is caught by the same checks (so the checks can fail)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from lmlab.report.browser import find_chromium, load_in_browser, urls_in_dom
from lmlab.report.html import render
from lmlab.report.records import Record, from_comparison_rows, from_softmax_bench
from lmlab.report.tables import fmt

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed "
                                "(Debian: apt-get install chromium; `make setup` tries it)")


class _Cells(HTMLParser):
    """(table row's data-model, cell's data-metric, cell text) of every metric cell."""

    def __init__(self):
        super().__init__()
        self.cells, self.model, self.metric, self.text = [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.model = attrs.get("data-model")
        elif tag == "td" and "data-metric" in attrs:
            self.metric, self.text = attrs["data-metric"], ""

    def handle_data(self, data):
        if self.text is not None:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "td" and self.text is not None:
            self.cells.append((self.model, self.metric, self.text))
            self.text = None


def _records() -> list[Record]:
    from lmlab.recipes.ngram import ComparisonRow

    base = dict(corpus="wiki-vital-small", corpus_sha256="cd" * 32, seed=0, machine={"cpus": 2}, git_commit="abc")
    lineage = [Record("add-one unigram", "baseline", {"test ppl": 376.4}, year=1948, train_seconds=0.1, **base),
               Record("MKN 5-gram", "statistical", {"test ppl": 110.3, "OOVs": 2163.0}, year=1998,
                      train_seconds=2.5, **base),
               Record("LSTM 1x128", "neural LM", {"test ppl": 241.8}, year=2014, train_seconds=20.0, **base),
               Record("GPT -> rotten-tomatoes", "transformer", {"accuracy": 0.61}, year=2018, **base),
               Record("word2vec SG", "embeddings", {"WS353 ρ": 0.154}, year=2013, train_seconds=19.0, **base)]
    grid = from_comparison_rows([ComparisonRow("mkn", 2, 1000, 300.0, 320.0, 1, 10, 0.1),
                                 ComparisonRow("mkn", 2, 9000, 200.0, 210.0, 1, 10, 0.2),
                                 ComparisonRow("add-one", 2, 9000, 600.0, 650.0, 1, 10, 0.2)],
                                corpus="wiki-vital-small", seed=0, commit="abc", host={"cpus": 2})
    bench = from_softmax_bench({"ppl": {"lstm": {"full": {"test_ppl": 113.7, "train_s": 90.0, "tokens_per_s": 2700.0},
                                                 "class": {"test_ppl": 120.2, "train_s": 20.0,
                                                           "tokens_per_s": 12000.0}}}}, "bench")
    return lineage + grid + bench


def test_the_page_renders_headless_with_everything_and_nothing_else(tmp_path):
    pytest.importorskip("matplotlib")
    records = _records()
    page = tmp_path / "report.html"
    page.write_text(render(records), encoding="utf-8")
    check = load_in_browser(page, tmp_path / "report.png", height=1800)
    assert check.console == []
    assert check.page_requests == [] and urls_in_dom(check.dom) == []
    assert any(r.startswith("GET lmlab-report.test/report.html") for r in check.requests)
    assert check.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = check.dom
    for title in ("Language models", "Classifiers and taggers", "Word vectors and other rows", "Smoothing methods"):
        assert f">{title}</h2>" in dom
    for plot in ("perplexity-by-year", "quality-vs-cost", "smoothing-methods", "softmax-speedups"):
        assert re.search(rf'<div class="plot" id="{plot}"><svg', dom), plot
    # the numbers chromium parsed are the records': the embedded JSON and every metric cell
    embedded = re.search(r'<script type="application/json" id="lmlab-records">(.*?)</script>', dom, re.S).group(1)
    assert json.loads(embedded) == [json.loads(r.to_json()) for r in records]
    parser = _Cells()
    parser.feed(dom)
    expected = {(r.model, m): fmt(v) for r in records if not r.group for m, v in r.metrics.items()}
    expected.update({(r.config["method"], "comparison ppl"): None for r in records if r.config.get("method")})
    seen = {(model, metric): text for model, metric, text in parser.cells}
    for key, text in expected.items():
        assert key in seen, key
        if text is not None:
            assert seen[key] == text, key
    grid = {(r.config["method"], r.config["train_words"]): fmt(r.metrics["comparison ppl"]) for r in records
            if r.config.get("method")}
    mkn_row = [text for model, metric, text in parser.cells if model == "mkn"]
    assert mkn_row == [grid[("mkn", 1000)], grid[("mkn", 9000)]]


def test_the_checks_catch_a_page_that_requests_and_logs(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><link rel='stylesheet' href='https://cdn.example.com/x.css'>"
                    "</head><body><img src='http://example.org/a.png'><script>console.error('boom')</script>"
                    "</body></html>")
    check = load_in_browser(page)
    assert any("boom" in line for line in check.console)
    assert any("example.org/a.png" in r for r in check.page_requests)
    assert len(urls_in_dom(check.dom)) == 2
