"""What every tokenizer in this package shares: the names of special-token roles, and writing files.

The interface itself is :class:`lmlab.protocols.Tokenizer`. Two helpers live here so that
the word and subword tokenizers state their specials and write their folders the same way:

- :func:`find_special_ids` turns a tokenizer's table of ``(role, token)`` pairs into
  ``{role: id}`` for the tokens its vocabulary really has. The roles are
  :data:`ROLES`; a tokenizer lists a role more than once when several tokens can play
  it (the first one present wins: RoBERTa's ``<s>`` before GPT-2's ``<|endoftext|>``).
- :func:`write_files` writes what ``files()`` returns, so ``save`` and ``files`` cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ...io import atomic_write_bytes

ROLES = ("unk", "bos", "eos", "pad", "cls", "sep", "mask")


def find_special_ids(table: Iterable[tuple[str, str]], token_to_id: Callable[[str], int | None]) -> dict[str, int]:
    """``{role: id}`` for each role in ``table`` whose token is in the vocabulary (first match per role)."""
    ids: dict[str, int] = {}
    for role, token in table:
        if role in ids:
            continue
        index = token_to_id(token)
        if index is not None:
            ids[role] = index
    return ids


def write_files(folder: str | Path, files: dict[str, bytes]) -> None:
    """Write each ``name -> bytes`` into ``folder`` (created if missing), one atomic write per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
