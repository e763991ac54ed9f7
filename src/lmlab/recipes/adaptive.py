"""The adaptive-LM rows of ``lmlab demo``: MKN 3-gram vs cache, decaying cache, topic mixture, maxent.

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

import time
import warnings

import numpy as np

from ..data.corpus import document_sentences
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

    t = time.monotonic()                                           # window cache, then decaying cache
    cache, _ = tune_cache(base, streams["valid"], CACHE_SIZES, (0.0,), base_lp["valid"])
    row("cache LM", cache.token_logprobs(streams["test"], base_lp["test"]), time.monotonic() - t,
        f"K={cache.size}, λ={cache.lam:.3f}", perplexity(cache.token_logprobs(streams["valid"],
                                                                                            base_lp["valid"])))
    t = time.monotonic()
    decay, _ = tune_cache(base, streams["valid"], CACHE_SIZES, DECAYS, base_lp["valid"])
    row("decaying cache LM", decay.token_logprobs(streams["test"], base_lp["test"]), time.monotonic() - t,
        f"K={decay.size}, α={decay.decay:g}, λ={decay.lam:.3f}",
        perplexity(decay.token_logprobs(streams["valid"], base_lp["valid"])))

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

    budget = min(MAXENT_SECONDS, data.seconds_left() - 8)
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
