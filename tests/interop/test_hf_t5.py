"""Parity with Hugging Face's T5ForConditionalGeneration on tiny random local models (no hub access).

Both checkpoint styles (v1.0: ReLU, tied + scaled output; v1.1: gated-GELU, untied lm_head), both
directions (HF folder -> lmlab, lmlab -> HF folder), logits within 1e-5, and greedy / beam /
no-repeat-n-gram / min-length outputs token-identical to ``generate`` with the same settings.
"""

from __future__ import annotations

import json

import pytest
import torch

from lmlab.errors import CheckpointError, ConfigError
from lmlab.interop.hf_t5 import config_from_hf, load_t5, save_t5
from lmlab.models.t5 import T5Config, T5ForConditionalGeneration
from lmlab.tasks.generation import GenerationConfig, translate

transformers = pytest.importorskip("transformers")

STYLES = {"v1.0": {"feed_forward_proj": "relu", "tie_word_embeddings": True},
          "v1.1": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}}


def _hf_model(style: str, folder, seed: int = 0, decoder_layers: int = 2, spread: bool = False):
    """A tiny random HF T5 saved in ``folder`` and read back from it (the reference model).

    transformers 5 builds every T5 tied (``tie_word_embeddings`` becomes ``scale_decoder_outputs``),
    so the v1.1 folder is written as the hub's v1.1 / Flan checkpoints are (transformers 4):
    ``tie_word_embeddings: false`` and a separate ``lm_head.weight``.
    """
    from safetensors.torch import load_file, save_file

    torch.manual_seed(seed)
    config = transformers.T5Config(vocab_size=97, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                   num_decoder_layers=decoder_layers, num_heads=4, dropout_rate=0.0,
                                   relative_attention_num_buckets=16, relative_attention_max_distance=24,
                                   decoder_start_token_id=0, **STYLES[style])
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # HF's init gives a tiny random T5 that repeats one token: spread the weights
        for name, p in model.named_parameters() if spread else ():
            if "layer_norm" not in name:
                p.normal_(0.0, 0.3 if "relative_attention_bias" not in name else 1.0)
    model.save_pretrained(folder)
    if style == "v1.1":
        tensors = load_file(str(folder / "model.safetensors"))
        tensors["lm_head.weight"] = torch.randn(97, 32) * (0.3 if spread else 32 ** -0.5)
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        raw = json.loads((folder / "config.json").read_text())
        raw.pop("scale_decoder_outputs", None)
        (folder / "config.json").write_text(json.dumps({**raw, "tie_word_embeddings": False}))
    return transformers.T5ForConditionalGeneration.from_pretrained(folder).eval()


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(2, 97, (3, 30), generator=g)
    src[1, 22:] = 0  # a padded source
    dec = torch.randint(2, 97, (3, 26), generator=g)
    dec[:, 0] = 0
    return src, (src != 0).long(), dec


@pytest.mark.parametrize("style", sorted(STYLES))
def test_hf_folder_loads_with_equal_logits(style, tmp_path):
    hf = _hf_model(style, tmp_path / "hf", decoder_layers=3)  # asymmetric: num_decoder_layers is read
    ours = load_t5(tmp_path / "hf").eval()
    assert ours.config.tie_embeddings is (style == "v1.0")
    assert ours.config.scale_decoder_output is (style == "v1.0")
    assert ours.config.n_decoder_layers == 3
    src, mask, dec = _inputs()
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=mask, decoder_input_ids=dec).logits
        mine = ours(src, dec, src_mask=mask)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_lmlab_model_saves_a_folder_hf_loads_with_equal_logits(style, tmp_path):
    torch.manual_seed(3)
    values = {"vocab_size": 97, "d_model": 32, "d_kv": 8, "d_ff": 48, "n_heads": 4, "n_encoder_layers": 2,
              "n_decoder_layers": 2, "dropout": 0.0, "relative_buckets": 16, "relative_max_distance": 24}
    if style == "v1.1":
        values.update(feed_forward="gated-gelu", tie_embeddings=False, scale_decoder_output=False)
    ours = T5ForConditionalGeneration(T5Config(**values)).eval()
    save_t5(ours, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert {"tie_word_embeddings", "scale_decoder_outputs"} <= set(written)  # both config styles
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    src, mask, dec = _inputs(2)
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=mask, decoder_input_ids=dec).logits
        mine = ours(src, dec, src_mask=mask)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    # and back again: an HF re-save (transformers 5 rewrites tie_word_embeddings) still reads right
    hf.save_pretrained(tmp_path / "again")
    again = load_t5(tmp_path / "again").eval()
    assert again.config.tie_embeddings == ours.config.tie_embeddings
    with torch.no_grad():
        torch.testing.assert_close(again(src, dec, src_mask=mask), mine, atol=1e-6, rtol=0)


SETTINGS = {
    "greedy": {"num_beams": 1},
    "beam": {"num_beams": 4, "length_penalty": 1.0},
    "beam-length-penalty": {"num_beams": 3, "length_penalty": 0.6},
    "no-repeat": {"num_beams": 1, "no_repeat_ngram_size": 2},
    "beam-no-repeat-min": {"num_beams": 3, "no_repeat_ngram_size": 3, "min_new_tokens": 6},
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("style", sorted(STYLES))
def test_generation_matches_hf_generate_token_for_token(style, setting, tmp_path):
    hf = _hf_model(style, tmp_path / "hf", seed=5, spread=True)
    ours = load_t5(tmp_path / "hf").eval()
    src, mask, _ = _inputs(4)
    kwargs = SETTINGS[setting]
    with torch.no_grad():
        theirs = hf.generate(input_ids=src, attention_mask=mask, max_new_tokens=14, do_sample=False,
                             early_stopping=False, **kwargs)[:, 1:]
    mine = translate(ours, src, src_mask=mask, config=GenerationConfig(max_new_tokens=14, **kwargs))
    assert _up_to_eos(mine) == _up_to_eos(theirs), (mine, theirs)


def _up_to_eos(rows: torch.Tensor) -> list[list[int]]:
    """Each row up to and including its first EOS (1): what follows is padding, which HF's beam
    search fills with EOS and lmlab with pad."""
    out = []
    for row in rows.tolist():
        out.append(row[: row.index(1) + 1] if 1 in row else row)
    return out


def test_relative_position_buckets_equal_hf():
    from transformers.models.t5.modeling_t5 import T5Attention

    from lmlab.models.t5 import relative_position_bucket

    offsets = torch.arange(-300, 300)[None, :]
    for bidirectional in (True, False):
        for buckets, distance in ((32, 128), (16, 24), (8, 20)):
            theirs = T5Attention._relative_position_bucket(offsets, bidirectional, buckets, distance)
            assert torch.equal(relative_position_bucket(offsets, bidirectional, buckets, distance), theirs)


def test_untied_decided_by_lm_head_not_by_config(tmp_path):
    _hf_model("v1.1", tmp_path / "hf")
    raw = json.loads((tmp_path / "hf" / "config.json").read_text())
    raw["tie_word_embeddings"] = True  # what transformers 5 writes for an untied model
    raw["scale_decoder_outputs"] = False
    (tmp_path / "hf" / "config.json").write_text(json.dumps(raw))
    assert not load_t5(tmp_path / "hf").config.tie_embeddings
    # transformers 4 style: no scale_decoder_outputs key, tie_word_embeddings decides the scaling
    v4 = {k: v for k, v in raw.items() if k != "scale_decoder_outputs"}
    assert config_from_hf({**v4, "tie_word_embeddings": True}, untied=False).scale_decoder_output
    assert not config_from_hf({**v4, "tie_word_embeddings": False}, untied=True).scale_decoder_output


def test_bad_folders_are_refused(tmp_path):
    _hf_model("v1.0", tmp_path / "hf")
    raw = json.loads((tmp_path / "hf" / "config.json").read_text())
    with pytest.raises(ConfigError, match="feed_forward_proj 'gated-silu'"):
        config_from_hf({**raw, "feed_forward_proj": "gated-silu"}, untied=False)
    with pytest.raises(ConfigError, match="expected 't5'"):
        config_from_hf({**raw, "model_type": "bart"}, untied=False)
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**raw, "num_layers": 3}))
    with pytest.raises(CheckpointError, match="encoder.block.2"):
        load_t5(tmp_path / "hf")
