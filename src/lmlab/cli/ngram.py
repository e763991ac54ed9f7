"""``lmlab ngram``: build, eval, score, sample, compare -- with the habits of lmplz / query / SRILM ngram.

TEXT arguments are a file of tokenized sentences (one per line, tokens separated
by spaces, as lmplz reads it; ``-`` is stdin; ``.gz`` is fine) or a built-in
corpus as ``NAME[:SPLIT]`` (e.g. ``wiki-vital:train``), which goes through
``lmlab.data.corpus.word_sentences`` (sentence-split, word-tokenized, lowercased).
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..data.corpus import check_text
from ..errors import DataError, UsageError
from .common import check_output, check_range, console, err_console, table

if TYPE_CHECKING:
    from ..ngram.model import NgramModel
    from ..ngram.pipeline import StageEvent

# The n-gram commands use no BLAS: with one OpenBLAS thread, importing numpy (inside the
# commands) does not start a thread pool per core (~0.06 s of wall time on a 2-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

app = typer.Typer(help="Statistical n-gram LMs: KenLM-compatible ARPA models, every classic smoothing method.",
                  no_args_is_help=True)


def _read_bytes(spec: str) -> bytes | None:
    """The raw bytes of a text file (gunzipped) or of stdin ('-'); None when ``spec`` is not a file."""
    if spec == "-":
        return sys.stdin.buffer.read()
    path = Path(spec)
    if not path.is_file():
        return None
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as err:
            raise DataError(f"{spec}: a truncated or corrupt gzip file ({err})") from None
    check_text(raw, spec)  # a ZIP, PNG, PDF ... is refused by name, not read as text
    return raw


class _TextFile:
    """A text file read a piece at a time (``read(n)``), gunzipped; gzip errors become one-line errors."""

    def __init__(self, f, spec: str):
        self.f, self.spec = f, spec

    def read(self, n: int) -> bytes:
        try:
            return self.f.read(n)
        except (EOFError, OSError, gzip.BadGzipFile) as err:
            raise DataError(f"{self.spec}: a truncated or corrupt gzip file ({err})") from None

    def close(self) -> None:
        self.f.close()


def _open_text(spec: str) -> _TextFile | None:
    """A text file to read in pieces, its first bytes checked as :func:`_read_bytes` checks the whole
    (known binary formats refused); None for '-' or when ``spec`` is not a file."""
    path = Path(spec)
    if spec == "-" or not path.is_file():
        return None
    f = open(path, "rb")
    try:
        if f.read(2) == b"\x1f\x8b":
            f.close()
            f = gzip.open(path, "rb")
        f.seek(0)
        stream = _TextFile(f, spec)
        check_text(stream.read(8192), spec)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return stream


def _where(spec: str) -> str:
    return "stdin" if spec == "-" else spec


def _corpus_sentences(spec: str, default_split: str) -> list[list[str]]:
    """A built-in corpus NAME[:SPLIT], sentence-split, word-tokenized and lowercased."""
    from ..data import sources
    from ..data.corpus import word_sentences

    name, _, split = spec.partition(":")
    split = split or default_split
    if name not in sources.SOURCES:
        raise DataError(f"{spec!r} is neither a file nor a built-in corpus NAME[:SPLIT]")
    return word_sentences(sources.load(name).split()[split])


def _normalised(raw: bytes, where: str, lowercase: bool, tokenize: bool) -> list[list[str]]:
    """A file's lines as the built-in corpora are read: lower-cased (--lowercase) and/or
    sentence-split and word-tokenized (--tokenize), instead of split on whitespace as written."""
    from ..data.corpus import Document, decode_utf8, word_sentences

    lines = decode_utf8(raw, where).splitlines()
    if tokenize:
        return word_sentences([Document(f"{where}:{i}", line, {}) for i, line in enumerate(lines, 1) if line.strip()],
                              lowercase=lowercase)
    return [(line.lower() if lowercase else line).split() for line in lines if line.split()]


def read_text(spec: str, default_split: str, lowercase: bool = False, tokenize: bool = False) -> list[list[str]]:
    """Sentences from a tokenized text file, stdin ('-'), or a built-in corpus NAME[:SPLIT]."""
    raw = _read_bytes(spec)
    if raw is not None:
        from ..ngram import Text

        if lowercase or tokenize:
            return _normalised(raw, _where(spec), lowercase, tokenize)
        return Text(raw, _where(spec)).sentences()
    return _corpus_sentences(spec, default_split)


def _training_text(spec: str, lowercase: bool = False, tokenize: bool = False):
    """What ``ngram build`` counts: a file's (or stdin's) bytes as they are (or normalised, with
    --lowercase / --tokenize), or a built-in corpus's sentences."""
    from ..ngram import Text

    raw = _read_bytes(spec)
    if raw is not None and (lowercase or tokenize):
        return _normalised(raw, _where(spec), lowercase, tokenize)
    return Text(raw, _where(spec)) if raw is not None else _corpus_sentences(spec, "train")


class _LmplzLog:
    """Prints the pipeline's stage events on stderr, lmplz-style: a numbered header per stage
    (counting, estimating, pruning if any, writing), the counts, KN discounts, what pruning kept."""

    def __init__(self, smoothing: str):
        self.smoothing = smoothing  # as the user typed it
        self.headers: tuple[str, ...] = ()  # numbered: count, estimate, [prune], write
        self.started = 0.0  # when counting started (for the total)
        self.count_seconds = 0.0
        self.estimating = 0.0  # seconds of the stages after counting (for the Writing header)
        self.counted: tuple[int, ...] = ()
        self.count_of_counts: tuple[tuple[int, ...], ...] = ()

    def _header(self, stage: str, what: str) -> None:
        err_console.print(f"=== {self.headers.index(stage) + 1}/{len(self.headers)} {what} ===")

    def __call__(self, event: StageEvent) -> None:
        if not self.headers:
            self.headers = (*(s for s in event.stages if s != "adjust"), "write")
        if event.phase == "end":
            self._ended(event)
        elif event.stage == "count":
            self.started = time.perf_counter()
            self._header("count", "Counting n-grams")
        elif event.stage == event.stages[1]:  # adjust (Kneser-Ney) or estimate: one Estimating header
            self._header("estimate", f"Estimating ({self.smoothing}) [{self.count_seconds:.2f}s]")
        elif event.stage == "prune":
            self._header("prune", "Pruning")

    def _ended(self, event: StageEvent) -> None:
        if event.stage == "count":
            self.count_seconds = event.seconds
            self.counted = event.sizes
            err_console.print(f"Sentences {event.sentences} tokens {event.tokens} types {event.types}")
            for n, size in enumerate(event.sizes, start=1):
                err_console.print(f"{n}-grams: {size}")
            return
        self.estimating += event.seconds
        if event.stage == "adjust":
            self.count_of_counts = event.count_of_counts
        elif event.stage == "estimate" and self.count_of_counts:
            for n, (coc, d) in enumerate(zip(self.count_of_counts, event.info["discounts"]), start=1):
                ds = " ".join(f"D{k}={v:.6g}" for k, v in zip(("1", "2", "3+"), d if isinstance(d, list) else [d]))
                err_console.print(f"{n} {self.counted[n - 1]} n1..n4={list(coc)} {ds}")
        elif event.stage == "prune":
            err_console.print("kept: " + ", ".join(f"{n}-grams {s}" for n, s in enumerate(event.sizes, start=1)))

    def writing(self, fmt: str = "ARPA") -> None:
        """The header of the last stage, the command's own: writing the ARPA (or binary) file."""
        self._header("write", f"Writing {fmt} model [{self.estimating:.2f}s]")

    def wrote(self, out: Path, model: NgramModel, seconds: float) -> None:
        err_console.print(f"wrote {out} ({model.describe()}) in {seconds:.2f}s; "
                          f"total {time.perf_counter() - self.started:.2f}s")


@app.command("build")
def build_cmd(
    text: str = typer.Argument(..., help="Training text: tokenized file, '-', or NAME[:SPLIT] (default split train)."),
    out: Path = typer.Option(..., "--out", "-o", "--arpa", help="Model file to write: ARPA (.gz: compressed) or binary (--format binary)."),
    order: int = typer.Option(3, "--order", "-n", help="n-gram order (lmplz -o)."),
    smoothing: str = typer.Option("mkn", "--smoothing", "-s", help="Method: see `lmlab ngram methods`."),
    prune: list[int] | None = typer.Option(None, "--prune", help="Count cut-offs per order, lmplz style: --prune 0 --prune 0 --prune 1"),
    prune_entropy: float | None = typer.Option(None, help="Stolcke relative-entropy threshold (e.g. 1e-8)."),
    target_size: int | None = typer.Option(None, help="Stolcke-prune down to at most this many n-grams."),
    valid: str | None = typer.Option(None, help="Held-out text for jelinek-mercer / dirichlet (default: every 10th sentence)."),
    delta: float = typer.Option(0.5, help="delta for add-delta (> 0)."),
    vocab_min_count: int = typer.Option(1, help="Closed vocabulary: words seen fewer times become <unk> (1: keep all)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    memory: str | None = typer.Option(None, "--memory", "-S", help="Count under this memory budget (lmplz -S): 2G, 500M, 25%; sorted runs spill to --temp."),
    temp: Path | None = typer.Option(None, "--temp", "-T", help="Folder for the spilled runs (lmplz -T; default: the system's temporary folder)."),
    workers: int = typer.Option(1, "--workers", help="Count chunks of the text in this many processes (same result)."),
    fmt: str = typer.Option("arpa", "--format", help="'arpa' (text) or 'binary' (memory-mapped .lmbin, see `ngram binarize`)."),
    prob_bits: int | None = typer.Option(None, "--prob-bits", help="[binary] 64 exact (trie default), 32 float32 (probing default), 2..16 quantised (KenLM -q)."),
    backoff_bits: int | None = typer.Option(None, "--backoff-bits", help="[binary] 64 exact (trie default), 32 float32 (probing default), 2..16 quantised (KenLM -b)."),
    structure: str = typer.Option("trie", "--structure", help="[binary] 'trie' (smallest file) or 'probing' (adds KenLM-style hash tables: fastest queries)."),
    lowercase: bool = typer.Option(False, "--lowercase", help="A file: lower-case it (built-in corpora already are)."),
    tokenize: bool = typer.Option(False, "--tokenize", help="A file: sentence-split and word-tokenize it as the built-in corpora are."),
) -> None:
    """Estimate an n-gram model and write it as ARPA or binary (progress on each stage, like lmplz)."""
    from ..ngram import write_arpa
    from ..ngram.binary import check_bits, check_structure, value_bits, write_binary
    from ..ngram.pipeline import PipelineConfig, build, build_arpa, on_disk

    check_range("--order", order, minimum=1)
    check_range("--delta", delta, above=0)
    check_range("--vocab-min-count", vocab_min_count, minimum=1)
    for cutoff in prune or ():
        check_range("--prune", cutoff, minimum=0, meaning="0 keeps every n-gram of that order")
    check_range("--prune-entropy", prune_entropy, minimum=0)
    check_range("--target-size", target_size, minimum=1)
    if fmt not in ("arpa", "binary"):
        raise UsageError(f"--format must be 'arpa' or 'binary', not {fmt!r}")
    prob_bits, backoff_bits = value_bits(structure, prob_bits, backoff_bits)
    check_bits(prob_bits, "--prob-bits")
    check_bits(backoff_bits, "--backoff-bits")
    if fmt == "binary":
        check_structure(structure, prob_bits, backoff_bits, "--structure")
    check_range("--workers", workers, minimum=1)
    if memory is not None:
        from ..ngram.extsort import parse_memory

        parse_memory(memory)
    if temp is not None and not temp.is_dir():
        raise UsageError(f"--temp {temp} is not a folder")
    check_output(out, inputs=(text, valid), force=force)

    config = PipelineConfig(order=order, smoothing=smoothing, delta=delta, vocab_min_count=vocab_min_count,
                            prune=tuple(prune or ()), prune_entropy=prune_entropy, target_size=target_size,
                            memory=memory, temp=None if temp is None else str(temp), workers=workers)
    log = _LmplzLog(smoothing)
    heldout = None if valid is None else (lambda: read_text(valid, "valid"))
    if fmt == "arpa" and on_disk(config):  # estimated on disk, the ARPA file written as it goes
        written = build_arpa(lambda: _training_text(text, lowercase, tokenize), config, out, log, heldout=heldout)
        log.writing("ARPA (written while estimating)")
        log.wrote(out, written, 0.0)
        return
    model = build(lambda: _training_text(text, lowercase, tokenize), config, log, heldout=heldout)
    log.writing("binary" if fmt == "binary" else "ARPA")
    t = time.perf_counter()
    if fmt == "binary":
        write_binary(model, out, prob_bits=prob_bits, backoff_bits=backoff_bits, structure=structure)
    else:
        write_arpa(model, out)
    log.wrote(out, model, time.perf_counter() - t)


def _load(model_path: Path):
    from ..ngram import load_model

    return load_model(model_path)


@app.command("binarize")
def binarize_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="ARPA file (KenLM, SRILM or lmlab; .gz fine) or a binary model."),
    out: Path = typer.Argument(..., metavar="OUT", help="Binary model to write (conventionally .lmbin)."),
    prob_bits: int | None = typer.Option(None, "--prob-bits", "-q", help="64 exact (trie default), 32 float32 (probing default), 2..16 quantised bins (KenLM -q)."),
    backoff_bits: int | None = typer.Option(None, "--backoff-bits", "-b", help="64 exact (trie default), 32 float32 (probing default), 2..16 quantised bins (KenLM -b)."),
    structure: str = typer.Option("trie", "--structure", help="'trie' (smallest file) or 'probing' (adds KenLM-style hash tables: fastest queries; 32 or 64 bits)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write a model as a memory-mapped binary file (KenLM build_binary): loads in milliseconds."""
    from ..ngram.binary import check_bits, check_structure, value_bits, write_binary

    prob_bits, backoff_bits = value_bits(structure, prob_bits, backoff_bits)
    check_bits(prob_bits, "--prob-bits")
    check_bits(backoff_bits, "--backoff-bits")
    check_structure(structure, prob_bits, backoff_bits, "--structure")
    check_output(out, inputs=(str(model_path),), force=force, option="OUT")
    t = time.perf_counter()
    model = _load(model_path)
    loaded = time.perf_counter() - t
    write_binary(model, out, prob_bits=prob_bits, backoff_bits=backoff_bits, structure=structure)
    err_console.print(f"wrote {out} ({model.describe()}; {out.stat().st_size:,} bytes): "
                      f"read {loaded:.2f}s, wrote {time.perf_counter() - t - loaded:.2f}s")


@app.command("check")
def check_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A binary model (.lmbin)."),
) -> None:
    """Verify a binary model's header and full payload checksum (loading checks big files' header only)."""
    from ..ngram.binary import is_binary, read_binary

    if not is_binary(model_path):
        raise UsageError(f"{model_path}: not an lmlab binary n-gram model")
    t = time.perf_counter()
    model = read_binary(model_path, verify=True)
    console.print(f"{model_path}: OK ({model.describe()}), checked in {time.perf_counter() - t:.2f}s")


@app.command("eval")
def eval_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL",
                                      help="ARPA file (KenLM, SRILM or lmlab), binary model (.lmbin), or an adapted model's .json."),
    text: str = typer.Argument(..., help="Test text: tokenized file, '-', or NAME[:SPLIT] (default split test)."),
    lowercase: bool = typer.Option(False, "--lowercase", help="A file: lower-case it (built-in corpora already are)."),
    tokenize: bool = typer.Option(False, "--tokenize", help="A file: sentence-split and word-tokenize it as the built-in corpora are."),
) -> None:
    """Perplexity including and excluding OOVs, OOV count, bits per word (KenLM query -v summary)."""
    from .ngram_adapt import is_adapted_model, print_eval_adapted

    if is_adapted_model(model_path):
        print_eval_adapted(model_path, text)
        return
    from ..eval.oov import HIGH_OOV
    from ..ngram import Text

    model = _load(model_path)
    stream = None if lowercase or tokenize else _open_text(text)  # a file: read a piece at a time
    raw = None if stream is not None or lowercase or tokenize else _read_bytes(text)
    if stream is not None or raw is not None:  # tokenized text as it is: split and encoded in one pass
        try:
            ev = model.evaluate_text(raw if stream is None else stream, _where(text))
        finally:
            if stream is not None:
                stream.close()
        if not ev.sentences:
            raise DataError(f"{_where(text)}: no sentences (the file is empty)")
        if ev.oovs > HIGH_OOV * ev.tokens:  # (the diagnosis says nothing below this rate)
            warn_oov(model.vocab.index, Text(raw if raw is not None else _read_bytes(text), _where(text)).sentences())
    else:
        sentences = read_text(text, "test", lowercase, tokenize)
        ev = model.evaluate(sentences)
        warn_oov(model.vocab.index, sentences)
    console.print(f"Perplexity including OOVs:\t{ev.perplexity}")
    console.print(f"Perplexity excluding OOVs:\t{ev.perplexity_no_oov}")
    console.print(f"OOVs:\t{ev.oovs}")
    console.print(f"Tokens:\t{ev.tokens}")
    console.print(f"Bits per word:\t{ev.bits_per_word}")
    console.print(f"[dim]{model.describe()}. Counted: {ev.sentences} sentences; every word and one </s> per "
                  f"sentence is predicted, <s> is context only; OOVs are scored as <unk>.[/dim]")


def warn_oov(vocabulary, sentences, trained: float | None = None) -> None:
    """A one-line warning when the OOV rate says model and text were normalised differently
    (``trained``: the model's own training OOV rate, where it recorded one)."""
    from ..eval.oov import diagnose_oov

    message = diagnose_oov(vocabulary, (w for s in sentences for w in s), trained)
    if message:
        typer.echo(f"lmlab: warning: {message}", err=True)


@app.command("score")
def score_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="ARPA file or binary model (.lmbin)."),
    text: str = typer.Argument(..., help="Text to score: tokenized file, '-', or NAME[:SPLIT]."),
    per: str = typer.Option("sentence", help="'sentence' (Total/OOV per line) or 'word' (word=id order log10p)."),
) -> None:
    """Per-sentence or per-word log10 probabilities, in KenLM query's format."""
    import numpy as np

    if per not in ("sentence", "word"):
        raise UsageError(f"--per must be 'sentence' or 'word', not {per!r}")
    model = _load(model_path)
    sentences = read_text(text, "test")
    logp, is_oov, sent, matched = model.score_sentences(sentences)
    ids_index = model.vocab.index
    bounds = np.searchsorted(sent, np.arange(len(sentences) + 1))
    out = sys.stdout
    for i, s in enumerate(sentences):
        lo, hi = bounds[i], bounds[i + 1]
        total = float(logp[lo:hi].sum())
        oov = int(is_oov[lo:hi].sum())
        if per == "word":
            words = s + ["</s>"]
            parts = [f"{w}={ids_index.get(w, 0)} {int(matched[lo + j])} {logp[lo + j]:.7g}" for j, w in enumerate(words)]
            out.write("\t".join(parts) + f"\tTotal: {total:.7g} OOV: {oov}\n")
        else:
            out.write(f"Total: {total:.7g} OOV: {oov}\n")


@app.command("sample")
def sample_cmd(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="ARPA file or binary model (.lmbin)."),
    n: int = typer.Option(5, "--n", "-n", help="Number of sentences."),
    seed: int = typer.Option(0, help="Random seed."),
    max_words: int = typer.Option(60, help="Stop a sentence after this many words."),
) -> None:
    """Draw sentences from the model."""
    check_range("--n", n, minimum=1)
    check_range("--max-words", max_words, minimum=1)
    model = _load(model_path)
    for words in model.sample(n, seed=seed, max_words=max_words):
        console.print(" ".join(words), markup=False, highlight=False)


@app.command("methods")
def methods_cmd() -> None:
    """The smoothing methods and what each is."""
    from ..ngram import METHODS

    console.print(table("smoothing methods", ["name", "method"], [[k, v] for k, v in METHODS.items()]))


_COMPARE_FILES = ("comparison.md", "comparison.csv", "comparison.png")


@app.command("compare")
def compare_cmd(
    corpus: str = typer.Argument("wiki-vital", help="A built-in corpus (train/valid/test splits) or a tokenized file (split 80/10/10 by line)."),
    methods: str | None = typer.Option(None, help="Comma-separated methods (default: all but mle)."),
    orders: str = typer.Option("2,3", help="Comma-separated orders."),
    fractions: str = typer.Option("0.1,0.3,1.0", help="Training sizes as fractions of the training split."),
    min_count: int = typer.Option(2, help="Closed vocabulary: words seen fewer times in train are <unk> (1: keep all)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for comparison.md, comparison.csv, comparison.png."),
    force: bool = typer.Option(False, "--force", help="Replace comparison.* files already in --out."),
) -> None:
    """All methods x orders x training sizes on one corpus -> table (+ plot)."""
    from ..io import atomic_write_text
    from ..recipes.ngram import compare_methods
    from ..report.plots import plot_comparison
    from ..report.tables import comparison_markdown

    check_range("--min-count", min_count, minimum=1)
    try:
        order_list = [int(x) for x in orders.split(",")]
        frac_list = [float(x) for x in fractions.split(",")]
    except ValueError:
        raise UsageError("--orders and --fractions are comma-separated numbers") from None
    for o in order_list:
        check_range("--orders", o, minimum=1)
    for f in frac_list:
        check_range("--fractions", f, above=0, maximum=1)
    if out is not None:
        check_output(out, force=True, folder=True)  # a folder that may hold other files
        for name in _COMPARE_FILES:
            check_output(out / name, inputs=(corpus,), force=force)
    path = Path(corpus)
    if path.is_file():
        sentences = read_text(corpus, "train")
        n = len(sentences)
        train, valid, test = sentences[: int(0.8 * n)], sentences[int(0.8 * n): int(0.9 * n)], sentences[int(0.9 * n):]
    else:
        from ..data import sources
        from ..data.corpus import word_sentences

        splits = sources.load(corpus).split()
        train, valid, test = (word_sentences(splits[s]) for s in ("train", "valid", "test"))
    method_list = methods.split(",") if methods else None

    def progress(row):
        err_console.print(f"{row.method:20s} {row.order}-gram {row.train_words:>9,} words: "
                          f"ppl {row.perplexity:10.2f} ({row.seconds:.2f}s)")

    rows = compare_methods(train, valid, test, method_list, order_list, frac_list, min_count, progress)
    md = comparison_markdown(rows)
    console.print(md, markup=False, highlight=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "comparison.md", md + "\n")
        csv = ["method,order,train_words,perplexity,perplexity_excl_oov,oovs,tokens,seconds"]
        csv += [f"{r.method},{r.order},{r.train_words},{r.perplexity:.6g},{r.perplexity_no_oov:.6g},"
                f"{r.oovs},{r.tokens},{r.seconds:.3f}" for r in rows]
        atomic_write_text(out / "comparison.csv", "\n".join(csv) + "\n")
        if plot_comparison(rows, out / "comparison.png"):
            err_console.print(f"plot: {out / 'comparison.png'}")


# `lmlab ngram adapt cache|mixture|maxent` (issue 4) lives in its own module
from .ngram_adapt import register_adapt  # noqa: E402

register_adapt(app)
