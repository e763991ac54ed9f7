"""GPT-1 §3.2 fine-tuning: L_3 = L_2 + λ·L_1, the auxiliary LM loss through the tied output matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import ConfigError
from lmlab.models.gpt import GPTClassifier, GPTClassifierConfig, GPTConfig, GPTLanguageModel
from lmlab.objectives.classify import ClassifyObjective

PAD = 0


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(lm_coef: float) -> GPTClassifier:
    torch.manual_seed(0)
    gpt = GPTConfig(vocab_size=30, max_length=16, d_model=32, n_layers=2, n_heads=2, dropout=0.0, attn_dropout=0.0,
                    pad_token_id=PAD)
    return GPTClassifier(GPTClassifierConfig(gpt=gpt, num_labels=3, classifier_dropout=0.0, lm_coef=lm_coef))


# right-padded rows, tokens 5..19 only (20..29 never occur)
IDS = torch.tensor([[5, 6, 7, 8, 9, PAD, PAD], [10, 11, 12, 13, 14, 15, 16], [17, 18, 19, PAD, PAD, PAD, PAD]])
MASK = (IDS != PAD).long()
LABELS = torch.tensor([0, 2, 1])


def independent_l1(model: GPTClassifier) -> torch.Tensor:
    """Mean -log P(x_{t+1} | x_<=t) over real tokens, from a GPTLanguageModel holding the same body."""
    lm = GPTLanguageModel(model.config.gpt)
    lm.gpt.load_state_dict(model.gpt.state_dict())
    log_p = torch.log_softmax(lm(IDS, attention_mask=MASK), dim=-1)  # (B, T, V)
    terms = [-log_p[b, t, IDS[b, t + 1]] for b in range(len(IDS)) for t in range(IDS.shape[1] - 1)
             if MASK[b, t] and MASK[b, t + 1]]
    assert len(terms) == 4 + 6 + 2
    return torch.stack(terms).mean()


def test_without_lm_coef_the_loss_is_the_plain_classification_loss():
    model = tiny(0.0)
    plain = F.cross_entropy(model(IDS, MASK), LABELS)
    torch.testing.assert_close(model.loss(IDS, LABELS, MASK), plain)
    assert model.loss_terms(IDS, LABELS, MASK)[2] is None


def test_with_lm_coef_the_loss_is_L2_plus_lambda_L1():
    model = tiny(0.5)
    l2 = F.cross_entropy(model(IDS, MASK), LABELS)
    expected = l2 + 0.5 * independent_l1(model)
    torch.testing.assert_close(model.loss(IDS, LABELS, MASK), expected, rtol=1e-5, atol=1e-6)
    # the Trainer objective: the sum over rows of the same thing
    objective = ClassifyObjective(PAD)
    rows = torch.cat([IDS, LABELS[:, None]], dim=1)
    out = objective.loss(model, objective.prepare(rows))
    torch.testing.assert_close(out.loss_sum / out.n_targets, expected, rtol=1e-5, atol=1e-6)


def test_lm_term_trains_the_tied_output_matrix():
    """Tokens 20..29 are in no input: only the softmax over W_e (the LM term) gives their rows a gradient."""
    for coef, expect_gradient in ((0.0, False), (0.5, True)):
        model = tiny(coef)
        model.loss(IDS, LABELS, MASK).backward()
        unseen = model.gpt.token_embedding.weight.grad[20:]
        assert bool(unseen.abs().sum() > 0) == expect_gradient


def test_lm_coef_is_validated_and_saved(tmp_path):
    with pytest.raises(ConfigError, match="lm_coef"):
        tiny(-1.0)
    model = tiny(0.5)
    model.save_pretrained(tmp_path / "clf")
    assert GPTClassifier.from_pretrained(tmp_path / "clf").config.lm_coef == 0.5
