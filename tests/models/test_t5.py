"""T5 (lmlab.models.t5): hand-checked position buckets and attention, the v1.0 / v1.1 heads, the KV
cache's relative bias, save/load, bf16, learning on real text, and ``lmlab generate`` on encoder-decoders."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lmlab
from lmlab.models.t5 import (
    PRESETS,
    T5Attention,
    T5Config,
    T5ForConditionalGeneration,
    relative_position_bucket,
)
from lmlab.tasks.generation import GenerationConfig, translate

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(**overrides) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    values = {**PRESETS["t5-tiny"], "vocab_size": 50, "d_model": 32, "d_kv": 8, "d_ff": 64, "dropout": 0.0}
    return T5ForConditionalGeneration(T5Config(**{**values, **overrides})).eval()


# ----------------------------------------------------------------------------- golden numbers


# j - i -> bucket, worked out by hand from the rule (32 buckets, max distance 128):
# bidirectional: 16 per sign, 8 exact; 8 + floor(log(d/8) / log(128/8) * 8) beyond, capped at 15 (+16 if j > i)
BIDIRECTIONAL = {0: 0, -1: 1, -7: 7, -8: 8, -16: 10, -127: 15, -128: 15, -1000: 15, 1: 17, 16: 26, 500: 31}
# causal: 32 buckets over the past, 16 exact; 16 + floor(log(d/16) / log(128/16) * 16) beyond, capped at 31
CAUSAL = {0: 0, 3: 0, -1: 1, -15: 15, -16: 16, -32: 21, -64: 26, -127: 31, -128: 31, -5000: 31}


@pytest.mark.parametrize(("bidirectional", "table"), [(True, BIDIRECTIONAL), (False, CAUSAL)])
def test_relative_position_buckets_by_hand(bidirectional, table):
    offsets = torch.tensor(list(table))
    assert relative_position_bucket(offsets, bidirectional).tolist() == list(table.values())


def test_attention_has_no_scaling_and_adds_the_bias():
    torch.manual_seed(0)
    attn = T5Attention(d_model=4, n_heads=1, d_kv=4, dropout=0.0)
    for linear in (attn.q, attn.k, attn.v, attn.o):
        torch.nn.init.eye_(linear.weight)
    x = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]])
    bias = torch.tensor([[[[0.0, -1.0], [0.5, 0.0]]]])
    # scores = x x^T + bias = [[1, -1], [0.5, 4]]: no 1/sqrt(4)
    weights = torch.softmax(torch.tensor([[1.0, -1.0], [0.5, 4.0]]), dim=-1)
    torch.testing.assert_close(attn(x, attn_bias=bias)[0], weights @ x[0])


def test_rmsnorm_scales_without_centring_in_fp32():
    model = tiny()
    norm = model.encoder.final_norm
    x = torch.tensor([[3.0, -4.0, 0.0, 0.0]]).repeat(1, 8)  # mean(x²) = 25/4: rms 2.5, mean -1/8 kept
    torch.testing.assert_close(norm(x), x / 2.5, atol=1e-5, rtol=0)
    half = norm(x.to(torch.bfloat16))
    assert torch.allclose(half.float(), x / 2.5, atol=2e-2)  # the variance of a bf16 input is taken in fp32


def test_no_biases_and_one_bias_table_per_stack():
    names = list(tiny().state_dict())
    assert not [n for n in names if n.endswith(".bias")]
    assert [n for n in names if "relative_bias" in n] == ["encoder.relative_bias.table.weight",
                                                          "decoder.relative_bias.table.weight"]
    assert not any("cross_attn" in n and "relative" in n for n in names)


def test_tied_output_is_scaled_and_v1_1_is_untied_and_gated():
    model = tiny()
    src, dec = torch.randint(2, 50, (2, 7)), torch.randint(2, 50, (2, 5))
    memory, _ = model.encode(src)
    states = model.decode(dec, memory, model.source_key_mask(src))
    torch.testing.assert_close(model(src, dec), F.linear(states * 32 ** -0.5, model.shared.weight))
    v11 = tiny(**{k: v for k, v in PRESETS["t5-v1_1-tiny"].items() if k in ("feed_forward", "tie_embeddings",
                                                                         "scale_decoder_output")})
    names = set(v11.state_dict())
    assert "lm_head.weight" in names and "encoder.blocks.0.feed_forward.wi_0.weight" in names
    states = v11.decode(dec, v11.encode(src)[0], v11.source_key_mask(src))
    torch.testing.assert_close(v11(src, dec), F.linear(states, v11.lm_head.weight))


def test_padding_in_the_source_changes_nothing():
    model = tiny()
    src = torch.randint(2, 50, (1, 6))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    dec = torch.randint(2, 50, (1, 4))
    torch.testing.assert_close(model(padded, dec), model(src, dec), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- the KV cache


def test_cached_decoding_uses_the_new_querys_position():
    """40 decoder steps one token at a time (past the 16 exact causal buckets into the log-spaced
    ones) give the logits of the full forward pass at every position."""
    model = tiny(relative_buckets=32, relative_max_distance=128)
    src = torch.randint(2, 50, (2, 9))
    dec = torch.randint(2, 50, (2, 40))
    full = model(src, dec)
    steps = model.generation_steps(src)
    cache = steps.new_cache(2, 40)
    for t in range(40):
        torch.testing.assert_close(steps.next_token_logits(dec[:, t:t + 1], None, cache), full[:, t],
                                   atol=1e-5, rtol=0)
    # a block of several new queries after a cached prefix works too
    cache = steps.new_cache(2, 40)
    steps.next_token_logits(dec[:, :25], None, cache)
    block = model.logits(model.decode(dec[:, 25:], cache.extras["memory"], cache.extras.get("memory_mask"), cache))
    torch.testing.assert_close(block, full[:, 25:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings", [{"num_beams": 1}, {"num_beams": 3, "length_penalty": 0.7},
                                      {"num_beams": 1, "no_repeat_ngram_size": 2, "min_new_tokens": 5},
                                      {"do_sample": True, "top_k": 10, "top_p": 0.9, "seed": 3}])
def test_generation_with_and_without_the_cache_agree(settings):
    model = tiny()
    src = torch.randint(2, 50, (3, 8))
    src[2, 5:] = 0
    cached = translate(model, src, config=GenerationConfig(max_new_tokens=20, **settings))
    full = translate(model, src, config=GenerationConfig(max_new_tokens=20, use_cache=False, **settings))
    assert torch.equal(cached, full)
    if settings.get("min_new_tokens"):
        assert not (cached[:, :5] == model.config.eos_token_id).any()
    if settings.get("no_repeat_ngram_size"):
        for row in cached.tolist():
            pairs = [tuple(row[i:i + 2]) for i in range(len(row) - 1) if 0 not in row[i:i + 2]]
            assert len(pairs) == len(set(pairs))


def test_no_repeat_ngram_bans_exactly_the_completing_tokens():
    from lmlab.tasks.generation import banned_ngram_tokens

    previous = torch.tensor([[5, 6, 7, 5, 6], [1, 2, 3, 4, 2]])
    banned = banned_ngram_tokens(previous, 3, 10)
    assert banned[0].nonzero().flatten().tolist() == [7]     # "5 6" was followed by 7
    assert banned[1].nonzero().flatten().tolist() == []      # "4 2" never seen before
    assert banned_ngram_tokens(previous, 2, 10)[1].nonzero().flatten().tolist() == [3]
    assert banned_ngram_tokens(previous[:, :2], 3, 10).sum() == 0


def test_sampling_is_seeded():
    model = tiny()
    src = torch.randint(2, 50, (2, 8))
    config = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.5, seed=11)
    assert torch.equal(translate(model, src, config=config), translate(model, src, config=config))


# ----------------------------------------------------------------------------- save / load, bf16


def test_save_load_round_trip(tmp_path):
    model = tiny(**{k: PRESETS["t5-v1_1-tiny"][k] for k in ("feed_forward", "tie_embeddings", "scale_decoder_output")})
    model.save_pretrained(tmp_path / "m")
    again = lmlab.load(tmp_path / "m").eval()
    src, dec = torch.randint(2, 50, (2, 7)), torch.randint(2, 50, (2, 5))
    assert torch.equal(again(src, dec), model(src, dec))
    assert torch.equal(translate(again, src, num_beams=2, max_new_tokens=8),
                       translate(model, src, num_beams=2, max_new_tokens=8))


def test_bf16_autocast_stays_finite_and_close():
    model = tiny()
    src, dec = torch.randint(2, 50, (2, 12)), torch.randint(2, 50, (2, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(src, dec)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), model(src, dec), atol=0.1, rtol=0.05)


def test_config_is_checked():
    from lmlab.errors import ConfigError

    with pytest.raises(ConfigError, match="feed_forward"):
        T5Config(feed_forward="swiglu").validate()
    with pytest.raises(ConfigError, match="eos_token_id"):
        T5Config(vocab_size=10, eos_token_id=10).validate()


# ----------------------------------------------------------------------------- learning, the CLI


def _generate_app():
    import typer

    from lmlab.cli import generate as generate_cli

    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command is called by name as on the real CLI
    generate_cli.register(app)
    return app


TINY_RUN = ["data.max_documents=200", "data.max_eval_documents=20", "data.batch_size=16", "tokenizer.vocab_size=1000", "train.progress=\"off\"",
            "train.mfu=false", "train.plot=false", "train.tensorboard=false", "train.eval_every=0",
            "train.threads=1", "train.warmup_steps=20"]


def test_span_corruption_on_real_text_learns_and_generates(tmp_path):
    """``lmlab train configs/t5.toml`` on 200 wiki-vital documents for 120 steps: the eval loss per
    target token falls from about log V = 7.0 nats (1,100 ids) to 4.99 (measured; asserted < 0.8 log V);
    the folder reloads, and ``lmlab generate`` fills sentinels with text."""
    from typer.testing import CliRunner

    from lmlab.cli.train import run_training

    result, out_dir, job, _ = run_training("configs/t5.toml", [*TINY_RUN, "train.max_steps=120"],
                                           out=tmp_path / "run")
    assert "span corruption" in job.describe and "rows of 70 raw tokens -> 64 inputs, 14 targets" in job.describe
    assert result.eval["eval_loss"] < 0.8 * math.log(job.model.config.vocab_size), result.eval
    folder = out_dir / "model"
    loaded = lmlab.load(folder)
    assert isinstance(loaded, T5ForConditionalGeneration) and loaded.config.vocab_size == 1100
    runner, app = CliRunner(), _generate_app()
    out = runner.invoke(app, ["generate", str(folder), "The city is the <extra_id_0> of the country.", "-n", "12"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("<extra_id_0>")
    beam = runner.invoke(app, ["generate", str(folder), "The river <extra_id_0> the sea.", "--beam", "3",
                               "--no-repeat-ngram", "2", "--min-new-tokens", "3", "--ids"])
    assert beam.exit_code != 0 and "integers" in str(beam.exception)  # --ids wants ids
    ids = runner.invoke(app, ["generate", str(folder), "5 6 1099 7 1", "--ids", "--beam", "3", "-n", "6"])
    assert ids.exit_code == 0 and all(piece.isdigit() for piece in ids.output.split()), ids.output


def test_generate_refuses_a_family_that_cannot(tmp_path):
    from typer.testing import CliRunner

    from lmlab import registry

    model = registry.get("bert").model_class()(registry.get("bert").config_from({"vocab_size": 60}))
    model.save_pretrained(tmp_path / "bert")
    out = CliRunner().invoke(_generate_app(), ["generate", str(tmp_path / "bert"), "1 2 3", "--ids"])
    assert out.exit_code != 0 and "families that can: transformer, gpt, transfo-xl, t5, bart, mass" in str(out.exception)


def test_generate_runs_the_plain_transformer_on_text(tmp_path):
    """``lmlab generate`` on a folder of the translation recipe (g2p): letters in, phonemes out, equal to
    :func:`translate` on the same ids, greedy and with beam search."""
    from typer.testing import CliRunner

    from lmlab.models.transformer import Transformer, TransformerConfig
    from lmlab.recipes.seq2seq import BOS, EOS, PAD, PairVocab

    vocab = PairVocab.for_g2p([("cat", [["K", "AE", "T"]]), ("dog", [["D", "AO", "G"]])])
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(src_vocab_size=len(vocab.source), tgt_vocab_size=len(vocab.target),
                                          share_embeddings=False, d_model=16, n_heads=2, n_encoder_layers=1,
                                          n_decoder_layers=1, d_ff=32, max_length=32, pad_token_id=PAD,
                                          bos_token_id=BOS, eos_token_id=EOS)).eval()
    model.save_pretrained(tmp_path / "g2p", extra_files=vocab.files(), metadata={"data": {"task": "g2p"}})
    runner, app = CliRunner(), _generate_app()
    for options in ([], ["--beam", "2"]):
        out = runner.invoke(app, ["generate", str(tmp_path / "g2p"), "Cat", "-n", "6", *options])
        assert out.exit_code == 0, out.output
        expected = translate(model, torch.tensor([vocab.encode_source(list("cat"))]),
                             num_beams=2 if options else 1, max_new_tokens=6)
        assert out.output.strip() == " ".join(vocab.decode_target(expected[0].tolist()))
    assert set(out.output.split()) <= set(vocab.target[4:])


def test_recipe_refuses_what_it_cannot_train():
    from lmlab.errors import ConfigError
    from lmlab.recipes import seq2seq
    from lmlab.recipes.run import RunFile

    with pytest.raises(ConfigError, match="objective.kind: unknown 'mass'"):
        seq2seq.build(RunFile({"family": "t5", "objective": {"kind": "mass"}}))
    with pytest.raises(ConfigError, match="trains the 'transformer' family, not 't5'"):
        seq2seq.build(RunFile({"family": "t5", "objective": {"kind": "translation"}}))
    with pytest.raises(ConfigError, match="num_sentinels = 2"):
        seq2seq.build(RunFile({"family": "t5", "objective": {"num_sentinels": 2}}))
    with pytest.raises(ConfigError, match="noise_density"):
        seq2seq.build(RunFile({"family": "t5", "objective": {"noise_density": 0.0}}))


def test_bias_from_the_lookup_equals_the_bucket_rule_beyond_max_distance():
    """The precomputed buckets of -D .. D, clamped, give every offset's bucket (offsets past D share
    the last one), for a block of queries and for single decoding steps before and past D."""
    from lmlab.models.t5 import RelativePositionBias

    for bidirectional in (True, False):
        torch.manual_seed(0)
        bias = RelativePositionBias(3, bidirectional, num_buckets=8, max_distance=12)
        for T, S, offset in ((30, 30, 0), (5, 40, 35), (1, 7, 6), (1, 13, 12), (1, 30, 29), (1, 30, 4)):
            key = torch.arange(S)[None, :] - torch.arange(offset, offset + T)[:, None]
            expected = bias.table(relative_position_bucket(key, bidirectional, 8, 12)).permute(2, 0, 1)[None]
            assert torch.equal(bias(T, S, offset), expected), (bidirectional, T, S, offset)


def test_a_source_without_padding_gives_what_it_gives_beside_a_padded_one():
    """A batch without padding runs attention with no mask at all; its rows equal the same rows
    in a batch whose other row is padded (the masked path), logits and greedy outputs."""
    model = tiny()
    src = torch.randint(2, 50, (1, 11))
    other = torch.randint(2, 50, (1, 11))
    other[0, 6:] = 0
    dec = torch.randint(2, 50, (1, 6))
    with torch.no_grad():
        alone = model(src, dec)
        beside = model(torch.cat([src, other]), dec.repeat(2, 1))[:1]
    torch.testing.assert_close(alone, beside, atol=1e-5, rtol=0)
    config = GenerationConfig(max_new_tokens=8)
    assert torch.equal(translate(model, src, config=config), translate(model, torch.cat([src, other]), config=config)[:1])
