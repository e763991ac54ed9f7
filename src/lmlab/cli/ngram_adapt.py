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
import re
import time
from pathlib import Path

import typer

from ..errors import DataError, UsageError, closest
from .common import console, err_console, table


def _numbers(text: str, what: str, cast=float) -> list:
    try:
        values = [cast(x) if x.strip().lower() not in ("inf", "infinity") else math.inf
                  for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError(f"{what}: give at least one value")
    return values


def _documents(corpus: str) -> tuple[dict, dict]:
    """(documents, sentences) per split: lmlab Documents with text, and each one's word-level sentences."""
    from ..data import sources
    from ..data.corpus import document_sentences

    splits = sources.load(corpus).split()
    raw, sents = {}, {}
    for name in ("train", "valid", "test"):
        pairs = [(d, s) for d, s in zip(splits[name], document_sentences(splits[name])) if s]
        raw[name], sents[name] = [d for d, _ in pairs], [s for _, s in pairs]
    if not sents["valid"]:
        raise DataError(f"{corpus}: the valid split has no text to tune on")
    return raw, sents


def _read_base(model_path: Path):
    from ..ngram import read_arpa

    if model_path.suffix == ".json":
        raise UsageError(f"{model_path}: the base model must be an ARPA file, not an adapted model's JSON")
    return read_arpa(model_path)


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
        k: int = typer.Option(8, "--k", help="[mixture] number of k-means topic clusters."),
        beta: str = typer.Option("0,0.1,0.3,0.5,0.7,1", "--beta",
                                 help="[mixture] per-document posterior weight rates to try (0 = static weights)."),
        no_general: bool = typer.Option(False, "--no-general", help="[mixture] leave the base model out of the mixture."),
        smoothing: str = typer.Option("mkn", "--smoothing", help="[mixture] smoothing of the sub-models."),
        vocab_size: int = typer.Option(2000, "--vocab-size", help="[maxent] words with their own output class."),
        triggers: int = typer.Option(5000, "--triggers", help="[maxent] trigger pairs kept (by average mutual information)."),
        epochs: int = typer.Option(3, "--epochs", help="[maxent] passes over the training split."),
        lr: float = typer.Option(0.05, "--lr", help="[maxent] Adam learning rate."),
        l2: float = typer.Option(1e-5, "--l2", help="[maxent] Gaussian prior strength."),
        seed: int = typer.Option(0, "--seed", help="Seed (k-means, maxent)."),
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
        base = _read_base(model_path)
        out = out or adapted_path(model_path, kind)
        err_console.print(f"[dim]loading {corpus}[/dim]")
        raw, docs = _documents(corpus)
        if kind == "cache":
            _adapt_cache(base, model_path, docs, [int(s) for s in sizes], decays, out, corpus)
        elif kind == "mixture":
            _adapt_mixture(base, model_path, raw, docs, by, k, betas, not no_general, smoothing,
                           seed, out, corpus)
        else:
            from ..ngram.maxent import MaxentConfig

            cfg = MaxentConfig(vocab_size=vocab_size, n_triggers=triggers, epochs=epochs, lr=lr, l2=l2, seed=seed)
            _adapt_maxent(base, model_path, docs, cfg, out, corpus)


def _streams(docs, vocab, names=("valid", "test")):
    from ..ngram.adaptive import DocumentStream

    return {n: DocumentStream.from_documents(docs[n], vocab) for n in names if docs[n]}


def _report(kind: str, params: dict, base, model, streams, out: Path, seconds: float) -> dict:
    from ..ngram.adaptive import base_logprobs, perplexity

    rows, result = [], {}
    for name, stream in streams.items():
        b = perplexity(base_logprobs(base, stream))
        a = perplexity(model.token_logprobs(stream))
        rows.append([name, len(stream), b, a, 100 * (a - b) / b])
        result[f"{name}_ppl"], result[f"{name}_base_ppl"] = a, b
    console.print(table(f"{kind}: perplexity per word (documents scored one by one)",
                        ["split", "tokens", "base n-gram", model.kind, "change %"], rows))
    shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    console.print(f"tuned: {shown}")
    console.print(f"saved {out} ({seconds:.1f} s)")
    return result


def _adapt_cache(base, base_path, docs, sizes, decays, out, corpus):
    from ..ngram.adaptive import save_cache, tune_cache

    start = time.monotonic()
    streams = _streams(docs, base.vocab)
    model, grid = tune_cache(base, streams["valid"], sizes=sizes, decays=decays)
    console.print(table("cache grid on the valid split (λ by EM at each point)",
                        ["K", "α", "λ", "valid ppl"],
                        [[g["cache_size"], g["decay"], g["lambda"], g["valid_ppl"]] for g in grid]))
    for label, rows in (("window cache (α = 0)", [g for g in grid if g["decay"] == 0]),
                        ("decaying cache (α > 0)", [g for g in grid if g["decay"] > 0])):
        if rows:
            g = min(rows, key=lambda r: r["valid_ppl"])
            console.print(f"best {label}: K={g['cache_size']}, α={g['decay']:g}, λ={g['lambda']:.4f}, "
                          f"valid ppl {g['valid_ppl']:.2f}")
    extra = {"corpus": corpus, "grid": grid}
    result = _report("cache", model.params(), base, model, streams, out, time.monotonic() - start)
    save_cache(model, base_path, out, {**extra, **result})


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def _adapt_mixture(base, base_path, raw, docs, by, k, betas, include_general, smoothing, seed, out, corpus):
    from ..ngram import write_arpa
    from ..ngram.adaptive import (
        build_components,
        group_documents,
        kmeans_topics,
        save_mixture,
        tfidf_matrix,
        tune_mixture,
    )

    start = time.monotonic()
    if by == "kmeans":
        labels = kmeans_topics(tfidf_matrix(docs["train"]), k, seed=seed)
        labels = [f"topic{j}" for j in labels]
    else:
        fields = sorted({f for d in raw["train"] for f in d.meta})
        if by not in fields:
            raise UsageError(f"--by {by!r}: the documents have no such metadata field{closest(by, fields)}; "
                             f"use 'kmeans' or one of: {', '.join(fields) or '(none)'}")
        labels = [str(d.meta.get(by) or "none") for d in raw["train"]]
    comps, names = build_components(group_documents(docs["train"], labels), base.vocab, base.order, smoothing)
    folder = out.with_name(out.name[: -len(".json")] if out.name.endswith(".json") else out.name + ".d")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, comp in zip(names, comps):
        path = folder / f"{_safe(name)}.arpa"
        write_arpa(comp, path)
        paths.append(path)
    if include_general:
        comps, names, paths = [base, *comps], ["general", *names], [base_path, *paths]
    streams = _streams(docs, base.vocab)
    model, history, grid = tune_mixture(comps, names, streams["valid"], betas=betas)
    console.print(table("component weights (EM on the valid split)", ["component", "weight"],
                        [[n, float(w)] for n, w in zip(model.names, model.weights)]))
    console.print(table("dynamic per-document weights: posterior rate β", ["β", "valid ppl"],
                        [[g["beta"], g["valid_ppl"]] for g in grid]))
    console.print(f"EM: {len(history) - 1} iterations, held-out log-likelihood per token "
                  f"{history[0]:.5f} -> {history[-1]:.5f}")
    result = _report("mixture", model.params(), base, model, streams, out, time.monotonic() - start)
    save_mixture(model, paths, out, {"corpus": corpus, "by": by, "k": k if by == "kmeans" else None,
                                     "em_loglik": history, "grid": grid, **result})


def _adapt_maxent(base, base_path, docs, cfg, out, corpus):
    from ..ngram.maxent import train_maxent

    start = time.monotonic()
    streams = _streams(docs, base.vocab, ("train", "valid", "test"))
    if "train" not in streams:
        raise DataError(f"{corpus}: the train split has no text for the maximum-entropy model")
    model, log = train_maxent(streams["train"], cfg, log=lambda m: err_console.print(f"[dim]{m}[/dim]"))
    console.print(table("features", ["family", "count"], [[k, v] for k, v in log.n_features.items()]))
    console.print(table("top trigger pairs (average mutual information)", ["A", "B", "AMI (nats)"],
                        [list(t) for t in model.top_triggers(10)]))
    from ..ngram.adaptive import perplexity

    alone = {n: perplexity(model.maxent_logprobs(streams[n])) for n in ("valid", "test") if n in streams}
    model.fit_mu(base, streams["valid"])
    del streams["train"]
    result = _report("maxent", {"mu": model.mu}, base, model, streams, out, time.monotonic() - start)
    console.print("maxent alone: " + ", ".join(f"{n} ppl {v:.2f}" for n, v in alone.items()))
    model.save(out, base_path, {"corpus": corpus, "epoch_loss": log.epoch_loss,
                                **{f"{n}_ppl_maxent_alone": v for n, v in alone.items()}, **result})


# ----------------------------------------------------------------------------- eval hook
def is_adapted_model(path: Path) -> bool:
    """True for an adapted model's JSON file (what ``lmlab ngram eval`` should hand to :func:`eval_adapted`)."""
    return Path(path).suffix == ".json"


def read_documents(text: str, default_split: str = "test") -> list[list[list[str]]]:
    """Documents to score: a built-in corpus NAME[:SPLIT] (split default ``test``), or a tokenized file
    (one sentence per line, tokens separated by spaces; a blank line ends a document)."""
    path = Path(text)
    if path.is_file():
        import gzip

        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not valid UTF-8 at byte {err.start}") from None
        docs, current = [], []
        for line in [*lines, ""]:
            if line.strip():
                current.append(line.split())
            elif current:
                docs.append(current)
                current = []
        if not docs:
            raise DataError(f"{path}: no sentences (the file is empty)")
        return docs
    from ..data import sources
    from ..data.corpus import document_sentences

    name, _, split = text.partition(":")
    if name not in sources.SOURCES:
        raise DataError(f"{text!r} is neither a file nor a built-in corpus NAME[:SPLIT]")
    return [d for d in document_sentences(sources.load(name).split()[split or default_split]) if d]


def eval_adapted(model_path: Path, text: str):
    """Load an adapted model (JSON) and score ``text`` document by document -> :class:`Evaluation`."""
    from ..ngram.adaptive import DocumentStream, evaluation
    from ..ngram.maxent import load_adapted

    model = load_adapted(model_path)
    stream = DocumentStream.from_documents(read_documents(text), model.vocab)
    return model, evaluation(model.token_logprobs(stream), stream)


def print_eval_adapted(model_path: Path, text: str) -> None:
    """What ``lmlab ngram eval MODEL.json TEXT`` prints (the same lines as for an ARPA model)."""
    model, ev = eval_adapted(model_path, text)
    console.print(f"Perplexity including OOVs:\t{ev.perplexity}")
    console.print(f"Perplexity excluding OOVs:\t{ev.perplexity_no_oov}")
    console.print(f"OOVs:\t{ev.oovs}")
    console.print(f"Tokens:\t{ev.tokens}")
    console.print(f"Bits per word:\t{ev.bits_per_word}")
    console.print(f"[dim]{model.kind} model ({model_path.name}). Counted: {ev.sentences} sentences, each "
                  f"document scored on its own; every word and one </s> per sentence is predicted, <s> is "
                  f"context only; OOVs are scored as <unk>.[/dim]")
