"""``lmlab finetune MODEL_DIR DATA`` for the tasks beyond sequence classification (issue 14):
tagging, QA, sentence pairs and seq2seq names dispatch to their own ``finetune_*``; the real
KJV <-> WEB verses (Debian sword-text-kjv / sword-text-web) feed the paraphrase task."""

from __future__ import annotations

import json

import pytest
import torch

import lmlab


def _tiny_bert(folder, texts):
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.recipes.bert_family import make_model, special_ids, tokenizer_files

    tok = train_tokenizer("wordpiece", texts, vocab_size=400)
    torch.manual_seed(0)
    bert = make_model("bert", tok.vocab_size, special_ids(tok), {"d_model": 32, "n_layers": 1, "n_heads": 2,
                                                                   "d_ff": 64, "max_length": 128})
    bert.save_pretrained(folder, extra_files=tokenizer_files(tok))
    return folder


def test_bible_paraphrase_through_the_cli_on_the_real_verses(cli, tmp_path):
    bible = pytest.importorskip("lmlab.data.bible")
    try:
        verses = bible.aligned_verses()
    except lmlab.errors.LmlabError as err:
        pytest.skip(f"the SWORD Bible modules are not installed ({err})")
    texts = [t for v in verses[:3000] for t in (v.kjv, v.web)]
    model = _tiny_bert(tmp_path / "bert", texts)
    out = tmp_path / "ft"
    run = cli("finetune", str(model), "bible-paraphrase", "--steps", "4", "--batch-size", "8", "--max-len", "64",
              "--max-train", "64", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_test"] > 0 and 0 <= scores["accuracy"] <= 1
    assert type(lmlab.load(out / "model")).__name__ == "PairClassifier"


def test_task_names_need_a_model_and_unknown_ones_are_refused(cli, tmp_path):
    run = cli("finetune", "--from-scratch", "configs/classifier_scratch.toml", "wiki-qa")
    assert run.returncode == 2 and "needs a pretrained MODEL_DIR" in run.stderr
    run = cli("finetune", str(tmp_path / "nope"), "msra-ner")
    assert run.returncode == 2 and "Traceback" not in run.stderr
