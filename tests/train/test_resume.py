"""Exact resume after SIGKILL, crash-safe checkpoints, corrupted checkpoints, determinism."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _trainkit import (
    EvalWindows,
    LaneSource,
    MaskedCLM,
    StatefulCLM,
    TinyLM,
    TinyRNN,
    WindowSource,
    token_ids,
)
from run_tiny import make_trainer, parse

from lmlab.errors import CheckpointError
from lmlab.train import TrainConfig, Trainer
from lmlab.train import checkpoint as ckpt
from lmlab.train.log import read_metrics

RUNNER = Path(__file__).resolve().parent / "run_tiny.py"
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(out: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), str(out), *extra], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(out / "metrics.jsonl")]


@pytest.mark.parametrize("model", ["tiny", "rnn"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, model):
    steps = 14
    reference = tmp_path / "reference"
    killed = tmp_path / "killed"
    # the victim sleeps in its batch source so the kill lands at a random point mid-run,
    # possibly during a checkpoint write
    victim = _run(killed, "--steps", str(steps), "--model", model, "--sleep", "0.05")
    # the uninterrupted run, in this process meanwhile (same code, one thread: same floats)
    make_trainer(parse([str(reference), "--steps", str(steps), "--model", model])).fit()
    kill_after = random.Random().randint(4, steps - 3)
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [s for s, _ in _losses(killed)]
        if done and done[-1] >= kill_after:
            break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert (killed / "checkpoints" / "latest").is_file()
    # resumed here: this process and the killed one compute the same floats (one thread each)
    make_trainer(parse([str(killed), "--steps", str(steps), "--model", model, "--resume"])).fit(resume=True)
    expected = _losses(reference)
    assert [s for s, _ in expected] == list(range(1, steps + 1))
    assert _losses(killed) == expected  # bit-identical floats, step by step
    ref_eval = [r["eval_loss"] for r in read_metrics(reference / "metrics.jsonl") if "eval_loss" in r]
    got_eval = [r["eval_loss"] for r in read_metrics(killed / "metrics.jsonl") if "eval_loss" in r]
    assert got_eval == ref_eval


def _trainer(out, steps=4, seed=0, **overrides):
    torch.manual_seed(seed)
    ids, vocab = token_ids()
    settings = {"seed": seed, "max_steps": steps, "lr": 3e-3, "checkpoint_every": 2, "keep_last": 2, "progress": "off",
                    "mfu": False, "plot": False, "tensorboard": False}
    config = TrainConfig(**{**settings, **overrides})
    return Trainer(TinyLM(vocab), MaskedCLM(), WindowSource(ids, 4, 12), config, out,
                   eval_source=EvalWindows(ids, 4, 12, 2))


def test_same_seed_same_losses_and_weights(tmp_path):
    a = _trainer(tmp_path / "a", seed=7)
    a.fit()
    b = _trainer(tmp_path / "b", seed=7)
    b.fit()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    c = _trainer(tmp_path / "c", steps=2, seed=8)
    c.fit()
    assert _losses(tmp_path / "c") != _losses(tmp_path / "a")[:2]


def test_keep_last_and_latest_pointer(tmp_path):
    _trainer(tmp_path, steps=8).fit()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step-00000006", "step-00000008"]
    assert (root / "latest").read_text().strip() == "step-00000008"
    assert not list(root.glob(".*tmp"))
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_crash_during_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, steps=6)
    real = ckpt._write_shared_files

    def dies_half_way(trainer, tmp, world):
        (tmp / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")  # half a file
        raise OSError("disk full (injected)")

    calls = {"n": 0}

    def sometimes(trainer, tmp, world):
        calls["n"] += 1
        if calls["n"] == 2:  # the step-4 checkpoint
            return dies_half_way(trainer, tmp, world)
        return real(trainer, tmp, world)

    monkeypatch.setattr(ckpt, "_write_shared_files", sometimes)
    with pytest.raises(OSError, match="injected"):
        trainer.fit()
    root = tmp_path / "checkpoints"
    assert (root / "latest").read_text().strip() == "step-00000002"
    assert not (root / "step-00000004").exists()
    # a leftover from a process killed mid-save is ignored, and swept by the next save
    (root / ".step-00000004.tmp").mkdir()
    (root / ".step-00000004.tmp" / "model.safetensors").write_bytes(b"\x00" * 5)
    monkeypatch.setattr(ckpt, "_write_shared_files", real)
    resumed = _trainer(tmp_path, steps=6)
    folder = resumed.load_checkpoint()
    assert folder.name == "step-00000002" and resumed.step == 2
    resumed.fit(resume=True)
    assert resumed.step == 6
    assert not (root / ".step-00000004.tmp").exists()
    assert [s for s, _ in _losses(tmp_path)] == [1, 2, 3, 4, 5, 6]


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.fixture
def saved(tmp_path):
    _trainer(tmp_path / "run", steps=4).fit()
    return tmp_path / "run"


def _resume_error(run: Path, **overrides) -> str:
    with pytest.raises(CheckpointError) as err:
        _trainer(run, steps=4, **overrides).load_checkpoint()
    return _one_line(err)


def test_corrupted_checkpoints_give_one_line_errors(saved, monkeypatch):
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    folder = saved / "checkpoints" / "step-00000004"
    backup = saved.parent / "backup"
    shutil.copytree(folder, backup)

    def restore():
        shutil.rmtree(folder)
        shutil.copytree(backup, folder)

    # a safetensors header that is not JSON (edited), manifest updated to match: the header check fires
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:12] = b"\xff\xfe{{"
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert "contents changed" in _resume_error(saved)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.safetensors"]["sha256"] = ckpt._sha256(folder / "model.safetensors")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "bad safetensors header" in _resume_error(saved)
    restore()
    # truncated
    data = (folder / "optimizer.safetensors").read_bytes()
    (folder / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    assert "truncated" in _resume_error(saved)
    restore()
    # missing file
    (folder / "rank-00000.safetensors").unlink()
    assert "missing rank-00000.safetensors" in _resume_error(saved)
    restore()
    # missing manifest, broken JSON
    (folder / "manifest.json").unlink()
    assert "missing manifest.json" in _resume_error(saved)
    restore()
    (folder / "trainer.json").write_text("{not json")
    assert "trainer.json" in _resume_error(saved)
    restore()
    # config mismatch
    message = _resume_error(saved, lr=1e-2)
    assert "train.lr" in message and "0.003" in message
    # latest pointing nowhere, or at garbage
    (saved / "checkpoints" / "latest").write_text("step-00000099\n")
    assert "does not exist" in _resume_error(saved)
    (saved / "checkpoints" / "latest").write_text("../../etc\n")
    assert "not a checkpoint name" in _resume_error(saved)
    (saved / "checkpoints" / "latest").write_text("step-00000004\n")
    # a different model (shape mismatch): names the weight
    ids, vocab = token_ids()
    config = TrainConfig(max_steps=4, lr=3e-3, checkpoint_every=2, keep_last=2, progress="off", mfu=False,
                         plot=False, tensorboard=False)
    other = Trainer(TinyLM(vocab, dim=8), MaskedCLM(), WindowSource(ids, 4, 12), config, saved)
    with pytest.raises(CheckpointError) as err:
        other.load_checkpoint()
    assert "shape" in _one_line(err) or "optimizer" in _one_line(err)


def test_fresh_run_refuses_existing_run_and_resume_without_checkpoint(tmp_path, saved):
    with pytest.raises(CheckpointError, match="--resume"):
        _trainer(saved, steps=4).fit()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _trainer(tmp_path / "empty", steps=4).fit(resume=True)


def test_carried_state_is_truncated_and_checkpointed(tmp_path):
    ids, vocab = token_ids()
    torch.manual_seed(0)
    config = TrainConfig(max_steps=3, lr=3e-3, checkpoint_every=3, progress="off", mfu=False, plot=False,
                         tensorboard=False, grad_accum=2)
    trainer = Trainer(TinyRNN(vocab), StatefulCLM(), LaneSource(ids, 2, 8), config, tmp_path)
    trainer.fit()
    assert set(trainer.carried) == {0, 1}
    h, _c = trainer.carried[0]
    assert h.shape == (1, 2, 16) and not h.requires_grad
    again = Trainer(TinyRNN(vocab), StatefulCLM(), LaneSource(ids, 2, 8), config, tmp_path)
    again.load_checkpoint()
    assert torch.equal(again.carried[1][1], trainer.carried[1][1])
