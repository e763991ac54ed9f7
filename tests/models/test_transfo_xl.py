"""Transformer-XL: rel_shift and relative attention against naive loops, the sinusoid layout,
causality, segment memory == one long pass, document resets, adaptive softmax normalisation,
save/load, cached generation, exact resume with carried memory, and learning on real text."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from lmlab.data.stream import BPTTStream, bptt_documents
from lmlab.errors import ConfigError
from lmlab.eval.perplexity import encode_sentences, word_perplexity
from lmlab.models import rnnlm
from lmlab.models.transfo_xl import (
    PositionalEmbedding,
    RelPartialLearnableMultiHeadAttn,
    TransfoXLConfig,
    TransfoXLLMHeadModel,
    rel_shift,
)
from lmlab.nn.softmax import AdaptiveSoftmax, SoftmaxConfig
from lmlab.objectives.bptt import BPTTObjective
from lmlab.train.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _resume import assert_same_end, rewind_to_step_3  # noqa: E402
from _wordlm import add_one_bigram_perplexity, slice_of_text  # noqa: E402


def tiny(**changes) -> TransfoXLLMHeadModel:
    values = dict(vocab_size=40, cutoffs=[10, 25], div_val=2, d_model=16, d_embed=16, n_head=2, d_head=8,
                  d_inner=32, n_layer=2, mem_len=6, dropout=0.0, init_std=0.2, proj_init_std=0.2)
    values.update(changes)
    torch.manual_seed(0)
    return TransfoXLLMHeadModel(TransfoXLConfig(**values)).eval()


# ----------------------------------------------------------------------------- the attention maths


@pytest.mark.parametrize("T,K", [(1, 1), (3, 3), (4, 9), (5, 7)])
def test_rel_shift_equals_the_naive_loop(T, K):
    x = torch.randn(2, 3, T, K)  # slot p holds distance K-1-p
    out = rel_shift(x)
    M = K - T
    for i in range(T):
        for j in range(M + i + 1):  # the visible keys; the rest is masked in attention
            distance = M + i - j
            assert out[:, :, i, j].equal(x[:, :, i, K - 1 - distance])


def test_relative_attention_equals_the_paper_formula_pair_by_pair():
    """score_ij = (q_i + u).k_j + (q_i + v).W_r R_{i-j} over [memory; segment], computed key by key."""
    config = TransfoXLConfig(vocab_size=10, d_model=8, d_embed=8, n_head=2, d_head=4, d_inner=8, n_layer=1,
                             dropout=0.0)
    torch.manual_seed(1)
    attn = RelPartialLearnableMultiHeadAttn(config).eval()
    with torch.no_grad():
        attn.r_w_bias.normal_()
        attn.r_r_bias.normal_()
    B, M, T = 2, 3, 4
    h, mem = torch.randn(B, T, 8), torch.randn(B, M, 8)
    K = M + T
    r = PositionalEmbedding(8)(torch.arange(K - 1, -1, -1.0))
    blocked = torch.triu(torch.ones(T, K, dtype=torch.bool), diagonal=1 + M)[None]
    got = attn(h, r, mem, blocked)
    cat = torch.cat([mem, h], 1)
    q, k, v = attn.qkv_net(cat).chunk(3, -1)
    q, k, v = q.view(B, K, 2, 4)[:, M:], k.view(B, K, 2, 4), v.view(B, K, 2, 4)
    pe = PositionalEmbedding(8)
    out = torch.zeros(B, T, 2, 4)
    for i in range(T):
        scores = []
        for j in range(M + i + 1):
            R = attn.r_net(pe(torch.tensor([float(M + i - j)])))[0].view(2, 4)
            scores.append(((q[:, i] + attn.r_w_bias) * k[:, j]).sum(-1) + ((q[:, i] + attn.r_r_bias) * R).sum(-1))
        p = torch.softmax(torch.stack(scores, -1) / math.sqrt(4), -1)  # (B, n, keys)
        out[:, i] = torch.einsum("bnj,bjnd->bnd", p, v[:, :M + i + 1])
    expected = attn.layer_norm(h + attn.o_net(out.reshape(B, T, 8)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_sinusoid_is_sin_then_cos_concatenated():
    pe = PositionalEmbedding(6)(torch.tensor([0.0, 2.0]))
    w = torch.tensor([1.0, 10000 ** (-2 / 6), 10000 ** (-4 / 6)])
    torch.testing.assert_close(pe[1], torch.cat([torch.sin(2 * w), torch.cos(2 * w)]))
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 0, 0, 1, 1, 1]))


def test_clamp_len_caps_the_distances():
    clamped = tiny(clamp_len=2)
    free = tiny(clamp_len=-1)
    x = torch.randint(0, 40, (1, 6))
    # distances <= 2 everywhere: the first 3 positions are the same, later ones differ
    a, _ = clamped(x)
    b, _ = free(x)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


# ----------------------------------------------------------------------------- causality and memory


@pytest.mark.parametrize("same_length", [False, True])
def test_a_future_token_never_changes_earlier_predictions(same_length):
    model = tiny(same_length=same_length)
    x = torch.randint(0, 40, (2, 9))
    _, state = model(x[:, :4])
    before, _ = model.log_probs(x[:, 4:], state)
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 40
    after, _ = model.log_probs(y[:, 4:], state)
    torch.testing.assert_close(before[:, :3], after[:, :3], atol=1e-6, rtol=0)  # float noise of the batched matmuls
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_segments_with_memory_equal_one_long_pass():
    model = tiny(mem_len=12)
    x = torch.randint(0, 40, (2, 12))
    long, state_long = model(x)
    h1, state = model(x[:, :5])
    h2, state = model(x[:, 5:9], state)
    h3, state = model(x[:, 9:], state)
    torch.testing.assert_close(torch.cat([h1, h2, h3], 1), long, atol=1e-5, rtol=1e-5)
    for a, b in zip(state, state_long):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_memory_is_every_layer_input_detached_and_the_last_mem_len():
    model = tiny(mem_len=4).train()
    x = torch.randint(0, 40, (2, 7))
    inputs = []
    hooks = [layer.register_forward_pre_hook(lambda mod, args: inputs.append(args[0]))
             for layer in model.transformer.layers]
    _, (doc, *mems) = model(x)
    for hook in hooks:
        hook.remove()
    assert len(mems) == model.config.n_layer == len(inputs)  # the embedding output included
    for mem, h in zip(mems, inputs):
        assert mem.shape == (2, 4, 16) and not mem.requires_grad
        assert mem.equal(h[:, -4:].detach())
    assert doc.shape == (2, 4) and bool((doc == 0).all())
    _, (_, *none) = tiny(mem_len=0)(x)
    assert none[0].shape == (2, 0, 16)


def test_a_document_reset_hides_everything_before_it():
    model = tiny(mem_len=8)
    x = torch.randint(0, 40, (2, 10))
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[0, 6] = True  # row 0: a new document starts at position 6 of the second segment
    _, state = model(x[:, :4])
    h, _ = model(x[:, 4:], state, reset[:, 4:])
    fresh, _ = model(x[:1, 6:])
    torch.testing.assert_close(h[0, 2:], fresh[0], atol=1e-5, rtol=1e-5)
    # carried on: the next segment still sees only the new document in row 0
    _, state = model(x[:, 4:], state, reset[:, 4:])
    nxt = torch.randint(0, 40, (2, 3))
    h_next, _ = model(nxt, state)
    again, _ = model(torch.cat([x[:1, 6:], nxt[:1]], 1))
    torch.testing.assert_close(h_next[0], again[0, 4:], atol=1e-5, rtol=1e-5)


def test_longer_evaluation_memory_is_allowed_and_used():
    model = tiny(mem_len=2)
    x = torch.randint(0, 40, (1, 12))
    short = model.stream_log_probs(x, 3, 2)
    long = model.stream_log_probs(x, 3, 12)
    full = model.log_probs(x[:, :-1], None, 12)[0].gather(2, x[:, 1:, None])[..., 0]
    torch.testing.assert_close(long, full, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(short[:, 3:], long[:, 3:])


# ----------------------------------------------------------------------------- the adaptive softmax


@pytest.mark.parametrize("cutoffs,div_val,d_proj", [([], 1, 16), ([10, 25], 1, 16), ([10, 25], 1, 8),
                                                    ([10, 25], 2, 16), ([5], 4, 12)])
def test_adaptive_softmax_is_normalised_and_log_prob_is_exact(cutoffs, div_val, d_proj):
    torch.manual_seed(0)
    layer = AdaptiveSoftmax(40, 16, d_proj, cutoffs, div_val, 0.5, 0.5)
    h = torch.randn(30, d_proj, dtype=torch.float64)
    layer = layer.double()
    y = torch.arange(30) + 10 if cutoffs else torch.arange(30)
    full = layer.log_probs(h)
    torch.testing.assert_close(full.exp().sum(1), torch.ones(30, dtype=torch.float64))
    torch.testing.assert_close(layer.log_prob(h, y), full.gather(1, y[:, None])[:, 0])


def test_adaptive_softmax_hand_computed_two_clusters():
    layer = AdaptiveSoftmax(4, 2, 2, [2], 1, 0.1, 0.1)
    with torch.no_grad():
        layer.out_layers[0].weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1], [-1, 0]]))
        layer.out_layers[0].bias.zero_()
        layer.cluster_weight.copy_(torch.tensor([[0.5, 0.5]]))
        layer.cluster_bias.zero_()
    h = torch.tensor([[1.0, 2.0]])
    head = torch.softmax(torch.tensor([1.0, 2.0, 1.5]), 0)    # words 0, 1 and the tail cluster
    tail = torch.softmax(torch.tensor([3.0, -1.0]), 0)         # words 2, 3 within the tail
    expected = torch.tensor([head[0], head[1], head[2] * tail[0], head[2] * tail[1]]).log()
    torch.testing.assert_close(layer.log_probs(h)[0], expected)


def test_model_log_probs_sum_to_one_over_the_vocabulary():
    for changes in ({}, {"div_val": 1, "d_embed": 8}, {"cutoffs": [], "div_val": 1}):
        lp, _ = tiny(**changes).log_probs(torch.randint(0, 40, (2, 5)))
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 5))


def test_bad_cutoffs_are_one_line_errors():
    with pytest.raises(ConfigError, match="cutoffs must rise"):
        TransfoXLConfig(vocab_size=40, cutoffs=[25, 10]).validate()
    with pytest.raises(ConfigError, match="needs softmax.cutoffs"):
        rnnlm.build(rnnlm.RNNLMConfig(softmax=SoftmaxConfig(kind="adaptive")), ["<unk>", "<s>", "</s>", "a"],
                    [1, 1, 1, 1])


def test_lstm_with_an_adaptive_output_layer_round_trips(tmp_path):
    vocab = ["<unk>", "<s>", "</s>", *[f"w{i}" for i in range(27)]]
    config = rnnlm.RNNLMConfig(embed_dim=8, hidden_dim=8, layers=1,
                               softmax=SoftmaxConfig(kind="adaptive", cutoffs=[8, 20], div_val=2))
    model = rnnlm.build(config, vocab, [1] * len(vocab)).eval()
    h, _ = model(torch.tensor([[1, 5, 9, 22]]))
    torch.testing.assert_close(model.output.log_probs(h[0]).exp().sum(1), torch.ones(4))
    rnnlm.save(model, tmp_path / "m", vocab)
    again, _ = rnnlm.load(tmp_path / "m")
    sents = [[5, 9, 22, 2], [25, 2]]
    for a, b in zip(model.score_sentences(sents), again.eval().score_sentences(sents)):
        assert a.equal(b)


# ----------------------------------------------------------------------------- saving, scoring, generating


def test_save_load_round_trip_stores_tied_tensors_once(tmp_path):
    from safetensors import safe_open

    import lmlab

    model = tiny()
    model.save_pretrained(tmp_path / "m")
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "transformer.word_emb.emb_layers.1.weight" in keys and "crit.out_layers.1.weight" not in keys
    assert "crit.out_projs.0" in keys and "crit.out_projs.1" not in keys  # the head's projection is not tied
    again = lmlab.load(tmp_path / "m").eval()
    assert again.crit.out_layers[2].weight is again.transformer.word_emb.emb_layers[2].weight
    x = torch.randint(0, 40, (2, 7))
    assert model.log_probs(x)[0].equal(again.log_probs(x)[0])


def test_score_sentences_is_a_manual_pass_from_empty_memory():
    model = tiny(bos_token_id=1)
    sent = [5, 30, 2]
    lp = model.score_sentences([sent, [7, 2]])[0]
    full, _ = model.log_probs(torch.tensor([[1, 5, 30]]))
    torch.testing.assert_close(lp, full[0].gather(1, torch.tensor(sent)[:, None])[:, 0])


def test_generation_with_memory_equals_recomputing_the_prefix():
    from lmlab.tasks.generation import GenerationConfig, generate

    model = tiny(same_length=True)
    prompt = torch.tensor([[3, 14, 15, 9]])
    cached = generate(model, prompt, config=GenerationConfig(max_new_tokens=8))
    again = generate(model, prompt, config=GenerationConfig(max_new_tokens=8, use_cache=False))
    assert cached.equal(again) and cached.shape == (1, 12)
    beams = generate(model, prompt, config=GenerationConfig(max_new_tokens=5, num_beams=3))
    beams_again = generate(model, prompt, config=GenerationConfig(max_new_tokens=5, num_beams=3, use_cache=False))
    assert beams.equal(beams_again)


# ----------------------------------------------------------------------------- training


def _stream_trainer(out, text, steps, checkpoint_every=100):
    _, _, vocab, ids, _ = text
    config = TransfoXLConfig(vocab_size=len(vocab), cutoffs=[200], d_model=32, d_embed=32, n_head=2, d_head=16,
                             d_inner=64, n_layer=2, mem_len=16, dropout=0.1, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = TransfoXLLMHeadModel(config)
    stream, starts = bptt_documents([ids[:400], ids[400:]], 1)
    source = BPTTStream(stream, starts, len(vocab), batch_size=8, bptt=16)
    cfg = TrainConfig(max_steps=steps, lr=3e-3, weight_decay=0.0, progress="off", tensorboard=False, plot=False,
                      mfu=False, threads=1, seed=0, checkpoint_every=checkpoint_every, keep_last=3, warmup_steps=2)
    return Trainer(model, BPTTObjective(len(vocab), 1), source, cfg, out)


@pytest.fixture(scope="module")
def text(wiki_small_splits):
    return slice_of_text(wiki_small_splits, n_train=1200, n_test=150)


def test_resume_mid_run_is_bit_identical_with_the_memory_carried(tmp_path, text):
    reference = _stream_trainer(tmp_path / "ref", text, 6, checkpoint_every=3)
    reference.fit()
    assert reference.carried and reference.carried[0][1].shape[1] == 16  # memory was carried
    rewind_to_step_3(tmp_path / "ref", tmp_path / "resumed")
    resumed = _stream_trainer(tmp_path / "resumed", text, 6, checkpoint_every=3)
    resumed.fit(resume=True)
    assert resumed.step == 6
    assert_same_end(reference, resumed)


def test_transformer_xl_beats_add_one_bigram_on_real_text(tmp_path, text):
    _, test, vocab, ids, _ = text
    test_ids, _ = encode_sentences(test, vocab)
    baseline = add_one_bigram_perplexity(ids, test_ids, len(vocab))
    trainer = _stream_trainer(tmp_path, text, 120)
    for _ in range(120):
        trainer.train_step()
    ppl = word_perplexity(trainer.model, test, vocab).perplexity
    print(f"Transformer-XL {ppl:.1f} vs add-one bigram {baseline:.1f}")
    assert ppl < 0.8 * baseline, (ppl, baseline)
