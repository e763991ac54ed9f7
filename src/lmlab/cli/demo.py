"""``lmlab demo``: every model family on one shared split of real text, in one table.

It loads ``wiki-vital`` (``--small``: ``wiki-vital-small``), splits it by document, builds
the shared word-level stream and closed vocabulary (:mod:`lmlab.recipes.lineage`), prints
the corpus statistics, then runs each demo group of the registry (:func:`lmlab.registry.demo_groups`,
in lineage order) within the time budget, prints the lineage table and writes
``runs/demo/report.md`` (plus ``ppl.png`` when matplotlib is installed), one JSON record per
row in ``runs/demo/records/`` and the self-contained page ``runs/demo/report.html`` through
:mod:`lmlab.report` (``lmlab report`` rebuilds or compares pages from records). The counting rule is :data:`lmlab.report.tables.COUNTING_RULE`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .. import registry
from ..io import atomic_write_text
from ..recipes.lineage import build_data, unigram_baseline
from ..report import DemoRow
from ..report.html import render
from ..report.plots import lineage_perplexity
from ..report.records import write_records
from ..report.tables import COUNTING_RULE, grouped, lineage_markdown, metric_names
from .common import check_range, console, err_console, status, table


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        small: bool = typer.Option(False, "--small", help="Use wiki-vital-small (~2,500 documents)."),
        budget: float = typer.Option(300.0, "--budget", help="Seconds the whole run may take (families are skipped past it)."),
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Where report.md (and ppl.png) go."),
        only: str = typer.Option("", "--only", help="Comma-separated demo groups to run: baseline," + ",".join(registry.demo_groups())),
        seed: int = typer.Option(0, help="Seed for every family."),
        vocab_size: int = typer.Option(10000, help="Closed vocabulary size (by count, from train)."),
        min_count: int = typer.Option(2, help="Words seen fewer times in train are <unk>."),
    ) -> None:
        """Run every model family on one shared split of real text and print the lineage table."""
        from ..errors import UsageError

        groups = registry.demo_groups()
        check_range("--budget", budget, above=0)
        check_range("--vocab-size", vocab_size, minimum=1)
        check_range("--min-count", min_count, minimum=1)

        started = time.monotonic()
        wanted = [w for w in only.split(",") if w] or ["baseline", *groups]
        unknown = [w for w in wanted if w != "baseline" and w not in groups]
        if unknown:
            raise UsageError(f"--only: unknown family {unknown[0]!r}; choose from baseline, {', '.join(groups)}")
        corpus_name = "wiki-vital-small" if small else "wiki-vital"
        out.mkdir(parents=True, exist_ok=True)
        with status(f"preparing {corpus_name}"):
            data, stats = build_data(corpus_name, out, seed, budget, vocab_size, min_count)
        console.print(table(f"{corpus_name}: word-level stream, vocabulary {len(data.vocab):,}",
                            ["split", "documents", "sentences", "tokens", "types", "OOV", "bytes"], stats))
        rows: list[DemoRow] = []
        if "baseline" in wanted:
            rows.append(unigram_baseline(data))
        end = data.deadline
        todo = [name for name in groups if name in wanted]
        if todo:
            err_console.print(f"[dim]budget {budget:.0f} s: each of {len(todo)} families gets an equal share of the "
                              f"time left when it starts (~{max(end - time.monotonic(), 0) / len(todo):.0f} s now): "
                              f"{', '.join(todo)}[/dim]")
        for i, name in enumerate(todo):
            left = end - time.monotonic()
            if left <= 0:
                err_console.print(f"[yellow]skipping {name}: --budget {budget:.0f} s spent[/yellow]")
                rows.append(DemoRow(name, "(skipped)", notes="time budget spent"))
                continue
            share = left / (len(todo) - i)
            data.deadline = time.monotonic() + share  # what the family's recipe sees as its own budget
            began = time.monotonic()
            with status(f"running {name} [{i + 1}/{len(todo)}]: share {share:.0f} s, {left:.0f} s left in all"):
                family_rows = groups[name].demo_function()(data)
            took = time.monotonic() - began
            if took > share * 1.25 + 5:
                err_console.print(f"[yellow]{name} took {took:.0f} s of its {share:.0f} s share[/yellow]")
                for family_row in family_rows:
                    family_row.notes = (family_row.notes + "; " if family_row.notes else "") + \
                        f"over its time share ({took:.0f} of {share:.0f} s)"
            rows.extend(family_rows)
        data.deadline = end
        elapsed = time.monotonic() - started
        for title, members in grouped(rows):
            names = metric_names(members)
            caption = f"test split; {COUNTING_RULE}" if title == "language models" else "test split"
            console.print(table(f"lmlab lineage on {corpus_name}: {title} ({caption})",
                                ["family", "model", *names, "train s"],
                                [[r.family, r.model, *[r.metrics.get(m) for m in names], r.train_seconds]
                                 for r in members], left=2))
        for row in rows:
            if not row.metrics:
                err_console.print(f"[yellow]not run: {row.model} ({row.notes or 'no result'})[/yellow]")
        report = lineage_markdown(data, stats, rows, elapsed)
        if lineage_perplexity(rows, out / "ppl.png"):
            report += "\n![test perplexity](ppl.png)\n"
        atomic_write_text(out / "report.md", report)
        records = demo_records(rows, data, corpus_name, seed)
        for stale in (out / "records").glob("*.json"):
            stale.unlink()  # the records of this run only
        write_records(records, out / "records")
        atomic_write_text(out / "report.html", render(records, f"lmlab lineage on {corpus_name}", base=out))
        console.print(f"report: {out / 'report.html'} and {out / 'report.md'}; records: {out / 'records'}/ "
                      f"({elapsed:.1f} s)")


def demo_records(rows: list[DemoRow], data, corpus_name: str, seed: int) -> list:
    """One record per demo row that has metrics, sharing the corpus hash, machine and commit."""
    from ..report.records import from_demo_row, git_commit, machine, text_sha256

    sha = text_sha256(data.test_sentences)
    host, commit = machine(), git_commit()
    tokenizer = f"word (lower-cased, closed vocabulary of {len(data.vocab):,} from train)"
    return [from_demo_row(row, row.family, corpus=corpus_name, corpus_sha256=sha, tokenizer=tokenizer,
                          counting_rule=COUNTING_RULE, seed=seed, commit=commit, host=host)
            for row in rows if row.metrics]
