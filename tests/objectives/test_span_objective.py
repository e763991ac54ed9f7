"""The MLM and SBO objectives call the model's named heads, and only the heads they need."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import UsageError
from lmlab.models.albert import AlbertConfig, AlbertForPreTraining
from lmlab.models.bert import BertForPreTraining, SpanBertForPreTraining, preset
from lmlab.objectives import masking
from lmlab.objectives.mlm import Masker, MaskingConfig, MLMObjective
from lmlab.objectives.span import SBOObjective

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

PAD, CLS, SEP, MASK, V = 0, 1, 2, 3, 60


def rows(seed: int = 0) -> torch.Tensor:
    ids = torch.randint(4, V, (4, 24), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = CLS, SEP
    return ids


def objective(scheme: str, sentence_task: str | None = None) -> MLMObjective:
    masker = Masker(MaskingConfig(scheme=scheme), V, MASK, [PAD, CLS, SEP, MASK],
                    starts_word=torch.ones(V, dtype=torch.bool))
    return MLMObjective(masker, pad_id=PAD, sep_id=SEP, sentence_task=sentence_task)


class Recorder:
    """Duck-typed model: the wrapped model's encoder and heads, recording which heads are called."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []
        self.encoder = model.encoder

    def __getattr__(self, name):
        head = getattr(self.model, name)
        self.calls.append(name)
        return head


def spanbert() -> SpanBertForPreTraining:
    torch.manual_seed(0)
    return SpanBertForPreTraining(preset("spanbert-base", vocab_size=V, max_length=32, d_model=32, n_layers=1,
                                         n_heads=2, d_ff=64, dropout=0.0, attn_dropout=0.0))


def test_mlm_objective_calls_only_the_heads_it_needs():
    torch.manual_seed(0)
    bert = BertForPreTraining(preset("bert-tiny", vocab_size=V, max_length=32, dropout=0.0, attn_dropout=0.0))
    ids = rows()
    plain = Recorder(bert)
    objective("token").loss(plain, objective("token").prepare(ids, torch.Generator().manual_seed(1)))
    assert plain.calls == ["mlm_logits"]  # the NSP head exists but there is no sentence task
    with_nsp = Recorder(bert)
    nsp = objective("token", "nsp")
    labelled = torch.cat([ids, torch.zeros(4, 1, dtype=torch.long)], dim=1)  # the label in the last column
    nsp.loss(with_nsp, nsp.prepare(labelled, torch.Generator().manual_seed(1)))
    assert with_nsp.calls == ["mlm_logits", "sentence_logits"]
    albert = AlbertForPreTraining(AlbertConfig(vocab_size=V, d_embedding=8, d_model=16, n_layers=1, n_heads=2,
                                               d_ff=32))
    out = objective("ngram", "sop").loss(albert, objective("ngram", "sop").prepare(labelled,
                                                                                   torch.Generator().manual_seed(1)))
    assert {"mlm_loss", "sop_loss", "sop_acc"} <= set(out.metrics)


def test_sbo_objective_adds_the_span_boundary_loss_to_the_mlm_loss():
    model = spanbert().eval()
    mlm = objective("span")
    sbo = SBOObjective(mlm)
    batch = sbo.prepare(rows(), torch.Generator().manual_seed(3))
    m = batch.mlm
    left, right = masking.span_boundaries(m.span_ids)
    assert torch.equal(batch.span_left, left) and torch.equal(batch.span_right, right)
    with torch.no_grad():
        out = sbo.loss(model, batch)
        mlm_only = mlm.loss(model, m)
        h, _ = model.encoder(m.input_ids, m.segment_ids, m.attention_mask)
        expected_sbo = F.cross_entropy(model.sbo_logits(h, m.selected, left, right), m.labels, reduction="sum")
    assert out.n_targets == m.labels.numel() == mlm_only.n_targets
    torch.testing.assert_close(out.metrics["sbo_loss"], expected_sbo)
    torch.testing.assert_close(out.loss_sum, mlm_only.loss_sum + expected_sbo)
    torch.testing.assert_close(out.metrics["mlm_loss"], mlm_only.metrics["mlm_loss"])


def test_sbo_objective_refuses_other_schemes_and_models_without_the_head():
    with pytest.raises(UsageError, match="'span' masking scheme"):
        SBOObjective(objective("token"))
    sbo = SBOObjective(objective("span"))
    batch = sbo.prepare(rows(), torch.Generator().manual_seed(3))
    bert = BertForPreTraining(preset("bert-tiny", vocab_size=V, max_length=32))
    with pytest.raises(UsageError, match="no span boundary head"):
        sbo.loss(bert, batch)
