"""Hugging Face GPT-2 folders in and out of lmlab's GPT: logits within 1e-5 both ways, same greedy tokens."""

from __future__ import annotations

import json

import pytest
import torch

from lmlab.errors import CheckpointError, ConfigError
from lmlab.interop.hf import is_hf_gpt2_folder, load_gpt2, save_gpt2
from lmlab.models.gpt import GPTConfig, GPTLanguageModel
from lmlab.tasks.generation import GenerationConfig, generate

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A randomly initialised GPT2LMHeadModel, saved locally (no network)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=96, n_positions=64, n_embd=48, n_layer=3, n_head=4,
                                     initializer_range=0.2, bos_token_id=95, eos_token_id=95)
    model = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("hf") / "gpt2"
    model.save_pretrained(folder)
    return folder


def hf_load(folder):
    return transformers.GPT2LMHeadModel.from_pretrained(folder).eval()


def test_hf_to_lmlab_logits_match(hf_folder):
    assert is_hf_gpt2_folder(hf_folder)
    theirs, ours = hf_load(hf_folder), load_gpt2(hf_folder).eval()
    ids = torch.randint(0, 96, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), theirs(ids).logits, atol=1e-5, rtol=0)
    # left-padded batch with a mask, as generate() feeds it
    mask = torch.ones_like(ids)
    mask[1, :7] = 0
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask)
        b = theirs(ids, attention_mask=mask, position_ids=position_ids).logits
    torch.testing.assert_close(a[mask.bool()], b[mask.bool()], atol=1e-5, rtol=0)


def test_lmlab_to_hf_logits_match(tmp_path):
    torch.manual_seed(0)
    ours = GPTLanguageModel(GPTConfig(vocab_size=80, max_length=32, d_model=32, n_layers=2, n_heads=2,
                                      init_std=0.2)).eval()
    save_gpt2(ours, tmp_path / "out")
    hf_config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert hf_config["model_type"] == "gpt2" and hf_config["n_embd"] == 32
    theirs = hf_load(tmp_path / "out")
    ids = torch.randint(0, 80, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids), atol=1e-5, rtol=0)
    # and back again, bit for bit
    again = load_gpt2(tmp_path / "out")
    for key, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_greedy_generation_is_token_identical(hf_folder):
    theirs, ours = hf_load(hf_folder), load_gpt2(hf_folder).eval()
    prompt = torch.tensor([[5, 17, 42, 8], [60, 2, 33, 71]])
    ours_out = generate(ours, prompt, config=GenerationConfig(max_new_tokens=30))
    theirs_out = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30,
                                 do_sample=False, pad_token_id=0, eos_token_id=None)
    assert ours_out.tolist() == theirs_out.tolist()
    assert len(set(ours_out[0, 4:].tolist())) > 3


def test_beam_search_and_left_padding_match_hf(hf_folder):
    theirs, ours = hf_load(hf_folder), load_gpt2(hf_folder).eval()
    prompt = torch.tensor([[0, 0, 42, 8], [60, 2, 33, 71]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    ours_greedy = generate(ours, prompt, attention_mask=mask, config=GenerationConfig(max_new_tokens=12))
    theirs_greedy = theirs.generate(prompt, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                    pad_token_id=0, eos_token_id=None)
    assert ours_greedy.tolist() == theirs_greedy.tolist()
    ours_beam = generate(ours, prompt[1:], config=GenerationConfig(max_new_tokens=8, num_beams=3))
    theirs_beam = theirs.generate(prompt[1:], attention_mask=mask[1:], max_new_tokens=8, num_beams=3,
                                  do_sample=False, pad_token_id=0, eos_token_id=None)
    assert ours_beam.tolist() == theirs_beam.tolist()


def test_unsupported_or_broken_folders_are_refused(hf_folder, tmp_path):
    config = json.loads((hf_folder / "config.json").read_text())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({**config, "scale_attn_by_inverse_layer_idx": True}))
    (broken / "model.safetensors").write_bytes((hf_folder / "model.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="scale_attn_by_inverse_layer_idx"):
        load_gpt2(broken)
    (broken / "config.json").write_text(json.dumps({**config, "n_layer": 4}))
    with pytest.raises(CheckpointError, match="missing"):
        load_gpt2(broken)
    post_ln = GPTLanguageModel(GPTConfig(vocab_size=10, max_length=8, d_model=8, n_layers=1, n_heads=2,
                                         norm_position="post", final_norm=False))
    with pytest.raises(ConfigError, match="pre-LN"):
        save_gpt2(post_ln, tmp_path / "nope")
