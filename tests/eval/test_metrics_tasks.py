"""Classification, tagging and QA metrics: hand-checked cases, seqeval cross-checks, the SQuAD v2 script's numbers."""

from __future__ import annotations

import random

import pytest

from lmlab.errors import UsageError
from lmlab.eval import metrics


def test_classification_by_hand():
    gold, pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert metrics.accuracy(gold, pred) == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 -> 0
    assert metrics.macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics.binary_f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    with pytest.raises(UsageError):
        metrics.accuracy([], [])


def test_entity_spans_by_hand():
    bio = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-PER"]
    # default (conlleval): the I-LOC without B- is an entity, the I-PER after an ORG starts a new one
    assert metrics.entity_spans(bio) == [(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "ORG"), (6, 7, "PER")]
    # strict: entities open only at B-
    assert metrics.entity_spans(bio, "bio", "strict") == [(0, 2, "PER"), (5, 6, "ORG")]
    bioes = ["B-PER", "E-PER", "S-LOC", "B-ORG", "I-ORG", "O", "B-PER", "I-PER", "E-PER"]
    assert metrics.entity_spans(bioes, "bioes", "strict") == [(0, 2, "PER"), (2, 3, "LOC"), (6, 9, "PER")]
    assert metrics.entity_spans(bioes, "bioes", "default") == [(0, 2, "PER"), (2, 3, "LOC"), (3, 5, "ORG"),
                                                                (6, 9, "PER")]
    with pytest.raises(UsageError, match="not a BIO label"):
        metrics.entity_spans(["B-PER", "E-PER"], "bio", "strict")


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = metrics.entity_scores(gold, pred)
    # gold {PER, LOC, ORG}, predicted {PER, ORG(wrong place), ORG}: tp 2, P 2/3, R 2/3
    assert (s.true_positives, s.predicted, s.gold) == (2, 3, 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.per_type["LOC"]["f1"] == 0.0 and s.per_type["PER"]["f1"] == 1.0
    assert s.per_type["ORG"]["precision"] == pytest.approx(0.5) and s.per_type["ORG"]["recall"] == 1.0


def _random_sequences(rng, prefixes, n=300):
    kinds = ["PER", "LOC", "geo-loc"]
    out = []
    for _ in range(n):
        length = rng.randint(1, 9)
        out.append([rng.choice(["O", "O", *[f"{p}-{k}" for p in prefixes for k in kinds]]) for _ in range(length)])
    return out


def _perturb(rng, seqs, prefixes):
    kinds = ["PER", "LOC", "geo-loc"]
    return [[(rng.choice(["O", *[f"{p}-{k}" for p in prefixes for k in kinds]]) if rng.random() < 0.25 else x)
             for x in s] for s in seqs]


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_entity_f1_equals_seqeval(scheme):
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2, IOBES

    rng = random.Random(0 if scheme == "bio" else 1)
    prefixes = "BI" if scheme == "bio" else "BIES"
    for _ in range(5):
        gold = _random_sequences(rng, prefixes)
        pred = _perturb(rng, gold, prefixes)
        ours = metrics.entity_scores(gold, pred, scheme, "default")
        assert ours.f1 == pytest.approx(seqeval_metrics.f1_score(gold, pred), abs=1e-12)
        assert ours.precision == pytest.approx(seqeval_metrics.precision_score(gold, pred), abs=1e-12)
        assert ours.recall == pytest.approx(seqeval_metrics.recall_score(gold, pred), abs=1e-12)
        peer_scheme = IOB2 if scheme == "bio" else IOBES
        strict = metrics.entity_scores(gold, pred, scheme, "strict")
        assert strict.f1 == pytest.approx(seqeval_metrics.f1_score(gold, pred, mode="strict", scheme=peer_scheme),
                                          abs=1e-12)
        assert strict.precision == pytest.approx(
            seqeval_metrics.precision_score(gold, pred, mode="strict", scheme=peer_scheme), abs=1e-12)
        report = seqeval_metrics.classification_report(gold, pred, output_dict=True, zero_division=0)
        for kind, row in ours.per_type.items():
            assert row["f1"] == pytest.approx(report[kind]["f1-score"], abs=1e-12)


# SQuAD v2: a fixture built with the official evaluate-v2.0.py's logic; every number below is worked by hand
GOLD = {"q1": ["the Eiffel Tower", "Eiffel Tower"], "q2": ["Paris, France"], "q3": [], "q4": [],
        "q5": ["An apple"], "q6": ["a"]}
PRED = {"q1": "Eiffel tower.", "q2": "in Paris", "q3": "", "q4": "London", "q5": "apples", "q6": "a"}
NA = {"q1": 0.1, "q2": 0.5, "q3": 0.9, "q4": 0.8, "q5": 0.7, "q6": 0.2}


def test_squad_normalisation_and_pair_scores():
    assert metrics.normalize_answer("The  Eiffel-Tower, (Paris)!") == "eiffeltower paris"
    assert metrics.normalize_answer("An apple a day") == "apple day"
    assert metrics.squad_exact("the Eiffel Tower", "Eiffel tower.") == 1
    # gold [paris, france] vs predicted [in, paris]: one common token, P = R = 1/2
    assert metrics.squad_f1("Paris, France", "in Paris") == pytest.approx(0.5)
    assert metrics.squad_f1("", "") == 1.0 and metrics.squad_f1("", "London") == 0.0


def test_squad_v2_equals_the_official_scripts_numbers():
    # q6's only answer "a" normalises to "" so q6 counts as unanswerable, and "a" vs "" scores 1
    # exact: q1 1, q2 0, q3 1, q4 0, q5 0, q6 1; F1: 1, 0.5, 1, 0, 0, 1
    out = metrics.squad_v2(GOLD, PRED)
    assert out["exact"] == pytest.approx(100 * 3 / 6) and out["f1"] == pytest.approx(100 * 3.5 / 6)
    assert out["HasAns_total"] == 3 and out["NoAns_total"] == 3
    assert out["HasAns_exact"] == pytest.approx(100 / 3) and out["HasAns_f1"] == pytest.approx(50.0)
    assert out["NoAns_exact"] == pytest.approx(200 / 3)
    # threshold 0.6: q3, q4, q5 are answered "" -> q3 1, q4 1, q5 0; exact 4/6, F1 4.5/6
    out = metrics.squad_v2(GOLD, PRED, NA, threshold=0.6)
    assert out["exact"] == pytest.approx(100 * 4 / 6) and out["f1"] == pytest.approx(100 * 4.5 / 6)
    # the sweep from "all unanswered" (3 right): q1 +1 -> 4 (best, at 0.1), q6 -1, q2 +0.5, q5 +0, q4 -1, q3 0
    assert out["best_f1"] == pytest.approx(100 * 4 / 6) and out["best_f1_thresh"] == 0.1
    assert out["best_exact"] == pytest.approx(100 * 4 / 6) and out["best_exact_thresh"] == 0.1
    with pytest.raises(UsageError, match="no prediction"):
        metrics.squad_v2({"x": ["a"]}, {})
