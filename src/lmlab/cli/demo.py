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

SMALL_BUDGET, FULL_BUDGET = 170.0, 540.0  # seconds: ~3 and ~10 minutes with the corpus preparation
HARD_STOP = 0.9  # a family's training is stopped at this fraction of its time share
SMOOTHING_SECONDS = 30.0  # at most this (and 10% of --budget) is kept for the smoothing-method grid
SMOOTHING_METHODS = ["add-one", "good-turing", "katz", "jelinek-mercer", "witten-bell", "absolute", "kn", "mkn"]
SMOOTHING_FRACTIONS = (0.1, 0.3, 1.0)
# Time shares: each group first gets the least it needs to produce a row at all (its recipe's own
# threshold plus one model: the n-grams build in seconds, a BERT-style row pretrains and fine-tunes
# a model, the seq2seq group trains one encoder-decoder), then the rest by relative weight (1.0 when
# a group is not listed), from the families' measured costs on 2 cores: BERT and seq2seq train four
# models each; the neural LMs, ELMo, GPT and Transformer-XL pay for scoring the test stream.
SHARE_FLOORS = {"ngram": 8.0, "adaptive": 12.0, "neural": 14.0, "elmo": 18.0, "embeddings": 10.0, "gpt": 14.0,
                "bert": 35.0, "transfo-xl": 18.0, "xlnet": 35.0, "seq2seq": 30.0}
SHARE_WEIGHTS = {"ngram": 1.0, "adaptive": 1.5, "neural": 1.5, "elmo": 1.5, "embeddings": 1.25, "gpt": 1.5,
                 "bert": 3.0, "transfo-xl": 1.5, "xlnet": 1.5, "seq2seq": 3.0}


def plan_shares(seconds: float, names: list[str]) -> dict[str, float]:
    """Each group's share of ``seconds``: its floor (:data:`SHARE_FLOORS`), then the rest by
    :data:`SHARE_WEIGHTS`; when the floors alone do not fit, the groups in order get their floors
    until the time runs out (the later ones get nothing and are skipped, saying so). This is the plan
    announced up front; a group's actual share is recomputed from the time left when it starts, so
    time a group does not use goes to the ones after it."""
    floors = [SHARE_FLOORS.get(name, 0.0) for name in names]
    if sum(floors) >= seconds:
        plan, left = {}, seconds
        for name, floor in zip(names, floors):
            plan[name] = min(floor, left)
            left -= plan[name]
        return plan
    weights = [SHARE_WEIGHTS.get(name, 1.0) for name in names]
    rest = seconds - sum(floors)
    return {name: floor + rest * w / sum(weights) for name, floor, w in zip(names, floors, weights)}


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        small: bool = typer.Option(False, "--small", help="Use wiki-vital-small (~2,500 documents)."),
        budget: float = typer.Option(0.0, "--budget", help="Seconds the whole run may take (0: 170 with --small, else "
                                   "540): each family gets a share (announced up front); its work is stopped at "
                                   "90% of the share (between steps, epochs, chunks or models) and the row says "
                                   "it was cut; families with no time left are skipped."),
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Where report.md (and ppl.png) go."),
        only: str = typer.Option("", "--only", help="Comma-separated demo groups to run: baseline," + ",".join(registry.demo_groups())),
        seed: int = typer.Option(0, help="Seed for every family."),
        vocab_size: int = typer.Option(10000, help="Closed vocabulary size (by count, from train)."),
        min_count: int = typer.Option(2, help="Words seen fewer times in train are <unk>."),
    ) -> None:
        """Run every model family on one shared split of real text and print the lineage table."""
        from ..errors import UsageError

        groups = registry.demo_groups()
        check_range("--budget", budget, minimum=0, meaning="seconds; 0 means the default")
        check_range("--vocab-size", vocab_size, minimum=1)
        check_range("--min-count", min_count, minimum=1)
        if budget == 0:
            budget = SMALL_BUDGET if small else FULL_BUDGET

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
        # the smoothing-method grid (n-grams, seconds) runs last, in time set aside for it
        smoothing = "ngram" in wanted
        reserve = min(SMOOTHING_SECONDS, 0.1 * budget) if smoothing else 0.0
        end -= reserve
        todo = [name for name in groups if name in wanted]
        if todo:
            plan = plan_shares(max(end - time.monotonic(), 0.0), todo)
            err_console.print(f"[dim]budget {budget:.0f} s: shares of the time left (a family's work is stopped at "
                              f"{HARD_STOP:.0%} of its share; time a family leaves unused goes to the next): "
                              + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in plan.items())
                              + (f"; {reserve:.0f} s kept for the smoothing-method grid" if smoothing else "")
                              + "[/dim]")
        from ..train.budget import OverBudget, stop_training_at  # imports torch: not for --help

        for i, name in enumerate(todo):
            left = end - time.monotonic()
            if left <= 0:
                err_console.print(f"[yellow]skipping {name}: --budget {budget:.0f} s spent[/yellow]")
                rows.append(DemoRow(name, "(skipped)", notes="time budget spent"))
                continue
            share = plan_shares(left, todo[i:])[name]
            data.deadline = time.monotonic() + share  # what the family's recipe sees as its own budget
            began = time.monotonic()
            # training past HARD_STOP of the share is stopped (between steps); the rest is the scoring's
            with status(f"running {name} [{i + 1}/{len(todo)}]: share {share:.0f} s, {left:.0f} s left in all"), \
                    stop_training_at(began + HARD_STOP * share, f"{name} (share {share:.0f} s)"):
                try:
                    family_rows = groups[name].demo_function()(data)
                except OverBudget as stopped:
                    err_console.print(f"[yellow]{stopped}[/yellow]")
                    family_rows = [DemoRow(name, f"{name} (stopped)", notes=str(stopped))]
            took = time.monotonic() - began
            if took > share * 1.25 + 5:
                err_console.print(f"[yellow]{name} took {took:.0f} s of its {share:.0f} s share[/yellow]")
                for family_row in family_rows:
                    family_row.notes = (family_row.notes + "; " if family_row.notes else "") + \
                        f"over its time share ({took:.0f} of {share:.0f} s)"
            rows.extend(family_rows)
        data.deadline = end + reserve
        comparison = []
        if smoothing and data.seconds_left() >= 3:
            with status(f"smoothing methods x orders x training sizes ({data.seconds_left():.0f} s left)"):
                comparison = smoothing_grid(data)
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
        records = demo_records(rows, data, corpus_name, seed, comparison)
        for stale in (out / "records").glob("*.json"):
            stale.unlink()  # the records of this run only
        write_records(records, out / "records")
        atomic_write_text(out / "report.html", render(records, f"lmlab lineage on {corpus_name}", base=out))
        console.print(f"report: {out / 'report.html'} and {out / 'report.md'}; records: {out / 'records'}/ "
                      f"({elapsed:.1f} s)")


def smoothing_grid(data) -> list:
    """Chen & Goodman's comparison on the demo's split: methods x orders 2-3 x three training sizes.

    Runs one method (both orders) at a time and stops between methods when the time left would not
    cover the next one (timed on the one before; each training size costs about three times the one
    before), so the grid stays inside the time kept for it."""
    from ..recipes.ngram import compare_methods

    rows: list = []
    last = 0.0
    for k, fraction in enumerate(SMOOTHING_FRACTIONS):
        for method in SMOOTHING_METHODS:
            guess = last * (3.0 if method == SMOOTHING_METHODS[0] and k else 1.0)
            if rows and data.seconds_left() < 1.25 * guess:
                return rows
            began = time.monotonic()
            rows += compare_methods(data.train_sentences, data.valid_sentences, data.test_sentences,
                                    methods=[method], orders=(2, 3), fractions=(fraction,))
            last = time.monotonic() - began
    return rows


def demo_records(rows: list[DemoRow], data, corpus_name: str, seed: int, comparison: list = ()) -> list:
    """One record per demo row that has metrics, sharing the corpus hash, machine and commit, then one
    per cell of the smoothing-method grid."""
    from ..report.records import from_comparison_rows, from_demo_row, git_commit, machine, text_sha256

    sha = text_sha256(data.test_sentences)
    host, commit = machine(), git_commit()
    tokenizer = f"word (lower-cased, closed vocabulary of {len(data.vocab):,} from train)"
    records = [from_demo_row(row, row.family, corpus=corpus_name, corpus_sha256=sha, tokenizer=tokenizer,
                             counting_rule=COUNTING_RULE, seed=seed, commit=commit, host=host)
               for row in rows if row.metrics]
    grid = from_comparison_rows(comparison, corpus=corpus_name, seed=seed, commit=commit, host=host)
    for record in grid:
        record.corpus_sha256 = sha
    return records + grid
