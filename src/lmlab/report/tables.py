"""Tables of results: number formatting, the lineage report and the n-gram method comparison.

Everything here turns rows (:class:`lmlab.report.DemoRow`, the n-gram comparison's
rows) into text; nothing here trains or reads a corpus. The CLI prints the same
tables through rich (``lmlab.cli.common.table`` formats cells with :func:`fmt`).
"""

from __future__ import annotations

import math

from . import DemoData, DemoRow

COUNTING_RULE = ("per word on the test sentences; </s> predicted and counted once per sentence; "
                 "<s> context only; out-of-vocabulary words are <unk> and counted")


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)



def lineage_markdown(data: DemoData, stats: list[list], rows: list[DemoRow], elapsed: float) -> str:
    lines = [f"# lmlab demo: {data.corpus_name}", "",
             f"Vocabulary: {len(data.vocab):,} types (closed, from the train split). Counting rule: {COUNTING_RULE}.",
             "", "## Corpus", "", "| split | documents | sentences | tokens | types | OOV | bytes |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in stats]
    for title, members in grouped(rows):
        names = metric_names(members)
        lines += ["", f"## {title[0].upper()}{title[1:]}", "",
                  "| family | model | " + " | ".join(names) + " | train s | notes |",
                  "|---|---|" + "---|" * len(names) + "---|---|"]
        for row in members:
            values = [fmt(row.metrics.get(m)) for m in names]
            lines.append(f"| {row.family} | {row.model} | " + " | ".join(values) +
                         f" | {fmt(row.train_seconds)} | {row.notes} |")
    skipped = [r for r in rows if not r.metrics]
    if skipped:
        lines += ["", "Not run: " + "; ".join(f"{r.model} ({r.notes or 'no result'})" for r in skipped) + "."]
    lines += ["", f"Total demo time: {elapsed:.1f} s."]
    return "\n".join(lines) + "\n"


GROUPS = (
    ("language models", lambda r: "test ppl" in r.metrics),
    ("classifiers", lambda r: any("acc" in m and "analogy" not in m for m in r.metrics)),
    ("sequence-to-sequence (g2p; PER/WER %, lower is better)", lambda r: "PER" in r.metrics),
    ("word vectors and other rows", lambda r: True),
)


def grouped(rows: list[DemoRow]) -> list[tuple[str, list[DemoRow]]]:
    """Rows split into tables whose columns they share: LMs, classifiers, the rest."""
    groups: dict[str, list[DemoRow]] = {name: [] for name, _ in GROUPS}
    for row in rows:
        if not row.metrics:
            continue  # skipped rows are listed under the tables
        name = next(name for name, test in GROUPS if test(row))
        groups[name].append(row)
    return [(name, members) for name, members in groups.items() if members]


def metric_names(rows: list[DemoRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.metrics:
            if name not in names:
                names.append(name)
    return names


def comparison_markdown(rows: list) -> str:
    """One table: a row per method, a column per (order, training words)."""
    cols = sorted({(r.order, r.train_words) for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    cell = {(r.method, r.order, r.train_words): r.perplexity for r in rows}
    head = "| method | " + " | ".join(f"{o}-gram, {w:,} words" for o, w in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for m in methods:
        vals = []
        for o, w in cols:
            v = cell.get((m, o, w))
            vals.append("-" if v is None else (f"{v:.1f}" if math.isfinite(v) and v < 1e7 else "inf"))
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
