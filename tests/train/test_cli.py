"""``lmlab train RUN.toml key=value ... [--resume] [--out DIR]`` through a family builder row."""

from __future__ import annotations

import json

import pytest
import typer

from lmlab import registry
from lmlab.cli import main as cli_main
from lmlab.cli import train as cli_train
from lmlab.pretrained import load_model_folder
from lmlab.train.log import read_metrics

TINY_ROW = registry.Family("tiny", "_trainkit:TinyLM", recipe="_trainkit:build_tiny")

RUN = """
family = "tiny"
[data]
batch_size = 4
seq_len = 10
[model]
dim = 12
[objective]
keep = 0.6
[train]
max_steps = 6
lr = 0.003
schedule = "cosine"
warmup_steps = 2
eval_every = 3
checkpoint_every = 3
progress = "off"
mfu = false
"""


@pytest.fixture(autouse=True)
def app_with_train(monkeypatch):
    """lmlab's entry point (error handling included) with the train command attached.

    (An app of its own, with a root callback so that typer keeps ``train`` as a subcommand
    even when it is the only command attached.)"""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        """lmlab"""

    cli_train.register(app)
    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_attach", lambda command: None)


@pytest.fixture
def run_file(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.FAMILIES, "tiny", TINY_ROW)
    path = tmp_path / "tiny.toml"
    path.write_text(RUN)
    return path


def _lmlab(args, capsys):
    try:
        cli_main.main(args)
        code = 0
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_resume_and_export(run_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _lmlab(["train", str(run_file), "train.max_steps=3", "--out", str(out)], capsys)
    assert code == 0, err
    assert "step 3" in stdout and "eval loss" in stdout
    # resume, with a longer run (max_steps may change; lr may not)
    code, stdout, err = _lmlab(["train", str(run_file), "--resume", "--out", str(out)], capsys)
    assert code == 0, err
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    config, tensors = load_model_folder(out / "model")
    assert config["family"] == "tiny" and config["config"]["dim"] == 12 and "embed.weight" in tensors
    assert json.loads((out / "run.json").read_text())["model"] == {"dim": 12}
    card = (out / "model" / "README.md").read_text()  # the model card (issue 19)
    assert card.startswith("---\nlibrary_name: lmlab") and "model-index:" in card and "lmlab train" in card
    try:  # the loss plot needs the plot extra
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (out / "loss.png").is_file()
    code, _, err = _lmlab(["train", str(run_file), "train.lr=0.01", "--resume", "--out", str(out)], capsys)
    assert code == 2 and "config mismatch" in err and "train.lr" in err and err.count("\n") == 1
    code, _, err = _lmlab(["train", str(run_file), "model.dim=8", "--resume", "--out", str(out)], capsys)
    assert code == 2 and "run.model.dim" in err
    code, _, err = _lmlab(["train", str(run_file), "--out", str(out)], capsys)
    assert code == 2 and "--resume" in err


@pytest.mark.parametrize("args,message", [
    (["train.lrr=0.1"], "unknown config key 'train.lrr'"),
    (["model.dimm=3"], "unknown config key 'model.dimm'"),
    (["family=tinny"], "no trainable family 'tinny' (did you mean 'tiny'?)"),
    (["train.schedule=noam"], "d_model"),
    (["train.max_steps=zero"], "train.max_steps: expected an integer"),
    (["trian.lr=1"], "did you mean 'train'"),
    (["batch.size=1"], "table [batch] is not used"),
])
def test_bad_configs_are_one_line_errors(run_file, tmp_path, capsys, args, message):
    code, _, err = _lmlab(["train", str(run_file), *args, "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_key_in_the_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry.FAMILIES, "tiny", TINY_ROW)
    path = tmp_path / "bad.toml"
    path.write_text(RUN.replace("max_steps = 6", "max_step = 6"))
    code, _, err = _lmlab(["train", str(path)], capsys)
    assert code == 2 and "unknown config key 'train.max_step'" in err and "max_steps" in err
