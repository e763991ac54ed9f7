"""``lmlab tokenizer``: train a tokenizer on a corpus split, encode text with a saved one."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..data import sources
from ..data.corpus import word_sentences
from ..data.tokenizers import NAMES, WordTokenizer, load_tokenizer, train_tokenizer
from ..errors import UsageError, closest
from .common import check_output, check_range, console, fresh_output_dir, status

app = typer.Typer(help="Train and use tokenizers.", no_args_is_help=True)


@app.command("train")
def train(
    corpus: str = typer.Argument(..., help="Built-in name or a file, folder or glob."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to save the tokenizer in."),
    kind: str = typer.Option("bpe", "--type", "-t", help="word | char | bpe | wordpiece | bytebpe | unigram | zh-word"),
    vocab_size: int | None = typer.Option(None, help="Vocabulary size (>= 1; default: subword 8000, word/char no cap)."),
    min_count: int = typer.Option(1, help="Minimum count for word/char vocabularies (1: keep all)."),
    split: str = typer.Option("train", help="Which split to train on (train | valid | test)."),
    from_path: Path | None = typer.Option(None, "--from", help="Local copy of the built-in's package file."),
    force: bool = typer.Option(False, help="Write into a non-empty --out folder."),
) -> None:
    """Train a tokenizer on one split of a corpus and save it."""
    if kind not in NAMES:
        raise UsageError(f"unknown tokenizer {kind!r}{closest(kind, NAMES)}; choose one of {', '.join(NAMES)}")
    check_range("--vocab-size", vocab_size, minimum=1)
    check_range("--min-count", min_count, minimum=1)
    check_output(out, inputs=(corpus, from_path), force=force, folder=True)
    with status(f"loading {corpus}"):
        docs = sources.load(corpus, from_path=from_path).split()[split]
    fresh_output_dir(out, force, inputs=(corpus, from_path))
    with status(f"training {kind}"):
        if kind == "word":
            tok = WordTokenizer().train_from_tokens(word_sentences(docs), min_count=min_count, max_size=vocab_size)
        elif kind == "zh-word":
            from ..data.tokenizers import ChineseWordTokenizer

            tok = ChineseWordTokenizer().train_documents(docs, min_count=min_count, max_size=vocab_size)
        else:
            tok = train_tokenizer(kind, (d.text for d in docs), vocab_size=vocab_size, min_count=min_count)
    tok.save(out)
    console.print(f"{kind} tokenizer, {tok.vocab_size:,} entries, trained on {len(docs):,} {split} documents -> {out}")


@app.command("encode")
def encode(
    folder: Path = typer.Argument(..., help="A saved tokenizer folder."),
    text: str | None = typer.Argument(None, help="Text to encode (default: read stdin, one line at a time)."),
    ids: bool = typer.Option(False, "--ids", help="Print ids instead of tokens."),
) -> None:
    """Encode text: print the tokens (or ids) of each input line."""
    tok = load_tokenizer(folder)
    lines = [text] if text is not None else (line.rstrip("\n") for line in sys.stdin)
    for line in lines:
        encoded = tok.encode(line)
        if ids:
            print(" ".join(map(str, encoded)))
        else:
            print(" ".join(tok.id_to_token(i) for i in encoded))
