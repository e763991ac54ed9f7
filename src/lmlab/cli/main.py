"""Entry point of the ``lmlab`` command.

Each command group lives in its own module and is attached here from an
explicit table. Errors the user can fix (:class:`lmlab.errors.LmlabError`) are
printed as one line, ``lmlab: error: ...``, with a non-zero exit; ``--debug``
anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings

import typer

from ..errors import LmlabError

app = typer.Typer(
    name="lmlab",
    help="lmlab: n-grams to Transformers, trained, measured and used on the same data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"lmlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print lmlab's version and exit.",
                                 callback=_print_version, is_eager=True),
) -> None:
    """lmlab: n-grams to Transformers, trained, measured and used on the same data."""


# command group name -> module under lmlab.cli exposing ``app`` (a typer.Typer);
# top-level command name -> module exposing ``register(app)``. Only the module of the
# command being run is imported (so `lmlab corpus list` does not pay for torch or
# transformers); `lmlab --help` imports them all. A misspelt row fails (tests/test_cli_main.py runs each).
GROUPS = {
    "corpus": "corpus",
    "tokenizer": "tokenizer",
    "ngram": "ngram",
    "embed": "embed",
    "eval": "evaluate",
}
TOP_LEVEL = {
    "demo": "demo",
    "train": "train",
    "generate": "generate",
    "finetune": "finetune",
    "report": "report",
    "predict": "predict",
}


def _import(module_name: str):
    return importlib.import_module(f"lmlab.cli.{module_name}")


def _attach(command: str | None) -> None:
    for name, module_name in GROUPS.items():
        if command in (None, name):
            app.add_typer(_import(module_name).app, name=name)
    for name, module_name in TOP_LEVEL.items():
        if command in (None, name):
            _import(module_name).register(app)


def _command_of(argv: list[str]) -> str | None:
    """The command named on the command line, if it is one we know (else None: attach all)."""
    for arg in argv:
        if arg.startswith("-"):
            continue
        return arg if arg in GROUPS or arg in TOP_LEVEL else None
    return None


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit."""
    typer.echo(f"lmlab: error: {message}", err=True)
    raise SystemExit(code)


class _Warnings:
    """lmlab's own warnings as one ``lmlab: warning: ...`` line each, not Python's two-line form with
    a source line; a warning that differs from one already shown only in its numbers (the same
    fallback for each n-gram order, say) is counted, and the count is said once at the end."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.previous = warnings.showwarning

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:
        if not getattr(category, "__module__", "").startswith("lmlab"):
            return self.previous(message, category, filename, lineno, file, line)
        text = str(message)
        shape = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
        self.seen[shape] = self.seen.get(shape, 0) + 1
        if self.seen[shape] == 1:
            typer.echo(f"lmlab: warning: {text}", err=True)

    def summary(self) -> None:
        repeats = sum(n - 1 for n in self.seen.values())
        if repeats:
            typer.echo(f"lmlab: warning: ({repeats} more like the warnings above, for other orders or items)", err=True)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LMLAB_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    shown = _Warnings()
    if not debug:
        warnings.showwarning = shown.show
    try:
        _run(argv, debug)
    finally:
        shown.summary()
        warnings.showwarning = shown.previous


def _run(argv: list[str], debug: bool) -> None:
    try:
        _attach(_command_of(argv))
        app(args=argv, prog_name="lmlab")
    except LmlabError as err:
        if debug:
            raise
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        fail("interrupted", 130)
    except (OSError, MemoryError) as err:
        if debug:
            raise
        from ..io import WRITE_FAILURES

        if isinstance(err, OSError) and err.errno in WRITE_FAILURES:
            # a write that failed for want of room outside lmlab's own writers (e.g. numba's kernel
            # cache under a full disk or `ulimit -f`): say so, naming the file when the error does
            where = f" {err.filename}" if err.filename else " a file"
            fail(f"cannot write{where}: {err.strerror or err} (disk full, quota or file-size limit?)", 1)
        fail(f"{type(err).__name__}: {err}", 1)


if __name__ == "__main__":  # pragma: no cover
    main()
