"""Paths and readers for the n-gram tests (the KenLM reference files, real text slices)."""

from __future__ import annotations

from pathlib import Path

KENLM = Path(__file__).resolve().parents[1] / "fixtures" / "kenlm"


def read_sentences(name: str) -> list[list[str]]:
    return [line.split() for line in (KENLM / name).read_text(encoding="utf-8").splitlines()]
