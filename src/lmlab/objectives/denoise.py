"""Denoising sequence-to-sequence pretraining: BART's five noisings (Lewis et al., 2020, §2.2) and MASS
(Song et al., 2019, "MASS: Masked Sequence to Sequence Pre-training for Language Generation").

BART corrupts a document x = ``<s> w_1 .. w_n </s>`` into x̃ and trains the encoder-decoder to
reconstruct x from x̃ (−Σ_t log P(x_t | x_<t, x̃)). The noisings, in the order fairseq's
``denoising_dataset.py`` applies them (each one optional, so they compose):

1. sentence permutation: the document is split into sentences at full stops and a fraction
   ``permute_sentence_ratio`` of them is shuffled (1.0: all);
2. token masking / token deletion / text infilling (:func:`add_whole_word_mask`): the budget is
   ``ceil(mask_ratio · #word starts)`` (BOS and EOS are never word starts); spans start at distinct
   random word starts and extend over whole words. ``mask_length``: ``"subword"`` (every token is a
   "word"), ``"word"`` (length-1 spans of whole words) or ``"span-poisson"`` (lengths ~ Poisson(λ)
   truncated below 128, drawn until they cover the budget, the last one trimmed; a length-0 span
   becomes an inserted ``<mask>``). ``replace_length``: 1 = each span becomes one ``<mask>`` (text
   infilling, token masking), 0 = deleted (token deletion), -1 = every token becomes ``<mask>``.
   ``random_ratio`` of the masks are random tokens instead;
3. insertion (``insert_ratio``): that fraction of ``<mask>`` (or random) tokens inserted at random;
4. document rotation: with probability ``rotate_ratio`` the document is rotated to start at a
   uniformly chosen token (BOS and EOS stay where they are).

:data:`SCHEMES` names the paper's settings: ``token-masking``, ``token-deletion``, ``text-infilling``,
``sentence-permutation``, ``document-rotation`` and ``bart`` (infilling + permutation, the final model).
The mask ratio is 0.3 and λ = 3 (the paper; the authors' shared command used λ = 3.5, fairseq#1899).

MASS masks one contiguous fragment of ⌊len·k⌉ tokens (k = 0.5) of ``<s> w_1 .. w_n </s>`` (positions
1 .. len-1; the start token is never masked), placed at the start with probability 0.2, at the end
with 0.2 and uniformly elsewhere with 0.6 (``shuffle_segments`` of microsoft/MASS); inside it 80% of
the tokens become ``<mask>``, 10% stay, 10% become random tokens. The decoder gets only the fragment,
shifted right (input x_{p-1} at position p-1 predicts x_p, for p in the fragment), with the
fragment's original position ids, and its attention over the encoder masks out the ``<mask>``
positions. The loss is over the fragment only. With a 1-token fragment MASS is a masked LM (the
decoder sees one token); with the whole sentence it is a standard LM (the decoder attends to no
masked encoder state, only to ``<s>``).

Both objectives are pure: ``prepare(rows, generator)`` draws everything from the given
``torch.Generator``; ``loss(model, batch)`` needs the encoder-decoder interface of
:mod:`lmlab.models.bart` (``encode``, ``source_key_mask``, ``decode(..., positions=)``, ``logits``).

Not here: fairseq's ``mask_length="word"`` through a separate BPE dictionary (lmlab passes a
word-start table over its own vocabulary), MASS's language embeddings and back-translation steps
(unsupervised NMT), the multi-segment MASS variant (``lambda_span``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from ..errors import ConfigError, UsageError
from ..protocols import LossOutput
from .seq2seq import seq2seq_loss_sum

MAX_SPAN = 128  # fairseq truncates the Poisson span lengths at k < 128


@dataclass
class NoiseConfig:
    """The BART noising knobs, fairseq ``denoising`` task names; defaults are the final model's (§4)."""

    mask_ratio: float = 0.3
    random_ratio: float = 0.0               # of the masks, random tokens instead (the authors' command: 0.1)
    insert_ratio: float = 0.0
    permute_sentence_ratio: float = 1.0
    rotate_ratio: float = 0.0
    mask_length: Literal["subword", "word", "span-poisson"] = "span-poisson"
    replace_length: Literal[-1, 0, 1] = 1
    poisson_lambda: float = 3.0

    def validate(self) -> None:
        for name in ("mask_ratio", "random_ratio", "insert_ratio", "permute_sentence_ratio", "rotate_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"objective.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_length not in ("subword", "word", "span-poisson"):
            raise ConfigError(f"objective.mask_length must be subword, word or span-poisson, got {self.mask_length!r}")
        if self.replace_length not in (-1, 0, 1):
            raise ConfigError(f"objective.replace_length must be -1, 0 or 1, got {self.replace_length}")
        if not self.poisson_lambda > 0:
            raise ConfigError(f"objective.poisson_lambda must be > 0, got {self.poisson_lambda}")


_NONE = {"mask_ratio": 0.0, "permute_sentence_ratio": 0.0, "rotate_ratio": 0.0, "insert_ratio": 0.0}
SCHEMES: dict[str, NoiseConfig] = {
    "token-masking": NoiseConfig(**{**_NONE, "mask_ratio": 0.3, "mask_length": "subword", "replace_length": 1}),
    "token-deletion": NoiseConfig(**{**_NONE, "mask_ratio": 0.3, "mask_length": "subword", "replace_length": 0}),
    "text-infilling": NoiseConfig(**{**_NONE, "mask_ratio": 0.3, "mask_length": "span-poisson", "replace_length": 1}),
    "sentence-permutation": NoiseConfig(**{**_NONE, "permute_sentence_ratio": 1.0}),
    "document-rotation": NoiseConfig(**{**_NONE, "rotate_ratio": 1.0}),
    "bart": NoiseConfig(),
}


def poisson_probs(lam: float, max_length: int = MAX_SPAN) -> Tensor:
    """P(k) ∝ λ^k e^-λ / k! for k = 0 .. max_length-1 (fairseq's truncated Poisson)."""
    k = torch.arange(max_length, dtype=torch.float64)
    log_p = k * math.log(lam) - lam - torch.lgamma(k + 1)
    p = log_p.exp()
    return p / p.sum()


def span_lengths(budget: int, probs: Tensor, generator: torch.Generator) -> Tensor:
    """Span lengths drawn from ``probs`` until they cover ``budget``, the last trimmed to fit (zeros kept).

    Draws ``budget`` lengths at a time (as fairseq does); returns (n,) with sum == budget.
    """
    lengths = torch.multinomial(probs, budget, replacement=True, generator=generator)
    while int(lengths.sum()) < budget:
        lengths = torch.cat([lengths, torch.multinomial(probs, budget, replacement=True, generator=generator)])
    cum = lengths.cumsum(0)
    i = int((cum < budget).sum())             # first index where the running sum reaches the budget
    lengths = lengths[: i + 1].clone()
    lengths[i] = budget - (int(cum[i - 1]) if i > 0 else 0)
    return lengths


def _random_tokens(n: int, vocab_size: int, low: int, generator: torch.Generator) -> Tensor:
    return torch.randint(low, vocab_size, (n,), generator=generator)


def permute_sentences(tokens: Tensor, sentence_end: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """``<s> S_1 .. S_k </s>`` -> the same with ``ceil(k · ratio)`` of the sentences shuffled.

    ``sentence_end`` (L,) bool marks the last token of each sentence (a full stop); the token before
    the final ``</s>`` always ends one. Sentences are the runs between ends (fairseq ``permute_sentences``).
    """
    L = tokens.shape[0]
    if L <= 3:
        return tokens.clone()
    ends = sentence_end.clone()
    ends[0], ends[-1] = False, False
    ends[-2] = True
    boundaries = (ends[1:-1].nonzero().squeeze(1) + 2).tolist()   # exclusive end index of each sentence
    starts = [1] + boundaries[:-1]
    k = len(boundaries)
    n_permute = math.ceil(k * ratio)
    chosen = torch.randperm(k, generator=generator)[:n_permute]
    ordering = torch.arange(k)
    ordering[chosen] = chosen[torch.randperm(n_permute, generator=generator)]
    pieces = [tokens[:1]] + [tokens[starts[i]:boundaries[i]] for i in ordering.tolist()] + [tokens[-1:]]
    return torch.cat(pieces)


def add_insertion_noise(tokens: Tensor, ratio: float, mask_id: int, random_ratio: float, vocab_size: int,
                        random_low: int, generator: torch.Generator) -> Tensor:
    """``ceil(L · ratio)`` ``<mask>`` tokens (``random_ratio`` of them random tokens) inserted at random
    positions strictly between the first and the last token."""
    if ratio == 0.0:
        return tokens
    L = tokens.shape[0]
    n = math.ceil(L * ratio)
    noise = torch.randperm(L + n - 2, generator=generator)[:n] + 1
    is_noise = torch.zeros(L + n, dtype=torch.bool)
    is_noise[noise] = True
    result = torch.full((L + n,), -1, dtype=torch.long)
    n_random = math.ceil(n * random_ratio)
    result[noise[n_random:]] = mask_id
    result[noise[:n_random]] = _random_tokens(n_random, vocab_size, random_low, generator)
    result[~is_noise] = tokens
    return result


def add_whole_word_mask(tokens: Tensor, word_start: Tensor, config: NoiseConfig, mask_id: int, vocab_size: int,
                        random_low: int, generator: torch.Generator) -> Tensor:
    """Token masking / token deletion / text infilling of one document ``<s> .. </s>`` (see the module docstring).

    ``word_start`` (L,) bool: which tokens begin a word (all True for ``mask_length="subword"``);
    the first and last token are never word starts.
    """
    is_start = word_start.clone()
    is_start[0], is_start[-1] = False, False
    budget = math.ceil(int(is_start.sum()) * config.mask_ratio)
    if budget == 0:
        return tokens
    n_inserts = 0
    if config.mask_length == "span-poisson":
        lengths = span_lengths(budget, poisson_probs(config.poisson_lambda), generator)
        n_spans = lengths.shape[0]
        lengths = lengths[lengths > 0]
        n_inserts = n_spans - lengths.shape[0]
        if lengths.shape[0] == 0:
            return add_insertion_noise(tokens, n_inserts / tokens.shape[0], mask_id, config.random_ratio,
                                       vocab_size, random_low, generator)
    else:
        lengths = torch.ones(budget, dtype=torch.long)
    starts = is_start.nonzero().squeeze(1)
    n_spans = min(lengths.shape[0], starts.shape[0])
    lengths = lengths[:n_spans]
    indices = starts[torch.randperm(starts.shape[0], generator=generator)[:n_spans]]
    mask_random = torch.rand(n_spans, generator=generator) < config.random_ratio
    source = tokens.clone()
    keep = torch.ones(source.shape[0], dtype=torch.bool)
    stop = is_start.long()
    stop[-1] = 255                        # a span never runs over the final </s>
    if config.replace_length == 0:
        keep[indices] = False
    else:
        source[indices] = mask_id
        source[indices[mask_random]] = _random_tokens(int(mask_random.sum()), vocab_size, random_low, generator)
    lengths = lengths - 1
    # extend every span one token at a time, over the rest of its word and then its next lengths-1 words
    while indices.shape[0] > 0:
        lengths = lengths - stop[indices + 1]
        going = lengths >= 0
        indices, mask_random, lengths = indices[going] + 1, mask_random[going], lengths[going]
        if config.replace_length != -1:
            keep[indices] = False
        else:
            source[indices] = mask_id
            source[indices[mask_random]] = _random_tokens(int(mask_random.sum()), vocab_size, random_low,
                                                          generator)
    source = source[keep]
    if n_inserts > 0:
        source = add_insertion_noise(source, n_inserts / source.shape[0], mask_id, config.random_ratio,
                                     vocab_size, random_low, generator)
    return source


def add_rolling_noise(tokens: Tensor, generator: torch.Generator) -> Tensor:
    """Document rotation: ``<s> a .. z </s>`` -> ``<s> t .. z a .. s </s>`` for a uniform start t."""
    L = tokens.shape[0]
    offset = int(torch.randint(1, max(1, L - 1) + 1, (1,), generator=generator))
    return torch.cat([tokens[:1], tokens[offset:-1], tokens[1:offset], tokens[-1:]])


@dataclass
class Noiser:
    """Applies a :class:`NoiseConfig` to one document (1-D ids, ``<s> .. </s>``, no padding).

    ``word_start_table`` (V,) bool over the vocabulary (used when ``mask_length`` is ``word`` or
    ``span-poisson``; None treats every token as a word start); ``sentence_end_ids`` are the full-stop ids.
    """

    config: NoiseConfig
    vocab_size: int
    mask_id: int
    sentence_end_ids: tuple[int, ...] = ()
    word_start_table: Tensor | None = None
    random_low: int = 0                    # random replacements are drawn from [random_low, vocab_size)

    def __call__(self, tokens: Tensor, generator: torch.Generator) -> Tensor:
        c = self.config
        source = tokens
        if c.permute_sentence_ratio > 0:
            ends = torch.isin(source, torch.tensor(self.sentence_end_ids, dtype=torch.long))
            source = permute_sentences(source, ends, c.permute_sentence_ratio, generator)
        if c.mask_ratio > 0:
            if c.mask_length == "subword" or self.word_start_table is None:
                starts = torch.ones(source.shape[0], dtype=torch.bool)
            else:
                starts = self.word_start_table[source]
            source = add_whole_word_mask(source, starts, c, self.mask_id, self.vocab_size, self.random_low, generator)
        if c.insert_ratio > 0:
            source = add_insertion_noise(source, c.insert_ratio, self.mask_id, c.random_ratio, self.vocab_size,
                                         self.random_low, generator)
        if c.rotate_ratio > 0 and float(torch.rand(1, generator=generator)) < c.rotate_ratio:
            source = add_rolling_noise(source, generator)
        return source


def _strip(row: Tensor, pad_id: int) -> Tensor:
    return row[row != pad_id]


def _pad(seqs: list[Tensor], pad_id: int) -> Tensor:
    out = torch.full((len(seqs), max(1, max(s.shape[0] for s in seqs))), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


@dataclass
class DenoiseBatch:
    source: Tensor        # (B, S) noised documents, right-padded
    decoder_input: Tensor  # (B, T) </s> <s> x_1 .. x_n  (the target shifted right)
    target: Tensor        # (B, T) <s> x_1 .. x_n </s>, pad where there is none


class DenoisingObjective:
    """BART: rows (B, L) of ``<s> .. </s>`` documents (right-padded) -> reconstruct each from its noised copy.

    ``loss`` is Σ −log P(x_t | x_<t, x̃) over the target tokens (the Trainer divides by their number).
    """

    is_language_model = True  # next-token cross-entropy of the decoder (a reconstruction perplexity)

    def __init__(self, noiser: Noiser, pad_id: int, decoder_start_id: int) -> None:
        self.noiser = noiser
        self.pad_id = pad_id
        self.decoder_start_id = decoder_start_id

    def prepare(self, ids: Tensor, generator: torch.Generator) -> DenoiseBatch:
        docs = [_strip(row, self.pad_id) for row in ids]
        if any(d.shape[0] < 2 for d in docs):
            raise UsageError("a denoising row needs at least <s> and </s>")
        sources = [self.noiser(d, generator) for d in docs]
        target = _pad(docs, self.pad_id)
        decoder_input = target.new_full(target.shape, self.pad_id)
        decoder_input[:, 1:] = target[:, :-1]
        decoder_input[:, 0] = self.decoder_start_id
        decoder_input = decoder_input.masked_fill(target == self.pad_id, self.pad_id)
        return DenoiseBatch(_pad(sources, self.pad_id), decoder_input, target)

    def loss(self, model, batch: DenoiseBatch) -> LossOutput:
        logits = model(batch.source, batch.decoder_input)  # (B, T, V)
        total, count = seq2seq_loss_sum(logits, batch.target, self.pad_id)
        return LossOutput(total, count)


# --------------------------------------------------------------------------- MASS


@dataclass
class MassConfig:
    """MASS's knobs (microsoft/MASS ``MASS-unsupNMT``): fragment fraction, placement, 80/10/10 inside."""

    word_mass: float = 0.5
    start_prob: float = 0.2                # fragment at the sentence start
    end_prob: float = 0.2                  # at the end; the rest uniformly placed
    keep_rand: tuple[float, float, float] = field(default=(0.8, 0.1, 0.1))  # mask / keep / random

    def validate(self) -> None:
        if not 0.0 < self.word_mass <= 1.0:
            raise ConfigError(f"objective.word_mass must be in (0, 1], got {self.word_mass}")
        if self.start_prob < 0 or self.end_prob < 0 or self.start_prob + self.end_prob > 1:
            raise ConfigError("objective.start_prob and end_prob must be >= 0 and sum to at most 1")
        probs = tuple(self.keep_rand)
        if len(probs) != 3 or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
            raise ConfigError(f"objective.keep_rand must be three probabilities summing to 1, got {list(probs)}")


@dataclass
class MassBatch:
    source: Tensor          # (B, S) the sentence with its fragment masked, right-padded
    memory_mask: Tensor     # (B, 1, 1, S) True at encoder states the decoder may attend to (not <mask>, not pad)
    decoder_input: Tensor   # (B, K) x_{p-1} for the fragment positions p
    positions: Tensor       # (B, K) p - 1, the decoder's position ids
    target: Tensor          # (B, K) x_p (pad where a row's fragment is shorter)


def mass_fragment(length: int, config: MassConfig, generator: torch.Generator) -> tuple[int, int]:
    """(start, k): the fragment covers positions start .. start+k-1 of a sentence of ``length`` tokens
    (start token at 0 never masked); k = max(1, round(length · word_mass)), at most length - 1."""
    k = min(max(1, round(length * config.word_mass)), length - 1)
    free = length - 1 - k                    # unmasked positions besides the start token
    p = float(torch.rand(1, generator=generator))
    if p >= 1.0 - config.start_prob:
        start = 1
    elif p >= 1.0 - config.start_prob - config.end_prob:
        start = 1 + free
    else:
        start = 1 + int(torch.randint(0, free + 1, (1,), generator=generator))
    return start, k


class MassObjective:
    """MASS: rows (B, L) of ``<s> .. </s>`` sentences -> predict the masked fragment (see the module docstring)."""

    is_language_model = False  # the loss covers the fragment only, so exp(loss) is no perplexity of the text

    def __init__(self, config: MassConfig, vocab_size: int, mask_id: int, pad_id: int, random_low: int = 0) -> None:
        config.validate()
        self.config = config
        self.vocab_size = vocab_size
        self.mask_id = mask_id
        self.pad_id = pad_id
        self.random_low = random_low
        self._keep_rand = torch.tensor(config.keep_rand, dtype=torch.float64)

    def with_fragment(self, word_mass: float) -> MassObjective:
        """The same objective with another fragment fraction (for the k sweep)."""
        return MassObjective(replace(self.config, word_mass=word_mass), self.vocab_size, self.mask_id, self.pad_id,
                             self.random_low)

    def prepare(self, ids: Tensor, generator: torch.Generator) -> MassBatch:
        sources, inputs, positions, targets = [], [], [], []
        for row in ids:
            words = _strip(row, self.pad_id)
            if words.shape[0] < 2:
                raise UsageError("a MASS row needs at least <s> and one more token")
            start, k = mass_fragment(words.shape[0], self.config, generator)
            pos = torch.arange(start, start + k)
            targets.append(words[pos].clone())
            inputs.append(words[pos - 1].clone())
            positions.append(pos - 1)
            choice = torch.multinomial(self._keep_rand, k, replacement=True, generator=generator)
            masked = words.clone()
            fragment = masked[pos]
            fragment = torch.where(choice == 0, torch.full_like(fragment, self.mask_id), fragment)
            randoms = _random_tokens(k, self.vocab_size, self.random_low, generator)
            masked[pos] = torch.where(choice == 2, randoms, fragment)
            sources.append(masked)
        source = _pad(sources, self.pad_id)
        memory_mask = ((source != self.pad_id) & (source != self.mask_id))[:, None, None, :]
        return MassBatch(source, memory_mask, _pad(inputs, self.pad_id), _pad(positions, 0),
                         _pad(targets, self.pad_id))

    def loss(self, model, batch: MassBatch) -> LossOutput:
        memory = model.encode(batch.source)
        states = model.decode(batch.decoder_input, memory, batch.memory_mask, positions=batch.positions)
        total, count = seq2seq_loss_sum(model.logits(states), batch.target, self.pad_id)
        return LossOutput(total, count)
