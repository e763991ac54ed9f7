"""The README's CLI tour cannot rot (issue 20): every ``lmlab ...`` line of its code blocks is
parsed by the current CLI as the user would type it -- the command exists, every option is
known, every value has the right type, no required argument is missing -- without running
anything, and every run file it names loads with its overrides.

``benchmarks/readme_tour.py`` runs the same lines for real and times them.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest
import typer

from lmlab.cli import main as cli_main

try:  # typer >= 0.25 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

ROOT = Path(__file__).resolve().parents[2]


def _tour_module():
    spec = importlib.util.spec_from_file_location("readme_tour", ROOT / "benchmarks" / "readme_tour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS = _tour_module().tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))


@functools.cache
def _root_command():
    cli_main._attach(None)
    return typer.main.get_command(cli_main.app)


def parse(argv: list[str]) -> list[str]:
    """Parse ``lmlab ARGV`` down to its leaf command without invoking it; the command path."""
    command = _root_command()
    args = [a for a in argv if a != "--debug"]
    ctx = command.make_context("lmlab", list(args))
    path = []
    while hasattr(command, "resolve_command"):  # a group
        rest = [*ctx._protected_args, *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, list(rest), parent=ctx)
    return path


def test_the_tour_is_found():
    names = {" ".join(argv[:2]) for _, argv in COMMANDS}
    assert len(COMMANDS) >= 40
    assert {"corpus list", "ngram build", "embed train", "eval ppl", "finetune runs/bert/model"} <= names


@pytest.mark.parametrize(("line", "argv"), COMMANDS, ids=[f"README:{n}" for n, _ in COMMANDS])
def test_each_tour_line_is_a_valid_invocation(line, argv):
    try:
        path = parse(argv)
    except click_errors.ClickException as err:
        pytest.fail(f"README.md line {line}: lmlab {' '.join(argv)}: {err.format_message()}")
    assert path, f"README.md line {line} names no command"
    if path == ["train"]:
        from lmlab.recipes.run import load_run

        config = next(a for a in argv[1:] if not a.startswith("-"))
        overrides = [a for a in argv[2:] if "=" in a and not a.startswith("-")]
        run = load_run(ROOT / config, overrides)  # the file exists, parses, and takes the overrides
        assert run.train_config.max_steps >= 1


def test_a_misspelt_option_would_be_caught():
    with pytest.raises(click_errors.NoSuchOption):
        parse(["ngram", "build", "wiki-vital:train", "-o", "x.arpa", "--ordr", "5"])
    with pytest.raises(click_errors.BadParameter):
        parse(["ngram", "build", "wiki-vital:train", "-o", "x.arpa", "--order", "five"])
    with pytest.raises(click_errors.UsageError):
        parse(["ngram", "bild", "wiki-vital:train"])


def test_the_tour_never_writes_one_output_twice():
    """Run in order, a second write to the same -o/--out would be refused (issue 20: mkn5.arpa was written twice)."""
    seen: dict[str, int] = {}
    for line, argv in COMMANDS:
        if "--force" in argv or "--resume" in argv:
            continue
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-o", "--out", "--save-model"):
                assert value not in seen, f"README.md lines {seen[value]} and {line} both write {value}"
                seen[value] = line


def test_train_quick_shortens_the_schedule_but_never_overrules_the_user():
    from lmlab.cli.train import QUICK_STEPS, quick_overrides
    from lmlab.recipes.run import load_run

    lstm = ROOT / "configs" / "lstm.toml"
    added = quick_overrides(lstm, [])
    assert added == [f"train.max_steps={QUICK_STEPS}", f"train.eval_every={QUICK_STEPS}",
                     f"train.checkpoint_every={QUICK_STEPS}", "train.warmup_steps=10"]
    run = load_run(lstm, added + ["train.eval_every=50"])  # the user's own value comes last and wins
    assert run.train_config.max_steps == QUICK_STEPS and run.train_config.eval_every == 50
    assert quick_overrides(lstm, ["train.max_steps=500"]) == []  # the user chose the length
    assert "train.eval_every=100" not in quick_overrides(lstm, ["train.eval_every=7"])
