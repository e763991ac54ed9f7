"""The causal-LM objective: shift-by-one targets, ignored positions, and -L_1 (GPT-1 eq. 1) itself."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import UsageError
from lmlab.models.gpt import GPTConfig, GPTLanguageModel
from lmlab.objectives.clm import IGNORE_INDEX, CausalLMObjective, lm_loss_sum, shift_targets

X = IGNORE_INDEX


def test_targets_are_the_inputs_shifted_by_one():
    inputs, targets = shift_targets(torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]]))
    assert inputs.tolist() == [[5, 6, 7], [9, 10, 11]]
    assert targets.tolist() == [[6, 7, 8], [10, 11, 12]]


def test_padding_targets_are_ignored_by_id_or_by_mask():
    _, targets = shift_targets(torch.tensor([[5, 6, 0, 0]]), pad_token_id=0)
    assert targets.tolist() == [[6, X, X]]
    # GPT-2 pads with its end-of-text id: the mask keeps the real end-of-text target, drops the padding
    ids = torch.tensor([[5, 6, 50256, 50256]])
    _, targets = shift_targets(ids, attention_mask=torch.tensor([[1, 1, 1, 0]]))
    assert targets.tolist() == [[6, 50256, X]]


def test_first_token_after_a_document_separator_is_not_predicted():
    ids = torch.tensor([[5, 6, 2, 7, 8, 2, 9]])  # two packed documents, </s> = 2
    _, targets = shift_targets(ids, separator_id=2)
    assert targets.tolist() == [[6, 2, X, 8, 2, X]]  # the separator is predicted, the next start is not
    _, targets = shift_targets(ids)
    assert targets.tolist() == [[6, 2, 7, 8, 2, 9]]  # default: one continuous stream (GPT-2 style)


def test_bad_rows_are_a_usage_error():
    with pytest.raises(UsageError, match="length >= 2"):
        shift_targets(torch.tensor([[5]]))
    with pytest.raises(UsageError, match="attention_mask"):
        shift_targets(torch.tensor([[5, 6, 7]]), attention_mask=torch.ones(1, 2))


def test_loss_is_minus_L1_summed_over_predicted_tokens():
    torch.manual_seed(0)
    model = GPTLanguageModel(GPTConfig(vocab_size=20, max_length=16, d_model=32, n_layers=1, n_heads=2,
                                       dropout=0.0, attn_dropout=0.0)).eval()
    ids = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12]])
    objective = CausalLMObjective(pad_token_id=0)
    batch = objective.prepare(ids, torch.Generator())
    total, count = objective.loss(model, batch)
    with torch.no_grad():
        log_p = torch.log_softmax(model(ids[:, :-1]), dim=-1)  # (B, T, V)
    # L_1 = Σ_i log P(u_i | u_<i): row 0 predicts 4, 5, 6 (then padding), row 1 predicts 8..12
    expected = sum(log_p[0, t, ids[0, t + 1]] for t in range(3)) + sum(log_p[1, t, ids[1, t + 1]] for t in range(5))
    assert int(count) == 8
    torch.testing.assert_close(total, -expected, rtol=1e-5, atol=1e-5)
    # the same number from the model's own mean loss and from the functional pieces
    inputs, targets = batch
    torch.testing.assert_close(model.loss(inputs, targets) * 8, total, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lm_loss_sum(model(inputs), targets)[0], total)


def test_mapping_batches_use_their_attention_mask():
    objective = CausalLMObjective()
    inputs, targets = objective.prepare({"input_ids": torch.tensor([[5, 6, 7]]),
                                         "attention_mask": torch.tensor([[1, 1, 0]])})
    assert inputs.tolist() == [[5, 6]] and targets.tolist() == [[6, X]]


def test_left_padding_predicts_nothing_from_a_padded_position():
    _, targets = shift_targets(torch.tensor([[0, 0, 5, 6]]), attention_mask=torch.tensor([[0, 0, 1, 1]]))
    assert targets.tolist() == [[X, X, 6]]
