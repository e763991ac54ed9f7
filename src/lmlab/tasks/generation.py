"""Text generation from any lmlab autoregressive decoder: greedy, sampling, beam search.

Decoding strategies (Holtzman et al., 2020 "The Curious Case of Neural Text Degeneration" for
top-p; Keskar et al., 2019 "CTRL" for the repetition penalty; Wu et al., 2016 "Google's NMT" for
the length-normalised beam score):

- greedy: x_t = argmax_v p(v | x_<t)
- sampling from softmax(z / τ) restricted to the k most likely tokens (top-k) and/or to the
  smallest set whose probability reaches p (top-p, the nucleus)
- repetition penalty θ: a logit z_v of a token already in the sequence becomes z_v/θ if z_v > 0,
  else z_v·θ (CTRL's rule, as in Hugging Face)
- beam search over K beams, finished hypotheses ranked by  Σ log p / |y|^α  (α = ``length_penalty``,
  |y| the number of generated tokens, stop token included)
- no-repeat-n-gram (``no_repeat_ngram_size`` = n): a token that would complete an n-gram already in
  the sequence gets probability 0 (Paulus et al., 2018; fairseq's and Hugging Face's rule)
- ``min_new_tokens``: the stop tokens get probability 0 until that many tokens are generated

Bans (no-repeat-n-gram, min length) are applied as Hugging Face applies them: to the logits before
greedy/sampling, and to the log-probabilities (after the log-softmax, not renormalised) in beam
search, so that beam scores match HF's ``generate`` with the same settings.

Every step feeds the model only the new token: the model keeps the keys and values of the earlier
positions in a :class:`lmlab.nn.attention.KVCache` (``use_cache=False`` recomputes the whole
prefix each step instead, which the tests use as the reference). Prompts of different lengths go
in one batch left-padded, with an ``attention_mask`` (1 = real token); positions count real
tokens only. Generation stops per sequence at a stop token (kept in the output, then
``pad_token_id``), or after ``max_new_tokens``.

A model plugs in by providing three things (GPTLanguageModel does; the encoder-decoder
Transformer does through a small adapter that holds the encoder's output):

    new_cache(batch_size, max_length) -> KVCache
    next_token_logits(input_ids, attention_mask, cache) -> (B, V) logits of the next token
    max_positions -> int (longest sequence it can take)

Encoder-decoders (every family with the ``translate`` capability) go through :func:`translate`:
the model's ``generation_steps(src_ids, src_mask)`` returns such a decoder over the encoded
sources (with ``decoder_start_token_id``, ``eos_token_id`` and ``pad_token_id``), and every
strategy above runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ..errors import UsageError
from ..nn.attention import KVCache


class Decoder(Protocol):
    max_positions: int

    def new_cache(self, batch_size: int, max_length: int) -> KVCache: ...

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor | None,
                          cache: KVCache | None) -> Tensor: ...


@dataclass
class GenerationConfig:
    max_new_tokens: int = 50
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0                 # 0 = off
    top_p: float = 1.0             # 1.0 = off
    repetition_penalty: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0
    stop_token_ids: list[int] = field(default_factory=list)
    pad_token_id: int = 0
    use_cache: bool = True
    seed: int | None = None
    no_repeat_ngram_size: int = 0  # 0 = off
    min_new_tokens: int = 0        # stop tokens banned before this many new tokens

    def validate(self) -> None:
        # written as `not (x > 0)` so that NaN fails too
        if self.max_new_tokens < 0:
            raise UsageError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not self.temperature > 0 or self.temperature == float("inf"):
            raise UsageError(f"temperature must be > 0 (and finite), got {self.temperature}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0 or self.repetition_penalty == float("inf"):
            raise UsageError(f"repetition_penalty must be > 0 (and finite), got {self.repetition_penalty}")
        if self.num_beams < 1:
            raise UsageError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.length_penalty != self.length_penalty or abs(self.length_penalty) == float("inf"):
            raise UsageError(f"length_penalty must be a finite number, got {self.length_penalty}")
        if self.num_beams > 1 and self.do_sample:
            raise UsageError("beam search is deterministic: use num_beams=1 with sampling")
        if self.no_repeat_ngram_size < 0:
            raise UsageError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.min_new_tokens < 0:
            raise UsageError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")


# --------------------------------------------------------------------------- logits processing


def apply_repetition_penalty(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """CTRL: divide positive / multiply negative logits of every token already in ``previous`` (B, T)."""
    seen = logits.gather(1, previous)  # (B, T)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, previous, seen)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row; the rest become -inf."""
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability sum reaches p (at least one)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(dim=-1) - probs        # mass of the strictly more likely tokens
    drop_sorted = before >= p
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def banned_ngram_tokens(previous: Tensor, n: int, vocab_size: int) -> Tensor:
    """(B, V) boolean: the tokens that would complete an n-gram already in ``previous`` (B, L).

    Every window of n tokens is compared (vectorised) with the last n - 1 tokens; the n-th token of
    each matching window is banned (n = 1 bans every token seen). Nothing is banned before the
    sequence holds a whole n-gram.
    """
    B, L = previous.shape
    banned = torch.zeros(B, vocab_size, dtype=torch.bool, device=previous.device)
    if n == 1:
        return banned.scatter(1, previous, True)
    if n < 1 or L < n:
        return banned
    windows = previous.unfold(1, n, 1)                      # (B, L - n + 1, n)
    tail = previous[:, L - n + 1:]                         # (B, n - 1): the n-gram being completed
    match = (windows[:, :, :-1] == tail[:, None, :]).all(dim=-1)  # (B, L - n + 1)
    hits = torch.zeros(B, vocab_size, dtype=torch.long, device=previous.device)
    return hits.scatter_reduce(1, windows[:, :, -1], match.long(), reduce="amax").bool()


def ban_tokens(scores: Tensor, previous: Tensor, n_generated: int, config: GenerationConfig) -> Tensor:
    """-inf for the tokens no-repeat-n-gram and min_new_tokens rule out (each only when switched on)."""
    if config.no_repeat_ngram_size > 0:
        scores = scores.masked_fill(banned_ngram_tokens(previous, config.no_repeat_ngram_size, scores.shape[-1]),
                                    float("-inf"))
    if n_generated < config.min_new_tokens and config.stop_token_ids:
        scores = scores.clone()
        scores[:, config.stop_token_ids] = float("-inf")
    return scores


def process_logits(logits: Tensor, previous: Tensor, config: GenerationConfig) -> Tensor:
    """Repetition penalty, temperature, top-k, top-p — in that order (each only when switched on)."""
    if config.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, previous, config.repetition_penalty)
    if config.do_sample:
        if config.temperature != 1.0:
            logits = logits / config.temperature
        if config.top_k > 0:
            logits = top_k_filter(logits, config.top_k)
        if config.top_p < 1.0:
            logits = top_p_filter(logits, config.top_p)
    return logits


# --------------------------------------------------------------------------- greedy and sampling


def _check(model: Decoder, input_ids: Tensor, attention_mask: Tensor | None, config: GenerationConfig) -> None:
    config.validate()
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise UsageError(f"input_ids must be (batch, length) with length >= 1, got {tuple(input_ids.shape)}")
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise UsageError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape "
                             f"{tuple(input_ids.shape)}")
        if bool((attention_mask[:, -1] == 0).any()):
            raise UsageError("batched prompts must be left-padded (the last position of each row is padding)")
    total = input_ids.shape[1] + config.max_new_tokens
    if total > model.max_positions:
        raise UsageError(f"prompt ({input_ids.shape[1]} tokens) + max_new_tokens ({config.max_new_tokens}) "
                         f"= {total} exceeds the model's {model.max_positions} positions")


@torch.no_grad()
def generate(model: Decoder, input_ids: Tensor, attention_mask: Tensor | None = None, *,
             config: GenerationConfig | None = None,
             streamer: Callable[[Tensor], None] | None = None) -> Tensor:
    """Continue each prompt in ``input_ids`` (B, T); returns (B, T + n) ids, n <= max_new_tokens.

    ``streamer`` is called after every step with the (B,) new token ids (pad for finished rows).
    Beam search (``num_beams > 1``) goes to :func:`beam_search` and does not stream.
    """
    config = config or GenerationConfig()
    _check(model, input_ids, attention_mask, config)
    if config.num_beams > 1:
        return beam_search(model, input_ids, attention_mask, config=config)
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    generator = None
    if config.do_sample:
        generator = torch.Generator(device=input_ids.device)
        generator.manual_seed(config.seed if config.seed is not None else torch.seed())
    B = input_ids.shape[0]
    stop = torch.tensor(config.stop_token_ids, dtype=torch.long, device=input_ids.device)
    cache = model.new_cache(B, input_ids.shape[1] + config.max_new_tokens) if config.use_cache else None
    ids, mask = input_ids, attention_mask
    step_input = input_ids
    finished = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    try:
        for step in range(config.max_new_tokens):
            logits = model.next_token_logits(step_input if cache is not None else ids, mask, cache)  # (B, V)
            logits = ban_tokens(logits.float(), ids, step, config)
            logits = process_logits(logits, ids, config)
            if config.do_sample:
                next_ids = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            else:
                next_ids = logits.argmax(dim=-1)  # (B,)
            next_ids = next_ids.masked_fill(finished, config.pad_token_id)
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, (~finished).to(mask.dtype)[:, None]], dim=1)
            if streamer is not None:
                streamer(next_ids)
            if len(config.stop_token_ids):
                finished = finished | torch.isin(next_ids, stop)
                if bool(finished.all()):
                    break
            step_input = next_ids[:, None]  # (B,) -> (B, 1)
    finally:
        if was_training:
            model.train()
    return ids


# --------------------------------------------------------------------------- beam search


@torch.no_grad()
def beam_search(model: Decoder, input_ids: Tensor, attention_mask: Tensor | None = None, *,
                config: GenerationConfig | None = None) -> Tensor:
    """Beam search with K = ``num_beams``; returns the best hypothesis per prompt, (B, T + n), pad-filled.

    Each step extends every live beam by every token, keeps the 2K best continuations per prompt,
    moves those ending in a stop token to the finished list (scored Σ log p / n^α), and continues
    the K best others. A prompt is done once it has K finished hypotheses and no live beam can still
    beat the worst of them; at the end live beams compete with the finished ones.
    """
    config = config or GenerationConfig(num_beams=4)
    _check(model, input_ids, attention_mask, config)
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    B, T0 = input_ids.shape
    K = config.num_beams
    device = input_ids.device
    stop_set = set(config.stop_token_ids)
    ids = input_ids.repeat_interleave(K, dim=0)  # (B, T) -> (B*K, T)
    mask = attention_mask.repeat_interleave(K, dim=0) if attention_mask is not None else None
    cache = model.new_cache(B * K, T0 + config.max_new_tokens) if config.use_cache else None
    beam_scores = torch.full((B, K), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0  # all beams start identical: only the first one may expand at step 1
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(B)]
    done = [False] * B
    step_input = ids
    alpha = config.length_penalty
    try:
        for step in range(config.max_new_tokens):
            logits = model.next_token_logits(step_input if cache is not None else ids, mask, cache)
            logits = process_logits(logits.float(), ids, config)
            V = logits.shape[-1]
            log_probs = ban_tokens(torch.log_softmax(logits, dim=-1), ids, step, config)
            scores = log_probs + beam_scores.view(-1, 1)  # (B*K, V)
            top_scores, top_flat = scores.view(B, K * V).topk(2 * K, dim=1)       # (B, 2K)
            top_beam, top_token = top_flat // V, top_flat % V
            n_generated = step + 1
            next_scores = torch.full((B, K), float("-inf"), device=device)
            next_beam = torch.zeros(B, K, dtype=torch.long, device=device)
            next_token = torch.full((B, K), config.pad_token_id, dtype=torch.long, device=device)
            for b in range(B):  # bookkeeping over 2K candidates per prompt (not per vocabulary entry)
                if done[b]:
                    continue
                slot = 0
                for score, beam, token in zip(top_scores[b].tolist(), top_beam[b].tolist(),
                                              top_token[b].tolist()):
                    if score == float("-inf"):
                        break
                    if token in stop_set:
                        hypothesis = torch.cat([ids[b * K + beam], ids.new_tensor([token])])
                        finished[b].append((score / n_generated ** alpha, hypothesis))
                        finished[b].sort(key=lambda item: item[0], reverse=True)
                        del finished[b][K:]
                    else:
                        next_scores[b, slot], next_beam[b, slot], next_token[b, slot] = score, beam, token
                        slot += 1
                    if slot == K:
                        break
                if len(finished[b]) >= K:
                    best_live = next_scores[b].max().item() / n_generated ** alpha
                    done[b] = best_live <= finished[b][-1][0]
            if all(done):
                break
            index = (torch.arange(B, device=device)[:, None] * K + next_beam).view(-1)  # (B*K,)
            ids = torch.cat([ids.index_select(0, index), next_token.view(-1, 1)], dim=1)
            if mask is not None:
                mask = torch.cat([mask.index_select(0, index), mask.new_ones(B * K, 1)], dim=1)
            if cache is not None:
                cache.reorder(index)
            beam_scores = next_scores
            step_input = next_token.view(-1, 1)
        n_generated = ids.shape[1] - T0
        for b in range(B):
            if done[b]:
                continue
            for k in range(K):
                if beam_scores[b, k] > float("-inf") and n_generated > 0:
                    finished[b].append((beam_scores[b, k].item() / n_generated ** alpha, ids[b * K + k]))
            if not finished[b]:
                finished[b].append((0.0, ids[b * K]))
    finally:
        if was_training:
            model.train()
    best = [max(hyps, key=lambda item: item[0])[1] for hyps in finished]
    length = max(len(seq) for seq in best)
    out = torch.full((B, length), config.pad_token_id, dtype=torch.long, device=device)
    for b, seq in enumerate(best):
        out[b, : len(seq)] = seq
    return out


def translate(model, src_ids: Tensor, max_new_tokens: int = 64, num_beams: int = 1,
              length_penalty: float = 1.0, *, src_mask: Tensor | None = None,
              config: GenerationConfig | None = None) -> Tensor:
    """Outputs (B, n) of any encoder-decoder (a family with the ``translate`` capability) for
    sources (B, S), without the decoder's start token.

    ``config`` gives every strategy of :func:`generate` (greedy, sampling with top-k / top-p,
    beam search with a length penalty, no-repeat-n-gram, min/max new tokens); without it,
    greedy (``num_beams=1``) or beam search with ``max_new_tokens`` and ``length_penalty``. The
    model's EOS is always a stop token and its pad fills finished rows. ``src_mask`` (B, S),
    1 = real token, defaults to ``src_ids != pad``. Each row ends with EOS (then pad) unless
    ``max_new_tokens`` ran out first.
    """
    import dataclasses

    if not hasattr(model, "generation_steps"):
        raise UsageError(f"{type(model).__name__} is not an encoder-decoder (no generation_steps)")
    if config is None:
        config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            steps = model.generation_steps(src_ids, src_mask)
        stops = list(dict.fromkeys([*config.stop_token_ids, steps.eos_token_id]))
        config = dataclasses.replace(config, stop_token_ids=stops, pad_token_id=steps.pad_token_id)
        start = torch.full((src_ids.shape[0], 1), steps.decoder_start_token_id, dtype=torch.long,
                           device=src_ids.device)
        return generate(steps, start, config=config)[:, 1:]
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- streaming text


class TextStreamer:
    """Turns the ids ``generate`` produces, one step at a time, into text pieces for ``write``.

    Prompt and continuation are decoded together (byte-level pieces only become text together)
    and a piece is written once it no longer ends in an incomplete UTF-8 sequence (U+FFFD), so
    multi-byte characters are never split. Without a tokenizer, ids are written as `` <id>``.
    Stop ids are not written. ``generated`` holds the continuation's ids.
    """

    def __init__(self, tokenizer, prompt_ids: list[int], stop_ids: list[int],
                 write: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.prompt_ids = list(prompt_ids)
        self.stop_ids = set(stop_ids)
        self.write = write
        self.generated: list[int] = []
        self.finished = False
        self.shown = tokenizer.decode(self.prompt_ids, skip_specials=True) if tokenizer is not None else ""

    def __call__(self, new_ids: Tensor) -> None:
        token = int(new_ids[0])
        if self.finished or token in self.stop_ids:
            self.finished = True
            return
        self.generated.append(token)
        if self.tokenizer is None:
            self.write(f" {token}")
            return
        text = self.tokenizer.decode(self.prompt_ids + self.generated, skip_specials=True)
        if text.endswith("\ufffd"):
            return  # an incomplete UTF-8 sequence: wait for its next byte
        if text.startswith(self.shown):
            self.write(text[len(self.shown):])
            self.shown = text


def stream_text(model: Decoder, tokenizer, prompt_ids: list[int], config: GenerationConfig,
                write: Callable[[str], None]) -> list[int]:
    """Continue one prompt, writing the continuation as text while it is generated; returns its ids.

    Greedy decoding and sampling stream token by token; beam search (``num_beams > 1``) knows its
    answer only at the end, so it is written then, through the same streamer (same decoding).
    """
    streamer = TextStreamer(tokenizer, prompt_ids, list(config.stop_token_ids), write)
    input_ids = torch.tensor([prompt_ids], dtype=torch.long)
    if config.num_beams > 1:
        for token in generate(model, input_ids, config=config)[0, len(prompt_ids):].tolist():
            streamer(torch.tensor([token]))
    else:
        generate(model, input_ids, config=config, streamer=streamer)
    return streamer.generated
