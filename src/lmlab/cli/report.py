"""``lmlab report RUNS... --out report.html``: one page from any set of result records; ``--compare``.

RUNS are record files (``*.json`` written by ``lmlab demo``, ``lmlab finetune``, benchmarks) or
folders holding them (a demo folder: its ``records/``). ``--compare OLD NEW`` prints what changed
between two sets of records, metric by metric, and exits 1 when anything did (a regression check).
A fine-tuning run folder (``lmlab finetune --out RUN``) among RUNS also gets its model card
(``RUN/model/README.md``) rewritten from its record, so the card says what the record says.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import check_output, console, table


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        runs: list[Path] = typer.Argument(..., help="record files or folders (e.g. runs/demo)"),
        out: Path = typer.Option(Path("report.html"), "--out", "-o", help="the HTML page to write"),
        title: str = typer.Option("lmlab: the lineage report", help="the page's title"),
        compare: bool = typer.Option(False, "--compare", help="compare two record sets (RUNS = OLD NEW) instead"),
        force: bool = typer.Option(False, "--force", help="replace --out if it exists"),
    ) -> None:
        """Assemble records into one self-contained HTML page (or --compare two sets)."""
        from ..errors import UsageError
        from ..io import atomic_write_text
        from ..report.html import render
        from ..report.records import compare as diff
        from ..report.records import read_records

        if compare:
            if len(runs) != 2:
                raise UsageError(f"--compare takes two record sets, OLD and NEW; got {len(runs)}")
            changes = diff(read_records([runs[0]]), read_records([runs[1]]))
            if not changes:
                console.print(f"no metric changed between {runs[0]} and {runs[1]}")
                return
            console.print(table(f"{len(changes)} changes: {runs[0]} -> {runs[1]}",
                                ["model", "metric", "old", "new"], [list(c) for c in changes], left=2))
            raise typer.Exit(1)
        records = read_records(runs)
        check_output(out, inputs=tuple(runs), force=force)
        refreshed = refresh_cards(runs)
        base = runs[0] if runs[0].is_dir() else runs[0].parent
        atomic_write_text(out, render(records, title, base=base))
        console.print(f"{len(records)} records -> {out}" + (f"; model cards rewritten: {', '.join(map(str, refreshed))}"
                                                           if refreshed else ""))


def refresh_cards(runs: list[Path]) -> list[Path]:
    """Rewrite ``RUN/model/README.md`` of every fine-tuning run folder in ``runs`` from its record."""
    from ..report.cards import card_from_record
    from ..report.records import read_records

    written = []
    for run in runs:
        if run.is_dir() and (run / "model" / "config.json").is_file() and any((run / "records").glob("*.json")):
            for record in read_records([run / "records"]):
                if record.group == "finetune":
                    path = card_from_record(run / "model", record)
                    if path:
                        written.append(path)
    return written
