"""Hugging Face v4 Transformer-XL folders: the 4.36.2 fixture loads and matches HF's log-probabilities
over two segments with memory (1e-5), lmlab's own HF folders round-trip, bad folders are refused.

The reverse direction against transformers itself runs only where a 4.x with the deprecated
TransfoXL is importable (v5 removed it); see tests/fixtures/transfo_xl/README.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lmlab
from lmlab.errors import CheckpointError, ConfigError
from lmlab.interop.hf_transfo_xl import config_from_hf, key_map, load_hf, save_hf
from lmlab.models.transfo_xl import TransfoXLLMHeadModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transfo_xl"


@pytest.mark.parametrize("name", ["div2", "div1-proj"])
def test_hf_fixture_log_probs_match_over_two_segments_with_memory(name):
    folder = FIXTURES / name
    model = load_hf(folder).eval()
    expected = load_file(str(folder / "expected.safetensors"))
    ids = expected["input_ids"]
    first, memory = model.log_probs(ids[:, :5])
    second, _ = model.log_probs(ids[:, 5:], memory)
    torch.testing.assert_close(first, expected["segment1"], atol=1e-5, rtol=0)
    torch.testing.assert_close(second, expected["segment2"], atol=1e-5, rtol=0)
    # memory matters: segment 2 without it is different
    alone, _ = model.log_probs(ids[:, 5:])
    assert (alone - expected["segment2"]).abs().max() > 1e-3


def test_lmlab_load_reads_a_hf_folder_by_its_model_type():
    model = lmlab.load(FIXTURES / "div2")
    assert isinstance(model, TransfoXLLMHeadModel)
    assert model.config.same_length and model.config.clamp_len == 5 and model.config.tie_projs
    assert model.crit.out_projs[1] is model.transformer.word_emb.emb_projs[1]
    assert model.crit.out_projs[0] is not model.transformer.word_emb.emb_projs[0]


def test_save_hf_round_trips_and_keeps_the_v4_layout(tmp_path):
    model = load_hf(FIXTURES / "div1-proj").eval()
    out = save_hf(model, tmp_path / "hf")
    ours = load_file(str(out / "model.safetensors"))
    theirs = load_file(str(FIXTURES / "div1-proj" / "model.safetensors"))
    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key].equal(theirs[key]), key
    assert {a for a, _ in key_map(model)} == set(model.state_dict())
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["model_type"] == "transfo-xl" and hf_config["tie_projs"] == [False, True]
    again = load_hf(out).eval()
    ids = torch.randint(0, 40, (2, 6))
    assert again.log_probs(ids)[0].equal(model.log_probs(ids)[0])


def test_tied_tensors_may_be_stored_under_the_output_names(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "other"
    shutil.copytree(FIXTURES / "div2", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["crit.out_layers.1.weight"] = tensors.pop("transformer.word_emb.emb_layers.1.weight")
    save_file(tensors, str(folder / "model.safetensors"))
    model = load_hf(folder).eval()
    reference = load_hf(FIXTURES / "div2").eval()
    ids = torch.randint(0, 40, (1, 5))
    assert model.log_probs(ids)[0].equal(reference.log_probs(ids)[0])


def test_bad_folders_are_one_line_errors(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(FIXTURES / "div2" / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(CheckpointError, match="never loads"):
        load_hf(folder)
    hf = json.loads((FIXTURES / "div2" / "config.json").read_text())
    with pytest.raises(ConfigError, match="untie_r"):
        config_from_hf({**hf, "untie_r": False})
    with pytest.raises(ConfigError, match="attn_type"):
        config_from_hf({**hf, "attn_type": 2})
    with pytest.raises(ConfigError, match="tie_projs"):
        config_from_hf({**hf, "tie_projs": [True, False, True]})


def test_transformers_4_loads_what_lmlab_writes(tmp_path):
    """Needs transformers 4.x with the deprecated TransfoXL (not 5.x); skipped otherwise."""
    try:
        from transformers.models.deprecated.transfo_xl import TransfoXLLMHeadModel as HFModel
    except ImportError:
        pytest.skip("no transformers 4.x with TransfoXL (removed in v5)")
    model = load_hf(FIXTURES / "div2").eval()
    hf = HFModel.from_pretrained(save_hf(model, tmp_path / "hf")).eval()
    ids = torch.randint(0, 40, (2, 10))
    empty = [torch.zeros(0, 2, 16) for _ in range(2)]
    with torch.no_grad():
        first = hf(ids[:, :5], mems=empty)
        second = hf(ids[:, 5:], mems=first.mems)
    ours, memory = model.log_probs(ids[:, :5])
    torch.testing.assert_close(ours, first.prediction_scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.log_probs(ids[:, 5:], memory)[0], second.prediction_scores, atol=1e-5, rtol=0)
