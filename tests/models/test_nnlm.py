"""Bengio NNLM: shapes, the direct connections, save/load, and learning on real text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from lmlab.data.stream import WindowBatches
from lmlab.errors import CheckpointError, ConfigError
from lmlab.eval.perplexity import encode_sentences, word_perplexity
from lmlab.models import nnlm
from lmlab.nn.softmax import SoftmaxConfig
from lmlab.objectives.nextword import WindowObjective
from lmlab.train.trainer import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wordlm import add_one_bigram_perplexity, slice_of_text

torch.set_num_threads(1)

VOCAB = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"]
COUNTS = [3, 0, 10, 50, 20, 10, 5, 2]


def tiny(kind="full", direct=False, order=3):
    torch.manual_seed(0)
    return nnlm.build(nnlm.NNLMConfig(order=order, embed_dim=4, hidden_dim=6, direct=direct,
                                      softmax=SoftmaxConfig(kind=kind, samples=5)), VOCAB, COUNTS)


def test_direct_connections_concatenate_the_input():
    plain, direct = tiny(direct=False), tiny(direct=True)
    ctx = torch.tensor([[1, 3], [4, 5]])
    assert plain.features(ctx).shape == (2, 6)
    feats = direct.features(ctx)
    assert feats.shape == (2, 2 * 4 + 6)  # x_t ⊕ tanh(W x_t + c)
    assert torch.allclose(feats[:, :8], direct.embed(ctx).reshape(2, 8))


def test_windows_pad_with_bos_and_predict_eos():
    windows = nnlm.ngram_windows([[3, 4, 2]], order=3, bos_id=1)
    assert windows.tolist() == [[1, 1, 3], [1, 3, 4], [3, 4, 2]]


@pytest.mark.parametrize("kind", ["full", "class", "huffman", "importance", "nce"])
def test_save_load_round_trip(tmp_path, kind):
    model = tiny(kind, direct=True)
    sents = [[3, 4, 5, 2], [7, 2]]
    before = model.score_sentences(sents)
    nnlm.save(model, tmp_path / "m", VOCAB)
    again, vocab = nnlm.load(tmp_path / "m")
    assert vocab == VOCAB
    for a, b in zip(before, again.score_sentences(sents)):
        assert torch.allclose(a, b)
    # exact: each position's distribution sums to one
    probs = again.output.log_probs(again.features(torch.tensor([[1, 3]]))).exp().sum()
    assert probs.item() == pytest.approx(1.0, abs=1e-5)


def test_load_refuses_bad_folders(tmp_path):
    with pytest.raises(CheckpointError):
        nnlm.load(tmp_path / "missing")
    model = tiny()
    nnlm.save(model, tmp_path / "m", VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["hidden_dim"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        nnlm.load(tmp_path / "m")
    with pytest.raises(ConfigError):
        nnlm.build(nnlm.NNLMConfig(order=1), VOCAB, COUNTS)


def test_nnlm_beats_add_one_bigram_on_real_text(wiki_small_splits, tmp_path):
    _, test, vocab, ids, counts = slice_of_text(wiki_small_splits)
    test_ids, _ = encode_sentences(test, vocab)
    baseline = add_one_bigram_perplexity(ids, test_ids, len(vocab))
    model = nnlm.build(nnlm.NNLMConfig(order=3, embed_dim=32, hidden_dim=64, direct=True), vocab, counts)
    windows = nnlm.ngram_windows(ids, 3, vocab.index("<s>"))
    cfg = TrainConfig(max_steps=400, lr=3e-3, weight_decay=0.0, progress="off", tensorboard=False, plot=False,
                      mfu=False, threads=1, seed=0)
    trainer = Trainer(model, WindowObjective(), WindowBatches(windows, 64), cfg, tmp_path)
    for _ in range(cfg.max_steps):
        trainer.train_step()
    ppl = word_perplexity(model, test, vocab).perplexity
    print(f"NNLM {ppl:.1f} vs add-one bigram {baseline:.1f}")
    assert ppl < 0.6 * baseline, (ppl, baseline)


KENLM = Path(__file__).resolve().parents[1] / "fixtures" / "kenlm"  # copied from shared/, see its README


def test_eval_ppl_on_an_arpa_file_matches_kenlm_query(cli):
    """`lmlab eval ppl` puts an n-gram on the same scale: KenLM's query said 292.50465845833617."""
    proc = cli("eval", "ppl", str(KENLM / "mkn3.arpa.gz"), str(KENLM / "test.txt"), "--pretokenized", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["tokens"] == 5691 and result["oov"] == 694
    assert result["ppl"] == pytest.approx(292.50465845833617, rel=1e-6)
