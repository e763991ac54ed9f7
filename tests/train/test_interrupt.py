"""Interrupts and long resumes: SIGINT / SIGTERM save and say how to resume; the schedule horizon
survives a resume with a larger max_steps; time-based checkpoints; every shipped run file checkpoints."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import tomllib
import torch
from _trainkit import EvalWindows, MaskedCLM, TinyLM, WindowSource, token_ids
from safetensors.torch import load_file

from lmlab import config as config_io
from lmlab.train import TrainConfig, Trainer
from lmlab.train.log import read_metrics
from lmlab.train.schedules import Schedule
from lmlab.train.trainer import TrainingInterrupted

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLI = HERE / "cli_tiny.py"

# no checkpoint_every / checkpoint_minutes: the CLI's time-based default applies, so the only
# checkpoints before the end are the ones the signal makes
RUN = """
family = "tiny"
[data]
batch_size = 4
seq_len = 10
[model]
dim = 12
[train]
max_steps = 14
lr = 0.003
schedule = "cosine"
warmup_steps = 2
eval_every = 5
threads = 1
progress = "off"
mfu = false
plot = false
tensorboard = false
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _lmlab(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CLI), *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _losses(out: Path) -> list[tuple[int, float]]:
    path = out / "metrics.jsonl"
    return [(r["step"], r["loss"]) for r in read_metrics(path)] if path.is_file() else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (its own process, one thread, like the interrupted ones)."""
    base = tmp_path_factory.mktemp("reference")
    run_file = base / "tiny.toml"
    run_file.write_text(RUN)
    proc = _lmlab("train", str(run_file), "--out", str(base / "out"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return base / "out"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resumes_bit_identical(tmp_path, reference, sig, code):
    run_file = tmp_path / "tiny.toml"
    run_file.write_text(RUN)
    out = tmp_path / "out"
    # the batch source sleeps, so the signal lands mid-run (in a step, a save or an evaluation)
    victim = _lmlab("train", str(run_file), "data.sleep=0.05", "--out", str(out))
    deadline = time.time() + 90
    while time.time() < deadline and (not _losses(out) or _losses(out)[-1][0] < 4):
        time.sleep(0.01)
    victim.send_signal(sig)
    stdout, stderr = victim.communicate(timeout=60)
    assert victim.returncode == code, stderr
    assert "Traceback" not in stderr and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    name = signal.Signals(sig).name
    assert line.startswith(f"lmlab: interrupted by {name} at step "), line
    step = int(line.split(" at step ")[1].split(";")[0])
    assert 4 <= step < 14
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{step:08d}" and f"checkpoint {out / 'checkpoints' / latest}" in line
    assert (out / "checkpoints" / latest / "manifest.json").is_file()
    # the CLI's default: a run file that asks for no checkpoints gets time-based ones
    saved = json.loads((out / "checkpoints" / latest / "trainer.json").read_text())
    assert saved["train_config"]["checkpoint_minutes"] == 10.0 and saved["step"] == step
    # run the command the line names, as it is written
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:3] == ["lmlab", "train", str(run_file)] and command[-3:] == ["--out", str(out), "--resume"]
    assert "data.sleep=0.05" in command
    resumed = _lmlab(*command[1:])
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert _losses(out) == _losses(reference)  # bit-identical floats, step by step
    assert [s for s, _ in _losses(out)] == list(range(1, 15))
    got, want = load_file(out / "model" / "model.safetensors"), load_file(reference / "model" / "model.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


# --------------------------------------------------------------------------- in process


def _trainer(out, steps=6, source=None, **overrides):
    torch.manual_seed(0)
    ids, vocab = token_ids()
    settings = {"max_steps": steps, "lr": 3e-3, "schedule": "cosine", "warmup_steps": 2, "checkpoint_every": 0,
                "keep_last": 100, "progress": "off", "mfu": False, "plot": False, "tensorboard": False}
    config = TrainConfig(**{**settings, **overrides})
    return Trainer(TinyLM(vocab), MaskedCLM(), source or WindowSource(ids, 4, 12), config, out,
                   eval_source=EvalWindows(ids, 4, 12, 2))


class SignalsItself(WindowSource):
    """A source that sends its own process ``sig`` while it reads the batch of step ``at``."""

    def __init__(self, sig: int, at: int):
        ids, _ = token_ids()
        super().__init__(ids, 4, 12)
        self.sig, self.at = sig, at

    def batch(self, step, shard, shards):
        if step == self.at:
            os.kill(os.getpid(), self.sig)
        return super().batch(step, shard, shards)


main_thread_only = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                      reason="signal handlers need the main thread")


@main_thread_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_fit_stops_at_the_step_boundary(tmp_path, sig):
    before = signal.getsignal(sig)
    trainer = _trainer(tmp_path / "run", steps=8, source=SignalsItself(sig, at=2))
    with pytest.raises(TrainingInterrupted) as err:
        trainer.fit()
    assert signal.getsignal(sig) is before  # fit puts the handlers back
    assert err.value.step == 3 and err.value.exit_code == 128 + sig
    assert err.value.checkpoint == tmp_path / "run" / "checkpoints" / "step-00000003"
    assert "\n" not in str(err.value)
    assert [s for s, _ in _losses(tmp_path / "run")] == [1, 2, 3]
    _trainer(tmp_path / "run", steps=8).fit(resume=True)
    reference = _trainer(tmp_path / "ref", steps=8)
    reference.fit()
    assert _losses(tmp_path / "run") == _losses(tmp_path / "ref")


@main_thread_only
def test_signal_during_set_up_of_a_resume_names_the_checkpoint(tmp_path, monkeypatch):
    _trainer(tmp_path, steps=3).fit()
    trainer = _trainer(tmp_path, steps=5)
    real = trainer.load_checkpoint

    def load_and_signal(path=None):
        folder = real(path)
        os.kill(os.getpid(), signal.SIGTERM)
        return folder

    monkeypatch.setattr(trainer, "load_checkpoint", load_and_signal)
    with pytest.raises(TrainingInterrupted) as err:
        trainer.fit(resume=True)
    assert err.value.step == 3 and err.value.checkpoint.name == "step-00000003"


def test_time_based_checkpoints_are_ordinary_step_checkpoints(tmp_path):
    _trainer(tmp_path / "timed", checkpoint_minutes=1e-9).fit()  # due after every step
    _trainer(tmp_path / "plain").fit()
    root = tmp_path / "timed" / "checkpoints"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [f"step-{s:08d}" for s in range(1, 7)]
    assert sorted(p.name for p in (tmp_path / "plain" / "checkpoints").iterdir() if p.is_dir()) == ["step-00000006"]
    assert _losses(tmp_path / "timed") == _losses(tmp_path / "plain")
    # resuming from one of them continues the same path
    (root / "latest").write_text("step-00000003\n")
    _trainer(tmp_path / "timed").fit(resume=True)
    assert _losses(tmp_path / "timed") == _losses(tmp_path / "plain")


def _resume(out, **overrides) -> tuple[Trainer, str]:
    err = io.StringIO()
    trainer = _trainer(out, **overrides)
    with redirect_stderr(err):
        trainer.fit(resume=True)
    return trainer, err.getvalue()


def _lrs(out) -> dict[int, float]:
    return {r["step"]: r["lr"] for r in read_metrics(out / "metrics.jsonl")}


def test_a_larger_max_steps_keeps_the_schedule_horizon_and_says_so(tmp_path):
    _trainer(tmp_path / "a", steps=6).fit()
    saved = json.loads((tmp_path / "a" / "checkpoints" / "step-00000006" / "trainer.json").read_text())
    assert saved["schedule"]["total_steps"] == 6
    trainer, err = _resume(tmp_path / "a", steps=10)
    assert err == ("lmlab: schedule horizon stays 6 steps (from the checkpoint); "
                   "set train.schedule_steps=10 to stretch it\n")
    assert trainer.schedule.total_steps == 6 and trainer.step == 10
    assert [_lrs(tmp_path / "a")[s] for s in range(7, 11)] == [0.0] * 4  # min_lr past the horizon, no jump
    # the same path as a fresh 10-step run with a 6-step horizon
    _trainer(tmp_path / "b", steps=10, schedule_steps=6).fit()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    # the horizon stays with the run: a later resume keeps it too
    trainer, err = _resume(tmp_path / "a", steps=12)
    assert "stays 6 steps" in err and trainer.schedule.total_steps == 6


def test_schedule_steps_stretches_the_horizon_on_purpose(tmp_path):
    _trainer(tmp_path, steps=6).fit()
    trainer, err = _resume(tmp_path, steps=10, schedule_steps=10)
    assert err == "lmlab: schedule horizon changes from 6 steps (the checkpoint's) to 10 (train.schedule_steps)\n"
    assert trainer.schedule.total_steps == 10
    stretched = Schedule("cosine", 3e-3, 2, 10)
    assert _lrs(tmp_path)[7] == stretched.lr_at(7)
    saved = json.loads((tmp_path / "checkpoints" / "step-00000010" / "trainer.json").read_text())
    assert saved["schedule"]["total_steps"] == 10


def test_unchanged_resume_is_silent_and_exact(tmp_path):
    _trainer(tmp_path / "a", steps=3).fit()
    # max_steps 3 -> 6 with the horizon set for 6 from the start: no notice, and the path of a 6-step run
    _trainer(tmp_path / "b", steps=3, schedule_steps=6).fit()
    _, err = _resume(tmp_path / "b", steps=6, schedule_steps=6)
    assert err == ""
    _trainer(tmp_path / "c", steps=6).fit()
    assert _losses(tmp_path / "b") == _losses(tmp_path / "c")


def test_constant_and_noam_schedules_do_not_announce_a_horizon(tmp_path):
    _trainer(tmp_path, steps=3, schedule="constant").fit()
    _, err = _resume(tmp_path, steps=5, schedule="constant")
    assert err == ""


def test_bad_values_are_refused():
    from lmlab.errors import ConfigError

    with pytest.raises(ConfigError, match="checkpoint_minutes"):
        TrainConfig(checkpoint_minutes=-1).validate()
    with pytest.raises(ConfigError, match="schedule_steps"):
        TrainConfig(schedule_steps=-1).validate()
    with pytest.raises(ConfigError, match="must exceed"):
        TrainConfig(schedule="cosine", warmup_steps=10, max_steps=100, schedule_steps=5).validate()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_run_file_checkpoints(path):
    with open(path, "rb") as handle:
        run = tomllib.load(handle)
    if path.name == "classifier_scratch.toml":  # an encoder spec for `lmlab finetune --from-scratch`, not a
        assert "train" not in run                 # `lmlab train` run file: finetune checkpoints on Ctrl-C itself
        return
    train = run.get("train", {})
    config = config_io.from_dict(TrainConfig, train, where="train")
    config.validate()
    assert config.checkpoint_every > 0 or config.checkpoint_minutes > 0, f"{path.name} never checkpoints"
    assert config.checkpoint_every <= config.max_steps
