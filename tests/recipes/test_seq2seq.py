"""The encoder-decoder Transformer through ``lmlab train configs/transformer.toml``.

The rows and their batch source (``lmlab.data.stream.pair_rows`` / ``PairRows``), the objective
(``lmlab.objectives.seq2seq``) against a hand computation, and the recipe
(``lmlab.recipes.seq2seq.build``) end to end on real CMUdict words: it trains, the held-out loss
falls, the exported folder reloads through ``lmlab.load`` with equal outputs and translates.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import lmlab
from lmlab import registry
from lmlab.data.stream import PairRows, pair_rows
from lmlab.errors import ConfigError, DataError, UsageError
from lmlab.objectives.seq2seq import Seq2SeqObjective, split_rows, trim_padding
from lmlab.recipes import seq2seq
from lmlab.recipes.run import RunFile, load_run

pytestmark = pytest.mark.usefixtures("one_thread")

RUN_FILE = Path(__file__).resolve().parents[2] / "configs" / "transformer.toml"
RECIPE = "lmlab.recipes.seq2seq:build"
PAD, BOS, EOS = 0, 1, 2


@pytest.fixture
def trainable(monkeypatch):
    """The "transformer" row with its recipe: as registry.py has it, or patched in until it does."""
    row = registry.FAMILIES["transformer"]
    if row.recipe is None:
        monkeypatch.setitem(registry.FAMILIES, "transformer", dataclasses.replace(row, recipe=RECIPE))


def test_registry_row_names_this_recipe():
    row = registry.FAMILIES["transformer"]
    if row.recipe is None:
        pytest.skip("the transformer row of lmlab/registry.py has no recipe yet (the tests patch it in)")
    assert row.recipe == RECIPE


# ----------------------------------------------------------------------------- rows and batch source


def test_pair_rows_layout():
    rows = pair_rows([([5, 6], [7, 8, 9]), ([4, 4, 4, 4], [3])], src_len=3, tgt_len=3)
    assert rows.dtype == torch.long
    assert rows.tolist() == [
        [5, 6, 0, 1, 7, 8, 9, 7, 8, 9, 2],   # source | <s> target | target </s>
        [4, 4, 4, 1, 3, 0, 0, 3, 2, 0, 0],   # the source is cut to 3
    ]
    with pytest.raises(DataError, match="no sequence pairs"):
        pair_rows([], 3, 3)


def _rows(n: int = 50, src_len: int = 6, tgt_len: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    pairs = []
    for i in range(n):
        m = int(torch.randint(1, src_len + 1, (1,), generator=generator))
        pairs.append(([10 + i] * m, [4 + i % 5] * (1 + i % tgt_len)))  # row i is told apart by its id 10 + i
    return pair_rows(pairs, src_len, tgt_len)


def _row_ids(batch: torch.Tensor) -> list[int]:
    return (batch[:, 0] - 10).tolist()


@pytest.mark.parametrize("bucket", [1, 3])
def test_pair_rows_source_is_deterministic_and_covers_every_row(bucket):
    rows = _rows(48)
    source = PairRows(rows, src_len=6, batch_size=8, seed=3, bucket=bucket)
    assert source.steps_per_epoch == 6
    for epoch in range(2):  # each epoch: 6 disjoint batches that cover all 48 rows
        seen = [i for step in range(6) for i in _row_ids(source.batch(epoch * 6 + step))]
        assert sorted(seen) == list(range(48))
    # random access: a fresh source asked for step 9 first gives what the first one gave
    again = PairRows(rows, src_len=6, batch_size=8, seed=3, bucket=bucket)
    assert torch.equal(again.batch(9), source.batch(9))
    assert torch.equal(again.batch(2), source.batch(2))
    # another epoch, another order; another seed, other batches
    assert _row_ids(source.batch(0)) != _row_ids(source.batch(6))
    other = PairRows(rows, src_len=6, batch_size=8, seed=4, bucket=bucket)
    assert any(not torch.equal(other.batch(s), source.batch(s)) for s in range(6))
    # shards are equal, disjoint parts of the global batch
    parts = [source.batch(5, shard, 4) for shard in range(4)]
    assert torch.equal(torch.cat(parts), source.batch(5))
    with pytest.raises(DataError, match="does not divide"):
        source.batch(0, 0, 3)


def test_pair_rows_source_buckets_by_source_length_and_evaluates_every_row_once():
    rows = _rows(200)
    lengths = (rows[:, :6] != PAD).sum(1)

    def mean_spread(source):
        spreads = []
        for step in range(source.steps_per_epoch):
            chosen = lengths[_row_ids(source.batch(step))]
            spreads.append(float(chosen.max() - chosen.min()))
        return sum(spreads) / len(spreads)

    assert mean_spread(PairRows(rows, 6, 8, bucket=5)) < 0.5 * mean_spread(PairRows(rows, 6, 8, bucket=1))
    source = PairRows(rows[:21], 6, 8)
    batches = list(source.eval_batches())
    assert [len(b) for b in batches] == [8, 8, 5]
    assert torch.equal(torch.cat(batches), rows[:21])
    ranks = [i for rank in range(2) for b in source.eval_batches(rank, 2) for i in _row_ids(b)]
    assert sorted(ranks) == list(range(21))
    with pytest.raises(DataError, match="fewer than batch_size"):
        PairRows(rows[:5], 6, 8)


# ----------------------------------------------------------------------------- the objective


class FixedLogits(nn.Module):
    """A stand-in model: the same logits (B, T, V) whatever the ids, cut to the target width."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.seen = None

    def forward(self, src, tgt_in):
        self.seen = (src, tgt_in)
        return self.logits[:, : tgt_in.shape[1]]


def _hand_loss(logits: torch.Tensor, targets: list[list[int]], epsilon: float) -> tuple[float, int]:
    """Σ over non-pad targets of -Σ_v q_v log p_v, q = (1 - ε) onehot(y) + ε / V, in plain Python."""
    total, count = 0.0, 0
    for b, row in enumerate(targets):
        for t, y in enumerate(row):
            if y == PAD:
                continue
            z = logits[b, t].tolist()
            log_norm = math.log(sum(math.exp(v) for v in z))
            log_p = [v - log_norm for v in z]
            total += (1 - epsilon) * -log_p[y] + epsilon / len(z) * sum(-lp for lp in log_p)
            count += 1
    return total, count


def test_objective_loss_equals_a_hand_computation():
    rows = pair_rows([([5, 6], [4, 5, 6]), ([7], [4])], src_len=3, tgt_len=4)
    objective = Seq2SeqObjective(src_len=3, tgt_len=4, pad_id=PAD, label_smoothing=0.1)
    src, tgt_in, tgt_out = objective.prepare(rows)
    # all-pad columns trimmed: source width 2, targets width 4 (3 phonemes + </s>)
    assert src.tolist() == [[5, 6], [7, 0]]
    assert tgt_in.tolist() == [[BOS, 4, 5, 6], [BOS, 4, 0, 0]]
    assert tgt_out.tolist() == [[4, 5, 6, EOS], [4, EOS, 0, 0]]
    logits = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0))
    model = FixedLogits(logits)

    model.train()
    out = objective.loss(model, (src, tgt_in, tgt_out))
    assert model.seen[1] is tgt_in
    smoothed, count = _hand_loss(logits, tgt_out.tolist(), 0.1)
    nll, _ = _hand_loss(logits, tgt_out.tolist(), 0.0)
    assert int(out.n_targets) == count == 6
    assert out.loss_sum.item() == pytest.approx(smoothed, rel=1e-5)
    assert float(out.metrics["nll"]) == pytest.approx(nll, rel=1e-5)
    out.loss_sum.backward()  # the training loss carries the graph
    assert model.logits.grad is not None

    model.eval()  # evaluation: unsmoothed, so exp(eval loss / n) is a per-token perplexity
    evaluated = objective.loss(model, (src, tgt_in, tgt_out))
    assert evaluated.loss_sum.item() == pytest.approx(nll, rel=1e-5)
    assert Seq2SeqObjective.is_language_model


def test_objective_refuses_rows_of_another_layout():
    with pytest.raises(UsageError, match="seq2seq rows"):
        split_rows(torch.zeros(2, 9, dtype=torch.long), src_len=3, tgt_len=4, pad_id=PAD)
    with pytest.raises(UsageError, match="label_smoothing"):
        Seq2SeqObjective(3, 4, label_smoothing=1.0)
    assert trim_padding(torch.zeros(2, 5, dtype=torch.long), PAD).shape == (2, 1)


# ----------------------------------------------------------------------------- the recipe


def test_recipe_refuses_misplaced_and_unknown_keys():
    def build(**tables):
        return seq2seq.build(RunFile({"family": "transformer", **tables}))

    with pytest.raises(ConfigError, match="data.corpus"):
        build(data={"corpus": "cmudict"})
    with pytest.raises(ConfigError, match="objective.label_smoothing"):
        build(model={"label_smoothing": 0.2})
    with pytest.raises(ConfigError, match="unknown Transformer preset 'small'"):
        build(model={"preset": "small"})
    with pytest.raises(ConfigError, match="data.task"):
        build(data={"task": "translation"})


TINY = ["data.max_examples=3000", "data.max_eval_examples=300", "data.batch_size=64", "data.bucket=5",
        "train.progress=\"off\"", "train.mfu=false", "train.plot=false", "train.tensorboard=false",
        "train.eval_every=0", "train.threads=1"]


@torch.no_grad()
def _eval_loss(job) -> float:
    job.model.eval()
    total, count = 0.0, 0
    for ids in job.eval_source.eval_batches(0, 1):
        out = job.objective.loss(job.model, job.objective.prepare(ids))
        total, count = total + float(out.loss_sum), count + int(out.n_targets)
    return total / count


def test_train_run_file_on_real_g2p_reload_and_translate(tmp_path, trainable):
    """``lmlab train configs/transformer.toml`` for 120 steps on 3,000 real CMUdict words: the
    unsmoothed loss on 300 held-out (valid) words falls from 4.59 nats to 2.10 (measured, still in
    the Noam warm-up; asserted < 0.6x, i.e. < 2.75); the exported folder reloads with equal logits
    and the same greedy translations, and its vocabularies turn them into phonemes."""
    from lmlab.cli.train import run_training
    from lmlab.models.transformer import Transformer
    from lmlab.tasks.generation import translate
    from lmlab.train.trainer import seed_everything

    overrides = [*TINY, "train.max_steps=120"]
    seed_everything(0)  # what run_training does before it builds, so `fresh` is its initial model
    fresh = seq2seq.build(load_run(RUN_FILE, overrides))
    before = _eval_loss(fresh)
    assert before > 0.8 * math.log(fresh.model.config.tgt_vocab_size)  # about uniform over the phonemes

    result, out_dir, job, is_main = run_training(RUN_FILE, overrides, out=tmp_path / "run")
    assert is_main and result.step == 120
    assert "tiny" in job.describe and "g2p on cmudict" in job.describe and "3,000 training pairs" in job.describe
    after = result.eval["eval_loss"]
    assert after == pytest.approx(_eval_loss(job), rel=1e-5)
    assert after < 0.6 * before, (before, after)
    assert result.eval["eval_ppl"] == pytest.approx(math.exp(after))

    folder = out_dir / "model"
    assert {"config.json", "model.safetensors", "source_vocab.txt", "target_vocab.txt"} <= {
        p.name for p in folder.iterdir()}
    loaded = lmlab.load(folder)
    assert isinstance(loaded, Transformer)
    job.model.eval()
    loaded.eval()
    batch = job.objective.prepare(next(iter(job.eval_source.eval_batches(0, 1))))
    with torch.no_grad():
        assert torch.equal(loaded(*batch[:2]), job.model(*batch[:2]))
    assert torch.equal(translate(loaded, batch[0], max_new_tokens=24), translate(job.model, batch[0], max_new_tokens=24))

    vocab = seq2seq.PairVocab.from_folder(folder)
    assert len(vocab.source) == loaded.config.src_vocab_size and len(vocab.target) == loaded.config.tgt_vocab_size
    assert not vocab.shared and "AH" in vocab.target and "a" in vocab.source
    outputs = seq2seq.translate_tokens(loaded, vocab, [list("cat"), list("phonetic")], max_new_tokens=24)
    assert len(outputs) == 2
    assert all(out and set(out) <= set(vocab.target[4:]) for out in outputs), outputs


def test_wiki_desc_task_trains_with_one_shared_vocabulary(tmp_path, trainable):
    from lmlab.cli.train import run_training

    overrides = [*TINY, "data.task=\"wiki-desc\"", "data.max_examples=64", "data.max_eval_examples=16",
                 "data.batch_size=8", "data.vocab_size=500", "train.max_steps=2"]
    result, out_dir, job, _ = run_training(RUN_FILE, overrides, out=tmp_path / "run")
    assert result.step == 2 and math.isfinite(result.eval["eval_loss"])
    assert job.model.config.share_embeddings and job.model.config.src_vocab_size == 500
    assert "wiki-desc on wiki-vital" in job.describe and "shared |V|=500" in job.describe
    vocab = seq2seq.PairVocab.from_folder(out_dir / "model")
    assert vocab.shared and vocab.source[:4] == seq2seq.SPECIALS
