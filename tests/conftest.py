"""Shared fixtures: the built-in corpora are fetched once per machine into $LMLAB_CACHE."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def wiki_small():
    from lmlab.data import sources

    return sources.load("wiki-vital-small")


@pytest.fixture(scope="session")
def wiki_small_splits(wiki_small):
    return wiki_small.split()


def run_cli(*args: str, env: dict | None = None, input: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m lmlab ARGS`` in a subprocess, as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "lmlab", *args], capture_output=True, text=True,
                          env=full_env, input=input, cwd=cwd, timeout=600)


@pytest.fixture
def cli():
    return run_cli


def run_in_process(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``lmlab ARGV`` run in this process through ``lmlab.cli.main.main``
    (the same entry point and error handling as the console script, without a torch start-up per command)."""
    import contextlib
    import io

    from lmlab.cli.main import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(argv))
    except SystemExit as stop:
        code = stop.code or 0
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def lmlab_main():
    return run_in_process


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest, and the CI machine's two cores are shared by two
    pytest workers. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_bart_folder(path, texts):
    """A tiny random BART (1+1 layers x d=32) saved to ``path`` with a byte-level BPE tokenizer of ``texts``."""
    import torch

    from lmlab.data.tokenizers import train_tokenizer
    from lmlab.models.bart import BartConfig, BartForConditionalGeneration

    tokenizer = train_tokenizer("bytebpe", texts, vocab_size=300)
    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2,
                                                    n_encoder_layers=1, n_decoder_layers=1, d_ff=64, max_length=64,
                                                    dropout=0.0, mask_token_id=4))
    return model.save_pretrained(path, extra_files=tokenizer.files())


@pytest.fixture
def tiny_bart_folder():
    """``tiny_bart_folder(path, texts)`` -> the folder of a tiny random BART (seq2seq task and CLI tests)."""
    return _tiny_bart_folder
