"""Adaptive-LM recipes: the rows of ``lmlab demo`` and the tuning behind ``lmlab ngram adapt``.

:func:`adapt_cache`, :func:`adapt_mixture` and :func:`adapt_maxent` tune an adapted model on a
corpus's valid split, save it beside its base ARPA and fill a :class:`Report` (tables and lines
the command prints); :func:`eval_adapted` scores a saved one document by document.

:func:`run_demo`: MKN 3-gram vs cache, decaying cache, topic mixture, maxent.

Every model is trained on the demo's training split with its closed vocabulary
(``data.vocab``), tuned on the valid split (λ, K, α for the caches; EM weights and τ
for the mixture; μ for maxent + MKN), and scored on ``data.test_documents`` document
by document (caches and dynamic mixture weights reset at each document boundary).
The token stream is the shared one (``data.test_sentences`` is exactly the test
documents' sentences in order): ``</s>`` predicted and counted, ``<s>`` context only,
OOVs scored as ``<unk>``, so the MKN row equals the n-gram family's MKN 3-gram row.

The maximum-entropy model is the demo-sized one: trained for one epoch on the first
3,000 training documents with 1,000 output classes, within a ~25 s budget (it stops
mid-epoch when the budget runs out, and the notes say how far it got). The full-size
numbers are in ``docs/adaptive.md`` (``lmlab ngram adapt maxent``).
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.corpus import document_sentences
from ..errors import DataError, UsageError, closest
from ..ngram import build
from ..ngram.adaptive import (
    DocumentStream,
    base_logprobs,
    build_components,
    group_documents,
    kmeans_topics,
    perplexity,
    tfidf_matrix,
    tune_cache,
    tune_mixture,
)
from ..ngram.maxent import MaxentConfig, train_maxent

CACHE_SIZES = (25, 50, 100, 200, 500)
DECAYS = (0.001, 0.003, 0.01, 0.03, 0.1)
BETAS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)
TOPICS = 8
MAXENT_SECONDS = 25.0
MAXENT_DOCS = 3000       # the demo's maxent trains on the first documents of the train split only
MAXENT = MaxentConfig(vocab_size=1000, n_triggers=3000, trigger_words=1000, epochs=1, lr=0.05, batch_size=1024)


def run_demo(data) -> list:
    """Demo rows (``lmlab.report.DemoRow``) for the adaptive models, on the demo's test documents."""
    from ..report import DemoRow
    from ..train.budget import seconds_left, time_up

    rows: list = []
    start = time.monotonic()
    docs = {name: [d for d in document_sentences(getattr(data, f"{name}_documents")) if d]
            for name in ("train", "valid", "test")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = build(data.train_sentences, 3, "mkn", vocab=data.vocab)
    streams = {n: DocumentStream.from_documents(docs[n], base.vocab) for n in ("valid", "test")}
    base_lp = {n: base_logprobs(base, streams[n]) for n in ("valid", "test")}
    mkn = perplexity(base_lp["test"])
    setup = time.monotonic() - start

    def row(model: str, test_lp, seconds: float, notes: str, valid_ppl: float | None = None):
        ppl = perplexity(test_lp)
        metrics = {"test ppl": ppl, "vs MKN 3-gram %": 100.0 * (ppl - mkn) / mkn}
        if valid_ppl is not None:
            metrics["valid ppl"] = valid_ppl
        rows.append(DemoRow("adaptive", model, metrics, seconds, notes))

    row("MKN 3-gram (per document)", base_lp["test"], setup, "base for the rows below",
        perplexity(base_lp["valid"]))

    def cut(model: str) -> bool:  # lmlab demo's hard limit stops the family between models
        if time_up():
            rows.append(DemoRow("adaptive", model, notes="skipped: its time share was spent"))
        return time_up()

    t = time.monotonic()                                           # window cache, then decaying cache
    cache, _ = tune_cache(base, streams["valid"], CACHE_SIZES, (0.0,), base_lp["valid"])
    row("cache LM", cache.token_logprobs(streams["test"], base_lp["test"]), time.monotonic() - t,
        f"K={cache.size}, λ={cache.lam:.3f}", perplexity(cache.token_logprobs(streams["valid"],
                                                                                            base_lp["valid"])))
    if cut("decaying cache LM"):
        return rows
    t = time.monotonic()
    decay, _ = tune_cache(base, streams["valid"], CACHE_SIZES, DECAYS, base_lp["valid"])
    row("decaying cache LM", decay.token_logprobs(streams["test"], base_lp["test"]), time.monotonic() - t,
        f"K={decay.size}, α={decay.decay:g}, λ={decay.lam:.3f}",
        perplexity(decay.token_logprobs(streams["valid"], base_lp["valid"])))

    if cut(f"topic mixture k={TOPICS}"):
        return rows
    if data.seconds_left() > 15:                                   # topic mixture
        t = time.monotonic()
        labels = kmeans_topics(tfidf_matrix(docs["train"]), TOPICS, seed=data.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comps, names = build_components(group_documents(docs["train"], labels), base.vocab, 3)
        comps, names = [base, *comps], ["general", *names]
        L = np.stack([base_logprobs(c, streams["valid"]) for c in comps], axis=1)
        mix, _, grid = tune_mixture(comps, names, streams["valid"], BETAS, L)
        dyn = f"posterior weights β={mix.beta:g}" if mix.beta > 0 else "static weights"
        row(f"topic mixture k={TOPICS}", mix.token_logprobs(streams["test"]),
            time.monotonic() - t, f"general + {TOPICS} topic MKNs, {dyn}",
            min(g["valid_ppl"] for g in grid))

    if cut("maxent with triggers"):
        return rows
    budget = min(MAXENT_SECONDS, data.seconds_left() - 8, seconds_left() - 3)
    if budget > 5:                                                 # maximum entropy with triggers
        t = time.monotonic()
        subset = DocumentStream.from_documents(docs["train"][:MAXENT_DOCS], base.vocab)
        me, log = train_maxent(subset, MAXENT, deadline=time.monotonic() + budget)
        seconds = time.monotonic() - t
        me_lp = {n: me.maxent_logprobs(streams[n]) for n in ("valid", "test")}
        row("maxent with triggers", me_lp["test"], seconds,
            f"{sum(log.n_features.values()) / 1000:.0f}k features, {MAXENT.vocab_size} classes, "
            f"{min(MAXENT_DOCS, len(docs['train'])):,} docs, {log.epochs_done:.2f} epoch",
            perplexity(me_lp["valid"]))
        mu = me.fit_mu(base, streams["valid"])
        both = {n: me.token_logprobs(streams[n], base_lp[n], me_lp[n]) for n in ("valid", "test")}
        row("maxent + MKN 3-gram", both["test"], seconds, f"μ(MKN)={mu:.3f}",
            perplexity(both["valid"]))
    return rows


# ----------------------------------------------------------------------------- lmlab ngram adapt


@dataclass
class Report:
    """What an adaptation run shows, in order: tables ``(title, columns, rows)`` and lines of text.

    The recipes below fill it; ``lmlab ngram adapt`` prints it (so the tuning lives here and the
    command only formats)."""

    items: list = field(default_factory=list)

    def table(self, title: str, columns: list[str], rows: list[list]) -> None:
        self.items.append(("table", title, columns, rows))

    def line(self, text: str) -> None:
        self.items.append(("line", text))


def adaptation_documents(corpus: str) -> tuple[dict, dict]:
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


def document_streams(docs, vocab, names=("valid", "test")):
    from ..ngram.adaptive import DocumentStream

    return {n: DocumentStream.from_documents(docs[n], vocab) for n in names if docs[n]}


def _report(report: Report, kind: str, params: dict, base, model, streams, out: Path, seconds: float) -> dict:
    from ..ngram.adaptive import base_logprobs, perplexity

    rows, result = [], {}
    for name, stream in streams.items():
        b = perplexity(base_logprobs(base, stream))
        a = perplexity(model.token_logprobs(stream))
        rows.append([name, len(stream), b, a, 100 * (a - b) / b])
        result[f"{name}_ppl"], result[f"{name}_base_ppl"] = a, b
    report.table(f"{kind}: perplexity per word (documents scored one by one)",
                 ["split", "tokens", "base n-gram", model.kind, "change %"], rows)
    shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    report.line(f"tuned: {shown}")
    report.line(f"saved {out} ({seconds:.1f} s)")
    return result


def adapt_cache(base, base_path, docs, sizes, decays, out, corpus, report: Report):
    """Tune a (window or decaying) cache on the valid split (grid over K, α; λ by EM), report, save."""
    from ..ngram.adaptive import save_cache, tune_cache

    start = time.monotonic()
    streams = document_streams(docs, base.vocab)
    model, grid = tune_cache(base, streams["valid"], sizes=sizes, decays=decays)
    report.table("cache grid on the valid split (λ by EM at each point)",
                 ["K", "α", "λ", "valid ppl"],
                 [[g["cache_size"], g["decay"], g["lambda"], g["valid_ppl"]] for g in grid])
    for label, rows in (("window cache (α = 0)", [g for g in grid if g["decay"] == 0]),
                        ("decaying cache (α > 0)", [g for g in grid if g["decay"] > 0])):
        if rows:
            g = min(rows, key=lambda r: r["valid_ppl"])
            report.line(f"best {label}: K={g['cache_size']}, α={g['decay']:g}, λ={g['lambda']:.4f}, "
                        f"valid ppl {g['valid_ppl']:.2f}")
    extra = {"corpus": corpus, "grid": grid}
    result = _report(report, "cache", model.params(), base, model, streams, out, time.monotonic() - start)
    save_cache(model, base_path, out, {**extra, **result})


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def adapt_mixture(base, base_path, raw, docs, by, k, betas, include_general, smoothing, seed, out, corpus,
                  report: Report):
    """Topic sub-models (k-means on TF-IDF or a metadata field), EM weights and β on valid, report, save."""
    from ..ngram import write_arpa
    from ..ngram.adaptive import (
        build_components,
        group_documents,
        kmeans_topics,
        mixture_folder,
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
    folder = mixture_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, comp in zip(names, comps):
        path = folder / f"{_safe(name)}.arpa"
        write_arpa(comp, path)
        paths.append(path)
    if include_general:
        comps, names, paths = [base, *comps], ["general", *names], [base_path, *paths]
    streams = document_streams(docs, base.vocab)
    model, history, grid = tune_mixture(comps, names, streams["valid"], betas=betas)
    report.table("component weights (EM on the valid split)", ["component", "weight"],
                 [[n, float(w)] for n, w in zip(model.names, model.weights)])
    report.table("dynamic per-document weights: posterior rate β", ["β", "valid ppl"],
                 [[g["beta"], g["valid_ppl"]] for g in grid])
    report.line(f"EM: {len(history) - 1} iterations, held-out log-likelihood per token "
                f"{history[0]:.5f} -> {history[-1]:.5f}")
    result = _report(report, "mixture", model.params(), base, model, streams, out, time.monotonic() - start)
    save_mixture(model, paths, out, {"corpus": corpus, "by": by, "k": k if by == "kmeans" else None,
                                     "em_loglik": history, "grid": grid, **result})


def adapt_maxent(base, base_path, docs, cfg, out, corpus, report: Report, log=None):
    """Train the maximum-entropy model on train (progress lines to ``log``), fit μ on valid, report, save."""
    from ..ngram.maxent import train_maxent

    start = time.monotonic()
    streams = document_streams(docs, base.vocab, ("train", "valid", "test"))
    if "train" not in streams:
        raise DataError(f"{corpus}: the train split has no text for the maximum-entropy model")
    model, log = train_maxent(streams["train"], cfg, log=log)
    report.table("features", ["family", "count"], [[k, v] for k, v in log.n_features.items()])
    report.table("top trigger pairs (average mutual information)", ["A", "B", "AMI (nats)"],
                 [list(t) for t in model.top_triggers(10)])
    from ..ngram.adaptive import perplexity

    alone = {n: perplexity(model.maxent_logprobs(streams[n])) for n in ("valid", "test") if n in streams}
    model.fit_mu(base, streams["valid"])
    del streams["train"]
    result = _report(report, "maxent", {"mu": model.mu}, base, model, streams, out, time.monotonic() - start)
    report.line("maxent alone: " + ", ".join(f"{n} ppl {v:.2f}" for n, v in alone.items()))
    model.save(out, base_path, {"corpus": corpus, "epoch_loss": log.epoch_loss,
                                **{f"{n}_ppl_maxent_alone": v for n, v in alone.items()}, **result})


# ----------------------------------------------------------------------------- scoring adapted models


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
