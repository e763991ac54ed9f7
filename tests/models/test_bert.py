"""BERT / RoBERTa / SpanBERT: golden parameter counts, heads, save/load, learning on real text."""

from __future__ import annotations

import pytest
import torch
from _bertkit import train_config, wiki_slice

from lmlab.errors import CheckpointError, ConfigError, UsageError
from lmlab.models.bert import Bert, BertForPreTraining, SpanBertForPreTraining, preset
from lmlab.nn.init import count_parameters
from lmlab.objectives import masking


def tiny(**overrides):
    return BertForPreTraining(preset("bert-tiny", vocab_size=60, max_length=32, **overrides))


def test_golden_parameter_counts():
    """bert-base: 109,482,240 parameters with the pooler (the number HF reports for BertModel)."""
    with torch.device("meta"):
        assert count_parameters(Bert(preset("bert-base"))) == 109_482_240
        # BERT-large: the paper's 340M (334M + pooler and LayerNorms, V = 30522)
        assert count_parameters(Bert(preset("bert-large"))) == 335_141_888


def test_mlm_logits_only_at_selected_positions_equal_full():
    model = tiny().eval()
    ids = torch.randint(5, 60, (3, 10))
    selected = torch.zeros(3, 10, dtype=torch.bool)
    selected[0, 2] = selected[1, 5] = selected[2, 9] = True
    with torch.no_grad():
        full = model(ids).mlm_logits                       # (B, T, V)
        part = model(ids, selected=selected).mlm_logits    # (N, V)
    assert full.shape == (3, 10, 60) and part.shape == (3, 60)
    torch.testing.assert_close(part, full[selected], rtol=0, atol=1e-6)


def test_segments_and_padding_matter_where_they_should():
    model = tiny().eval()
    ids = torch.randint(5, 60, (1, 8))
    with torch.no_grad():
        a = model(ids, segment_ids=torch.zeros_like(ids)).hidden
        b = model(ids, segment_ids=torch.ones_like(ids)).hidden
        # padding at the end does not change the real positions
        padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
        mask = (padded != 0).long()
        c = model(padded, attention_mask=mask).hidden[:, :8]
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, a, rtol=0, atol=1e-5)


def test_heads_are_named_methods_on_the_encoder_outputs():
    model = tiny().eval()
    ids = torch.randint(5, 60, (2, 9))
    selected = torch.zeros(2, 9, dtype=torch.bool)
    selected[0, 3] = selected[1, 1] = True
    with torch.no_grad():
        h, pooled = model.encoder(ids)
        out = model(ids, selected=selected)
        torch.testing.assert_close(model.mlm_logits(h, selected), out.mlm_logits, rtol=0, atol=0)
        torch.testing.assert_close(model.sentence_logits(pooled), out.sentence_logits, rtol=0, atol=0)
    assert not hasattr(model, "sbo_logits")  # SBO is SpanBERT's head, not a BERT switch
    with pytest.raises(UsageError, match="sentence head"):
        tiny(sentence_head=False).sentence_logits(pooled)


def span_example():
    """Two rows with spans (3, 5) and (7, 7); (ids, selected, left, right)."""
    ids = torch.randint(5, 60, (2, 12), generator=torch.Generator().manual_seed(0))
    span_ids = torch.full((2, 12), -1)
    span_ids[0, 3:6] = 0
    span_ids[1, 7:8] = 0
    left, right = masking.span_boundaries(span_ids)
    return ids, span_ids >= 0, left, right


def test_spanbert_class_with_the_sbo_head_and_roberta_preset():
    span = SpanBertForPreTraining(preset("spanbert-base", vocab_size=60, max_length=32, d_model=32, n_layers=1,
                                         n_heads=2, d_ff=64)).eval()
    assert span.sentence is None and span.sbo is not None
    ids, selected, left, right = span_example()
    assert left[0, 4] == 2 and right[0, 4] == 6 and left[1, 7] == 6 and right[1, 7] == 8
    with torch.no_grad():
        h, _ = span.encoder(ids)
        sbo = span.sbo_logits(h, selected, left, right)
        assert sbo.shape == (4, 60) and span(ids, selected=selected).mlm_logits.shape == (4, 60)
        # row 0, token 4 (the span's 2nd token): from h at 2 and 6 and relative position 1, by hand
        by_hand = span.sbo(h[0, 2][None], h[0, 6][None], torch.tensor([1]), span.bert.embeddings.token.weight)
        torch.testing.assert_close(sbo[1:2], by_hand, rtol=0, atol=1e-6)
    roberta = preset("roberta-base")
    assert roberta.position_offset == 2 and roberta.type_vocab_size == 1 and not roberta.sentence_head
    with pytest.raises(ConfigError):
        preset("bert-bsae")
    with pytest.raises(UsageError):
        tiny()(torch.zeros(1, 40, dtype=torch.long))


def test_save_load_round_trip(tmp_path):
    model = tiny().eval()
    model.save_pretrained(tmp_path / "m")
    again = BertForPreTraining.from_pretrained(tmp_path / "m").eval()
    ids = torch.randint(5, 60, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).mlm_logits, model(ids).mlm_logits, rtol=0, atol=0)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(CheckpointError):
        BertForPreTraining.from_pretrained(tmp_path / "m")


def test_spanbert_folder_reloads_as_spanbert(tmp_path):
    """A SpanBERT folder is family "spanbert"; one saved by lmlab 0.2 (family "bert", its fields at the
    top level, span_boundary_head = true) is rebuilt with its SBO head by BertForPreTraining and lmlab.load."""
    import copy
    import json

    import lmlab

    span = SpanBertForPreTraining(preset("bert-tiny", vocab_size=60, max_length=32, sentence_head=False)).eval()
    assert span.config.span_boundary_head  # the class records its head in the config it saves
    span.save_pretrained(tmp_path / "s")
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert saved["family"] == "spanbert" and saved["config"]["span_boundary_head"] is True
    ids, selected, left, right = span_example()
    with torch.no_grad():
        expected = span.sbo_logits(span.encoder(ids)[0], selected, left, right)
    (tmp_path / "s" / "config.json").write_text(json.dumps({"family": "bert", **saved["config"]}))  # 0.2's layout
    again_new = lmlab.load(span.save_pretrained(tmp_path / "new")).eval()
    for again in (BertForPreTraining.from_pretrained(tmp_path / "s").eval(), lmlab.load(tmp_path / "s").eval(),
                  again_new):
        assert type(again) is SpanBertForPreTraining
        with torch.no_grad():
            h, _ = again.encoder(ids)
            torch.testing.assert_close(again.sbo_logits(h, selected, left, right), expected, rtol=0, atol=0)
    assert type(copy.deepcopy(tiny())) is BertForPreTraining


@pytest.mark.parametrize("family", ["bert", "spanbert"])
def test_mlm_loss_falls_on_real_text(tmp_path, family):
    from lmlab.recipes.bert_family import DataSpec, Recipe, TokenizerSpec, prepare
    from lmlab.train import Trainer

    train, valid = wiki_slice()
    torch.manual_seed(0)
    recipe = Recipe(family, DataSpec(seq_len=48, batch_size=16), TokenizerSpec(vocab_size=1000),
                    model={"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 128})
    prepared = prepare(recipe, documents=train, eval_docs=valid)
    trainer = Trainer(prepared.model, prepared.objective, prepared.train_source, train_config(60, lr=3e-3), tmp_path,
                      eval_source=prepared.eval_source)
    before = trainer.evaluate()["eval_loss"]
    result = trainer.fit()
    # from ~ln(V) (+ NSP / SBO terms) towards the unigram level, ~1.2 nats below ln V, in 60 small steps
    # (measured: BERT 7.63 -> 6.86-6.90, SpanBERT 13.86 -> 11.6-11.7)
    assert result.eval["eval_loss"] < before - 0.5, (before, result.eval)


def test_lmlab_train_builder_runs_and_exports(tmp_path, monkeypatch):
    """The run-file builder (`lmlab train` with family = bert | roberta | albert | spanbert | electra)."""
    from lmlab.cli import train as train_cli
    from lmlab.models.albert import AlbertForPreTraining

    run_file = tmp_path / "albert.toml"
    run_file.write_text(
        'family = "albert"\n'
        '[data]\ncorpus = "wiki-vital-small"\nmax_documents = 40\nseq_len = 32\nbatch_size = 8\neval_documents = 8\n'
        '[tokenizer]\nvocab_size = 600\n'
        '[model]\nd_model = 32\nn_heads = 2\nd_ff = 64\nsharing = "attention"\n'
        '[objective]\nscheme = "ngram"\n'
        '[train]\nmax_steps = 2\nprogress = "off"\nmfu = false\nplot = false\ntensorboard = false\nthreads = 1\n')
    result, out_dir, job, _ = train_cli.run_training(run_file, out=tmp_path / "run")
    assert result.step == 2 and "ngram" in job.describe
    model = AlbertForPreTraining.from_pretrained(out_dir / "model")
    assert model.config.sharing == "attention" and (out_dir / "model" / "tokenizer.json").is_file()
    with pytest.raises(ConfigError):
        train_cli.run_training(run_file, overrides=["model.sharingg=all"], out=tmp_path / "bad")


def _demo_data(tmp_path, documents, seconds: float):
    import time

    from lmlab.report import DemoData

    return DemoData("wiki-slice", documents, [], [], [], [], [], ["<unk>", "<s>", "</s>"], tmp_path, seed=0,
                    deadline=time.monotonic() + seconds)


def test_demo_rows_for_the_four_families_at_the_same_budget(tmp_path, monkeypatch):
    """`lmlab demo`: BERT, RoBERTa, ALBERT, ELECTRA with one budget each, real fine-tuning scores."""
    from lmlab.recipes import bert_family as demo_bert

    monkeypatch.setattr(demo_bert, "DEMO_PRETRAIN",
                        {"steps": 3, "batch_size": 8, "seq_len": 32, "max_documents": 60, "vocab_size": 600})
    monkeypatch.setattr(demo_bert, "DEMO_FINETUNE", {"steps": 3, "batch_size": 8, "max_len": 24, "lr": 1e-3})
    train, _ = wiki_slice()
    threads = torch.get_num_threads()
    rows = demo_bert.run_demo(_demo_data(tmp_path, train, 600.0))
    assert torch.get_num_threads() == threads  # restored after the one-thread rows
    assert [r.model.split()[0] for r in rows] == ["bert", "roberta", "albert", "electra"]
    for row in rows:
        assert 0.0 <= row.metrics["test acc"] <= 1.0 and 0.0 <= row.metrics["macro-F1"] <= 1.0
        assert row.metrics["majority acc"] == rows[0].metrics["majority acc"] > 0.5  # one test set for all
        assert row.metrics["pretrain loss"] > 0 and row.train_seconds > 0
        assert "budget: pretrain 3 steps x 8 x 32 tokens" in row.notes and "fine-tune 3 steps x 8 x 24" in row.notes


def test_demo_skips_rows_when_out_of_time(tmp_path):
    from lmlab.recipes.bert_family import run_demo

    rows = run_demo(_demo_data(tmp_path, [], 5.0))
    assert len(rows) == 4 and all(r.notes == "skipped: out of time" and not r.metrics for r in rows)
