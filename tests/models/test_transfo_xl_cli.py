"""Transformer-XL through the command line at a tiny size, as a user runs it: ``lmlab train
configs/transfo_xl.toml --quick`` (the memory carried across segments), ``lmlab eval ppl`` on the folder, and
``lmlab generate`` with the memory as the cache: streamed greedy text equals ``--no-cache`` (the prefix
recomputed every step), and beam search runs on the reordered memory."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY = ["data.corpus=wiki-vital-small", "data.batch_size=4", "data.bptt=8", "data.eval_batch_size=4",
        "tokenizer.vocab_size=300", "model.cutoffs=[100, 200]", "model.d_model=16", "model.d_embed=16",
        "model.n_head=2", "model.d_head=8", "model.d_inner=32", "model.n_layer=2", "model.mem_len=8",
        "train.threads=1", "train.max_steps=4", "train.eval_every=4", "train.checkpoint_every=4",
        "train.warmup_steps=1", "train.progress=off", "train.tensorboard=false", "train.plot=false"]




def test_train_eval_and_generate_with_memory_from_the_cli(tmp_path, lmlab_main):
    out = tmp_path / "xl"
    code, stdout, stderr = lmlab_main("train", str(ROOT / "configs" / "transfo_xl.toml"), *TINY, "--quick",
                                      "--out", str(out))
    assert code == 0, stderr
    assert "memory 8" in stdout + stderr
    assert json.loads((out / "model" / "config.json").read_text())["config"]["mem_len"] == 8
    code, stdout, stderr = lmlab_main("eval", "ppl", str(out / "model"), "test", "--json")
    assert code == 0, stderr
    scores = json.loads(stdout)
    assert scores["family"] == "transfo-xl" and scores["sentences"] > 0
    assert 1.0 < scores["ppl"] < 300 * 1.5, scores    # a real number, near-uniform after 4 steps
    # generation: 20 tokens from a 3-word prompt run past the 8-token training memory
    prompt = "the history of"
    code, cached, stderr = lmlab_main("generate", str(out / "model"), prompt, "-n", "20", "--ignore-eos",
                                      "--threads", "1")
    assert code == 0, stderr
    code, recomputed, stderr = lmlab_main("generate", str(out / "model"), prompt, "-n", "20", "--ignore-eos",
                                          "--no-cache", "--threads", "1")
    assert code == 0, stderr
    assert cached == recomputed and len(cached.split()) >= 20, (cached, recomputed)
    code, beam, stderr = lmlab_main("generate", str(out / "model"), prompt, "-n", "6", "--beam", "3",
                                    "--threads", "1")
    assert code == 0, stderr
    code, beam_again, stderr = lmlab_main("generate", str(out / "model"), prompt, "-n", "6", "--beam", "3",
                                          "--no-cache", "--threads", "1")
    assert code == 0, stderr
    assert beam == beam_again and beam.strip()
