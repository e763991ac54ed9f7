"""SpanBERT's span boundary objective (Joshi et al., 2020, §3.2) as a Trainer objective.

Each token x_i of a masked span (x_s, ..., x_e) is predicted a second time, from the encoder
outputs at the two boundary tokens and the token's relative position inside the span only:

    y_i = f(x_{s-1}, x_{e+1}, p_{i-s+1})          (the head: ``models.bert.SpanBertForPreTraining.sbo_logits``)
    L(x_i) = L_MLM(x_i) + L_SBO(x_i) = -log P(x_i | x_i) - log P(x_i | y_i)

:class:`SBOObjective` wraps an :class:`~lmlab.objectives.mlm.MLMObjective` whose masker draws
geometric spans (the ``span`` scheme): ``prepare`` adds each selected token's boundary positions
(``masking.span_boundaries``) to the MLM batch, ``loss`` runs the encoder once and returns
Σ MLM (+ the sentence term, if any) + Σ SBO for the Trainer, which divides by N, the number of
masked tokens: mean MLM + mean SBO, the paper's sum. The model needs ``encoder``,
``mlm_logits`` and ``sbo_logits`` (what ``SpanBertForPreTraining`` has).

The spans come from ``masking.select_spans`` (geometric lengths over whole words). This file
holds the objective; the masking and the head live where they belong.

T5's span corruption (Raffel et al., 2020, §3.1.4 and §3.3.4; the reference is
``t5/data/preprocessors.py``: ``random_spans_noise_mask``, ``noise_span_to_unique_sentinel``,
``random_spans_helper``) is the second half of this file:

- of L raw tokens, n = round(0.15 L) (at least 1, at most L - 1) are noise, in s = round(n / 3)
  spans (at least 1); the noise tokens and the L - n others are each cut into s non-empty
  segments uniformly at random, and the segments alternate, non-noise first (so the first
  token is never noise and the last always is);
- inputs: every noise span replaced by one sentinel, sentinels counting down from the top of
  the vocabulary (``<extra_id_0>`` = V - 1, ``<extra_id_1>`` = V - 2, ...), then EOS;
  targets: each noise span led by its sentinel, then EOS
  (``m0 S0 m1 S1 ... EOS`` -> ``S0 n0 S1 n1 ... EOS``);
- :func:`span_corruption_lengths`: the raw length whose inputs fill ``inputs_length`` exactly,
  and the targets' length (512 -> 568 raw tokens and 114 targets).

Everything is vectorised over the batch: the counts depend only on L, so every row of a batch
keeps the same number of tokens. Not here: T5's ``random_roll`` option, the packing of short
documents (lmlab's rows are cut from the token stream with ``</s>`` between documents).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from .masking import span_boundaries
from .mlm import MLMBatch, MLMObjective

__all__ = ["SBOBatch", "SBOObjective", "SpanCorruptionObjective", "noise_span_to_unique_sentinel",
           "random_spans_noise_mask", "sbo_loss_sum", "span_boundaries", "span_corruption",
           "span_corruption_counts", "span_corruption_lengths"]


def sbo_loss_sum(sbo_logits: Tensor, labels: Tensor) -> Tensor:
    """Σ_i -log P(x_i | y_i) over the span tokens; ``sbo_logits`` (N, V), labels (N,)."""
    return F.cross_entropy(sbo_logits.float(), labels, reduction="sum")


@dataclass
class SBOBatch:
    mlm: MLMBatch                # the masked rows (its span_ids say which span each selected token is in)
    span_left: Tensor            # (B, T) position s - 1 of each selected token's span
    span_right: Tensor           # (B, T) position e + 1


class SBOObjective:
    """prepare(ids, generator) -> SBOBatch; loss(model, batch) -> LossOutput: MLM (+ NSP) + SBO."""

    def __init__(self, mlm: MLMObjective) -> None:
        if mlm.masker.config.scheme != "span":
            raise UsageError("the span boundary objective needs the 'span' masking scheme, "
                             f"got {mlm.masker.config.scheme!r}")
        self.mlm = mlm

    def prepare(self, ids: Tensor, generator: torch.Generator) -> SBOBatch:
        batch = self.mlm.prepare(ids, generator)
        left, right = span_boundaries(batch.span_ids)
        return SBOBatch(batch, left, right)

    def loss(self, model, batch: SBOBatch):
        from ..protocols import LossOutput

        if not hasattr(model, "sbo_logits"):
            raise UsageError(f"{type(model).__name__} has no span boundary head (sbo_logits): "
                             "SpanBERT's objective needs a SpanBertForPreTraining")
        m = batch.mlm
        h, pooled = model.encoder(m.input_ids, segment_ids=m.segment_ids, attention_mask=m.attention_mask)
        out = self.mlm.loss_from_states(model, m, h, pooled)
        sbo_sum = sbo_loss_sum(model.sbo_logits(h, m.selected, batch.span_left, batch.span_right), m.labels)
        return LossOutput(out.loss_sum + sbo_sum, out.n_targets,
                          metrics={**out.metrics, "sbo_loss": sbo_sum.detach()})


# --------------------------------------------------------------------------- T5 span corruption


def span_corruption_counts(length: int, noise_density: float = 0.15,
                           mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """(noise tokens, noise spans) of a row of ``length`` raw tokens, as ``random_spans_noise_mask``
    counts them (Python's ``round`` halves to even, as ``tf.round`` does)."""
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return num_noise, num_spans


def span_corruption_lengths(inputs_length: int, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """(raw tokens per row, targets length) so that the corrupted inputs are ``inputs_length`` long
    (EOS included), as T5's ``random_spans_helper``: 512 -> (568, 114), 128 -> (141, 29)."""
    if inputs_length < 2:
        raise UsageError(f"span corruption needs inputs_length >= 2, got {inputs_length}")

    def lengths(tokens: int) -> tuple[int, int]:
        num_noise = int(round(tokens * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        # inputs: the non-noise tokens, one sentinel per span, EOS; targets: noise, sentinels, EOS
        return tokens - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens = inputs_length - 1
    while lengths(tokens + 1)[0] <= inputs_length:
        tokens += 1
    _, targets_length = lengths(tokens)
    if noise_density == 0.5 and targets_length > inputs_length:  # the reference's own adjustment
        tokens, targets_length = tokens - 1, targets_length - 1
    return tokens, targets_length


def _random_segmentation(batch: int, num_items: int, num_segments: int, generator: torch.Generator) -> Tensor:
    """(batch, num_segments) lengths >= 1 summing to num_items: a uniformly random composition per row."""
    # choose num_segments - 1 of the num_items - 1 gaps between items as segment starts
    order = torch.rand(batch, num_items - 1, generator=generator).argsort(dim=1)
    first_in_segment = F.pad(order < num_segments - 1, (1, 0))           # (B, num_items)
    segment_id = first_in_segment.long().cumsum(dim=1)                   # (B, num_items) in 0..k-1
    return torch.zeros(batch, num_segments, dtype=torch.long).scatter_add_(1, segment_id,
                                                                         torch.ones_like(segment_id))


def random_spans_noise_mask(batch: int, length: int, generator: torch.Generator, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> Tensor:
    """(batch, length) boolean, True = noise: alternating non-noise / noise spans, non-noise first."""
    if length < 2:
        raise UsageError(f"span corruption needs rows of >= 2 tokens, got {length}")
    num_noise, num_spans = span_corruption_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_segmentation(batch, num_noise, num_spans, generator)
    other_lengths = _random_segmentation(batch, length - num_noise, num_spans, generator)
    interleaved = torch.stack([other_lengths, noise_lengths], dim=2).view(batch, 2 * num_spans)  # (B, 2s)
    span_starts = interleaved.cumsum(dim=1)[:, :-1]                                              # (B, 2s - 1)
    start_indicator = torch.zeros(batch, length, dtype=torch.long).scatter_add_(
        1, span_starts, torch.ones_like(span_starts))
    return start_indicator.cumsum(dim=1) % 2 == 1


def noise_span_to_unique_sentinel(tokens: Tensor, noise_mask: Tensor, vocab_size: int) -> Tensor:
    """Each run of noise in ``tokens`` (B, L) becomes one sentinel, V - 1, V - 2, ... per row.

    Every row must hold the same number of runs and noise tokens (as one length's mask does);
    returns (B, L - noise + runs).
    """
    previous = F.pad(noise_mask[:, :-1], (1, 0))        # (B, L): was the token before noise?
    first_noise = noise_mask & ~previous
    later_noise = noise_mask & previous
    sentinels = vocab_size - first_noise.long().cumsum(dim=1)
    replaced = torch.where(first_noise, sentinels, tokens)
    return replaced[~later_noise].view(tokens.shape[0], -1)  # kept tokens, (B, L') (same L' every row)


def span_corruption(ids: Tensor, generator: torch.Generator, vocab_size: int, eos_id: int,
                    noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> tuple[Tensor, Tensor]:
    """Raw rows (B, L) -> (inputs (B, L_in), targets (B, L_tgt)), both ending in EOS (T5's ``span_corruption``)."""
    B, L = ids.shape
    noise = random_spans_noise_mask(B, L, generator, noise_density, mean_noise_span_length)
    eos = ids.new_full((B, 1), eos_id)
    inputs = noise_span_to_unique_sentinel(ids, noise, vocab_size)
    targets = noise_span_to_unique_sentinel(ids, ~noise, vocab_size)
    return torch.cat([inputs, eos], dim=1), torch.cat([targets, eos], dim=1)


class SpanCorruptionObjective:
    """T5's pretraining objective for the Trainer: rows of raw tokens -> (inputs, targets); the loss is
    Σ -log P(target_t | target_<t, inputs) over the targets (sentinels and EOS included), teacher-forced
    with the decoder reading [start, target_1, ..., target_{n-1}].

    Any encoder-decoder ``model(src_ids (B, S), decoder_ids (B, T)) -> logits (B, T, V)`` trains on it
    (T5 starts its decoder from pad, the Transformer from ``<s>``). ``vocab_size`` is the model's:
    the sentinels are its top ids. Evaluation corrupts the eval rows with the Trainer's eval generator.
    """

    is_language_model = False  # a per-target-token cross-entropy, but of spans, not of the text

    def __init__(self, vocab_size: int, eos_id: int, decoder_start_id: int, pad_id: int,
                 noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> None:
        if not 0.0 < noise_density < 1.0:
            raise UsageError(f"noise_density must be in (0, 1), got {noise_density}")
        if not mean_noise_span_length >= 1.0:
            raise UsageError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
        self.vocab_size, self.eos_id = vocab_size, eos_id
        self.decoder_start_id, self.pad_id = decoder_start_id, pad_id
        self.noise_density, self.mean_noise_span_length = noise_density, mean_noise_span_length

    def prepare(self, ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return span_corruption(torch.as_tensor(ids, dtype=torch.long), generator, self.vocab_size, self.eos_id,
                               self.noise_density, self.mean_noise_span_length)

    def loss(self, model, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        inputs, targets = batch
        start = targets.new_full((targets.shape[0], 1), self.decoder_start_id)
        logits = model(inputs, torch.cat([start, targets[:, :-1]], dim=1))  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                               ignore_index=self.pad_id, reduction="sum")   # (B·T, V) vs (B·T,)
        return loss, (targets != self.pad_id).sum()
