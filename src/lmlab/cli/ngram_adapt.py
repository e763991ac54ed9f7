"""``lmlab ngram adapt cache|mixture|maxent``: adapt a base ARPA model to documents, tuned on held-out text.

The corpus (a built-in name or a user corpus: one document per line, JSONL, a folder) is split
by document; the train split trains the sub-models (mixture) or the maximum-entropy model,
the valid split tunes λ, K, α (cache), the weights and τ (mixture) or μ (maxent), and the
test split is reported. Every document is scored on its own (the cache and the dynamic
weights reset at document boundaries), on the shared word-level stream (sentence-split,
word-tokenized, lowercased; ``</s>`` counted, ``<s>`` not; OOVs scored as ``<unk>``).

The tuned parameters are printed and saved as JSON beside the base ARPA
(``model.arpa`` -> ``model.cache.json``; a mixture's sub-models go to ``model.mixture/``,
a maxent model's weights to ``model.maxent.safetensors``). ``lmlab ngram eval`` scores such
a JSON file through :func:`eval_adapted`.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..errors import UsageError, closest
from .common import check_output, check_range, console, err_console, table


def _numbers(text: str, what: str, cast=float) -> list:
    try:
        values = [cast(x) if x.strip().lower() not in ("inf", "infinity") else math.inf
                  for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError(f"{what}: give at least one value")
    return values


def _read_base(model_path: Path):
    from ..ngram import load_model

    if model_path.suffix == ".json":
        raise UsageError(f"{model_path}: the base model must be an ARPA file, not an adapted model's JSON")
    return load_model(model_path)


def register_adapt(ngram_app: typer.Typer) -> None:
    """Add the ``adapt`` command to the ``lmlab ngram`` typer app."""

    @ngram_app.command("adapt")
    def adapt_cmd(
        kind: str = typer.Argument(..., metavar="KIND", help="cache | mixture | maxent"),
        model_path: Path = typer.Option(..., "--model", "-m", help="Base model: an ARPA file."),
        corpus: str = typer.Option("wiki-vital", "--corpus", "-c",
                                   help="Documents: a built-in corpus or a user corpus (split 80/10/10 by document)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="JSON to write (default: MODEL.KIND.json beside the ARPA)."),
        cache_size: str = typer.Option("50,100,200,500,1000", "--cache-size", help="[cache] K values to try."),
        decay: str = typer.Option("0,0.001,0.003,0.01,0.03,0.1", "--decay",
                                  help="[cache] α values to try (0 = window cache, > 0 = decaying cache)."),
        by: str = typer.Option("kmeans", "--by", help="[mixture] 'kmeans' (TF-IDF topic clusters) or a metadata field (e.g. topic)."),
        k: int = typer.Option(8, "--k", help="[mixture] number of k-means topic clusters (>= 1)."),
        beta: str = typer.Option("0,0.1,0.3,0.5,0.7,1", "--beta",
                                 help="[mixture] per-document posterior weight rates to try (0 = static weights)."),
        no_general: bool = typer.Option(False, "--no-general", help="[mixture] leave the base model out of the mixture."),
        smoothing: str = typer.Option("mkn", "--smoothing", help="[mixture] smoothing of the sub-models."),
        vocab_size: int = typer.Option(2000, "--vocab-size", help="[maxent] words with their own output class."),
        triggers: int = typer.Option(5000, "--triggers",
                                     help="[maxent] trigger pairs kept (by average mutual information; 0: no triggers)."),
        epochs: int = typer.Option(3, "--epochs", help="[maxent] passes over the training split."),
        lr: float = typer.Option(0.05, "--lr", help="[maxent] Adam learning rate."),
        l2: float = typer.Option(1e-5, "--l2", help="[maxent] Gaussian prior strength."),
        seed: int = typer.Option(0, "--seed", help="Seed (k-means, maxent)."),
        force: bool = typer.Option(False, "--force", help="Replace --out (and a mixture's sub-model folder) if it exists."),
    ) -> None:
        """Adapt an n-gram model: cache / decaying cache, topic mixture, or maximum entropy with triggers."""
        from ..ngram.adaptive import ADAPT_KINDS, adapted_path

        if kind not in ADAPT_KINDS:
            raise UsageError(f"unknown adaptation type {kind!r}{closest(kind, ADAPT_KINDS)}; "
                             f"choose one of {', '.join(ADAPT_KINDS)}")
        sizes = _numbers(cache_size, "--cache-size")
        if any(s != int(s) or s < 1 for s in sizes):
            raise UsageError(f"--cache-size: a cache size must be a positive integer, got {cache_size!r}")
        decays = _numbers(decay, "--decay")
        if any(a < 0 for a in decays):
            raise UsageError(f"--decay: α must be >= 0, got {decay!r}")
        betas = _numbers(beta, "--beta")
        if any(not 0 <= b <= 1 for b in betas):
            raise UsageError(f"--beta: values must be in [0, 1] (0 = static weights), got {beta!r}")
        check_range("--k", k, minimum=1)
        check_range("--vocab-size", vocab_size, minimum=1)
        check_range("--triggers", triggers, minimum=0, meaning="0 means no trigger features")
        check_range("--epochs", epochs, minimum=1)
        check_range("--lr", lr, above=0)
        check_range("--l2", l2, minimum=0)
        out = out or adapted_path(model_path, kind)
        check_outputs(kind, out, (model_path, corpus), force)
        from ..recipes import adaptive as recipe  # (imports torch: after the checks)

        base = _read_base(model_path)
        err_console.print(f"[dim]loading {corpus}[/dim]")
        raw, docs = recipe.adaptation_documents(corpus)
        report = recipe.Report()
        if kind == "cache":
            recipe.adapt_cache(base, model_path, docs, [int(s) for s in sizes], decays, out, corpus, report)
        elif kind == "mixture":
            recipe.adapt_mixture(base, model_path, raw, docs, by, k, betas, not no_general, smoothing,
                                 seed, out, corpus, report)
        else:
            from ..ngram.maxent import MaxentConfig

            cfg = MaxentConfig(vocab_size=vocab_size, n_triggers=triggers, epochs=epochs, lr=lr, l2=l2, seed=seed)
            recipe.adapt_maxent(base, model_path, docs, cfg, out, corpus, report,
                                log=lambda message: err_console.print(f"[dim]{message}[/dim]"))
        _print(report)


def check_outputs(kind: str, out: Path, inputs, force: bool) -> None:
    """Every file ``adapt KIND`` writes, checked before the work (see :func:`lmlab.cli.common.check_output`)."""
    check_output(out, inputs, force)
    if kind == "mixture":
        from ..ngram.adaptive import mixture_folder

        check_output(mixture_folder(out), (*inputs, out), force, option="--out (sub-model folder)", folder=True)
    elif kind == "maxent":
        weights = out.with_suffix(".safetensors")
        if weights.resolve() == out.resolve():
            raise UsageError(f"--out {out}: the maxent weights go to {weights}; give the JSON file a .json name")
        check_output(weights, (*inputs, out), force, option="--out (weights file)")


def _print(report) -> None:
    for item in report.items:
        console.print(table(*item[1:]) if item[0] == "table" else item[1])


def is_adapted_model(path: Path) -> bool:
    """True for an adapted model's JSON file (what ``lmlab ngram eval`` should hand to :func:`print_eval_adapted`)."""
    return Path(path).suffix == ".json"


def print_eval_adapted(model_path: Path, text: str) -> None:
    """What ``lmlab ngram eval MODEL.json TEXT`` prints (the same lines as for an ARPA model)."""
    from ..recipes.adaptive import eval_adapted

    model, ev = eval_adapted(model_path, text)
    console.print(f"Perplexity including OOVs:\t{ev.perplexity}")
    console.print(f"Perplexity excluding OOVs:\t{ev.perplexity_no_oov}")
    console.print(f"OOVs:\t{ev.oovs}")
    console.print(f"Tokens:\t{ev.tokens}")
    console.print(f"Bits per word:\t{ev.bits_per_word}")
    console.print(f"[dim]{model.kind} model ({model_path.name}). Counted: {ev.sentences} sentences, each "
                  f"document scored on its own; every word and one </s> per sentence is predicted, <s> is "
                  f"context only; OOVs are scored as <unk>.[/dim]")
