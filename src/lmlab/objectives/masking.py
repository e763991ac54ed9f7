"""Which tokens a masked language model is asked to predict, and what it sees in their place.

Every function here is pure: a function of token ids (or word/unit ids), a boolean
``special`` mask (True at [CLS]/[SEP]/[PAD]/... — never selected) and a
``torch.Generator``. Nothing loops over tokens in Python; span-style masking loops
over *rounds* (a handful per row), each round vectorised over the batch.

Selection rules (what is predicted)
-----------------------------------
- :func:`select_tokens` — BERT (Devlin et al., 2019, §3.1 and ``create_pretraining_data.py``):
  per row, exactly ``max(1, round(rate · n))`` of the ``n`` maskable tokens, uniformly
  without replacement (rate = 15%).
- :func:`select_units` — whole-word masking (BERT-wwm; Cui et al., 2019 for Chinese) and
  ERNIE-style entity masking (Sun et al., 2019): tokens are grouped into *units* (words,
  or entities); units are taken in random order while their tokens still fit the 15%
  budget, so a unit is masked all-or-nothing.
- :func:`select_spans` — contiguous runs of whole words whose lengths come from a
  sampler, added until the budget is filled (overlaps rejected):
  SpanBERT (Joshi et al., 2020, §3.1): ℓ ~ Geo(p = 0.2) clipped at ℓ_max = 10, mean
  E[ℓ] = Σ ℓ p(1-p)^(ℓ-1) / Σ p(1-p)^(ℓ-1) ≈ 3.8 (:func:`geometric_length_probs`);
  ALBERT (Lan et al., 2020, §4.1 / appendix): n-grams, p(n) = (1/n) / Σ_k 1/k for
  n ∈ {1, 2, 3}, i.e. 6/11, 3/11, 2/11 (:func:`ngram_length_probs`).
  The last span of a row is cut at a word boundary to fit the budget.

Corruption rule (what the model sees): :func:`corrupt` — of the selected positions
80% become [MASK], 10% a random token, 10% stay unchanged (the random branch is half of
the non-[MASK] remainder: ``random_prob = (1 - mask_prob) / 2`` by default).

Word and unit ids: :func:`word_ids_from_pieces` (any subword tokenizer: a piece that does
not start a word continues the previous one), :func:`chinese_word_units` (characters
grouped by a gold or jieba segmentation), :func:`entity_units` (People's Daily
``nr``/``ns``/``nt`` person/place/organisation tags merged into one unit per entity).

What this file does not do: build inputs ([CLS] A [SEP] B) — see ``sentence.py`` — or
compute losses (``mlm.py``, ``span.py``, ``rtd.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UsageError

IGNORE_INDEX = -100

ENTITY_TAGS = ("nr", "ns", "nt")  # People's Daily / PKU: person, place, organisation


# --------------------------------------------------------------------------- helpers


def special_mask(ids: Tensor, special_ids: Sequence[int]) -> Tensor:
    """(B, T) bool: True where ``ids`` is one of ``special_ids`` (padding included)."""
    return torch.isin(ids, torch.as_tensor(list(special_ids), dtype=ids.dtype, device=ids.device))


def _uniform(shape, generator: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=generator)


def budget(n_maskable: Tensor, rate: float) -> Tensor:
    """Tokens to predict per row: max(1, round(rate · n)) where n > 0, else 0."""
    k = torch.floor(n_maskable.to(torch.float64) * rate + 0.5).to(torch.long)
    return torch.where(n_maskable > 0, k.clamp(min=1), torch.zeros_like(k))


def _check_rate(rate: float) -> None:
    if not 0.0 < rate <= 1.0:
        raise UsageError(f"masking rate must be in (0, 1], got {rate}")


# --------------------------------------------------------------------------- token masking


def select_tokens(special: Tensor, generator: torch.Generator, rate: float = 0.15) -> Tensor:
    """(B, T) bool: exactly ``budget(n, rate)`` non-special positions per row, uniformly."""
    _check_rate(rate)
    B, T = special.shape
    scores = _uniform((B, T), generator).masked_fill(special, 2.0)  # specials sort last
    rank = scores.argsort(dim=1).argsort(dim=1)                     # (B, T) rank of each position
    k = budget((~special).sum(dim=1), rate)                          # (B,)
    return (rank < k[:, None]) & ~special


@dataclass
class Corrupted:
    """What the model sees and what it must predict."""

    input_ids: Tensor   # (B, T) ids after corruption
    selected: Tensor    # (B, T) bool, the positions to predict
    labels: Tensor      # (B, T) original id where selected, IGNORE_INDEX elsewhere
    replaced: Tensor    # (B, T) bool, where the input was changed to [MASK] or a random token


def corrupt(ids: Tensor, selected: Tensor, generator: torch.Generator, mask_id: int,
            random_pool: Tensor, mask_prob: float = 0.8, random_prob: float | None = None) -> Corrupted:
    """BERT's 80/10/10: [MASK] with ``mask_prob``, a random token with ``random_prob``, else unchanged.

    ``random_pool`` (1-D ids) is what a random replacement is drawn from, uniformly
    (normally every non-special id). ``random_prob`` defaults to half the remainder.
    """
    random_prob = (1.0 - mask_prob) / 2 if random_prob is None else random_prob
    if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1 + 1e-12:
        raise UsageError(f"mask_prob={mask_prob} and random_prob={random_prob} must be >= 0 and sum to <= 1")
    if random_pool.numel() == 0:
        raise UsageError("random_pool is empty: no token to draw a random replacement from")
    u = _uniform(ids.shape, generator)
    to_mask = selected & (u < mask_prob)
    to_random = selected & (u >= mask_prob) & (u < mask_prob + random_prob)
    draws = random_pool.to(ids.device)[torch.randint(random_pool.numel(), ids.shape, generator=generator)]
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, draws.to(ids.dtype), inputs)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    return Corrupted(inputs, selected, labels, to_mask | to_random)


# --------------------------------------------------------------------------- units: words, entities


def select_units(unit_ids: Tensor, generator: torch.Generator, rate: float = 0.15) -> Tensor:
    """(B, T) bool selecting whole units (words / entities) until ``rate`` of the tokens is reached.

    ``unit_ids`` (B, T): the unit each token belongs to, numbered from 0 inside each row, -1 for
    special/padding tokens (never selected). Units are visited in a random order and taken while
    the running token count stays within ``budget``; a unit is never split.
    """
    _check_rate(rate)
    B = unit_ids.shape[0]
    valid = unit_ids >= 0
    n_units = int(unit_ids.max().item()) + 1 if valid.any() else 0
    if n_units == 0:
        return torch.zeros_like(valid)
    index = unit_ids.clamp(min=0)
    length = torch.zeros(B, n_units, dtype=torch.long).scatter_add_(1, index, valid.long())  # (B, U) tokens/unit
    exists = length > 0
    order_scores = _uniform((B, n_units), generator).masked_fill(~exists, 2.0)
    order = order_scores.argsort(dim=1)                                  # (B, U) units in visiting order
    running = length.gather(1, order).cumsum(dim=1)                      # (B, U) tokens after taking each
    k = budget(valid.sum(dim=1), rate)
    take_sorted = (running <= k[:, None]) & exists.gather(1, order)
    # the first unit is always taken (a row with only long words still predicts something)
    take_sorted[:, 0] |= exists.gather(1, order)[:, 0] & (k > 0)
    take = torch.zeros_like(exists).scatter_(1, order, take_sorted)      # (B, U) back in unit order
    return take.gather(1, index) & valid


def word_ids_from_pieces(ids: Tensor, special: Tensor, starts_word: Tensor,
                         ends_word: Tensor | None = None) -> Tensor:
    """(B, T) word index of each subword piece (from 0 in each row), -1 at specials.

    ``starts_word`` is a (V,) bool table: True for pieces that begin a word (WordPiece: no
    ``##`` prefix; byte-level BPE: a leading ``Ġ``; Unigram: a leading ``▁``). ``ends_word``
    (optional, (V,) bool) marks pieces that close a word (BPE's ``</w>`` suffix): the piece after
    one starts a word. A piece right after a special token always starts a word.
    """
    start = starts_word.to(ids.device)[ids]                                # (B, T)
    after_boundary = torch.ones_like(special)
    after_boundary[:, 1:] = special[:, :-1]
    if ends_word is not None:
        after_boundary[:, 1:] |= ends_word.to(ids.device)[ids[:, :-1]]
    start = (start | after_boundary) & ~special
    word = start.long().cumsum(dim=1) - 1
    return torch.where(special, torch.full_like(word, -1), word)


def word_boundary_tables(tokenizer) -> tuple[Tensor, Tensor | None]:
    """(starts_word, ends_word) (V,) bool tables for a lmlab SubwordTokenizer."""
    vocab = [tokenizer.id_to_token(i) or "" for i in range(tokenizer.vocab_size)]
    kind = tokenizer.kind
    if kind == "wordpiece":
        return torch.tensor([not piece.startswith("##") for piece in vocab]), None
    if kind == "bytebpe":  # Ġ = a space before the piece; punctuation is its own pre-token
        return torch.tensor([piece.startswith("Ġ") or not piece[:1].isalnum() for piece in vocab]), None
    if kind in ("unigram", "bpe"):  # both mark a word start with ▁ (Metaspace pre-tokenizer)
        return torch.tensor([piece.startswith("▁") for piece in vocab]), None
    raise UsageError(f"whole-word masking does not know tokenizer kind {kind!r}")


def chinese_word_units(words: Sequence[str]) -> list[int]:
    """Per character, the index of the word it belongs to: ["中国", "人"] -> [0, 0, 1].

    ``words``: a gold segmentation (People's Daily ``meta["words"]``) or, for raw text,
    ``lmlab.data.tokenizers.chinese.segment(text)`` (jieba).
    """
    out: list[int] = []
    for index, word in enumerate(words):
        out.extend([index] * len(word))
    return out


def entity_units(words: Sequence[str], tags: Sequence[str],
                 entity_tags: Sequence[str] = ENTITY_TAGS) -> tuple[list[int], list[bool]]:
    """ERNIE units over characters: consecutive words with the same entity tag form one unit.

    People's Daily splits a person's name into surname and given name (江/nr 泽民/nr); both
    are one entity. Returns (unit index per character, is-entity flag per unit). Other words
    are one unit each (phrase = word under gold segmentation).
    """
    if len(words) != len(tags):
        raise UsageError(f"{len(words)} words but {len(tags)} tags")
    unit_of_char: list[int] = []
    is_entity: list[bool] = []
    previous_tag = None
    for word, tag in zip(words, tags):
        entity = tag in entity_tags
        if not (entity and tag == previous_tag):
            is_entity.append(entity)
        unit_of_char.extend([len(is_entity) - 1] * len(word))
        previous_tag = tag if entity else None
    return unit_of_char, is_entity


def select_entities(unit_ids: Tensor, entity_flags: Tensor, generator: torch.Generator,
                    rate: float = 0.15) -> Tensor:
    """ERNIE's entity-level stage: whole entities first, then other units, until ``rate``.

    ``entity_flags`` (B, U) bool says which units are entities. Entities are visited before any
    other unit (in random order among themselves), so the budget goes to entities first.
    """
    _check_rate(rate)
    B = unit_ids.shape[0]
    valid = unit_ids >= 0
    n_units = entity_flags.shape[1]
    index = unit_ids.clamp(min=0)
    length = torch.zeros(B, n_units, dtype=torch.long).scatter_add_(1, index, valid.long())
    exists = length > 0
    scores = _uniform((B, n_units), generator) + (~entity_flags).float()  # entities in [0,1), others [1,2)
    scores = scores.masked_fill(~exists, 3.0)
    order = scores.argsort(dim=1)
    running = length.gather(1, order).cumsum(dim=1)
    k = budget(valid.sum(dim=1), rate)
    take_sorted = (running <= k[:, None]) & exists.gather(1, order)
    take_sorted[:, 0] |= exists.gather(1, order)[:, 0] & (k > 0)
    take = torch.zeros_like(exists).scatter_(1, order, take_sorted)
    return take.gather(1, index) & valid


# --------------------------------------------------------------------------- spans


def geometric_length_probs(p: float = 0.2, max_length: int = 10) -> Tensor:
    """SpanBERT: P(ℓ) ∝ p (1-p)^(ℓ-1) for ℓ = 1..max_length, renormalised. (max_length,)"""
    if not 0 < p < 1 or max_length < 1:
        raise UsageError(f"geometric span lengths need 0 < p < 1 and max_length >= 1 (got {p}, {max_length})")
    lengths = torch.arange(1, max_length + 1, dtype=torch.float64)
    probs = p * (1 - p) ** (lengths - 1)
    return probs / probs.sum()


def ngram_length_probs(max_n: int = 3) -> Tensor:
    """ALBERT: P(n) = (1/n) / Σ_k (1/k), n = 1..max_n; for 3: 6/11, 3/11, 2/11. (max_n,)"""
    if max_n < 1:
        raise UsageError(f"max_n must be >= 1, got {max_n}")
    inverse = 1.0 / torch.arange(1, max_n + 1, dtype=torch.float64)
    return inverse / inverse.sum()


def sample_lengths(probs: Tensor, shape, generator: torch.Generator) -> Tensor:
    """Span lengths (1-based) drawn from ``probs`` (P(ℓ = i + 1) = probs[i])."""
    flat = torch.multinomial(probs.float(), int(torch.tensor(shape).prod()), replacement=True, generator=generator)
    return (flat + 1).view(shape)


@dataclass
class SpanSelection:
    selected: Tensor  # (B, T) bool
    span_ids: Tensor  # (B, T) long, which span (from 0 in each row) a selected token is in; -1 elsewhere


def select_spans(word_ids: Tensor, generator: torch.Generator, length_probs: Tensor,
                 rate: float = 0.15, max_rounds: int | None = None) -> SpanSelection:
    """Contiguous whole-word spans, lengths from ``length_probs``, until ``rate`` of tokens.

    Each round, every row draws a length ℓ (in words) and a uniformly random start word
    (among those where ℓ words fit); the span is accepted if it overlaps no earlier span and
    the budget is not exceeded: a span longer than what is left is cut at a word boundary to fit
    (as SpanBERT stops adding tokens once 15% is reached). Rounds continue until every row is
    full or ``max_rounds`` (default 2 · budget + 20) is reached.
    """
    _check_rate(rate)
    B, T = word_ids.shape
    valid = word_ids >= 0
    n_words_row = torch.where(valid, word_ids + 1, torch.zeros_like(word_ids)).max(dim=1).values  # (B,)
    W = int(n_words_row.max().item()) if B else 0
    span_ids = torch.full((B, T), -1, dtype=torch.long)
    if W == 0:
        return SpanSelection(torch.zeros_like(valid), span_ids)
    index = word_ids.clamp(min=0)
    word_len = torch.zeros(B, W, dtype=torch.long).scatter_add_(1, index, valid.long())   # (B, W) tokens/word
    prefix = torch.cat([torch.zeros(B, 1, dtype=torch.long), word_len.cumsum(dim=1)], dim=1)  # (B, W+1)
    word_span = torch.full((B, W), -1, dtype=torch.long)                                 # span of each word
    k = budget(valid.sum(dim=1), rate)
    used = torch.zeros(B, dtype=torch.long)
    n_spans = torch.zeros(B, dtype=torch.long)
    rounds = max_rounds if max_rounds is not None else int(2 * int(k.max().item()) + 20)
    arange_w = torch.arange(W)[None, :]                                                  # (1, W)
    for _ in range(rounds):
        active = used < k
        if not bool(active.any()):
            break
        length = sample_lengths(length_probs, (B,), generator)
        length = torch.minimum(length, n_words_row.clamp(min=1))
        start = (_uniform((B,), generator) * (n_words_row - length + 1).clamp(min=1)).long()
        # the last span of a row is cut (at a word boundary) to what is left of the budget
        limit = prefix.gather(1, start[:, None]) + (k - used)[:, None]                   # (B, 1)
        fit_end = torch.searchsorted(prefix, limit, right=True).squeeze(1) - 1           # words that fit
        end = torch.minimum(start + length, fit_end)                                      # exclusive, in words
        tokens = prefix.gather(1, end[:, None]).squeeze(1) - prefix.gather(1, start[:, None]).squeeze(1)
        in_span = (arange_w >= start[:, None]) & (arange_w < end[:, None])               # (B, W)
        free = ~((word_span >= 0) & in_span).any(dim=1)
        accept = active & free & (end > start) & (n_words_row > 0)
        word_span = torch.where(in_span & accept[:, None], n_spans[:, None].expand(B, W), word_span)
        used = used + torch.where(accept, tokens, torch.zeros_like(tokens))
        n_spans = n_spans + accept.long()
    token_span = torch.where(valid, word_span.gather(1, index), span_ids)
    return SpanSelection(token_span >= 0, token_span)


def span_boundaries(span_ids: Tensor) -> tuple[Tensor, Tensor]:
    """For each position, the left (s - 1) and right (e + 1) boundary positions of its span.

    (B, T) each; meaningful where ``span_ids >= 0``. Used by SpanBERT's SBO.
    """
    B, T = span_ids.shape
    n = int(span_ids.max().item()) + 1 if (span_ids >= 0).any() else 1
    positions = torch.arange(T)[None, :].expand(B, T)
    index = span_ids.clamp(min=0)
    inside = span_ids >= 0
    first = torch.full((B, n), T, dtype=torch.long).scatter_reduce(
        1, index, torch.where(inside, positions, torch.full_like(positions, T)), reduce="amin")
    last = torch.full((B, n), -1, dtype=torch.long).scatter_reduce(
        1, index, torch.where(inside, positions, torch.full_like(positions, -1)), reduce="amax")
    left = (first.gather(1, index) - 1).clamp(0, T - 1)
    right = (last.gather(1, index) + 1).clamp(0, T - 1)
    return left, right


# --------------------------------------------------------------------------- static masking


def row_seed(row: Tensor, salt: int) -> int:
    """A seed that depends only on a row's content and ``salt`` (static masking's duplicate index)."""
    digest = hashlib.blake2b(row.to(torch.int64).contiguous().numpy().tobytes(), digest_size=8,
                             key=int(salt).to_bytes(8, "little", signed=False)).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def static_generators(ids: Tensor, generator: torch.Generator, duplicates: int) -> list[torch.Generator]:
    """One generator per row for static masking (BERT's ``dupe_factor``).

    BERT masks its data once, ``duplicates`` times over (dupe_factor = 10): a sequence is always
    seen with one of its ``duplicates`` fixed masks. Here the mask of a row is a function of the
    row's content and a duplicate index in [0, duplicates) drawn from ``generator``; with
    ``duplicates = 1`` a row gets the same mask every epoch.
    """
    if duplicates < 1:
        raise UsageError(f"static masking needs duplicates >= 1, got {duplicates}")
    picks = torch.randint(duplicates, (ids.shape[0],), generator=generator)
    return [torch.Generator().manual_seed(row_seed(ids[b], int(picks[b]))) for b in range(ids.shape[0])]
