"""Entry point of the ``lmlab`` command.

Each command group lives in its own module and is attached here from an
explicit table. Errors the user can fix (:class:`lmlab.errors.LmlabError`) are
printed as one line, ``lmlab: error: ...``, with a non-zero exit; ``--debug``
anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from ..errors import LmlabError

app = typer.Typer(
    name="lmlab",
    help="lmlab: n-grams to Transformers, trained, measured and used on the same data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# command group name -> module under lmlab.cli exposing ``app`` (a typer.Typer)
# or ``register(app)`` for top-level commands. Modules that do not exist yet are skipped.
GROUPS = {
    "corpus": "corpus",
    "tokenizer": "tokenizer",
    "ngram": "ngram",
    "embed": "embed",
    "eval": "evaluate",
}
TOP_LEVEL = ["demo", "train", "generate", "finetune"]


def _attach() -> None:
    for name, module_name in GROUPS.items():
        try:
            module = importlib.import_module(f"lmlab.cli.{module_name}")
        except ModuleNotFoundError as err:
            if err.name == f"lmlab.cli.{module_name}":
                continue
            raise
        app.add_typer(module.app, name=name)
    for module_name in TOP_LEVEL:
        try:
            module = importlib.import_module(f"lmlab.cli.{module_name}")
        except ModuleNotFoundError as err:
            if err.name == f"lmlab.cli.{module_name}":
                continue
            raise
        module.register(app)


_attach()


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit."""
    typer.echo(f"lmlab: error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LMLAB_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    try:
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
        fail(f"{type(err).__name__}: {err}", 1)


if __name__ == "__main__":  # pragma: no cover
    main()
