"""Small helpers the CLI modules share: a stderr console, status lines, tables, output checks."""

from __future__ import annotations

import os
import sys
import tempfile
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


@contextmanager
def spinner(message: str):
    """A spinner on stderr while a step runs when stderr is a terminal; nothing otherwise (for steps
    whose failure must stay a one-line error in logs)."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
    else:
        yield


def table(title: str, columns: list[str], rows: list[list], left: int = 1) -> Table:
    """A rich table; the first ``left`` columns are left-aligned, numbers right-aligned."""
    out = Table(title=title, show_lines=False)
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i < left else "right")
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out


def fresh_output_dir(path: Path, force: bool, inputs=(), option: str = "--out") -> Path:
    """Refuse to write into a non-empty folder unless --force (nothing the user had is lost), or
    into a folder that is, holds or lies inside an input (never); then create it. See :func:`check_output`."""
    check_output(path, inputs, force, option, folder=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- outputs and option ranges
# One rule for every file a command writes (issue 20): an output that exists is replaced only with
# --force; an output that is one of the command's inputs (or a folder holding one) is always refused;
# the output's folder must exist or be creatable, and be writable -- all checked before the work starts.


def _input_paths(inputs) -> list[Path]:
    """The existing paths among ``inputs`` (paths, '-' for stdin, built-in corpus names, globs)."""
    import glob

    found: list[Path] = []
    for item in inputs:
        if item is None or str(item) in ("", "-"):
            continue
        text = str(item)
        candidates = [Path(p) for p in glob.glob(text)] if any(c in text for c in "*?[") else [Path(text)]
        found.extend(p for p in candidates if p.exists())
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(child: Path, folder: Path) -> bool:
    """True when ``child`` is ``folder`` or lies somewhere under it (resolved paths)."""
    child, folder = child.resolve(), folder.resolve()
    return child == folder or folder in child.parents


def check_output(path: Path, inputs=(), force: bool = False, option: str = "--out", folder: bool = False) -> Path:
    """Check an output before any work starts; return ``path``. Raises a one-line UsageError.

    ``folder=False``: ``path`` is a file; an existing one is replaced only with ``force``.
    ``folder=True``: ``path`` is a folder; a non-empty one is written into only with ``force``.
    Always refused: an output that is one of ``inputs`` (same file, same folder, a folder that
    holds an input, or a folder inside an input folder), a file where a folder is expected (or
    the reverse), a parent that is not a folder or not writable. ``inputs`` may hold paths,
    globs, ``-`` or built-in corpus names (those that are not existing paths are ignored).
    """
    path = Path(path)
    for source in _input_paths(inputs):
        if _same(path, source) or (folder and (_inside(source, path) or (source.is_dir() and _inside(path, source)))):
            what = "is" if _same(path, source) else ("holds" if _inside(source, path) else "is inside")
            raise UsageError(f"{option} {path} {what} the input {source}; refusing to write over an input "
                             f"(--force does not change this); choose another {option}")
    if path.exists():
        if folder and not path.is_dir():
            raise UsageError(f"{option} {path} is a file, not a folder; choose another {option}")
        if not folder and path.is_dir():
            raise UsageError(f"{option} {path} is a folder; give a file name")
        if not force and (not folder or any(path.iterdir())):
            kind = "already exists and is not empty" if folder else "already exists"
            raise UsageError(f"{option} {path} {kind}; choose another {option} or pass --force to replace it")
    parent = path if folder else path.parent
    parent = parent if str(parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is not a folder")
    verb = "is not writable" if existing == parent else f"cannot be created ({existing} is not writable)"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {parent} {verb}")
    try:  # os.access says yes to root, and on read-only or virtual file systems: try it
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lmlab-probe-"))
    except OSError as err:
        raise UsageError(f"{option} {path}: the folder {parent} {verb}: {err.strerror or err}") from None
    return path


def check_range(option: str, value, minimum=None, maximum=None, above=None, meaning: str = ""):
    """Refuse ``value`` (a number; None passes) outside [minimum, maximum] or not > ``above``: one-line UsageError."""
    if value is None:
        return value
    bad = ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)
           or (above is not None and value <= above))
    if bad:
        if above is not None:
            want = f"> {above}"
        elif maximum is None:
            want = f">= {minimum}"
        elif minimum is None:
            want = f"<= {maximum}"
        else:
            want = f"in [{minimum}, {maximum}]"
        raise UsageError(f"{option} must be {want}, got {value}" + (f" ({meaning})" if meaning else ""))
    return value


# the seq2seq decoding options of ``lmlab finetune`` and ``lmlab predict`` (lmlab.tasks.seq2seq.DECODING_OPTIONS):
# what each sets, then its default on finetune and on predict (where the fine-tuned folder's value comes first)
_DECODING_HELP = {
    "num_beams": ("beam width", "1: greedy"),
    "length_penalty": ("beam search's length penalty", "1.0"),
    "max_source_len": ("source tokens kept, specials included; at most the model's max_length", "64"),
    "max_target_len": ("target tokens kept in training (</s> included) and output tokens at most", "64"),
}


def decoding_option(name: str, command: str):
    """The typer option of one seq2seq decoding setting (``name``: a Seq2SeqFinetuneSpec field) on
    ``command`` (``finetune``: recorded in the folder; ``predict``: default the folder's record)."""
    import typer

    what, default = _DECODING_HELP[name]
    if command == "finetune":
        return typer.Option(None, help=f"seq2seq: {what} (default {default}); recorded for lmlab predict / eval")
    return typer.Option(None, help=f"text2text-generation: {what} (default: the fine-tuning's, else {default})")
