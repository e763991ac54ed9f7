from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from lmlab import config, io, pretrained
from lmlab.errors import CheckpointError, ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    kind: Literal["adamw", "sgd"] = "adamw"


@dataclass
class Run:
    name: str = "run"
    steps: int = 10
    seed: int | None = None
    optim: Optim = field(default_factory=Optim)
    tags: list[str] = field(default_factory=list)


def test_round_trip_json_and_toml(tmp_path):
    run = Run(name="x", steps=5, seed=3, optim=Optim(lr=0.1, kind="sgd"), tags=["a"])
    config.save(run, tmp_path / "run.json")
    assert config.load(Run, tmp_path / "run.json") == run
    (tmp_path / "run.toml").write_text('name = "t"\nsteps = 7\n[optim]\nlr = 0.5\n')
    assert config.load(Run, tmp_path / "run.toml") == Run(name="t", steps=7, optim=Optim(lr=0.5))


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr' .*did you mean 'lr'"):
        config.from_dict(Run, {"optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="unknown config key 'stepz'"):
        config.from_dict(Run, {"stepz": 1})


def test_types_checked():
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        config.from_dict(Run, {"steps": "ten"})
    with pytest.raises(ConfigError, match="optim.kind"):
        config.from_dict(Run, {"optim": {"kind": "adam"}})
    assert config.from_dict(Run, {"optim": {"lr": 1}}).optim.lr == 1.0  # int -> float is fine


def test_overrides():
    run = config.apply_overrides(Run, {"steps": 3}, ["optim.lr=0.25", "seed=7", "name=abc", "tags=[\"q\"]"])
    assert run.optim.lr == 0.25 and run.seed == 7 and run.name == "abc" and run.tags == ["q"] and run.steps == 3
    with pytest.raises(ConfigError, match="unknown config key 'optim.beta'"):
        config.apply_overrides(Run, {}, ["optim.beta=1"])
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        config.apply_overrides(Run, {}, ["steps=1.5"])
    with pytest.raises(ConfigError, match="key=value"):
        config.apply_overrides(Run, {}, ["steps"])


def test_malformed_config_files(tmp_path):
    (tmp_path / "bad.toml").write_text("steps = = 3")
    with pytest.raises(ConfigError, match="malformed toml"):
        config.load(Run, tmp_path / "bad.toml")
    (tmp_path / "bad.json").write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ConfigError, match="invalid UTF-8"):
        config.load(Run, tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="not found"):
        config.load(Run, tmp_path / "none.toml")


def test_model_folder_round_trip_and_corruption(tmp_path):
    module = torch.nn.Linear(3, 2)
    folder = pretrained.save_model_folder(tmp_path / "m", "toy", {"d": 3}, module.state_dict(), {"vocab.txt": b"a\n"})
    cfg, tensors = pretrained.load_model_folder(folder)
    assert cfg == {"family": "toy", "config": {"d": 3}} and (folder / "vocab.txt").read_bytes() == b"a\n"
    other = torch.nn.Linear(3, 2)
    pretrained.load_state_strict(other, tensors, str(folder))
    assert torch.equal(other.weight, module.weight)
    with pytest.raises(CheckpointError, match="weights do not match"):
        pretrained.load_state_strict(torch.nn.Linear(3, 3, bias=False), tensors, str(folder))
    weights = folder / pretrained.WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[:-5])
    with pytest.raises(CheckpointError, match="truncated"):
        pretrained.load_model_folder(folder)
    weights.write_bytes(b"\xff" * 3)
    with pytest.raises(CheckpointError, match="truncated"):
        pretrained.load_model_folder(folder)
    weights.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="bad safetensors header"):
        pretrained.load_model_folder(folder)
    (folder / pretrained.CONFIG_NAME).write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        pretrained.load_model_folder(folder)
    with pytest.raises(CheckpointError, match="not found"):
        pretrained.load_model_folder(tmp_path / "nope")


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    target = tmp_path / "out"
    with io.atomic_dir(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as tmp:
            (tmp / "a").write_text("new")
            raise RuntimeError("crash while writing")
    assert (target / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        with io.atomic_dir(target, overwrite=False):
            pass
    io.atomic_write_text(tmp_path / "f.json", json.dumps({"a": 1}))
    assert json.loads((tmp_path / "f.json").read_text()) == {"a": 1}
