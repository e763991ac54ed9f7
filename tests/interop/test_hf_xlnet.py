"""Parity with Hugging Face transformers' XLNetLMHeadModel: folders in and out, fp32, 1e-5."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import FormatError, UsageError

transformers = pytest.importorskip("transformers")

from lmlab.interop.hf_xlnet import load_hf, save_hf  # noqa: E402 (after the importorskip)
from lmlab.objectives.plm import IGNORE, PLMConfig, PLMObjective  # noqa: E402

TOL = 1e-5
V, T, B = 97, 14, 3
SEP, CLS, PAD = 3, 4, 5


def hf_model(**extra):
    config = transformers.XLNetConfig(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=64,
                                      pad_token_id=PAD, **extra)
    model = transformers.XLNetLMHeadModel(config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights everywhere (HF zero-initialises biases, LayerNorm at 1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def plm_batch():
    gen = torch.Generator().manual_seed(1)
    batch = PLMObjective(PLMConfig(K=3, perm_size=7), SEP, CLS, PAD).prepare(
        torch.randint(6, V, (B, T - 2), generator=gen), gen)
    batch.input_ids[1, :3] = PAD                                   # left padding in one row
    batch.attention_mask[1, :3] = 0
    batch.segment_ids[:, 6:-1] = 1                                 # two segments and <cls>
    return batch


def hf_plm(model, batch):
    mapping = torch.nn.functional.one_hot(batch.target_positions, T).float()   # (B, P, T)
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, token_type_ids=batch.segment_ids,
                 perm_mask=batch.perm_mask.float(), target_mapping=mapping).logits


def ours_plm(model, batch):
    return model.plm_logits(batch.input_ids, batch.perm_mask, batch.target_positions, batch.segment_ids,
                            batch.attention_mask)


def test_xlnet_lm_head_both_ways(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    batch = plm_batch()
    valid = batch.labels != IGNORE
    real = batch.attention_mask.bool()
    with torch.no_grad():
        plain_ref = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        plain = ours(batch.input_ids, attention_mask=batch.attention_mask).logits
        plm_ref, plm = hf_plm(hf, batch), ours_plm(ours, batch)
    assert (plain - plain_ref)[real].abs().max() < TOL
    assert (plm - plm_ref)[valid].abs().max() < TOL
    # and back: lmlab -> HF folder -> transformers
    save_hf(ours, tmp_path / "back")
    again = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert (again(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits - plain)[real].abs().max() \
            < TOL
        assert (hf_plm(again, batch) - plm)[valid].abs().max() < TOL


def test_memory_over_two_segments_matches(tmp_path):
    hf = hf_model(mem_len=10, use_mems_eval=True)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    assert ours.config.mem_len == 10
    gen = torch.Generator().manual_seed(2)
    first, second = torch.randint(6, V, (B, 8), generator=gen), torch.randint(6, V, (B, 8), generator=gen)
    segments = torch.zeros(B, 8, dtype=torch.long)
    segments[:, 5:] = 1
    with torch.no_grad():
        ref1 = hf(input_ids=first, token_type_ids=segments, use_mems=True)
        out1 = ours(first, segments, use_memory=True)
        ref2 = hf(input_ids=second, token_type_ids=segments, mems=ref1.mems, use_mems=True)
        out2 = ours(second, segments, memory=out1.memory, use_memory=True)
    assert (out1.logits - ref1.logits).abs().max() < TOL
    assert (out2.logits - ref2.logits).abs().max() < TOL
    for ours_mem, hf_mem in zip(out2.memory, ref2.mems):       # HF's memory is (M, B, H)
        assert (ours_mem - hf_mem.transpose(0, 1)).abs().max() < TOL


def test_pickles_and_unsupported_variants_are_refused(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    (tmp_path / "hf" / "model.safetensors").rename(tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(FormatError, match="pickle"):
        load_hf(tmp_path / "hf")
    hf_model(bi_data=True).save_pretrained(tmp_path / "bi", safe_serialization=True)
    with pytest.raises(FormatError, match="bi_data"):
        load_hf(tmp_path / "bi")
    with pytest.raises(UsageError, match="XLNet"):
        save_hf(torch.nn.Linear(2, 2), tmp_path / "no")


def test_lmlab_load_reads_hf_xlnet_folders(tmp_path):
    import lmlab
    from lmlab import registry

    assert registry.for_hf_model_type("xlnet").name == "xlnet"
    hf_model().save_pretrained(tmp_path / "hf", safe_serialization=True)
    model = lmlab.load(tmp_path / "hf")                          # a Hugging Face folder, by its model_type
    assert model.family == "xlnet"
    model.save_pretrained(tmp_path / "ours")
    assert type(lmlab.load(tmp_path / "ours")) is type(model)
