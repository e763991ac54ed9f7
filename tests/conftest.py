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
