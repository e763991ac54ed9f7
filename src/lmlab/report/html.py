"""The lineage report as one self-contained HTML page, built from records (:mod:`lmlab.report.records`).

No external URL, CDN, font or script: the style sheet is inline, every plot is inline SVG
(matplotlib's SVG backend; without matplotlib the page says the plots were left out), and the
records themselves are embedded as JSON (``<script type="application/json" id="lmlab-records">``),
so every number on the page can be traced to -- and parsed back from -- a record.

What the page shows, top to bottom: a header (corpora and content hashes, machine, lmlab version,
commit); the tables (language models on one per-word perplexity scale, classifiers, word vectors
and the rest), a metric given as mean ± standard deviation when several records (seeds) share a
model; the plots (perplexity by year of the paper, quality against training seconds with the
Pareto front, loss curves of the runs whose records name a ``metrics.jsonl``, the smoothing methods
Chen & Goodman style -- method x order x training size, from records of group
:data:`~lmlab.report.records.SMOOTHING_GROUP` that ``lmlab demo`` writes -- as a grid and a plot, and
the softmax speed-ups, tokens per second against perplexity, from a ``benchmarks/softmax_bench.py
--part ppl --json FILE`` result given to ``lmlab report``); one collapsible card per model (what it
is, how its number was verified, its config).
"""

from __future__ import annotations

import html
import io
import json
import math
import statistics
from pathlib import Path

from .records import SMOOTHING_GROUP, SOFTMAX_GROUP, Record
from .tables import COUNTING_RULE, fmt

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{padding:.3em .7em;border-bottom:1px solid #eee}
th{background:#f4f6f8;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#555;font-size:.9em}.plot{margin:1em 0}details{margin:.4em 0;padding:.4em .8em;background:#fafbfc;
border:1px solid #e5e7ea;border-radius:4px}summary{cursor:pointer;font-weight:600}pre{font-size:.85em;overflow-x:auto}
"""

TABLES = (
    ("Language models", "per-word perplexity on the shared test stream; " + COUNTING_RULE,
     lambda r: "test ppl" in r.metrics),
    ("Classifiers and taggers", "test split", lambda r: any(k in r.metrics for k in
                                                             ("accuracy", "macro-F1", "entity F1"))),
    ("Sequence-to-sequence", "cmudict g2p test words, greedy decoding; PER and WER in percent (lower is better), "
     "BLEU and chrF 0-100", lambda r: "PER" in r.metrics or "BLEU" in r.metrics),
    ("Benchmarks", "numbers printed by benchmarks/*.py --record DIR (each card gives the command)",
     lambda r: r.group == "benchmark"),
    ("Word vectors and other rows", "", lambda r: True),
)


PLOT_GROUPS = (SMOOTHING_GROUP, SOFTMAX_GROUP)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def grouped(records: list[Record]) -> list[tuple[str, str, list[Record]]]:
    out: dict[str, tuple[str, list[Record]]] = {title: (caption, []) for title, caption, _ in TABLES}
    for record in records:
        if record.group in PLOT_GROUPS:
            continue  # shown as their own grid and plot
        title = next(t for t, _, test in TABLES if test(record))
        out[title][1].append(record)
    return [(t, c, rs) for t, (c, rs) in out.items() if rs]


def aggregate(records: list[Record]) -> list[tuple[str, Record, dict[str, tuple[float, float | None, int]]]]:
    """Records sharing a model name (seeds) merged: (model, first record, {metric: (mean, std | None, n)})."""
    by_model: dict[str, list[Record]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    out = []
    for model, members in by_model.items():
        names = list(dict.fromkeys(m for r in members for m in r.metrics))
        stats = {}
        for name in names:
            values = [r.metrics[name] for r in members if name in r.metrics]
            std = statistics.stdev(values) if len(values) > 1 else None
            stats[name] = (statistics.fmean(values), std, len(values))
        out.append((model, members[0], stats))
    return out


def _cell(stat: tuple[float, float | None, int] | None) -> str:
    if stat is None:
        return "-"
    mean, std, n = stat
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)} (n={n})"


def table_html(title: str, caption: str, records: list[Record]) -> str:
    rows = aggregate(records)
    names = list(dict.fromkeys(m for _, _, stats in rows for m in stats))
    head = "".join(f"<th>{_esc(n)}</th>" for n in ["model", "generation", "year", *names, "train s"])
    body = []
    for model, first, stats in rows:
        cells = [f"<td>{_esc(model)}</td>", f"<td>{_esc(first.generation)}</td>",
                 f"<td class='num'>{_esc(first.year or '-')}</td>"]
        cells += [f"<td class='num' data-metric='{_esc(n)}'>{_esc(_cell(stats.get(n)))}</td>" for n in names]
        cells.append(f"<td class='num'>{_esc(fmt(first.train_seconds))}</td>")
        body.append(f"<tr data-model='{_esc(model)}'>{''.join(cells)}</tr>")
    cap = f"<p class='meta'>{_esc(caption)}</p>" if caption else ""
    return f"<h2>{_esc(title)}</h2>{cap}<table class='results'><tr>{head}</tr>{''.join(body)}</table>"


# --------------------------------------------------------------------------- plots (inline SVG)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE (which names an external DTD)
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if 0 <= start < end:  # matplotlib's RDF metadata block: URIs, no content
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        matplotlib.rcParams["svg.hashsalt"] = "lmlab"  # stable ids: the same records give the same page
        matplotlib.rcParams["svg.fonttype"] = "none"   # labels as <text>: smaller, searchable, checkable
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_perplexity_by_year(records: list[Record]) -> str | None:
    """Test perplexity per word against the year of the model's paper (log scale)."""
    plt = _pyplot()
    points = [(r.year, r.metrics["test ppl"], r.model) for r in records
              if "test ppl" in r.metrics and r.year and math.isfinite(r.metrics["test ppl"])]
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="#4477aa", zorder=3)
    for year, ppl, model in points:
        ax.annotate(model, (year, ppl), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("year of the paper")
    ax.set_ylabel("test perplexity per word (log)")
    ax.set_title("Sixty years of language models on one test stream")
    ax.grid(alpha=0.3)
    return _svg(fig)


def _finish(fig, ax, xlabel: str, ylabel: str, title: str) -> str:
    """Log x axis, labels, title, legend and grid; the figure as SVG."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _svg(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (x) and perplexity (y), by increasing cost."""
    front, best = [], math.inf
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def plot_quality_vs_cost(records: list[Record]) -> str | None:
    """Test perplexity against training seconds, with the Pareto front."""
    plt = _pyplot()
    points = [(r.train_seconds, r.metrics["test ppl"], r.model) for r in records
              if "test ppl" in r.metrics and r.train_seconds and r.train_seconds > 0]
    if plt is None or len(points) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="#aa7744", zorder=3)
    for x, y, model in points:
        ax.annotate(model, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    front = pareto_front([(x, y) for x, y, _ in points])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#228833", label="Pareto front")
    ax.set_yscale("log")
    return _finish(fig, ax, "training seconds (log)", "test perplexity per word (log)", "Quality against training cost")


def read_loss_curve(path: str | Path) -> list[tuple[int, float]]:
    """(step, loss) pairs of a Trainer's metrics.jsonl; [] when it is missing or has none."""
    path = Path(path)
    if not path.is_file():
        return []
    points = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "step" in entry and isinstance(entry.get("loss"), (int, float)):
            points.append((int(entry["step"]), float(entry["loss"])))
    return points


def plot_loss_curves(records: list[Record], base: Path) -> str | None:
    plt = _pyplot()
    curves = []
    for record in records:
        if record.log:
            log = Path(record.log)
            points = read_loss_curve(log if log.is_absolute() else base / log)
            if points:
                curves.append((record.model, points))
    if plt is None or not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for model, points in curves:
        ax.plot([p[0] for p in points], [p[1] for p in points], label=model)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (nats per token)")
    ax.set_title("Loss curves of the neural runs")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _svg(fig)


def smoothing_cells(records: list[Record]) -> dict[tuple[str, int, int], float]:
    """(method, order, training words) -> test perplexity, from the smoothing-comparison records."""
    return {(r.config["method"], int(r.config["order"]), int(r.config["train_words"])): r.metrics["comparison ppl"]
            for r in records if r.group == SMOOTHING_GROUP and "comparison ppl" in r.metrics}


def smoothing_table_html(records: list[Record]) -> str:
    """The Chen & Goodman grid as a table: a row per method, a column per (order, training words)."""
    cells = smoothing_cells(records)
    if not cells:
        return ""
    methods = list(dict.fromkeys(m for m, _, _ in cells))
    cols = sorted({(o, w) for _, o, w in cells})
    head = "".join(f"<th>{o}-gram, {w:,} words</th>" for o, w in cols)
    body = []
    for m in methods:
        tds = "".join(f"<td class='num' data-metric='comparison ppl'>{_esc(fmt(cells.get((m, o, w))))}</td>"
                      for o, w in cols)
        body.append(f"<tr data-model='{_esc(m)}'><td>{_esc(m)}</td>{tds}</tr>")
    return ("<h2>Smoothing methods</h2><p class='meta'>test perplexity per word of each method x order x "
            "training size (the first part of the train sentences), in the manner of Chen &amp; Goodman (1998)</p>"
            f"<table class='results' id='smoothing-grid'><tr><th>method</th>{head}</tr>{''.join(body)}</table>")


def plot_smoothing(records: list[Record]) -> str | None:
    """Chen & Goodman style: test perplexity against training words, one panel per order, a line per method."""
    plt = _pyplot()
    cells = smoothing_cells(records)
    if plt is None or not cells:
        return None
    orders = sorted({o for _, o, _ in cells})
    fig, axes = plt.subplots(1, len(orders), figsize=(4.2 * len(orders), 4), squeeze=False, sharey=True)
    methods = list(dict.fromkeys(m for m, _, _ in cells))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = {}  # method -> its line, for one legend over every panel
    for ax, order in zip(axes[0], orders):
        for i, method in enumerate(methods):
            points = sorted((w, p) for (m, o, w), p in cells.items() if m == method and o == order and math.isfinite(p))
            if points:
                (handles[method],) = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                                             color=colours[i % len(colours)], label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training words (log)")
        ax.set_title(f"{order}-gram")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test perplexity per word (log)")
    axes[0][-1].legend([handles[m] for m in methods if m in handles], [m for m in methods if m in handles], fontsize=7)
    fig.suptitle("Smoothing methods by order and training size")
    return _svg(fig)


def plot_softmax_speedups(records: list[Record]) -> str | None:
    """The softmax speed-ups: training tokens per second against test perplexity, per network and output layer."""
    plt = _pyplot()
    points = [(r.metrics["tokens/s"], r.metrics["softmax test ppl"], r.model, r.config.get("network", ""))
              for r in records if r.group == SOFTMAX_GROUP and {"tokens/s", "softmax test ppl"} <= set(r.metrics)]
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for network, colour in (("lstm", "#4477aa"), ("nnlm", "#ee6677")):
        mine = [p for p in points if p[3] == network]
        if mine:
            ax.scatter([p[0] for p in mine], [p[1] for p in mine], color=colour, label=network.upper(), zorder=3)
    for x, y, model, _ in points:
        ax.annotate(model, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    return _finish(fig, ax, "training tokens per second (log; higher is faster)", "test perplexity per word",
                   "Softmax speed-ups: speed against perplexity")


# --------------------------------------------------------------------------- the page


def card_html(record: Record) -> str:
    metrics = "".join(f"<tr><td>{_esc(k)}</td><td class='num'>{_esc(fmt(v))}</td><td>{_esc(record.units.get(k, ''))}"
                      f"</td></tr>" for k, v in record.metrics.items())
    parts = [f"<details class='card'><summary>{_esc(record.model)} <span class='meta'>({_esc(record.family)}, "
             f"{_esc(record.generation)}{', ' + _esc(record.year) if record.year else ''})</span></summary>",
             f"<table>{metrics}</table>"]
    if record.notes:
        parts.append(f"<p><b>What it is:</b> {_esc(record.notes)}</p>")
    if record.verified:
        parts.append(f"<p><b>How it was verified:</b> {_esc(record.verified)}</p>")
    parts.append(f"<p class='meta'>corpus {_esc(record.corpus)}:{_esc(record.split)}, sha256 "
                 f"{_esc(record.corpus_sha256[:16])}…, tokenizer {_esc(record.tokenizer or '-')}, seed "
                 f"{_esc(record.seed)}</p>")
    if record.train_flops:
        parts.append(f"<p class='meta'>training FLOPs {record.train_flops:.3g} ({_esc(record.flops_formula)})"
                     f"{f', {fmt(record.train_seconds)} s' if record.train_seconds else ''}</p>")
    if record.config:
        parts.append(f"<pre>{_esc(json.dumps(record.config, indent=2, ensure_ascii=False))}</pre>")
    parts.append("</details>")
    return "".join(parts)


def render(records: list[Record], title: str = "lmlab: the lineage report", base: str | Path = ".") -> str:
    """The whole page for ``records`` (``base``: where relative log paths are read from)."""
    corpora = sorted({(r.corpus, r.corpus_sha256) for r in records if r.corpus})
    machines = sorted({json.dumps(r.machine, sort_keys=True) for r in records if r.machine})
    commits = sorted({r.git_commit for r in records if r.git_commit})
    versions = sorted({r.lmlab_version for r in records if r.lmlab_version})
    header = ["<p class='meta'>"]
    header += [f"corpus <b>{_esc(c)}</b> (test text sha256 <code>{_esc(h[:16])}…</code>)<br>" for c, h in corpora]
    for m in machines:
        info = json.loads(m)
        header.append(f"machine: {_esc(info.get('processor', '?'))}, {_esc(info.get('cpus', '?'))} CPUs, "
                      f"{_esc(info.get('platform', ''))}, torch {_esc(info.get('torch', '?'))} "
                      f"({_esc(info.get('torch_threads', '?'))} threads)<br>")
    header.append(f"lmlab {_esc(', '.join(versions) or '?')}, commit <code>{_esc(', '.join(commits) or 'unknown')}"
                  f"</code>; {len(records)} records</p>")
    lineage = [r for r in records if r.group not in PLOT_GROUPS]
    sections = [table_html(t, c, rs) for t, c, rs in grouped(records)]
    sections.append(smoothing_table_html(records))
    plots = [("perplexity-by-year", plot_perplexity_by_year(lineage)),
             ("quality-vs-cost", plot_quality_vs_cost(lineage)),
             ("loss-curves", plot_loss_curves(lineage, Path(base))),
             ("smoothing-methods", plot_smoothing(records)),
             ("softmax-speedups", plot_softmax_speedups(records))]
    plot_html = [f"<div class='plot' id='{name}'>{svg}</div>" for name, svg in plots if svg]
    if _pyplot() is None:
        plot_html.append("<p class='meta'>Plots left out: matplotlib is not installed (the plot extra).</p>")
    payload = json.dumps([json.loads(r.to_json()) for r in records], ensure_ascii=False).replace("</", "<\\/")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>", *header, *sections, "<h2>Plots</h2>", *plot_html,
        "<h2>Models</h2>", *[card_html(r) for r in lineage],
        f"<script type='application/json' id='lmlab-records'>{payload}</script>",
        "</body></html>", ""])


def records_from_page(page: str) -> list[dict]:
    """The records embedded in a page :func:`render` wrote (for checking a page against its records)."""
    start = page.index("id='lmlab-records'>") + len("id='lmlab-records'>")
    end = page.index("</script>", start)
    return json.loads(page[start:end].replace("<\\/", "</"))
