"""Parity with Hugging Face transformers: HF folders -> lmlab and lmlab -> HF folders, fp32, 1e-5."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import FormatError, UsageError

transformers = pytest.importorskip("transformers")

from lmlab.interop.hf_bert import load_hf, save_hf  # noqa: E402 (after the importorskip)

TOL = 1e-5
V, T, B = 97, 12, 3


def perturb(model, seed=0):
    """Random weights everywhere (HF zero-initialises biases and sets LayerNorm to 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def inputs(pad_id=0, low=5):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(low, V, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = pad_id
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[:, 6:] = 1
    return ids, mask, segments


def small(cls, **extra):
    return cls(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
               max_position_embeddings=40, **extra)


def close_real(a, b, mask):
    real = mask.bool()
    assert (a[real] - b[real]).abs().max().item() < TOL


def test_bert_pretraining_both_ways(tmp_path):
    hf = perturb(transformers.BertForPreTraining(small(transformers.BertConfig)))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    ids, mask, seg = inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=seg)
        out = ours(ids, segment_ids=seg, attention_mask=mask)
    close_real(out.mlm_logits, ref.prediction_logits, mask)
    assert (out.sentence_logits - ref.seq_relationship_logits).abs().max() < TOL
    # and back: lmlab -> HF folder -> transformers
    save_hf(ours, tmp_path / "back")
    again = transformers.BertForPreTraining.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        ref2 = again(input_ids=ids, attention_mask=mask, token_type_ids=seg)
    close_real(out.mlm_logits, ref2.prediction_logits, mask)
    assert (out.sentence_logits - ref2.seq_relationship_logits).abs().max() < TOL


def test_bert_masked_lm_selected_positions(tmp_path):
    hf = perturb(transformers.BertForMaskedLM(small(transformers.BertConfig)))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    ids, mask, seg = inputs()
    selected = torch.zeros(B, T, dtype=torch.bool)
    selected[:, 2] = selected[0, 7] = True
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=seg).logits
        out = ours(ids, segment_ids=seg, attention_mask=mask, selected=selected)
    assert (out.mlm_logits - ref[selected]).abs().max() < TOL
    save_hf(ours, tmp_path / "back")
    again = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        close_real(again(input_ids=ids, attention_mask=mask, token_type_ids=seg).logits, ref, mask)


def test_roberta_masked_lm_both_ways(tmp_path):
    config = small(transformers.RobertaConfig, pad_token_id=1, type_vocab_size=1, layer_norm_eps=1e-5)
    config.max_position_embeddings = 40
    hf = perturb(transformers.RobertaForMaskedLM(config))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    assert ours.config.position_offset == 2 and not ours.config.sentence_head
    ids, mask, _ = inputs(pad_id=1)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
        out = ours(ids, attention_mask=mask).mlm_logits
    close_real(out, ref, mask)
    save_hf(ours, tmp_path / "back")
    again = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        close_real(again(input_ids=ids, attention_mask=mask).logits, out, mask)


@pytest.mark.parametrize("groups", [1, 2])
def test_albert_both_ways(tmp_path, groups):
    config = small(transformers.AlbertConfig, embedding_size=16, num_hidden_groups=groups)
    hf = perturb(transformers.AlbertForPreTraining(config))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    assert ours.config.sharing == ("all" if groups == 1 else "none")
    ids, mask, seg = inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=seg)
        out = ours(ids, segment_ids=seg, attention_mask=mask)
    close_real(out.mlm_logits, ref.prediction_logits, mask)
    assert (out.sentence_logits - ref.sop_logits).abs().max() < TOL
    save_hf(ours, tmp_path / "back")
    again = transformers.AlbertForPreTraining.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        close_real(again(input_ids=ids, attention_mask=mask, token_type_ids=seg).prediction_logits,
                   out.mlm_logits, mask)


def test_electra_discriminator_both_ways(tmp_path):
    hf = perturb(transformers.ElectraForPreTraining(small(transformers.ElectraConfig, embedding_size=16)))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    ids, mask, seg = inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=seg, output_hidden_states=True)
        hidden, logits = ours(ids, segment_ids=seg, attention_mask=mask)
    close_real(logits, ref.logits, mask)
    close_real(hidden, ref.hidden_states[-1], mask)
    save_hf(ours, tmp_path / "back")
    again = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        close_real(again(input_ids=ids, attention_mask=mask, token_type_ids=seg).logits, logits, mask)


def test_electra_generator_out_as_masked_lm(tmp_path):
    """lmlab's generator (1/4 width, so E -> H_G is projected) saved as ElectraForMaskedLM, same logits."""
    from lmlab.models.electra import ElectraConfig, ElectraForPreTraining

    torch.manual_seed(0)
    ours = perturb(ElectraForPreTraining(ElectraConfig(vocab_size=V, d_embedding=16, d_model=32, n_layers=2,
                                                       n_heads=4, d_ff=64, max_length=40)))
    assert ours.config.generator_sizes() == (8, 1, 16)
    ids, mask, seg = inputs()
    everywhere = torch.ones(B, T, dtype=torch.bool)
    with torch.no_grad():
        embedded = ours.discriminator.embeddings(ids, seg)
        logits = ours.generator(embedded, mask, everywhere, ours.discriminator.embeddings.token.weight)
    save_hf(ours, tmp_path / "gen", part="generator")
    hf = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "gen").eval()
    assert hf.config.hidden_size == 8 and hf.config.embedding_size == 16
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=seg).logits
    close_real(logits.view(B, T, V), ref, mask)  # (B·T, V) -> (B, T, V)
    with pytest.raises(FormatError, match="generator"):
        load_hf(tmp_path / "gen")


def test_refusals(tmp_path):
    from lmlab.models.albert import AlbertConfig, AlbertForPreTraining
    from lmlab.models.bert import SpanBertForPreTraining, preset

    with pytest.raises(UsageError):
        save_hf(AlbertForPreTraining(AlbertConfig(vocab_size=50, d_model=32, n_heads=2, d_ff=64, n_layers=2,
                                                  d_embedding=16, sharing="attention")), tmp_path / "x")
    spanbert = SpanBertForPreTraining(preset("spanbert-base", vocab_size=50, d_model=32, n_heads=2, d_ff=64, n_layers=1))
    with pytest.raises(UsageError, match="SBO"):
        save_hf(spanbert, tmp_path / "y")
    with pytest.raises(UsageError, match="generator"):
        save_hf(spanbert, tmp_path / "z", part="generator")
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FormatError, match="pickle"):
        load_hf(tmp_path / "pickle")
