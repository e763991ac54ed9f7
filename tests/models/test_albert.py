"""ALBERT: the seed's parameter arithmetic, sharing modes, SOP head, save/load, learning."""

from __future__ import annotations

import pytest
import torch
from _bertkit import train_config, wiki_slice

from lmlab.errors import ConfigError
from lmlab.models.albert import (
    Albert,
    AlbertConfig,
    AlbertForPreTraining,
    embedding_arithmetic,
    sharing_parameter_counts,
)
from lmlab.nn.init import count_parameters


def test_seed_embedding_arithmetic():
    """(30k + 512) x 1024 = 31,244,288 vs (30k + 512) x 128 + 128 x 1024 = 4,036,608 (seed 004)."""
    counts = embedding_arithmetic(vocab_size=30000, max_length=512, d_model=1024, d_embedding=128)
    assert counts == {"bert": 31_244_288, "albert": 4_036_608, "saved": 27_207_680}


def test_sharing_modes_reproduce_the_paper_table():
    """ALBERT-base, E = 768 (paper Table 4): all-shared 31M, shared-attention 83M, shared-FFN 57M, none 108M."""
    with torch.device("meta"):
        counts = sharing_parameter_counts(AlbertConfig(d_embedding=768))
        small_e = sharing_parameter_counts(AlbertConfig(d_embedding=128))
    assert counts == {"all": 31_705_344, "attention": 83_668_992, "ffn": 57_708_288, "none": 109_671_936}
    # the seed: sharing the FFN saves 11 x 2 x 768 x 3072 (+ biases, LN); sharing attention 11 x 4 x 768^2 (+ ...)
    ffn_per_layer = 2 * 768 * 3072 + 3072 + 768 + 2 * 768
    attention_per_layer = 4 * 768 * 768 + 4 * 768 + 2 * 768
    assert counts["none"] - counts["ffn"] == 11 * ffn_per_layer
    assert counts["none"] - counts["attention"] == 11 * attention_per_layer
    assert round(small_e["all"] / 1e6) == 12 and round(small_e["none"] / 1e6) == 90


def test_shared_layers_are_one_module():
    config = AlbertConfig(vocab_size=50, d_embedding=8, d_model=16, n_layers=4, n_heads=2, d_ff=32)
    model = Albert(config)
    assert len(model.attention_blocks) == 1 and len(model.ffn_blocks) == 1
    attention_only = Albert(AlbertConfig(**{**config.__dict__, "sharing": "attention"}))
    assert len(attention_only.attention_blocks) == 1 and len(attention_only.ffn_blocks) == 4
    assert count_parameters(model) < count_parameters(attention_only)
    with pytest.raises(ConfigError):
        Albert(AlbertConfig(**{**config.__dict__, "sharing": "some"}))


def test_albert_save_load_and_sop(tmp_path):
    model = AlbertForPreTraining(AlbertConfig(vocab_size=50, d_embedding=8, d_model=16, n_layers=3, n_heads=2,
                                              d_ff=32, sharing="ffn")).eval()
    ids = torch.randint(5, 50, (2, 7))
    out = model(ids)
    assert out.sentence_logits.shape == (2, 2) and out.mlm_logits.shape == (2, 7, 50)
    model.save_pretrained(tmp_path / "a")
    again = AlbertForPreTraining.from_pretrained(tmp_path / "a").eval()
    torch.testing.assert_close(again(ids).mlm_logits, out.mlm_logits, rtol=0, atol=0)


def test_albert_heads_are_named_methods():
    model = AlbertForPreTraining(AlbertConfig(vocab_size=50, d_embedding=8, d_model=16, n_layers=2, n_heads=2,
                                              d_ff=32)).eval()
    ids = torch.randint(5, 50, (2, 7))
    selected = torch.zeros(2, 7, dtype=torch.bool)
    selected[0, 2] = selected[1, 4] = True
    with torch.no_grad():
        h, pooled = model.encoder(ids)
        out = model(ids, selected=selected)
        torch.testing.assert_close(model.mlm_logits(h, selected), out.mlm_logits, rtol=0, atol=0)
        torch.testing.assert_close(model.sentence_logits(pooled), out.sentence_logits, rtol=0, atol=0)
    assert out.mlm_logits.shape == (2, 50) and not hasattr(model, "sbo_logits")
    with pytest.raises(TypeError):  # no span inputs to refuse any more: SBO is SpanBERT's own class
        model(ids, selected=selected, span_left=selected.long())


def test_albert_learns_on_real_text(tmp_path):
    from lmlab.recipes.bert_family import DataSpec, Recipe, TokenizerSpec, prepare
    from lmlab.train import Trainer

    train, valid = wiki_slice()
    torch.manual_seed(0)
    recipe = Recipe("albert", DataSpec(seq_len=48, batch_size=16), TokenizerSpec(vocab_size=1000),
                    model={"d_embedding": 32, "d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 128})
    prepared = prepare(recipe, documents=train, eval_docs=valid)
    assert prepared.objective.sentence_task == "sop" and prepared.objective.masker.config.scheme == "ngram"
    trainer = Trainer(prepared.model, prepared.objective, prepared.train_source, train_config(60, lr=3e-3),
                      tmp_path, eval_source=prepared.eval_source)
    before = trainer.evaluate()["eval_loss"]
    after = trainer.fit().eval["eval_loss"]
    assert after < before - 0.5, (before, after)
