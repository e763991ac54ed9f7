"""``lmlab demo`` rows of the families whose recipes have no demo of their own: ELMo and Transformer-XL.

Both read the demo's shared word-level stream and closed vocabulary (:class:`lmlab.report.DemoData`),
train with the Trainer for a part of the share :mod:`lmlab.cli.demo` gave them (``data.deadline``),
and are scored exactly as every other word LM of the table, per word on ``data.test_sentences``
(:func:`lmlab.eval.perplexity.word_perplexity`; ``</s>`` counted once per sentence, ``<s>`` context
only, OOVs as ``<unk>``).

- ELMo (Peters et al. 2018, "Deep contextualized word representations"): the character-CNN biLM
  of :mod:`lmlab.models.elmo` trained on the forward and backward streams in lockstep
  (:class:`lmlab.objectives.bilm.BiLMObjective`); the row gives the forward, backward and mean
  perplexity (the mean of the two directions' log-probabilities, bilm-tf's number, is ``test ppl``).
- Transformer-XL (Dai et al. 2019, "Transformer-XL: Attentive Language Models Beyond a
  Fixed-Length Context"): segment recurrence with a memory carried between BPTT segments
  (:mod:`lmlab.models.transfo_xl`, :class:`lmlab.objectives.bptt.BPTTObjective`).

The time spent scoring the whole test stream is measured up front on a twentieth of it; when it
would take more than 30% of the share, every k-th test sentence is scored instead (the same
counting rule on a systematic sample of the stream; the row's notes say so). Training gets what
is left of the share after that (at most 60% of it) and stops between optimiser steps; a share
too small for both gives a skipped row that says why.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..report import DemoData, DemoRow

TRAIN_SHARE = 0.6  # at most this part of the family's time trains; scoring the whole test stream follows
SCORE_SHARE = 0.3  # scoring may take this part of the share; beyond it a systematic sample of the test sentences
PROBE = 20         # the scoring time is estimated up front from 1/PROBE of the test sentences


def _budget(data: DemoData, cap: float = 90.0) -> float:
    return max(0.0, min(cap, data.seconds_left()))


def _plan(data: DemoData, budget: float, model, score) -> tuple[float, int]:
    """(seconds left for training, stride of the scored test sentences) once the scoring is paid for.

    ``score(sentences)`` is timed on every PROBE-th test sentence (with the untrained model: the
    same cost) and scaled up, with a quarter to spare. When scoring the whole test stream would
    take more than ``SCORE_SHARE`` of the share, every ``stride``-th test sentence is scored instead
    (same counting rule, a systematic sample of the same stream; the row says so). Training gets
    the share's rest, at most ``TRAIN_SHARE`` of it."""
    began = time.monotonic()
    sample = data.test_sentences[::PROBE] or data.test_sentences
    model.eval()
    score(sample)
    model.train()
    per_sentence = (time.monotonic() - began) / max(len(sample), 1) * 1.25
    stride = max(1, math.ceil(per_sentence * len(data.test_sentences) / (SCORE_SHARE * budget)))
    scoring = per_sentence * len(data.test_sentences[::stride])
    return min(TRAIN_SHARE * budget, data.seconds_left() - scoring - 0.1 * budget), stride


def _fit_and_score(data: DemoData, budget: float, model, trainer, score, family: str, label: str):
    """Time ``score`` up front, train for what is left of the share, score the test stream (or every
    stride-th sentence of it): (steps, training seconds, ``score(sentences)``, a note on what was
    scored), or a skipped row saying why."""
    from ..recipes.word_lm import train_for

    with torch.no_grad():
        seconds, stride = _plan(data, budget, model, score)
    if seconds < 3:
        return DemoRow(family, f"{label} (skipped)",
                       notes=f"scoring the test stream alone would take most of its {budget:.0f} s share")
    steps, took = train_for(trainer, seconds, 10**9)
    model.eval()
    scored = data.test_sentences[::stride]
    note = "" if stride == 1 else (f"; scored on every {stride}th test sentence ({len(scored):,} of "
                                   f"{len(data.test_sentences):,}: the whole stream would not fit its time share)")
    with torch.no_grad():
        return steps, took, score(scored), note


def _quiet(seed: int, lr: float):
    from ..train.trainer import TrainConfig

    return TrainConfig.quiet(seed=seed, max_steps=10**9, lr=lr, weight_decay=0.0, clip_norm=1.0)


def elmo_demo(data: DemoData) -> list[DemoRow]:
    """ELMo's biLM (tiny preset widths) on the shared stream: forward / backward / mean test perplexity."""
    from ..data.stream import BPTTStream, StackedStreams, bptt_documents, reversed_documents
    from ..eval.perplexity import encode_sentences
    from ..models import elmo
    from ..objectives.bilm import BiLMObjective
    from ..recipes.elmo import perplexities
    from ..recipes.word_lm import unigram_counts
    from ..train.trainer import Trainer

    budget = _budget(data)
    if budget < 15:
        return [DemoRow("contextual LM", "ELMo biLM (skipped)", notes=f"time share too small ({budget:.0f} s)")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices; a shared machine's spinning OpenMP threads only slow them
    try:
        torch.manual_seed(data.seed)
        vocab = list(data.vocab)
        train_ids, _ = encode_sentences(data.train_sentences, vocab)
        config = elmo.ElmoConfig(char_embed_dim=8, projection_dim=64, cell_dim=128, n_highway=1,
                                 filters=[[1, 16], [2, 16], [3, 32], [4, 32]], dropout=0.1)
        model = elmo.build(config, vocab, unigram_counts(train_ids, len(vocab)))
        bos, eos, V = config.bos_id, config.eos_id, len(vocab)
        documents = [train_ids]
        fwd, fwd_starts = bptt_documents(documents, bos)
        bwd, bwd_starts = bptt_documents(reversed_documents(documents, bos), eos)
        source = StackedStreams([BPTTStream(fwd, fwd_starts, V, 16, 35), BPTTStream(bwd, bwd_starts, V, 16, 35)])
        trainer = Trainer(model, BiLMObjective(V, bos, eos), source, _quiet(data.seed, 3e-3),
                          Path(data.out_dir) / "elmo")
        done = _fit_and_score(data, budget, model, trainer, lambda sents: perplexities(model, sents, vocab),
                              "contextual LM", "ELMo biLM")
        if isinstance(done, DemoRow):
            return [done]
        steps, took, result, scored = done
    finally:
        torch.set_num_threads(threads)
    n_params = sum(p.numel() for p in model.parameters())
    return [DemoRow("contextual LM", "ELMo biLM 2x128->64, char-CNN (Peters 2018)",
                    {"test ppl": result["mean"].perplexity, "forward ppl": result["forward"].perplexity,
                     "backward ppl": result["backward"].perplexity}, took,
                    f"{steps} steps x 16x35 tokens per direction ({steps * 16 * 35 / len(fwd):.2f} epochs); "
                    f"test ppl = mean of the two directions' log-probabilities{scored}", year=2018,
                    verified="same scorer and counting rule as the other word LMs (lmlab.eval.perplexity)",
                    parameters=n_params,
                    config={"char_embed_dim": 8, "projection_dim": 64, "cell_dim": 128, "n_layers": 2,
                            "filters": config.filters, "batch": 16, "bptt": 35, "lr": 3e-3, "steps": steps})]


def transfo_xl_demo(data: DemoData) -> list[DemoRow]:
    """A small Transformer-XL (segment 32, memory 32, adaptive softmax) on the shared stream."""
    from ..data.stream import BPTTStream, bptt_documents
    from ..eval.perplexity import encode_sentences, word_perplexity
    from ..models import transfo_xl
    from ..objectives.bptt import BPTTObjective
    from ..train.trainer import Trainer

    budget = _budget(data)
    if budget < 15:
        return [DemoRow("transformer", "Transformer-XL (skipped)", notes=f"time share too small ({budget:.0f} s)")]
    torch.manual_seed(data.seed)
    vocab = list(data.vocab)
    bos = vocab.index("<s>")
    train_ids, _ = encode_sentences(data.train_sentences, vocab)
    # the closed vocabulary is sorted by count, so the cutoffs cut it into frequency bands
    cutoffs = [c for c in (2000, 6000) if c < len(vocab) - 1]
    config = transfo_xl.TransfoXLConfig(vocab_size=len(vocab), cutoffs=cutoffs, div_val=2, d_model=128, d_embed=128,
                                        n_head=4, d_head=32, d_inner=256, n_layer=2, mem_len=32, dropout=0.1,
                                        bos_token_id=bos, eos_token_id=vocab.index("</s>"))
    model = transfo_xl.build(config, vocab)
    stream, starts = bptt_documents([train_ids], bos)
    trainer = Trainer(model, BPTTObjective(len(vocab), bos), BPTTStream(stream, starts, len(vocab), 16, 32),
                      _quiet(data.seed, 2.5e-3), Path(data.out_dir) / "transfo-xl")
    done = _fit_and_score(data, budget, model, trainer, lambda sents: word_perplexity(model, sents, vocab),
                          "transformer", "Transformer-XL")
    if isinstance(done, DemoRow):
        return [done]
    steps, took, result, scored = done
    n_params = sum(p.numel() for p in model.parameters())
    return [DemoRow("transformer", "Transformer-XL 2x128, mem 32, adaptive softmax (Dai 2019)",
                    {"test ppl": result.perplexity, "bits/byte": result.bits_per_byte}, took,
                    f"{steps} steps x 16x32 tokens ({steps * 16 * 32 / len(stream):.2f} epochs), segment 32 + memory "
                    f"32, cutoffs {cutoffs}; test sentences scored one by one (no memory across them){scored}", year=2019,
                    verified="same scorer and counting rule as the other word LMs (lmlab.eval.perplexity)",
                    parameters=n_params,
                    config={"d_model": 128, "n_layer": 2, "n_head": 4, "d_inner": 256, "mem_len": 32,
                            "cutoffs": cutoffs, "div_val": 2, "batch": 16, "segment": 32, "lr": 2.5e-3,
                            "steps": steps})]
