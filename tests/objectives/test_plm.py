"""XLNet's permutation-LM objective: the masks are valid factorisations, the rates are XLNet's."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import ConfigError
from lmlab.objectives.plm import (
    IGNORE,
    SEGMENT_CLS,
    SEGMENT_PAD,
    PLMConfig,
    PLMObjective,
    classification_inputs,
    local_order,
    permutation_mask,
    sample_order,
    sample_span_targets,
    span_length_probs,
    target_mapping,
)

SEP, CLS, PAD = 3, 4, 0


def test_permutation_mask_by_hand():
    """Positions 0..3, order ranks (2, 0, 3, 1); 0 and 2 are targets, 1 is context, 3 is <cls>."""
    rank = torch.tensor([[2, 0, 3, 1]])
    target = torch.tensor([[True, False, True, False]])
    functional = torch.tensor([[False, False, False, True]])
    expected = torch.tensor([[1, 0, 1, 0],    # target 0 (rank 2): not itself, not target 2 (rank 3)
                             [1, 0, 1, 1],    # context 1: sees no target and no functional token
                             [0, 0, 1, 0],    # target 2 (last): sees everyone but itself
                             [1, 0, 1, 0]],   # <cls> (rank 1): sees context 1 (and itself, in h)
                            dtype=torch.bool)
    assert torch.equal(permutation_mask(rank, target, functional)[0], expected)


def _rows(B=8, L=30, gen=None):
    return torch.randint(10, 200, (B, L), generator=gen)


def _is_dag(perm_mask, context, part):
    """'i sees j' (i != j) is acyclic once the context tokens of one part (conditioned on jointly,
    they see each other both ways) are one node; and context sees no target of its own part."""
    T = perm_mask.shape[0]
    sees = ~perm_mask & ~torch.eye(T, dtype=torch.bool)
    same_part = part[:, None] == part[None, :]
    if (sees & context[:, None] & ~context[None, :] & same_part).any():
        return False
    adjacency = (sees & ~(context[:, None] & context[None, :] & same_part)).double()
    power = adjacency.clone()
    for _ in range(T):  # a DAG's adjacency matrix is nilpotent
        power = (power @ adjacency).clamp(max=1)
    return bool((power == 0).all())


@pytest.mark.parametrize("config", [PLMConfig(), PLMConfig(K=3, perm_size=8, reuse_len=16), PLMConfig(K=1),
                                    PLMConfig(K=2, perm_size=4)])
def test_every_sampled_order_is_a_valid_dag(config):
    gen = torch.Generator().manual_seed(0)
    objective = PLMObjective(config, SEP, CLS, PAD)
    for _ in range(5):
        ids = _rows(gen=gen)                                     # 30 + <sep> <cls> = 32
        ids[0, :5] = PAD
        batch = objective.prepare(ids, gen)
        functional = (batch.input_ids == SEP) | (batch.input_ids == CLS)
        is_target = torch.zeros_like(functional)
        for b in range(ids.shape[0]):
            is_target[b, batch.target_positions[b][batch.labels[b] != IGNORE]] = True
            in_order = is_target[b] | functional[b]
            T = in_order.shape[0]
            part = (torch.arange(T) >= (config.reuse_len or T)).long()
            assert _is_dag(batch.perm_mask[b], ~in_order, part)
            # a target never sees itself; the functional tokens are never targets
            assert batch.perm_mask[b][is_target[b], is_target[b]].all()
        assert not (is_target & functional).any() and not (is_target & (batch.input_ids == PAD)).any()
    # the check is not vacuous: two targets that see each other make a cycle
    first, second = torch.nonzero(is_target[-1]).squeeze(1)[:2].tolist()
    broken = batch.perm_mask[-1].clone()
    broken[first, second] = broken[second, first] = False
    in_order = is_target[-1] | functional[-1]
    assert not _is_dag(broken, ~in_order, torch.zeros_like(in_order, dtype=torch.long))


def test_a_target_sees_exactly_the_context_and_what_precedes_it_in_the_order():
    gen = torch.Generator().manual_seed(3)
    ids = _rows(2, 24, gen)
    allowed = torch.ones_like(ids, dtype=torch.bool)
    functional = torch.zeros_like(allowed)
    is_target, rank, perm_mask = sample_order(ids, allowed, functional, gen, PLMConfig(K=3, perm_size=6))
    for b in range(2):
        for i in torch.nonzero(is_target[b]).squeeze(1).tolist():
            visible = ~perm_mask[b, i]
            expected = ~is_target[b] | (rank[b] < rank[b, i])
            assert torch.equal(visible, expected)


def test_one_in_K_tokens_is_predicted():
    gen = torch.Generator().manual_seed(1)
    objective = PLMObjective(PLMConfig(K=6), SEP, CLS, PAD)
    ids = _rows(16, 510, gen)                                    # XLNet's 512 with <sep> <cls>
    batch = objective.prepare(ids, gen)
    per_row = (batch.labels != IGNORE).sum(1)
    assert per_row.tolist() == [510 // 6] * 16                   # 85 of 512, as XLNet's num_predict
    assert torch.equal(batch.labels[batch.labels != IGNORE],
                       batch.input_ids.gather(1, batch.target_positions)[batch.labels != IGNORE])


def test_span_rates_are_xlnets():
    """Spans only (K = 0): lengths n ∝ 1/n, n ≤ 5, and about beta / (alpha + beta) = 1/7 of tokens."""
    gen = torch.Generator().manual_seed(2)
    allowed = torch.ones(32, 600, dtype=torch.bool)
    selected = sample_span_targets(allowed, gen, PLMConfig(K=0), None)
    rate = selected.float().mean().item()
    assert 0.12 < rate < 0.145, rate
    lengths = []
    for row in selected.tolist():
        run = 0
        for x in [*row, False]:
            if x:
                run += 1
            elif run:
                lengths.append(run)
                run = 0
    counts = torch.bincount(torch.tensor(lengths), minlength=6)[1:].double()
    observed = counts / counts.sum()
    assert max(lengths) <= 5
    torch.testing.assert_close(observed, span_length_probs(5), atol=0.03, rtol=0)


def test_spans_start_at_word_starts():
    gen = torch.Generator().manual_seed(4)
    allowed = torch.ones(8, 200, dtype=torch.bool)
    word_start = torch.rand(8, 200, generator=gen) < 0.5
    word_start[:, 0] = True
    selected = sample_span_targets(allowed, gen, PLMConfig(K=0), word_start)
    starts = selected & ~torch.cat([torch.zeros(8, 1, dtype=torch.bool), selected[:, :-1]], 1)
    assert selected.any() and (word_start[starts]).all()
    ends = selected & ~torch.cat([selected[:, 1:], torch.zeros(8, 1, dtype=torch.bool)], 1)
    after = torch.nonzero(ends)
    after = after[after[:, 1] < 199]
    assert word_start[after[:, 0], after[:, 1] + 1].all()          # a span ends where a word ends


def test_local_order_shuffles_inside_blocks_the_same_way():
    gen = torch.Generator().manual_seed(5)
    rank = local_order(4, 12, 4, gen)
    for row in rank:
        blocks = row.view(3, 4)
        assert torch.equal(blocks.sort(1).values, torch.arange(12).view(3, 4))
        assert torch.equal(blocks - torch.arange(0, 12, 4)[:, None], blocks[:1].expand(3, 4))  # one shuffle
    assert torch.equal(local_order(2, 6, 0, gen, identity=True), torch.arange(6).expand(2, 6))
    with pytest.raises(ConfigError, match="must divide"):
        local_order(1, 10, 4, gen)


def test_reuse_split_never_lets_the_cached_part_see_the_rest():
    gen = torch.Generator().manual_seed(6)
    ids = _rows(3, 16, gen)
    allowed = torch.ones_like(ids, dtype=torch.bool)
    _, _, perm_mask = sample_order(ids, allowed, torch.zeros_like(allowed), gen, PLMConfig(K=2, reuse_len=8,
                                                                                           perm_size=4))
    assert perm_mask[:, :8, 8:].all() and not perm_mask[:, 8:, :8].any()


def test_perm_size_larger_than_reuse_len_is_refused():
    with pytest.raises(ConfigError, match="perm_size=8 > reuse_len=4"):
        PLMObjective(PLMConfig(perm_size=8, reuse_len=4), SEP, CLS, PAD)


def test_rows_get_sep_cls_at_the_end_and_the_same_seed_the_same_batch():
    ids = _rows(2, 10, torch.Generator().manual_seed(7))
    objective = PLMObjective(PLMConfig(K=3), SEP, CLS, PAD)
    a = objective.prepare(ids, torch.Generator().manual_seed(8))
    b = objective.prepare(ids, torch.Generator().manual_seed(8))
    assert torch.equal(a.input_ids[:, -2:], torch.tensor([[SEP, CLS]] * 2))
    assert torch.equal(a.segment_ids[:, -1], torch.full((2,), SEGMENT_CLS)) and not a.segment_ids[:, :-1].any()
    assert torch.equal(a.perm_mask, b.perm_mask) and torch.equal(a.labels, b.labels)


def test_target_mapping_pads_short_rows():
    is_target = torch.tensor([[False, True, False, True], [True, False, False, False]])
    positions, valid = target_mapping(is_target)
    assert positions.tolist() == [[1, 3], [0, 0]] and valid.tolist() == [[True, True], [True, False]]


def test_classification_inputs_are_left_padded_with_sep_cls_last():
    ids, mask, segments = classification_inputs([[7, 8, 9], [5]], 6, SEP, CLS, PAD)
    assert ids.tolist() == [[PAD, 7, 8, 9, SEP, CLS], [PAD, PAD, PAD, 5, SEP, CLS]]
    assert mask.tolist() == [[0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]]
    assert segments.tolist() == [[SEGMENT_PAD, 0, 0, 0, 0, SEGMENT_CLS], [SEGMENT_PAD] * 3 + [0, 0, SEGMENT_CLS]]
