"""XLNet pretrained with segment memory (``model.mem_len`` > 0) through the command line, as a user runs it:
``lmlab train configs/xlnet.toml model.mem_len=.. --quick`` at a tiny size, then ``lmlab finetune`` on the
model folder it wrote (the memory is a pretraining device; the classifier runs the encoder without it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[2]




TINY = ["data.corpus=wiki-vital-small", "data.max_documents=40", "data.seq_len=18", "data.batch_size=4",
        "data.eval_documents=10", "tokenizer.vocab_size=300", "model.d_model=16", "model.n_layers=2",
        "model.n_heads=2", "model.d_ff=32", "train.threads=1", "train.max_steps=4", "train.eval_every=4",
        "train.checkpoint_every=4", "train.warmup_steps=1", "train.progress=off", "train.tensorboard=false",
        "train.plot=false"]


def test_xlnet_with_memory_trains_and_finetunes_from_the_cli(tmp_path, lmlab_main):
    from lmlab.data import sources

    out = tmp_path / "xlnet"
    code, stdout, stderr = lmlab_main("train", str(ROOT / "configs" / "xlnet.toml"), *TINY, "model.mem_len=12",
                                      "model.reuse_len=8", "objective.reuse_len=8",
                                      "--quick", "--out", str(out))
    assert code == 0, stderr
    assert "memory 12 (reuse 8)" in stdout + stderr
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert config["mem_len"] == 12 and config["reuse_len"] == 8
    # the Trainer carried the memory and checkpointed it: 2 layers x (4 lanes, mem_len 12, d_model 16)
    with safe_open(str(out / "checkpoints" / "step-00000004" / "rank-00000.safetensors"), "pt") as f:
        carried = {k: f.get_slice(k).get_shape() for k in f.keys() if k.startswith("carried.")}
    assert carried == {"carried.0.0": [4, 12, 16], "carried.0.1": [4, 12, 16]}
    docs = [d for d in sources.load("rotten-tomatoes").split().train if d.meta.get("label")][:120]
    with open(tmp_path / "reviews.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        writer.writerows([d.text, "pos" if d.meta["label"] == "fresh" else "neg"] for d in docs)
    code, stdout, stderr = lmlab_main("finetune", str(out / "model"), str(tmp_path / "reviews.csv"),
                                      "--text-field", "review", "--label-field", "sentiment", "--steps", "4",
                                      "--batch-size", "8", "--max-len", "24", "--threads", "1",
                                      "--out", str(tmp_path / "ft"))
    assert code == 0, stderr
    scores = json.loads((tmp_path / "ft" / "scores.json").read_text())
    assert scores["classes"] == ["neg", "pos"] and scores["steps"] == 4
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["n_test"] > 0
