"""ELMo (lmlab.models.elmo): the LSTM cell against torch's nn.LSTM(proj_size), hand-checked highway and
scalar mix, the backward LM and padding, carried state, scoring, learning on real text, exact
resume, save/load, and the `lmlab train` -> `lmlab eval ppl` / `lmlab embed contextual` path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _wordlm import add_one_bigram_perplexity, slice_of_text

from lmlab.data.stream import BPTTStream, StackedStreams, bptt_documents, reversed_documents
from lmlab.errors import ConfigError
from lmlab.eval.perplexity import encode_sentences
from lmlab.models import elmo
from lmlab.nn.softmax import SoftmaxConfig
from lmlab.objectives.bilm import BiLMObjective
from lmlab.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"char_embed_dim": 4, "filters": [[1, 4], [2, 8], [3, 8]], "n_highway": 1, "projection_dim": 8,
        "cell_dim": 16, "dropout": 0.0}
VOCAB = ["<unk>", "<s>", "</s>", "<pad>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def _model(**fields) -> elmo.ElmoLM:
    torch.manual_seed(0)
    cfg = elmo.ElmoConfig(**{**TINY, **fields})
    return elmo.build(cfg, VOCAB, np.ones(len(VOCAB), dtype=np.int64)).eval()


def test_lstm_cell_without_clipping_equals_torch_lstm_with_projection():
    torch.manual_seed(0)
    cell = elmo.ProjectedLSTMCell(5, 7, 3, cell_clip=0.0, proj_clip=0.0)
    ref = torch.nn.LSTM(5, 7, proj_size=3, batch_first=True)
    with torch.no_grad():  # the same gates i, f, g, o; torch splits the bias in two
        ref.weight_ih_l0.copy_(cell.input_linear.weight)
        ref.weight_hh_l0.copy_(cell.state_linear.weight)
        ref.bias_ih_l0.copy_(cell.state_linear.bias)
        ref.bias_hh_l0.zero_()
        ref.weight_hr_l0.copy_(cell.projection.weight)
    x = torch.randn(2, 6, 5)
    h0, c0 = torch.randn(2, 3), torch.randn(2, 7)
    ours, (h, c) = cell(x, torch.ones(2, 6, dtype=torch.bool), (h0, c0))
    theirs, (h_ref, c_ref) = ref(x, (h0[None], c0[None]))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, h_ref[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(c, c_ref[0], atol=1e-6, rtol=0)


def test_one_step_by_hand_with_clipping():
    cell = elmo.ProjectedLSTMCell(1, 1, 1, cell_clip=0.5, proj_clip=0.1)
    with torch.no_grad():
        cell.input_linear.weight.copy_(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))  # i, f, g, o
        cell.state_linear.weight.zero_()
        cell.state_linear.bias.zero_()
        cell.projection.weight.fill_(2.0)
    out, (h, c) = cell(torch.ones(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), (torch.zeros(1, 1), torch.ones(1, 1)))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    c_raw = sig(2.0) * 1.0 + sig(1.0) * math.tanh(3.0)  # 1.64: clipped to 0.5
    assert c_raw > 0.5 and c.item() == pytest.approx(0.5)
    assert 2 * sig(4.0) * math.tanh(0.5) > 0.1 and h.item() == pytest.approx(0.1) and out.item() == pytest.approx(0.1)


def test_highway_and_scalar_mix_by_hand():
    hw = elmo.Highway(1)
    with torch.no_grad():
        hw.carry.weight.fill_(0.0)
        hw.carry.bias.fill_(0.0)  # g = 0.5
        hw.transform.weight.fill_(2.0)
        hw.transform.bias.fill_(-1.0)
    assert hw(torch.tensor([[3.0]])).item() == pytest.approx(0.5 * 5.0 + 0.5 * 3.0)
    mix = elmo.ScalarMix(3)
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.0, math.log(2.0), math.log(3.0)]))  # softmax = 1/6, 2/6, 3/6
        mix.gamma.fill_(2.0)
    layers = [torch.full((1, 2, 1), v) for v in (6.0, 12.0, 18.0)]
    assert torch.allclose(mix(layers), torch.full((1, 2, 1), 2.0 * (1 + 4 + 9)))
    normed = elmo.ScalarMix(1, layer_norm=True)([torch.tensor([[[1.0], [3.0], [100.0]]])],
                                                torch.tensor([[True, True, False]]))
    assert torch.allclose(normed[0, :2, 0], torch.tensor([-1.0, 1.0]), atol=1e-5)  # pad left out of the stats


def test_backward_lm_and_padding_agree_with_each_sentence_alone():
    model = _model()
    chars, mask = model.chars.batch([["the", "cat", "sat", "on", "the", "mat"], ["a", "dog"]])
    layers, mask, _ = model.bilm(chars, mask)
    alone, _, _ = model.bilm(*model.chars.batch([["a", "dog"]]))
    for full, single in zip(layers, alone):
        torch.testing.assert_close(full[1, :4], single[0], atol=1e-6, rtol=0)
        assert torch.all(full[1, 4:] == 0)
    # the backward LM at position t has read t .. end: the same as the forward stack over the reversed row
    P = model.config.projection_dim
    x = model.token_embeddings(model.chars.batch([["a", "dog"]])[0])
    rev, _ = model.backward_lm(x.flip(1), torch.ones(1, 4, dtype=torch.bool), model.initial_state(1))
    torch.testing.assert_close(alone[-1][0, :, P:], rev[-1][0].flip(0), atol=1e-6, rtol=0)


def test_residual_only_from_the_second_layer():
    model = _model(n_layers=3)
    x = torch.randn(1, 3, 8)
    mask = torch.ones(1, 3, dtype=torch.bool)
    outs, _ = model.forward_lm(x, mask, model.initial_state(1))
    cells = model.forward_lm.layers
    zero = (torch.zeros(1, 8), torch.zeros(1, 16))
    first, _ = cells[0](x, mask, zero)
    second, _ = cells[1](first, mask, zero)
    torch.testing.assert_close(outs[0], first)  # no residual around layer 1
    torch.testing.assert_close(outs[1], second + first)


def test_carried_state_equals_one_long_pass_and_reset_equals_fresh_start():
    model = _model()
    ids = torch.randint(4, len(VOCAB), (2, 10))
    whole, _ = model.lm_direction(False, ids)
    a, state = model.lm_direction(False, ids[:, :6])
    b, _ = model.lm_direction(False, ids[:, 6:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-6, rtol=0)
    reset = torch.zeros(2, 4, dtype=torch.bool)
    reset[:, 0] = True
    fresh, _ = model.lm_direction(False, ids[:, 6:])
    again, _ = model.lm_direction(False, ids[:, 6:], state, reset)
    torch.testing.assert_close(again, fresh, atol=1e-6, rtol=0)


def test_scores_match_a_manual_pass_in_both_directions():
    model = _model()
    sent = [4, 5, 6, 2]  # the cat sat </s>
    fwd, bwd = model.score_both([sent, [9, 10, 2]])
    layers, _, _ = model.bilm(torch.tensor([[1, 4, 5, 6, 2]]))
    P = model.config.projection_dim
    lp = model.output.log_probs(layers[-1][0, :, :P])  # forward: position t predicts token t+1
    torch.testing.assert_close(fwd[0], torch.stack([lp[t, sent[t]] for t in range(4)]), atol=1e-6, rtol=0)
    blp = model.output.log_probs(layers[-1][0, :, P:])  # backward: position t predicts token t-1
    hand = [blp[2, 4], blp[3, 5], blp[4, 6], blp[1, 1]]  # the, cat, sat, then <s>
    torch.testing.assert_close(bwd[0], torch.stack(hand), atol=1e-6, rtol=0)
    mean = model.score_sentences([sent])[0]
    torch.testing.assert_close(mean, (fwd[0] + bwd[0]) / 2)


def test_any_word_has_a_vector_and_encode_follows_the_protocol():
    model = _model(mix_layers=[1, 2], mix_layer_norm=True)
    chars, mask = model.chars.batch([["zyzzyva", "出租车", "teh"]])
    hidden, pooled = model.encode(chars, mask)
    assert hidden.shape == (1, 5, 16) and pooled is None and torch.isfinite(hidden).all()
    ids = torch.tensor([[4, 5, 6], [9, 10, 0]])
    h_ids, _ = model.encode(ids, torch.tensor([[1, 1, 1], [1, 1, 0]]))
    assert h_ids.shape == (2, 3, 16) and torch.all(h_ids[1, 2] == 0)
    with pytest.raises(ConfigError, match="mix_layers"):
        elmo.ElmoConfig(mix_layers=[3]).validate()


def _streams(docs, bos, eos, V, B, T):
    f = bptt_documents(docs, bos)
    b = bptt_documents(reversed_documents(docs, bos), eos)
    return StackedStreams([BPTTStream(*f, V, B, T), BPTTStream(*b, V, B, T)])


def test_backward_stream_is_the_reversed_text():
    docs = [[[5, 6, 2], [7, 2]], [[8, 2]]]
    f, _ = bptt_documents(docs, 1)
    b, starts = bptt_documents(reversed_documents(docs, 1), 2)
    assert f.tolist() == [1, 5, 6, 2, 1, 7, 2, 1, 8, 2]
    assert b.tolist() == [2, 8, 1, 2, 7, 1, 2, 6, 5, 1]
    assert starts.tolist() == [True, False, False, True, False, False, False, False, False, False]


@pytest.fixture(scope="module")
def text(wiki_small_splits):
    return slice_of_text(wiki_small_splits, n_train=1000, n_test=150, min_count=3)


def _trainer(text, out, steps, softmax="full"):
    _, _, vocab, ids, counts = text
    torch.manual_seed(0)
    model = elmo.build(elmo.ElmoConfig(**{**TINY, "projection_dim": 32, "cell_dim": 64, "dropout": 0.0,
                                          "softmax": SoftmaxConfig(kind=softmax, samples=50)}), vocab, counts)
    source = _streams([ids], 1, 2, len(vocab), 16, 16)
    cfg = TrainConfig(max_steps=steps, lr=1e-2, weight_decay=0.0, progress="off", tensorboard=False, plot=False,
                      mfu=False, threads=1, seed=0, checkpoint_every=2, eval_every=0)
    return model, Trainer(model, BiLMObjective(len(vocab), 1, 2), source, cfg, out)


def test_both_directions_beat_add_one_bigram_on_real_text(text, tmp_path):
    from lmlab.recipes.elmo import perplexities

    _, test, vocab, ids, _ = text
    test_ids, _ = encode_sentences(test, vocab)
    baseline = add_one_bigram_perplexity(ids, test_ids, len(vocab))
    model, trainer = _trainer(text, tmp_path, 80)
    for _ in range(80):
        trainer.train_step()
    ppl = perplexities(model, test, vocab)
    print({k: round(v.perplexity, 1) for k, v in ppl.items()}, "add-one bigram", round(baseline, 1))
    assert ppl["forward"].perplexity < 0.8 * baseline and ppl["backward"].perplexity < 0.8 * baseline
    assert ppl["mean"].perplexity == pytest.approx(math.sqrt(ppl["forward"].perplexity * ppl["backward"].perplexity))


def test_resume_is_exact_with_the_carried_state(text, tmp_path):
    _, straight = _trainer(text, tmp_path / "a", 4, softmax="importance")
    for _ in range(4):
        straight.train_step()
    _, first = _trainer(text, tmp_path / "b", 4, softmax="importance")
    first.train_step()
    first.train_step()
    saved = first.save_checkpoint()
    model, second = _trainer(text, tmp_path / "c", 4, softmax="importance")
    second.load_checkpoint(saved)
    assert second.carried  # the LSTM states came back with the checkpoint
    second.train_step()
    second.train_step()
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k


def test_save_load_round_trip_with_sampled_softmax(tmp_path):
    model = elmo.build(elmo.ElmoConfig(**{**TINY, "softmax": SoftmaxConfig(kind="importance", samples=3)}),
                       VOCAB, np.arange(1, len(VOCAB) + 1))
    elmo.save(model.eval(), tmp_path / "m", VOCAB)
    again, vocab = elmo.load(tmp_path / "m")
    assert vocab == VOCAB and torch.equal(again.spelling, model.spelling)
    ids = [[4, 5, 2], [9, 2]]
    for a, b in zip(model.score_sentences(ids), again.eval().score_sentences(ids)):
        assert torch.equal(a, b)


def test_lmlab_train_then_eval_ppl_and_embed_contextual(tmp_path, cli):
    from lmlab.cli.train import run_training
    from lmlab.data.corpus import read_user_corpus, word_sentences
    from lmlab.recipes.elmo import perplexities

    out = tmp_path / "run"
    result, _, _, _ = run_training("configs/elmo.toml", [
        "data.corpus=wiki-vital-small", "tokenizer.vocab_size=200", "data.batch_size=4", "data.bptt=8",
        "data.eval_batch_size=128", "model.projection_dim=8", "model.cell_dim=16", "model.filters=[[1, 4], [2, 8]]",
        "train.max_steps=3", "train.warmup_steps=1", "train.eval_every=0", "train.threads=1", "train.progress=off",
        "train.plot=false", "train.tensorboard=false"], out=out)
    assert result.step == 3 and math.isfinite(result.eval["eval_loss"])
    text = tmp_path / "t.txt"
    text.write_text("the first sentence of the file . and a second one , with a zyzzyva .\n")
    proc = cli("eval", "ppl", str(out / "model"), str(text), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    reported = json.loads(proc.stdout)
    model, vocab = elmo.load(out / "model")
    expected = perplexities(model, word_sentences(read_user_corpus(text).documents), vocab)["mean"]
    assert reported["ppl"] == pytest.approx(expected.perplexity, rel=1e-6) and reported["oov"] >= 1
    proc = cli("embed", "contextual", str(out / "model"), "the bank of the river .", "money in the bank .",
               "--word", "bank", "--top", "3", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = json.loads(proc.stdout)
    assert len(hits) == 3 and all(-1 <= h["cosine"] <= 1 for h in hits)
    proc = cli("embed", "contextual", str(out / "model"), "a b", "--layer", "7")
    assert proc.returncode != 0 and "--layer" in proc.stderr and "Traceback" not in proc.stderr


def test_feature_based_use_frozen_elmo_trains_only_the_mix_and_the_head(tmp_path):
    """The tasks' classifier on an ELMo encoder: ELMo frozen, the scalar mix and the linear head learn."""
    import lmlab
    from lmlab.tasks.classification import SequenceClassifier

    model = _model()
    clf = SequenceClassifier.on(model, ["neg", "pos"], pooling="mean")
    for name, p in clf.named_parameters():
        p.requires_grad = name.startswith(("out.", "cls_dense.", "encoder.mix."))
    ids = torch.tensor([[4, 5, 6], [9, 10, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    opt = torch.optim.SGD([p for p in clf.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(ids, mask), torch.tensor([0, 1])).backward()
        opt.step()
    after = clf.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "encoder.mix.scalars" in changed and "out.weight" in changed
    assert not any(k.startswith(("encoder.token_encoder", "encoder.forward_lm", "encoder.backward_lm"))
                   for k in changed)
    clf.save_pretrained(tmp_path / "clf")
    again = lmlab.load(tmp_path / "clf").eval()
    assert torch.equal(again(ids, mask), clf.eval()(ids, mask))
