"""Sequence-to-sequence metrics: BLEU and chrF equal to sacreBLEU, ROUGE equal to rouge-score (on real
KJV / WEB verse pairs when the SWORD modules are installed, and on hand-made cases), PER/WER by hand."""

from __future__ import annotations

import pytest

from lmlab.errors import UsageError
from lmlab.eval.metrics import (
    corpus_bleu,
    corpus_chrf,
    edit_distance,
    g2p_error_rates,
    rouge_scores,
    tokenize_13a,
)

CASES = [  # (hypothesis, reference): punctuation, digits, quotes, an empty hypothesis, a perfect match
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("It costs 3,000.50 dollars -- really!", "It cost $3,000.50, really."),
    ("“Yes,” he said; 1-2-3.", "\"Yes\", he said: one-two-three."),
    ("", "Nothing was produced here."),
    ("Jesus wept.", "Jesus wept."),
    ("and and and the the", "the and a the and"),
]


def _pairs():
    from lmlab.data import bible

    pairs = list(CASES)
    if bible.available():
        verses = bible.aligned_verses()[::400]
        pairs += [(v.kjv, v.web) for v in verses]
    return [h for h, _ in pairs], [r for _, r in pairs]


def test_13a_tokenizer_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    reference = Tokenizer13a()
    for line in [h for h, _ in CASES] + [r for _, r in CASES] + ["a&amp;b &quot;q&quot; x-\ny <skipped>"]:
        assert tokenize_13a(line) == reference(line)
    assert sacrebleu


def test_bleu_and_chrf_equal_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = _pairs()
    assert corpus_bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert corpus_chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
    for i in range(len(CASES)):  # one pair at a time too: zero counts, brevity, smoothing
        h, r = hyps[i:i + 1], refs[i:i + 1]
        assert corpus_bleu(h, r) == pytest.approx(sacrebleu.corpus_bleu(h, [r]).score, abs=1e-9), CASES[i]
        assert corpus_chrf(h, r) == pytest.approx(sacrebleu.corpus_chrf(h, [r]).score, abs=1e-9), CASES[i]


def test_rouge_equals_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    hyps, refs = _pairs()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    expected = {k: 0.0 for k in ("rouge1", "rouge2", "rougeL")}
    for h, r in zip(hyps, refs):
        for k, s in scorer.score(r, h).items():
            expected[k] += 100 * s.fmeasure / len(hyps)
    got = rouge_scores(hyps, refs)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], abs=1e-9), k


def test_hand_checked_values():
    assert corpus_bleu(["and Jesus wept there ."], ["and Jesus wept there ."]) == pytest.approx(100.0)
    assert corpus_bleu(["Jesus wept ."], ["Jesus wept ."]) == 0.0       # no 4-grams at all: BLEU is 0 (as sacreBLEU)
    # ROUGE-L: LCS("a b c d", "a c d e") = 3 -> P = R = 3/4
    assert rouge_scores(["a b c d"], ["a c d e"])["rougeL"] == pytest.approx(75.0)
    assert edit_distance("kitten", "sitting") == 3
    rates = g2p_error_rates([["K", "AE", "T"], ["D", "AO", "G"]], [["K", "AE", "T"], ["D", "AA", "G", "Z"]])
    assert rates == {"per": pytest.approx(100 * 2 / 7), "wer": 50.0}
    with pytest.raises(UsageError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
