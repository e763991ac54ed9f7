"""Hugging Face BART folders in and out: logits within 1e-5 both ways on tiny random local models,
for BartForConditionalGeneration and BartForSequenceClassification (transformers is optional)."""

from __future__ import annotations

import json

import pytest
import torch

from lmlab.errors import CheckpointError, ConfigError
from lmlab.interop.hf_bart import load_hf, save_hf
from lmlab.models.bart import BartConfig, BartForConditionalGeneration, BartForSequenceClassification

transformers = pytest.importorskip("transformers")

HF_TINY = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40,
               pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)


def _ids():
    torch.manual_seed(1)
    src = torch.randint(4, 99, (3, 9))
    src[:, -1] = 2
    src[2, 6:] = 1          # a padded row
    src[2, 5] = 2
    tgt = torch.randint(4, 99, (3, 7))
    tgt[:, 0] = 2
    return src, tgt


def _hf_logits(hf_model, src, tgt):
    with torch.no_grad():
        return hf_model(input_ids=src, attention_mask=(src != 1).long(), decoder_input_ids=tgt).logits


def _hf_model(cls, **extra):
    torch.manual_seed(0)
    model = cls(transformers.BartConfig(**HF_TINY, **extra)).eval()
    with torch.no_grad():  # a non-zero final_logits_bias, so the test sees it
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.normal_()
    return model


def test_hf_folder_loads_with_equal_logits(tmp_path):
    hf_model = _hf_model(transformers.BartForConditionalGeneration)
    hf_model.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf").eval()
    assert isinstance(ours, BartForConditionalGeneration)
    src, tgt = _ids()
    with torch.no_grad():
        got = ours(src, tgt)
    torch.testing.assert_close(got, _hf_logits(hf_model, src, tgt), atol=1e-5, rtol=0)
    # no decoder inputs: the source shifted right, starting with decoder_start_token_id (as HF)
    with torch.no_grad():
        torch.testing.assert_close(ours(src), hf_model(input_ids=src, attention_mask=(src != 1).long()).logits,
                                   atol=1e-5, rtol=0)


def test_lmlab_model_saves_as_a_folder_transformers_loads(tmp_path):
    torch.manual_seed(3)
    config = BartConfig(vocab_size=99, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=1, d_ff=64,
                        max_length=40, mask_token_id=98)
    ours = BartForConditionalGeneration(config).eval()
    with torch.no_grad():
        ours.final_logits_bias.normal_()
    save_hf(ours, tmp_path / "out")
    hf_model = transformers.BartForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    src, tgt = _ids()
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(hf_model, src, tgt), ours(src, tgt), atol=1e-5, rtol=0)
    again = load_hf(tmp_path / "out")
    assert again.config == config


def test_kv_cached_greedy_decoding_matches_hf_generate(tmp_path):
    from lmlab.models.bart import BartSteps
    from lmlab.tasks.generation import GenerationConfig, generate

    hf_model = _hf_model(transformers.BartForConditionalGeneration)
    hf_model.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf").eval()
    src, _ = _ids()
    src = src[:2]
    with torch.no_grad():
        expected = hf_model.generate(input_ids=src, attention_mask=(src != 1).long(), max_new_tokens=8,
                                     num_beams=1, do_sample=False, min_length=0, forced_bos_token_id=None,
                                     forced_eos_token_id=None, no_repeat_ngram_size=0, eos_token_id=2, pad_token_id=1)
        steps = BartSteps(ours, src)
        produced = generate(steps, steps.start_ids(), config=GenerationConfig(
            max_new_tokens=8, stop_token_ids=[2], pad_token_id=1))
    assert produced.tolist() == expected.tolist()


@pytest.mark.parametrize("beams, alpha", [(3, 1.0), (4, 0.6)])
def test_beam_search_through_the_shared_steps_matches_hf_generate(tmp_path, beams, alpha):
    """BART decodes through the one encoder-decoder path (``generation_steps`` = nn.decoding.EncoderDecoderSteps)."""
    from lmlab.nn.decoding import EncoderDecoderSteps
    from lmlab.tasks.generation import GenerationConfig, beam_search

    hf_model = _hf_model(transformers.BartForConditionalGeneration)
    hf_model.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf").eval()
    src, _ = _ids()
    with torch.no_grad():
        expected = hf_model.generate(input_ids=src, attention_mask=(src != 1).long(), max_new_tokens=10,
                                     num_beams=beams, length_penalty=alpha, early_stopping=False, do_sample=False,
                                     min_length=0, forced_bos_token_id=None, forced_eos_token_id=None,
                                     no_repeat_ngram_size=0, eos_token_id=2, pad_token_id=1)
        steps = ours.generation_steps(src)
        assert isinstance(steps, EncoderDecoderSteps)
        produced = beam_search(steps, steps.start_ids(), config=GenerationConfig(
            max_new_tokens=10, num_beams=beams, length_penalty=alpha, stop_token_ids=[2], pad_token_id=1))

    def up_to_eos(rows):
        return [row[: row.index(2, 1) + 1] if 2 in row[1:] else [t for t in row if t != 1] for row in rows.tolist()]

    assert up_to_eos(produced) == up_to_eos(expected)


def test_sequence_classification_both_ways(tmp_path):
    hf_model = _hf_model(transformers.BartForSequenceClassification, num_labels=3)
    hf_model.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf").eval()
    assert isinstance(ours, BartForSequenceClassification) and ours.config.num_labels == 3
    ids = torch.randint(4, 99, (2, 8))
    ids[:, 0], ids[:, -1] = 0, 2
    with torch.no_grad():
        expected = hf_model(input_ids=ids).logits
        torch.testing.assert_close(ours(ids), expected, atol=1e-5, rtol=0)
    save_hf(ours, tmp_path / "back")
    again = transformers.BartForSequenceClassification.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, expected, atol=1e-5, rtol=0)


def test_bad_folders_are_one_line_errors(tmp_path):
    hf_model = _hf_model(transformers.BartForConditionalGeneration)
    hf_model.save_pretrained(tmp_path / "hf")
    raw = json.loads((tmp_path / "hf" / "config.json").read_text())
    raw["decoder_ffn_dim"] = 128
    (tmp_path / "hf" / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="decoder_ffn_dim"):
        load_hf(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="safetensors"):
        load_hf(tmp_path / "hf")


def test_lmlab_load_reads_a_hf_bart_folder(tmp_path):
    import lmlab

    _hf_model(transformers.BartForConditionalGeneration).save_pretrained(tmp_path / "hf")
    assert isinstance(lmlab.load(tmp_path / "hf"), BartForConditionalGeneration)
