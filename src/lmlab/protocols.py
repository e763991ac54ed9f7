"""The small contracts between the stages of DESIGN.md's data flow.

Each is a :class:`typing.Protocol`: a stage states what it needs of the one
before it, and nothing imports the concrete class of another stage. The Trainer
types its arguments with :class:`BatchSource`, :class:`EvalSource` and
:class:`Objective`; tasks use :class:`Encoder`; evaluation uses :class:`Scorer`.
This module imports only torch and the standard library, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> ids. Every tokenizer kind in :mod:`lmlab.data.tokenizers` implements it.

    ``isinstance(x, Tokenizer)`` checks only that the names exist (``typing`` cannot check
    signatures); the conformance test in ``tests/data`` checks what they do.
    """

    kind: str
    """The tokenizer's name in :data:`lmlab.data.tokenizers.NAMES` (``"word"``, ``"bytebpe"``, ...)."""

    @property
    def vocab_size(self) -> int:
        """Number of ids: every id is in ``range(vocab_size)``."""

    def token_to_id(self, token: str) -> int | None:
        """The id of one vocabulary entry, or None when ``token`` is not one."""

    def id_to_token(self, index: int) -> str | None:
        """The vocabulary entry of one id, or None when the id has none."""

    def encode(self, text: str) -> list[int]:
        """Ids of one text (no special tokens added)."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(text) for text in texts]``, possibly faster."""

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        """The text of a sequence of ids (without the special tokens if ``skip_specials``)."""

    def special_ids(self) -> dict[str, int]:
        """``{role: id}`` for the special tokens it has; roles are unk, bos, eos, pad, cls, sep, mask."""

    def files(self) -> dict[str, bytes]:
        """The files :meth:`save` writes, by name (what a model folder embeds)."""

    def save(self, folder: str | Path) -> None:
        """Write :meth:`files` into ``folder``; ``lmlab.data.tokenizers.load_tokenizer(folder)`` reads it back."""


@runtime_checkable
class BatchSource(Protocol):
    def batch(self, step: int, shard: int, shards: int) -> Any:
        """Token ids [B, T] (or a tuple starting with them) of part ``shard`` of ``shards`` of optimiser step ``step`` (0-based)."""


@runtime_checkable
class EvalSource(Protocol):
    def eval_batches(self, rank: int, world: int) -> Iterable[Any]:
        """The evaluation batches this process scores (a fixed, deterministic sequence)."""


@runtime_checkable
class Objective(Protocol):
    """A training objective. An objective whose loss is next-token cross-entropy per target
    sets the class attribute ``is_language_model = True``: only then is exp(eval loss) a
    perplexity, and only then does ``lmlab train`` print one."""

    def prepare(self, ids: Any, generator: torch.Generator) -> Any:
        """Turn token ids (what the source returned) into a batch (inputs, targets, masks) using only ``generator``."""

    def loss(self, model: nn.Module, batch: Any) -> Any:
        """``(loss_sum, n_targets)`` or a :class:`LossOutput` (stateful: ``(…, new_state)``)."""


@dataclass
class LossOutput:
    """What ``Objective.loss`` may return instead of a tuple.

    ``metrics`` are extra quantities *summed* over the micro-batch (e.g. ``{"correct": 17}``);
    the Trainer sums them over the window and processes and logs ``metric / n_targets``.
    """

    loss_sum: Tensor
    n_targets: int | Tensor
    state: Any = None
    metrics: dict[str, float | Tensor] = field(default_factory=dict)


@runtime_checkable
class Encoder(Protocol):
    """A model that turns ids into contextual states: what classification, tagging and QA build on."""

    def encode(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(hidden (B, T, C), pooled (B, C) or None) for ids (B, T) and a 1/0 mask (B, T)."""


@runtime_checkable
class FusedCausalLM(Protocol):
    """A causal LM that sums its own next-token cross-entropy without storing (B, T, V) logits."""

    def causal_lm_loss_sum(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """-Σ log P(target) over targets (B, T) that are not -100, given inputs (B, T)."""


@runtime_checkable
class Scorer(Protocol):
    """Anything that assigns log-probabilities to text: an n-gram model, an RNN LM, GPT."""

    def score(self, text: str) -> float:
        """log10 P(text) (as KenLM reports it), sentence markers included."""
