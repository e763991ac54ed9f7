"""Sequence-to-sequence fine-tuning: a user's pairs files, the built-in tasks' pairs, and the whole flow
(a tiny BART pretrained here, fine-tuned on a pairs file of real sentences, decoded and scored)."""

from __future__ import annotations

import json

import pytest
import torch

from lmlab.errors import DataError, UsageError
from lmlab.tasks import seq2seq


def test_pairs_files_jsonl_and_tsv(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"source": "thou art", "target": "you are"}\n\n'
                                      '{"source": "ye be", "target": "you are"}\n', encoding="utf-8")
    (tmp_path / "p.tsv").write_text("thou art\tyou are\nye be\tyou are\n", encoding="utf-8")
    expected = [("thou art", "you are"), ("ye be", "you are")]
    assert seq2seq.read_pairs_file(tmp_path / "p.jsonl") == expected
    assert seq2seq.read_pairs_file(tmp_path / "p.tsv") == expected
    (tmp_path / "bad.tsv").write_text("a\tb\tc\n")
    with pytest.raises(DataError, match=r"bad.tsv:1: expected source<TAB>target, got 3 fields"):
        seq2seq.read_pairs_file(tmp_path / "bad.tsv")
    (tmp_path / "bad.jsonl").write_text('{"source": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: expected"):
        seq2seq.read_pairs_file(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="unknown seq2seq task"):
        seq2seq.task_pairs("nope")


def test_split_pairs_is_by_source_and_stable():
    pairs = [(f"sentence {i}", f"target {i}") for i in range(2000)]
    splits = seq2seq.split_pairs(pairs)
    backwards = seq2seq.split_pairs(list(reversed(pairs)))
    assert all(sorted(splits[k]) == sorted(backwards[k]) for k in splits)   # a pair's split depends on it alone
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 2000 and 1500 < sizes["train"] < 1700 and 120 < sizes["test"] < 280
    assert not ({s for s, _ in splits["train"]} & {s for s, _ in splits["test"]})


def test_g2p_pairs_strip_stress():
    splits = seq2seq.g2p_pairs()
    pronunciations = dict(pair for part in splits.values() for pair in part)
    assert pronunciations["hello"] in ("HH AH L OW", "HH EH L OW")     # cmudict: HH AH0 L OW1
    assert not any(ch.isdigit() for _, p in splits["train"] for ch in p)
    assert not ({w for w, _ in splits["train"]} & {w for w, _ in splits["test"]})


def test_kjv_web_pairs_split_by_book():
    from lmlab.data import bible

    if not bible.available():
        pytest.skip("sword-text-kjv / sword-text-web not installed")
    splits = seq2seq.kjv_web_pairs()
    assert splits["train"][0] == ("In the beginning God created the heaven and the earth.",
                                  "In the beginning, God created the heavens and the earth.")
    assert len(splits["test"]) == 3036


def test_finetune_on_a_pairs_file_learns_and_scores(tmp_path, tiny_bart_folder):
    """Real sentences (wiki-vital lead sentences, cut to 6 words) -> the same sentence: a tiny model trained
    from random weights starts to copy in 300 steps; the scores, the saved model and scores.json come out."""
    from lmlab.data import sources
    from lmlab.data.clean import split_sentences

    torch.set_num_threads(1)
    docs = sources.load("wiki-vital-small").split().train[:400]
    sentences = [" ".join(split_sentences(d.text)[0].split()[:6]) for d in docs if d.text]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"source": s, "target": s}) + "\n"
                                                  for s in sentences), encoding="utf-8")
    folder = tiny_bart_folder(tmp_path / "pretrained", sentences + [s.lower() for s in sentences])
    spec = seq2seq.Seq2SeqFinetuneSpec(steps=300, batch_size=16, lr=3e-3, max_source_len=24, max_target_len=24,
                                       max_eval=30, warmup_steps=10)
    scores = seq2seq.finetune_seq2seq(folder, str(tmp_path / "pairs.jsonl"), spec, tmp_path / "ft")
    assert scores["task"] == "pairs" and scores["n_eval"] == 30 and len(scores["examples"]) == 5
    assert set(scores) >= {"bleu", "chrf", "rouge1", "rouge2", "rougeL"}
    # measured: train loss 3.60 (label-smoothed; ln 300 = 5.7 at the start), chrF 7.9, BLEU 1.9 (1 thread)
    assert scores["train_loss"] < 4.2 and scores["chrf"] > 5, scores
    assert (tmp_path / "ft" / "model" / "tokenizer.json").is_file()
    saved = json.loads((tmp_path / "ft" / "scores.json").read_text())
    assert saved["bleu"] == pytest.approx(scores["bleu"])
    again, codec = seq2seq.load_model(tmp_path / "ft" / "model")
    assert again.config.vocab_size == codec.tokenizer.vocab_size
    # the saved folder decodes the same outputs again (lmlab eval seq2seq's path)
    assert seq2seq.evaluate_seq2seq(tmp_path / "ft" / "model")["bleu"] == scores["bleu"]


def test_finetune_refuses_a_model_that_is_not_an_encoder_decoder(tmp_path):
    from lmlab import registry

    row = registry.get("gpt")
    row.model_class()(row.config_from()).save_pretrained(tmp_path / "gpt")
    with pytest.raises(UsageError, match="needs an encoder-decoder"):
        seq2seq.load_model(tmp_path / "gpt")
