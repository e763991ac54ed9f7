"""Small helpers the CLI modules share: a stderr console, status lines, tables, output folders."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..report.tables import fmt

# piped output is not wrapped at 80 columns: tables stay one line per row
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)


@contextmanager
def status(message: str):
    """A spinner on stderr while a step runs (silent when stderr is not a terminal)."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
    else:
        err_console.print(f"[dim]{message}[/dim]")
        yield


def table(title: str, columns: list[str], rows: list[list], left: int = 1) -> Table:
    """A rich table; the first ``left`` columns are left-aligned, numbers right-aligned."""
    out = Table(title=title, show_lines=False)
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i < left else "right")
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out


def fresh_output_dir(path: Path, force: bool) -> Path:
    """Refuse to write into a non-empty folder unless --force (nothing the user had is lost)."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not force:
        raise UsageError(f"{path} already exists and is not empty; choose another --out or pass --force")
    path.mkdir(parents=True, exist_ok=True)
    return path
