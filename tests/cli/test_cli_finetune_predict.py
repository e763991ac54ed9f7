"""`lmlab finetune` on a user's CSV, `lmlab eval classify` reproducing its numbers, `lmlab predict`
on a text, a file and stdin, and the one-line errors — as a user runs them.

The fine-tuning run is a real subprocess; the other commands run in this process through
``lmlab.cli.main.main`` (the same entry point, with its error handling), which saves a torch start-up
per command on the shared CI machine.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch


def _error_line(stderr: str) -> str:
    """The one ``lmlab: error:`` line (status lines may come before it); no traceback."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("lmlab: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT folder with a real tokenizer and a CSV of 300 real reviews."""
    from lmlab.data import sources
    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.recipes.bert_family import make_model

    tmp = tmp_path_factory.mktemp("cli")
    docs = [d for d in sources.load("rotten-tomatoes").split().train if d.meta.get("label")][:300]
    with open(tmp / "reviews.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        writer.writerows([d.text, "pos" if d.meta["label"] == "fresh" else "neg"] for d in docs)
    tokenizer = train_tokenizer("wordpiece", [d.text for d in docs], vocab_size=600)
    torch.manual_seed(0)
    model = make_model("bert", tokenizer.vocab_size, {"pad": tokenizer.special_ids()["pad"]},
                       {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64})
    model.save_pretrained(tmp / "bert", extra_files=tokenizer.files())
    return tmp


def test_finetune_eval_predict_round_trip(setup, cli, lmlab_main):
    tmp = setup
    done = cli("finetune", str(tmp / "bert"), str(tmp / "reviews.csv"), "--text-field", "review", "--label-field",
               "sentiment", "--steps", "6", "--batch-size", "8", "--max-len", "24", "--lr", "1e-3", "--threads", "1",
               "--out", str(tmp / "ft"))
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "valid accuracy" in done.stdout
    assert "step 6/6" in done.stderr and "ETA" in done.stderr  # the fine-tuning loop shows its progress
    scores = json.loads((tmp / "ft" / "scores.json").read_text())
    assert scores["classes"] == ["neg", "pos"] and scores["steps"] == 6
    # lmlab eval classify on the output folder reproduces the test numbers it printed
    code, stdout, stderr = lmlab_main("eval", "classify", str(tmp / "ft"), "--json")
    assert code == 0, stderr
    numbers = json.loads(stdout)
    assert numbers["accuracy"] == scores["accuracy"] and numbers["macro_f1"] == scores["macro_f1"]
    assert numbers["n"] == scores["n_test"]
    # predict: one text, as the Python pipeline gives it
    import lmlab

    text = "a moving, beautifully acted film"
    code, stdout, stderr = lmlab_main("predict", str(tmp / "ft"), text)
    assert code == 0, stderr
    line = json.loads(stdout)
    expected = lmlab.pipeline("text-classification", tmp / "ft" / "model")(text)
    assert line["text"] == text and line["label"] == expected["label"]
    assert line["score"] == pytest.approx(expected["score"], abs=1e-6)
    # a file of texts -> JSON lines, in order; stdin with top-k
    texts = ["dull and lifeless", "great fun", "an uneven but rewarding film"]
    (tmp / "new.txt").write_text("\n".join(texts) + "\n")
    code, _, stderr = lmlab_main("predict", str(tmp / "ft" / "model"), str(tmp / "new.txt"),
                                 "--out", str(tmp / "preds.jsonl"))
    assert code == 0, stderr
    rows = [json.loads(x) for x in (tmp / "preds.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == texts and all(r["label"] in ("neg", "pos") for r in rows)
    code, stdout, stderr = lmlab_main("predict", str(tmp / "ft"), "-", "--top-k", "2", stdin="\n".join(texts) + "\n")
    assert code == 0, stderr
    ranked = [json.loads(x) for x in stdout.splitlines()]
    assert [r["labels"][0]["label"] for r in ranked] == [r["label"] for r in rows]
    assert all(sum(x["score"] for x in r["labels"]) == pytest.approx(1.0, abs=1e-5) for r in ranked)
    code, _, stderr = lmlab_main("predict", str(tmp / "ft"), str(tmp / "new.txt"), "--out", str(tmp / "preds.jsonl"))
    assert code != 0 and "--force" in _error_line(stderr)


@pytest.mark.parametrize("args, message", [
    (["--text-field", "review", "--label-field", "stars"], "no field 'stars' (fields: review, sentiment)"),
    (["--text-field", "review", "--label-field", "sentiment", "--optimizer", "sgd"], "optimizer must be adamw or adam"),
])
def test_finetune_errors_are_one_line(setup, args, message, lmlab_main):
    tmp = setup
    code, _, stderr = lmlab_main("finetune", str(tmp / "bert"), str(tmp / "reviews.csv"), *args, "--steps", "1",
                                 "--out", str(tmp / "bad"))
    assert code != 0 and message in _error_line(stderr)


def test_finetune_argument_count_and_one_label(setup, tmp_path, lmlab_main):
    code, _, stderr = lmlab_main("finetune", str(setup / "reviews.csv"))
    assert code != 0 and "expected 2 arguments (lmlab finetune MODEL_DIR DATA)" in _error_line(stderr)
    (tmp_path / "one.csv").write_text("text,label\ngood,pos\nnice,pos\n")
    code, _, stderr = lmlab_main("finetune", str(setup / "bert"), str(tmp_path / "one.csv"), "--out", str(tmp_path / "o"))
    assert code != 0 and "only one label ('pos')" in _error_line(stderr)
    (tmp_path / "empty.csv").write_text("")
    code, _, stderr = lmlab_main("predict", str(setup / "bert"), str(tmp_path / "empty.csv"))
    assert code != 0 and "no texts" in _error_line(stderr)


def test_from_scratch_and_vectors_through_the_cli(setup, tmp_path, lmlab_main):
    tmp = setup
    (tmp_path / "scratch.toml").write_text('family = "bert"\n[tokenizer]\nkind = "wordpiece"\nvocab_size = 500\n'
                                           '[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\nd_ff = 32\n')
    common = ["--text-field", "review", "--label-field", "sentiment", "--steps", "2", "--batch-size", "8",
              "--max-len", "16", "--threads", "1"]
    code, stdout, stderr = lmlab_main("finetune", "--from-scratch", str(tmp_path / "scratch.toml"),
                                      str(tmp / "reviews.csv"), *common, "--optimizer", "adam",
                                      "--out", str(tmp_path / "scratch"))
    assert code == 0, stderr
    assert json.loads((tmp_path / "scratch" / "model" / "config.json").read_text())["base"].startswith("from scratch")
    (tmp_path / "vectors.txt").write_text("2 3\nfilm 1 0 0\ngood 0 1 0\n")  # word2vec text format
    code, _, stderr = lmlab_main("finetune", "--vectors", str(tmp_path / "vectors.txt"), str(tmp / "reviews.csv"),
                                 *common, "--freeze", "--head", "bilstm", "--head-hidden", "4",
                                 "--out", str(tmp_path / "vec"))
    assert code == 0, stderr
    code, stdout, stderr = lmlab_main("predict", str(tmp_path / "vec"), "a good film")
    assert code == 0 and json.loads(stdout)["label"] in ("neg", "pos"), stderr
    code, _, stderr = lmlab_main("finetune", "--from-scratch", str(tmp_path / "scratch.toml"), "--vectors",
                                 str(tmp_path / "vectors.txt"), str(tmp / "reviews.csv"))
    assert code != 0 and "choose one" in _error_line(stderr)


def test_seq2seq_options_on_an_elmo_folder_are_refused(tmp_path, lmlab_main):
    from pathlib import Path

    elmo = Path(__file__).resolve().parents[1] / "fixtures" / "elmo"  # bilm-tf's layout (options.json)
    code, _, stderr = lmlab_main("finetune", str(elmo), "rotten-tomatoes", "--num-beams", "3", "--out",
                                 str(tmp_path / "o"))
    assert code != 0 and "--num-beams" in _error_line(stderr) and not (tmp_path / "o").exists()
