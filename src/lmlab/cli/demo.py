"""``lmlab demo``: every model family on one shared split of real text, in one table.

It loads ``wiki-vital`` (``--small``: ``wiki-vital-small``), splits it by
document, builds the shared word-level stream and closed vocabulary, prints the
corpus statistics, then runs each family that exists (a row each) within the
time budget, prints the lineage table and writes ``runs/demo/report.md``
(plus ``ppl.png`` when matplotlib is installed).

The counting rule for every perplexity in the table: per word on the test
split's sentences, each sentence followed by ``</s>`` which is predicted and
counted; ``<s>`` is context only and never counted; words outside the closed
training vocabulary are ``<unk>`` and counted (perplexity *including* OOVs, as
KenLM's "Perplexity including OOVs").
"""

from __future__ import annotations

import importlib
import math
import time
from collections import Counter
from pathlib import Path

import typer

from ..data import sources
from ..data.corpus import word_sentences
from ..data.tokenizers import WordTokenizer
from ..io import atomic_write_text
from ..report import DemoData, DemoRow
from .common import console, err_console, fmt, status, table

# family modules taking part, in lineage order; a module that does not exist yet is skipped
DEMO_ENTRIES = {
    "ngram": "lmlab.ngram.demo",
    "adaptive": "lmlab.ngram.adaptive_demo",
    "neural": "lmlab.models.demo_neural",
    "embeddings": "lmlab.embeddings.demo",
    "gpt": "lmlab.models.demo_gpt",
    "bert": "lmlab.models.demo_bert",
}

COUNTING_RULE = ("per word on the test sentences; </s> predicted and counted once per sentence; "
                 "<s> context only; out-of-vocabulary words are <unk> and counted")


def unigram_baseline(data: DemoData) -> DemoRow:
    """Add-one unigram over the closed vocabulary (``<s>`` and ``<pad>`` are never predicted)."""
    start = time.monotonic()
    known = set(data.vocab)
    predicted = [w for w in data.vocab if w not in ("<s>", "<pad>")]
    counts: Counter[str] = Counter()
    for sentence in data.train_sentences:
        counts.update(w if w in known else "<unk>" for w in sentence)
        counts["</s>"] += 1
    total = sum(counts.values()) + len(predicted)
    log_prob, n = 0.0, 0
    oov = 0
    for sentence in data.test_sentences:
        for w in sentence:
            if w not in known:
                oov += 1
                w = "<unk>"
            log_prob += math.log((counts[w] + 1) / total)
        log_prob += math.log((counts["</s>"] + 1) / total)
        n += len(sentence) + 1
    return DemoRow("baseline", "add-one unigram",
                   {"test ppl": math.exp(-log_prob / n), "OOVs": oov, "bits/word": -log_prob / n / math.log(2)},
                   time.monotonic() - start, f"V={len(predicted)} predicted types")


def build_data(corpus_name: str, out_dir: Path, seed: int, budget: float, vocab_size: int,
               min_count: int) -> tuple[DemoData, list[list]]:
    corpus = sources.load(corpus_name)
    splits = corpus.split()
    sents = {name: word_sentences(docs) for name, docs in splits.items()}
    tokenizer = WordTokenizer(lowercase=True).train_from_tokens(sents["train"], min_count=min_count,
                                                                 max_size=vocab_size)
    known = set(tokenizer.id_to_token)
    stats = []
    for name, docs in splits.items():
        tokens = sum(len(s) for s in sents[name])
        oov = sum(1 for s in sents[name] for w in s if w not in known)
        types = len({w for s in sents[name] for w in s})
        stats.append([name, len(docs), len(sents[name]), tokens, types, f"{100 * oov / max(tokens, 1):.2f}%",
                      sum(len(d.text.encode("utf-8")) for d in docs)])
    data = DemoData(
        corpus_name=corpus_name, train_documents=splits.train, valid_documents=splits.valid,
        test_documents=splits.test, train_sentences=sents["train"], valid_sentences=sents["valid"],
        test_sentences=sents["test"], vocab=list(tokenizer.id_to_token), out_dir=out_dir, seed=seed,
        deadline=time.monotonic() + budget,
    )
    return data, stats


def _report(data: DemoData, stats: list[list], rows: list[DemoRow], elapsed: float) -> str:
    lines = [f"# lmlab demo: {data.corpus_name}", "",
             f"Vocabulary: {len(data.vocab):,} types (closed, from the train split). Counting rule: {COUNTING_RULE}.",
             "", "## Corpus", "", "| split | documents | sentences | tokens | types | OOV | bytes |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in stats]
    for title, members in _grouped(rows):
        metric_names = _metric_names(members)
        lines += ["", f"## {title[0].upper()}{title[1:]}", "",
                  "| family | model | " + " | ".join(metric_names) + " | train s | notes |",
                  "|---|---|" + "---|" * len(metric_names) + "---|---|"]
        for row in members:
            values = [fmt(row.metrics.get(m)) for m in metric_names]
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
    ("word vectors and other rows", lambda r: True),
)


def _grouped(rows: list[DemoRow]) -> list[tuple[str, list[DemoRow]]]:
    """Rows split into tables whose columns they share: LMs, classifiers, the rest."""
    groups: dict[str, list[DemoRow]] = {name: [] for name, _ in GROUPS}
    for row in rows:
        if not row.metrics:
            continue  # skipped rows are listed under the tables
        name = next(name for name, test in GROUPS if test(row))
        groups[name].append(row)
    return [(name, members) for name, members in groups.items() if members]


def _metric_names(rows: list[DemoRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.metrics:
            if name not in names:
                names.append(name)
    return names


def _plot(rows: list[DemoRow], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ppl_rows = [r for r in rows if "test ppl" in r.metrics]
    if not ppl_rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ppl_rows) + 1.2))
    names = [f"{r.model}" for r in ppl_rows]
    values = [r.metrics["test ppl"] for r in ppl_rows]
    ax.barh(names[::-1], values[::-1], color="#4477aa")
    ax.set_xlabel("test perplexity per word (lower is better)")
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        small: bool = typer.Option(False, "--small", help="Use wiki-vital-small (~2,500 documents)."),
        budget: float = typer.Option(300.0, "--budget", help="Seconds the whole run may take (families are skipped past it)."),
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Where report.md (and ppl.png) go."),
        only: str = typer.Option("", "--only", help="Comma-separated families to run: baseline," + ",".join(DEMO_ENTRIES)),
        seed: int = typer.Option(0, help="Seed for every family."),
        vocab_size: int = typer.Option(10000, help="Closed vocabulary size (by count, from train)."),
        min_count: int = typer.Option(2, help="Words seen fewer times in train are <unk>."),
    ) -> None:
        """Run every model family on one shared split of real text and print the lineage table."""
        from ..errors import UsageError

        started = time.monotonic()
        wanted = [w for w in only.split(",") if w] or ["baseline", *DEMO_ENTRIES]
        unknown = [w for w in wanted if w != "baseline" and w not in DEMO_ENTRIES]
        if unknown:
            raise UsageError(f"--only: unknown family {unknown[0]!r}; choose from baseline, {', '.join(DEMO_ENTRIES)}")
        corpus_name = "wiki-vital-small" if small else "wiki-vital"
        out.mkdir(parents=True, exist_ok=True)
        with status(f"preparing {corpus_name}"):
            data, stats = build_data(corpus_name, out, seed, budget, vocab_size, min_count)
        console.print(table(f"{corpus_name}: word-level stream, vocabulary {len(data.vocab):,}",
                            ["split", "documents", "sentences", "tokens", "types", "OOV", "bytes"], stats))
        rows: list[DemoRow] = []
        if "baseline" in wanted:
            rows.append(unigram_baseline(data))
        for name, module_name in DEMO_ENTRIES.items():
            if name not in wanted:
                continue
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                if err.name and module_name.startswith(err.name):
                    continue  # this family has not landed yet
                raise
            if data.seconds_left() <= 0:
                err_console.print(f"[yellow]skipping {name}: --budget {budget:.0f} s spent[/yellow]")
                rows.append(DemoRow(name, "(skipped)", notes="time budget spent"))
                continue
            with status(f"running {name} ({data.seconds_left():.0f} s left)"):
                family_rows = module.run_demo(data)
            rows.extend(family_rows)
        elapsed = time.monotonic() - started
        for title, members in _grouped(rows):
            metric_names = _metric_names(members)
            caption = f"test split; {COUNTING_RULE}" if title == "language models" else "test split"
            console.print(table(f"lmlab lineage on {corpus_name}: {title} ({caption})",
                                ["family", "model", *metric_names, "train s"],
                                [[r.family, r.model, *[r.metrics.get(m) for m in metric_names], r.train_seconds]
                                 for r in members], left=2))
        for row in rows:
            if not row.metrics:
                err_console.print(f"[yellow]not run: {row.model} ({row.notes or 'no result'})[/yellow]")
        report = _report(data, stats, rows, elapsed)
        if _plot(rows, out / "ppl.png"):
            report += "\n![test perplexity](ppl.png)\n"
        atomic_write_text(out / "report.md", report)
        console.print(f"report: {out / 'report.md'}  ({elapsed:.1f} s)")
