"""The one fine-tuning objective: sequence rows, token rows, and GPT-1's L_2 + λ·L_1, against hand sums."""

from __future__ import annotations

import math

import torch

from lmlab.objectives.classify import IGNORE, ClassifyObjective

PAD = 0


class Fixed(torch.nn.Module):
    """A 'model' whose logits are given: checks the objective's arithmetic, nothing else."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.seen = None

    def forward(self, input_ids, attention_mask):
        self.seen = (input_ids, attention_mask)
        return self.logits


def test_sequence_rows_sum_the_cross_entropy_of_the_last_column():
    rows = torch.tensor([[5, 6, PAD, 1], [7, 8, 9, 0]])          # tokens..., class
    objective = ClassifyObjective(PAD)
    batch = objective.prepare(rows)
    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    model = Fixed(logits)
    out = objective.loss(model, batch)
    expected = -(math.log(math.exp(2) / (1 + math.exp(2))) + math.log(math.e / (math.e + 1)))
    assert math.isclose(float(out.loss_sum), expected, rel_tol=1e-6) and out.n_targets == 2
    assert int(out.metrics["acc"]) == 2
    assert model.seen[1].tolist() == [[1, 1, 0], [1, 1, 1]]     # padding masked out


def test_token_rows_score_only_labelled_positions():
    rows = torch.tensor([[5, 6, 7, IGNORE, 1, IGNORE]])          # 3 tokens, then 3 labels
    objective = ClassifyObjective(PAD, per_token=True)
    batch = objective.prepare(rows)
    logits = torch.zeros(1, 3, 2)
    logits[0, 1, 1] = 3.0
    out = objective.loss(Fixed(logits), batch)
    assert out.n_targets == 1
    assert math.isclose(float(out.loss_sum), -math.log(math.exp(3) / (1 + math.exp(3))), rel_tol=1e-6)


def test_a_model_with_loss_terms_adds_lambda_times_its_lm_loss():
    class WithLM(torch.nn.Module):
        class config:
            lm_coef = 0.5

        def loss_terms(self, ids, labels, mask):
            return torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor(0.7), torch.tensor(2.0)

    rows = torch.tensor([[5, 6, 1], [7, 8, 0]])
    out = ClassifyObjective(PAD).loss(WithLM(), ClassifyObjective(PAD).prepare(rows))
    assert math.isclose(float(out.loss_sum), (0.7 + 0.5 * 2.0) * 2, rel_tol=1e-6)
    assert float(out.metrics["lm"]) == 4.0 and int(out.metrics["acc"]) == 2
