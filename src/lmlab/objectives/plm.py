"""Permutation language modelling (XLNet) as a Trainer objective.

Yang et al. (2019), "XLNet: Generalized Autoregressive Pretraining for Language Understanding", §2.2-2.3:
for a factorisation order z sampled from the permutations Z_T of the T positions,

    max_θ  E_{z ~ Z_T} [ Σ_{t = c+1}^{T} log p_θ(x_{z_t} | x_{z_<t}) ]          (eq. 5, partial prediction)

only the last T - c positions of the order are predicted ("about 1/K of the tokens", K = 6:
85 of 512 in the paper's runs). The order is never applied to the input: the sequence keeps its
positions, and the order is expressed as an attention mask, the *permutation mask*
``perm_mask[b, i, j] = True`` when position i may not attend to position j.

What this file builds, as XLNet's ``data_utils.py`` does (re-written, not copied):

- :func:`sample_span_targets` (``_sample_mask``): the predicted positions are n-gram spans,
  n ~ p(n) ∝ 1/n for n ≤ ``max_gram`` (5), each surrounded by ``n · mask_alpha / mask_beta``
  context tokens (6 per 1), spans aligned to word starts when a ``starts_word`` table is given,
  then topped up with random single tokens to the goal ``⌊T / K⌋``.
- :func:`local_order` (``_local_perm``): the factorisation order is a shuffle inside blocks of
  ``perm_size`` tokens (the same shuffle in every block, as XLNet's ``tf.random_shuffle`` of the
  transposed index does); ``rank[b, t]`` is the step of the order at which position t comes.
- :func:`permutation_mask`: non-predicted tokens get rank -1 (everyone sees them, they see no
  target), functional tokens (``<sep>``, ``<cls>``) keep their rank but are never targets, and
  ``perm_mask[i, j] = (self_rank[i] <= rank[j]) & (j is a target or functional)`` with
  ``self_rank = rank`` for a target (it cannot see itself) and ``rank + 1`` otherwise. The
  model's content stream adds "sees itself"; its query stream uses the mask as it is.
- ``reuse_len`` (XLNet's memory cache): the first ``reuse_len`` positions and the rest are
  permuted separately; the first part never sees the second, the second sees all of the first.
  ``perm_size ≤ reuse_len`` is required (XLNet's docstring: otherwise the cached part leaks).
- :func:`target_mapping`: the predicted positions of each row, padded to the batch's widest
  row: ``positions (B, P)``, ``valid (B, P)`` (XLNet's one-hot ``target_mapping [P, T]``).

:class:`PLMObjective` appends ``<sep> <cls>`` to each row (XLNet's functional tokens go at the
end; segment ids 0 for the text, 2 for ``<cls>``), samples targets and an order with the
Trainer's generator, and sums -log p(x_{z_t} | x_{z_<t}) over the predicted tokens from the
model's query stream (``model.plm_logits``). ``identity_order=True`` and ``K = 1`` make it a
plain left-to-right LM over every non-functional position (the test of that is in
``tests/objectives/test_plm.py``). Not here: ``bi_data`` (the backward-order half batch) and
the sentence-pair (A, B) sampling of XLNet's TFRecords.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

IGNORE = -100
SEGMENT_A, SEGMENT_B, SEGMENT_CLS, SEGMENT_SEP, SEGMENT_PAD = 0, 1, 2, 3, 4  # XLNet's classifier_utils ids


@dataclass
class PLMConfig:
    """The knobs of the permutation LM, with XLNet's values as defaults."""

    K: int = 6                    # predict ⌊T / K⌋ tokens per row (the last 1/K of the order); 0: spans only
    max_gram: int = 5             # span lengths 1..max_gram, p(n) ∝ 1/n
    mask_alpha: float = 6.0       # context tokens ...
    mask_beta: float = 1.0        # ... per predicted token
    perm_size: int = 0            # the order is shuffled inside blocks of perm_size (0: the whole part)
    reuse_len: int = 0            # positions [0, reuse_len) permuted on their own (0: no split)
    identity_order: bool = False  # z = (1, 2, ..., T): a left-to-right LM (with K = 1, over every token)

    def validate(self) -> None:
        if self.K < 0:
            raise ConfigError(f"objective.K must be >= 0 (0: span sampling only), got {self.K}")
        if self.max_gram < 1:
            raise ConfigError(f"objective.max_gram must be >= 1, got {self.max_gram}")
        if self.mask_alpha < 0 or self.mask_beta <= 0:
            raise ConfigError(f"objective.mask_alpha must be >= 0 and mask_beta > 0, got "
                              f"{self.mask_alpha} and {self.mask_beta}")
        if self.perm_size < 0 or self.reuse_len < 0:
            raise ConfigError("objective.perm_size and objective.reuse_len must be >= 0")
        if self.reuse_len and self.perm_size and self.perm_size > self.reuse_len:
            raise ConfigError(f"objective.perm_size={self.perm_size} > reuse_len={self.reuse_len}: the cached "
                              "part would see the rest (XLNet requires perm_size <= reuse_len)")


def span_length_probs(max_gram: int) -> Tensor:
    """p(n) ∝ 1/n, n = 1..max_gram (XLNet's ``_sample_mask``)."""
    weights = 1.0 / torch.arange(1, max_gram + 1, dtype=torch.float64)
    return weights / weights.sum()


def sample_span_targets(allowed: Tensor, generator: torch.Generator, config: PLMConfig,
                        word_start: Tensor | None = None) -> Tensor:
    """The positions to predict, (B, T) bool, as n-gram spans with context between them.

    ``allowed`` (B, T) bool: positions that may be predicted (not padding, not functional).
    ``word_start`` (B, T) bool: where words start (spans then start at a word start and n counts
    words, as XLNet's ``_is_start_piece``); None: every token starts a word. With ``config.K``
    > 0 each row gets exactly ``⌊n_allowed / K⌋`` targets (spans cut at the goal, then random
    single tokens added), as XLNet's ``goal_num_predict``.
    """
    B, T = allowed.shape
    probs = span_length_probs(config.max_gram)
    selected = torch.zeros(B, T, dtype=torch.bool)
    n_allowed = allowed.sum(1).tolist()
    # Every random number a row can need, drawn at once: at most T spans per row.
    lengths = (torch.multinomial(probs.float().expand(B, -1), T, replacement=True, generator=generator) + 1).tolist()
    uniforms = torch.rand(B, T, generator=generator, dtype=torch.float64).tolist()
    top_up = torch.rand(B, T, generator=generator)
    starts_all = allowed if word_start is None else word_start & allowed
    for b in range(B):
        goal = n_allowed[b] // config.K if config.K else None
        starts = torch.nonzero(starts_all[b]).squeeze(1).tolist()  # word starts, ascending
        row = selected[b]
        count, cursor = 0, 0
        for draw in range(T):
            if cursor >= T or (goal is not None and count >= goal):
                break
            n = lengths[b][draw] if goal is None else min(lengths[b][draw], goal - count)
            context = int(n * config.mask_alpha // config.mask_beta)
            left = int(uniforms[b][draw] * context) if context > 0 else 0
            first = bisect_left(starts, cursor + left)           # the span's first word start
            if first >= len(starts):
                break
            if first + n >= len(starts):                          # the n-gram must end before the row does
                break
            begin, end = starts[first], starts[first + n]
            row[begin:end] = True
            count += end - begin
            cursor = end + (context - left)
        row &= allowed[b]
        if goal is not None:
            count = int(row.sum())
            if count > goal:                                      # a multi-piece word overshot: drop the tail
                row[torch.nonzero(row).squeeze(1)[goal:]] = False
            elif count < goal:                                    # random single tokens up to the goal
                scores = torch.where(allowed[b] & ~row, top_up[b], torch.tensor(-1.0))
                row[scores.topk(goal - count).indices] = True
    return selected


def local_order(batch_size: int, length: int, perm_size: int, generator: torch.Generator,
                identity: bool = False) -> Tensor:
    """``rank`` (B, length) long: the step of the factorisation order at which each position comes.

    As XLNet's ``_local_perm``: positions are cut into blocks of ``perm_size``; one shuffle of
    ``range(perm_size)`` is drawn per row and applied in every block, so position
    ``k * perm_size + s`` gets rank ``k * perm_size + shuffle[s]``. ``identity``: rank = position.
    """
    perm_size = perm_size or length
    if length % perm_size:
        raise ConfigError(f"objective.perm_size={perm_size} must divide the part length {length}")
    positions = torch.arange(length).expand(batch_size, -1)
    if identity:
        return positions.clone()
    shuffle = torch.argsort(torch.rand(batch_size, perm_size, generator=generator), dim=1)  # (B, perm_size)
    block_start = positions - positions % perm_size                                         # (B, length)
    return block_start + shuffle.repeat(1, length // perm_size)


def permutation_mask(rank: Tensor, is_target: Tensor, functional: Tensor) -> Tensor:
    """``perm_mask`` (B, T, T) bool: True where query position i may not attend to key position j.

    rank (B, T): the order; is_target (B, T): the predicted positions; functional (B, T): <sep>,
    <cls> (in the order, never predicted). Context tokens get rank -1: every position sees them
    and they see no target or functional token.
    """
    in_order = is_target | functional                                      # XLNet's masked_or_func_tokens
    rev = torch.where(in_order, rank, torch.full_like(rank, -1))
    self_rev = torch.where(is_target, rev, rev + 1)
    return (self_rev[:, :, None] <= rev[:, None, :]) & in_order[:, None, :]  # (B, T, T)


def target_mapping(is_target: Tensor) -> tuple[Tensor, Tensor]:
    """(positions (B, P), valid (B, P)): each row's predicted positions in ascending order, padded
    with position 0 (valid False) to the widest row's P."""
    counts = is_target.sum(1)
    P = max(int(counts.max()), 1) if is_target.numel() else 1
    T = is_target.shape[1]
    # sort key: targets first (by position), then the rest
    key = torch.where(is_target, torch.arange(T), torch.arange(T) + T)
    positions = key.argsort(dim=1)[:, :P]
    valid = torch.arange(P)[None, :] < counts[:, None]
    return torch.where(valid, positions, torch.zeros_like(positions)), valid


def sample_order(ids: Tensor, allowed: Tensor, functional: Tensor, generator: torch.Generator, config: PLMConfig,
                 word_start: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(is_target (B, T), rank (B, T), perm_mask (B, T, T)) for rows ``ids`` (B, T), split at
    ``reuse_len`` as XLNet's ``_create_data`` does."""
    B, T = ids.shape
    cut = config.reuse_len if 0 < config.reuse_len < T else T
    parts = [(0, cut)] + ([(cut, T)] if cut < T else [])
    is_target = torch.zeros(B, T, dtype=torch.bool)
    rank = torch.zeros(B, T, dtype=torch.long)
    perm_mask = torch.ones(B, T, T, dtype=torch.bool)        # the first part never sees the second
    for begin, end in parts:
        starts = None if word_start is None else word_start[:, begin:end]
        part_target = sample_span_targets(allowed[:, begin:end], generator, config, starts)
        part_rank = local_order(B, end - begin, config.perm_size, generator, config.identity_order)
        is_target[:, begin:end] = part_target
        rank[:, begin:end] = part_rank + begin
        perm_mask[:, begin:end, begin:end] = permutation_mask(part_rank, part_target, functional[:, begin:end])
        perm_mask[:, begin:end, :begin] = False                  # the second part sees all of the first
    return is_target, rank, perm_mask


@dataclass
class PLMBatch:
    input_ids: Tensor          # (B, T) the text, then <sep> <cls>
    attention_mask: Tensor     # (B, T) 1 = real token
    segment_ids: Tensor        # (B, T) 0 = text, 2 = <cls>
    perm_mask: Tensor          # (B, T, T) bool, True = may not attend
    target_positions: Tensor   # (B, P)
    labels: Tensor             # (B, P) the ids there, IGNORE where padded
    reset: Tensor | None = None  # (B,) bool: the row starts a new pass (PLMMemoryObjective drops the memory)


class PLMObjective:
    """prepare(ids (B, L), generator) -> PLMBatch; loss(model, batch) -> LossOutput.

    Rows are L tokens of text (a block of the stream); ``<sep> <cls>`` are appended (T = L + 2).
    ``starts_word`` (V,) bool: which vocabulary entries start a word (span alignment), or None.
    """

    is_language_model = False  # a permutation LM: exp(loss) is not a left-to-right perplexity

    def __init__(self, config: PLMConfig, sep_id: int, cls_id: int, pad_id: int,
                 starts_word: Tensor | None = None) -> None:
        config.validate()
        self.config = config
        self.sep_id, self.cls_id, self.pad_id = sep_id, cls_id, pad_id
        self.starts_word = starts_word

    def prepare(self, ids: Tensor, generator: torch.Generator) -> PLMBatch:
        ids = torch.as_tensor(ids).long()
        B = ids.shape[0]
        ids = torch.cat([ids, torch.tensor([[self.sep_id, self.cls_id]]).expand(B, -1)], dim=1)  # (B, T)
        functional = (ids == self.sep_id) | (ids == self.cls_id)
        real = ids != self.pad_id
        word_start = None if self.starts_word is None else self.starts_word[ids]
        is_target, _, perm_mask = sample_order(ids, real & ~functional, functional, generator, self.config,
                                               word_start)
        positions, valid = target_mapping(is_target)
        labels = torch.where(valid, ids.gather(1, positions), torch.full_like(positions, IGNORE))
        segments = torch.where(ids == self.cls_id, torch.full_like(ids, SEGMENT_CLS), torch.zeros_like(ids))
        return PLMBatch(ids, real.long(), segments, perm_mask, positions, labels)

    def loss(self, model, batch: PLMBatch):
        from ..protocols import LossOutput

        logits = model.plm_logits(batch.input_ids, batch.perm_mask, batch.target_positions,
                                  segment_ids=batch.segment_ids, attention_mask=batch.attention_mask)  # (B, P, V)
        scored = batch.labels != IGNORE
        total = F.cross_entropy(logits[scored].float(), batch.labels[scored], reduction="sum")
        correct = (logits[scored].argmax(-1) == batch.labels[scored]).sum()
        return LossOutput(total, scored.sum(), metrics={"acc": correct.detach()})


class PLMMemoryObjective(PLMObjective):
    """The permutation LM with XLNet's segment memory carried by the Trainer (``stateful``).

    Rows come from contiguous lanes (:class:`lmlab.recipes.xlnet.LaneSegments`): row ``s + 1`` of a lane
    starts ``reuse_len`` tokens after row ``s``, so the memory the model caches (the first
    ``reuse_len`` positions of every layer's input, the last ``mem_len`` of them kept, detached) is
    exactly the text before the next row, as in XLNet's pretraining (``mems`` with ``reuse_len``).
    The first row of a pass over the data has ``vocab_size`` added to its first id; the memory is
    dropped there. The memory keys are visible to every query of both streams (XLNet's ``mems``)."""

    stateful = True

    def __init__(self, config: PLMConfig, sep_id: int, cls_id: int, pad_id: int, vocab_size: int,
                 starts_word: Tensor | None = None) -> None:
        super().__init__(config, sep_id, cls_id, pad_id, starts_word)
        self.vocab_size = vocab_size

    def prepare(self, ids: Tensor, generator: torch.Generator) -> PLMBatch:
        ids = torch.as_tensor(ids).long()
        batch = super().prepare(ids % self.vocab_size, generator)
        batch.reset = ids[:, 0] >= self.vocab_size
        return batch

    def loss(self, model, batch: PLMBatch, state):
        from ..protocols import LossOutput

        memory = None if state is None or bool(batch.reset.any()) else list(state)
        states = model.transformer(batch.input_ids, batch.segment_ids, batch.attention_mask, batch.perm_mask,
                                   batch.target_positions, memory, use_memory=True)
        logits = model.lm_logits(states.query)                                    # (B, P, V)
        scored = batch.labels != IGNORE
        total = F.cross_entropy(logits[scored].float(), batch.labels[scored], reduction="sum")
        correct = (logits[scored].argmax(-1) == batch.labels[scored]).sum()
        return LossOutput(total, scored.sum(), state=tuple(states.memory), metrics={"acc": correct.detach()})


def classification_inputs(token_lists: list[list[int]], max_len: int, sep_id: int, cls_id: int,
                          pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """XLNet's fine-tuning layout: ``tokens <sep> <cls>`` at the END, padding on the LEFT.

    Returns (ids, attention_mask, segment_ids), each (N, max_len); segments A = 0 for the text and
    <sep>, CLS = 2, PAD = 4 (``classifier_utils.py``). The summary is then the last position.
    """
    N = len(token_lists)
    ids = torch.full((N, max_len), pad_id, dtype=torch.long)
    mask = torch.zeros(N, max_len, dtype=torch.long)
    segments = torch.full((N, max_len), SEGMENT_PAD, dtype=torch.long)
    for i, tokens in enumerate(token_lists):
        body = [*tokens[: max_len - 2], sep_id, cls_id]
        ids[i, max_len - len(body):] = torch.tensor(body)
        mask[i, max_len - len(body):] = 1
        segments[i, max_len - len(body):] = SEGMENT_A
        segments[i, -1] = SEGMENT_CLS
    return ids, mask, segments
