"""RNN / LSTM LM: state carrying and resets, the BPTT stream, tying, save/load, learning on real text."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.data.stream import BPTTStream, bptt_documents
from lmlab.errors import ConfigError
from lmlab.eval.perplexity import encode_sentences, word_perplexity
from lmlab.models import rnnlm
from lmlab.nn.softmax import SoftmaxConfig
from lmlab.objectives.bptt import BPTTObjective
from lmlab.train.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wordlm import add_one_bigram_perplexity, slice_of_text

torch.set_num_threads(1)

VOCAB = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"]
COUNTS = [3, 0, 10, 50, 20, 10, 5, 2]


def tiny(cell="lstm", kind="full", tie=False, layers=2):
    torch.manual_seed(0)
    cfg = rnnlm.RNNLMConfig(cell=cell, embed_dim=6, hidden_dim=6, layers=layers, dropout=0.0, tie_embeddings=tie,
                            softmax=SoftmaxConfig(kind=kind, samples=5))
    return rnnlm.build(cfg, VOCAB, COUNTS).eval()


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_carried_state_equals_one_long_pass_and_reset_equals_fresh_start(cell):
    model = tiny(cell)
    x = torch.randint(0, 8, (3, 10))
    whole, _ = model(x)
    first, state = model(x[:, :4])
    second, _ = model(x[:, 4:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)
    reset = torch.zeros(3, 10, dtype=torch.bool)
    reset[1, 6] = True  # row 1 starts a new document at position 6
    h, _ = model(x, None, reset)
    fresh, _ = model(x[1:2, 6:])
    assert torch.allclose(h[1, 6:], fresh[0], atol=1e-6)
    assert torch.allclose(h[0], whole[0], atol=1e-6) and torch.allclose(h[1, :6], whole[1, :6], atol=1e-6)


def test_bptt_stream_lanes_continue_and_flag_document_starts():
    docs = [[[3, 4, 2], [5, 2]], [[6, 7, 3, 2]], [[4, 4, 4, 2], [3, 2]]]
    ids, starts = bptt_documents(docs, bos_id=1)
    assert ids[:7].tolist() == [1, 3, 4, 2, 1, 5, 2] and starts[[0, 7, 12]].all() and starts.sum() == 3
    src = BPTTStream(ids, starts, 8, batch_size=2, bptt=3)
    b0, b1 = src.batch(0), src.batch(1)
    assert b0.shape == (2, 4)
    assert torch.equal(b0[:, -1], b1[:, 0])  # block s+1 of a lane starts where block s ended
    assert bool((b0[:, 0] >= 8).all())  # a pass starts every lane afresh
    obj = BPTTObjective(8, bos_id=1)
    batch = obj.prepare(b0, torch.Generator())
    assert int(batch["x"].max()) < 8
    assert not bool(batch["mask"][batch["y"] == 1].any())  # <s> is never a target
    # shard i of 2 shards of one lane each is row i of the one-shard batch of two lanes
    one_lane = BPTTStream(ids, starts, 8, batch_size=1, bptt=3)
    assert torch.equal(torch.cat([one_lane.batch(1, 0, 2), one_lane.batch(1, 1, 2)]), b1)


def test_tied_embeddings_share_one_matrix_and_round_trip(tmp_path):
    model = tiny(tie=True)
    assert model.embed.weight is model.output.word_weight
    sents = [[3, 4, 2], [5, 6, 7, 2]]
    before = model.score_sentences(sents)
    rnnlm.save(model, tmp_path / "m", VOCAB)
    again, _ = rnnlm.load(tmp_path / "m")
    assert again.embed.weight is again.output.word_weight
    for a, b in zip(before, again.score_sentences(sents)):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError):
        tiny(tie=True, kind="huffman")
    with pytest.raises(ConfigError):
        rnnlm.build(rnnlm.RNNLMConfig(embed_dim=4, hidden_dim=6, tie_embeddings=True), VOCAB, COUNTS)


@pytest.mark.parametrize("kind", ["class", "huffman", "nce"])
def test_save_load_round_trip_structured_output(tmp_path, kind):
    model = tiny(cell="rnn", kind=kind)
    sents = [[3, 4, 2], [5, 2]]
    before = model.score_sentences(sents)
    rnnlm.save(model, tmp_path / kind, VOCAB)
    again, _ = rnnlm.load(tmp_path / kind)
    for a, b in zip(before, again.score_sentences(sents)):
        assert torch.allclose(a, b, atol=1e-6)


def test_sentence_scores_match_a_manual_pass():
    model = tiny()
    sent = [3, 5, 2]
    lp = model.score_sentences([sent, [4, 2]])[0]
    h, _ = model(torch.tensor([[1, 3, 5]]))
    manual = model.output.log_probs(h[0]).gather(1, torch.tensor(sent)[:, None]).squeeze(1)
    assert torch.allclose(lp, manual, atol=1e-6)


def test_lstm_beats_add_one_bigram_on_real_text(wiki_small_splits, tmp_path):
    _, test, vocab, ids, counts = slice_of_text(wiki_small_splits)
    test_ids, _ = encode_sentences(test, vocab)
    baseline = add_one_bigram_perplexity(ids, test_ids, len(vocab))
    model = rnnlm.build(rnnlm.RNNLMConfig(embed_dim=64, hidden_dim=64, layers=1, dropout=0.0,
                                          tie_embeddings=True), vocab, counts)
    stream, starts = bptt_documents([ids], vocab.index("<s>"))
    source = BPTTStream(stream, starts, len(vocab), batch_size=16, bptt=20)
    cfg = TrainConfig(max_steps=150, lr=5e-3, weight_decay=0.0, progress="off", tensorboard=False, plot=False,
                      mfu=False, threads=1, seed=0)
    trainer = Trainer(model, BPTTObjective(len(vocab), 1), source, cfg, tmp_path)
    for _ in range(cfg.max_steps):
        trainer.train_step()
    ppl = word_perplexity(model, test, vocab).perplexity
    print(f"LSTM {ppl:.1f} vs add-one bigram {baseline:.1f}")
    assert ppl < 0.6 * baseline, (ppl, baseline)


def test_training_job_export_and_eval_cli(tmp_path, cli):
    """The `lmlab train` path: run file tables -> TrainingJob -> Trainer.fit -> export -> `lmlab eval ppl`."""
    import json

    from lmlab.recipes.word_lm import rnnlm_job

    job = rnnlm_job({"family": "rnnlm", "data": {"corpus": "wiki-vital-small", "batch_size": 4, "bptt": 8,
                                                 "eval_batch_size": 64},
                     "tokenizer": {"vocab_size": 300},
                     "model": {"embed_dim": 8, "hidden_dim": 8, "layers": 1, "tie_embeddings": True}})
    cfg = TrainConfig(max_steps=2, progress="off", tensorboard=False, plot=False, mfu=False, threads=1)
    result = Trainer(job.model, job.objective, job.train_source, cfg, tmp_path / "run", eval_source=job.eval_source).fit()
    assert result.step == 2 and np.isfinite(result.eval["eval_loss"])
    job.export(tmp_path / "run" / "model")
    model, vocab = rnnlm.load(tmp_path / "run" / "model")
    text = tmp_path / "text.txt"
    text.write_text("the first sentence of the file . and a second one , with a zyzzyva .\n")
    proc = cli("eval", "ppl", str(tmp_path / "run" / "model"), str(text), "--json")
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(proc.stdout)
    from lmlab.data.corpus import read_user_corpus, word_sentences

    expected = word_perplexity(model, word_sentences(read_user_corpus(text).documents), vocab)
    assert reported["ppl"] == pytest.approx(expected.perplexity, rel=1e-6)
    assert reported["tokens"] == expected.tokens and reported["oov"] >= 1
    bad = cli("eval", "ppl", str(tmp_path / "nowhere"), "test")
    assert bad.returncode != 0 and "error" in bad.stderr and "Traceback" not in bad.stderr
