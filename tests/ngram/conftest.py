"""Shared fixtures for the n-gram tests."""

from __future__ import annotations

import pytest
from _ngramkit import read_sentences


@pytest.fixture(scope="session")
def train_sentences() -> list[list[str]]:
    return read_sentences("train.txt")


@pytest.fixture(scope="session")
def test_sentences() -> list[list[str]]:
    return read_sentences("test.txt")
