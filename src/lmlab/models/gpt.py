"""GPT: a Transformer decoder trained as a left-to-right language model.

Papers: Radford et al. (2018), "Improving Language Understanding by Generative Pre-Training" (GPT-1);
Radford et al. (2019), "Language Models are Unsupervised Multitask Learners" (GPT-2).

    h_0 = U W_e + W_p                       token embeddings plus learned position embeddings
    h_l = block(h_{l-1})  for l = 1..n      masked (causal) multi-head self-attention + FFN
    P(u) = softmax(h_n W_e^T)               the output matrix is the (tied) input embedding

    L_1(U) = Σ_i log P(u_i | u_{i-k}, ..., u_{i-1}; Θ)          (GPT-1 eq. 1)

Two presets differ only in the modules the blocks are built from:

- ``gpt1``: post-LN blocks (LN after each residual add, as in Vaswani et al.), GELU, no final LN,
  512 positions, 12 x 768, 40,478 BPE tokens.
- ``gpt2``: pre-LN blocks (LN at the input of each sub-block) plus a final LN after the last
  block, GELU (tanh approximation), 1,024 positions, byte-level BPE with 50,257 tokens, and the
  residual projections initialised with std 0.02/√(2·n_layers) ("we scale the weights of residual
  layers at initialization by a factor of 1/√N where N is the number of residual layers").

Heads wrap the base :class:`GPT`: :class:`GPTLanguageModel` (tied LM head, generation through
:mod:`lmlab.tasks.generation`) and :class:`GPTClassifier` (GPT-1 §3.2 fine-tuning: a linear layer
on the last token's state, or on the mean over the real tokens). Hugging Face GPT-2 checkpoints go
in and out through :mod:`lmlab.interop.hf`.

:class:`GPTClassifier` also carries GPT-1's auxiliary LM loss for fine-tuning (``lm_coef``).

Not here: the task-specific input transformations (delimiter tokens — the tokenizer's job),
sparse attention (GPT-3), and anything beyond fp32/bf16 on one device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfg
from .. import pretrained
from ..errors import ConfigError, UsageError
from ..nn.attention import (
    KVCache,
    MultiHeadAttention,
    TransformerLayer,
    causal_mask,
    combine_masks,
    padding_mask,
    self_attention,
)
from ..nn.dropout import Dropout
from ..nn.feedforward import FeedForward, activation_module
from ..nn.init import normal_init
from ..nn.norms import PostNormResidual, PreNormResidual
from ..nn.positional import LearnedPositions
from ..nn.softmax import linear_cross_entropy


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    max_length: int = 1024                 # number of learned positions (n_ctx)
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None                # inner FFN width; None means 4 * d_model
    norm_position: Literal["pre", "post"] = "pre"
    final_norm: bool = True                # GPT-2's extra LN after the last block
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu_tanh"
    dropout: float = 0.1                   # embedding and residual dropout
    attn_dropout: float = 0.1              # dropout on attention weights
    layer_norm_eps: float = 1e-5
    bias: bool = True
    tie_embeddings: bool = True
    scaled_residual_init: bool = True      # std 0.02/sqrt(2 n_layers) on residual projections
    init_std: float = 0.02
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def validate(self) -> None:
        for name in ("vocab_size", "max_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"gpt config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"gpt config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"gpt config: {name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def inner_width(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model


PRESETS: dict[str, dict] = {
    "gpt1": {"vocab_size": 40478, "max_length": 512, "d_model": 768, "n_layers": 12, "n_heads": 12,
                 "norm_position": "post", "final_norm": False, "activation": "gelu", "scaled_residual_init": False},
    "gpt2": {"vocab_size": 50257, "max_length": 1024, "d_model": 768, "n_layers": 12, "n_heads": 12,
                 "bos_token_id": 50256, "eos_token_id": 50256},
    "gpt2-medium": {"vocab_size": 50257, "max_length": 1024, "d_model": 1024, "n_layers": 24, "n_heads": 16,
                        "bos_token_id": 50256, "eos_token_id": 50256},
    "gpt2-large": {"vocab_size": 50257, "max_length": 1024, "d_model": 1280, "n_layers": 36, "n_heads": 20,
                       "bos_token_id": 50256, "eos_token_id": 50256},
    "gpt2-xl": {"vocab_size": 50257, "max_length": 1024, "d_model": 1600, "n_layers": 48, "n_heads": 25,
                    "bos_token_id": 50256, "eos_token_id": 50256},
    # the shape used by the benchmark and the demo: small enough for a laptop CPU
    "gpt-tiny": {"vocab_size": 8192, "max_length": 128, "d_model": 256, "n_layers": 4, "n_heads": 4},
}


def preset(name: str, **overrides) -> GPTConfig:
    """A :class:`GPTConfig` from a preset name, with field overrides (checked like a config file)."""
    if name not in PRESETS:
        from ..errors import closest
        raise ConfigError(f"unknown GPT preset {name!r}{closest(name, PRESETS)}; known: {', '.join(PRESETS)}")
    return cfg.from_dict(GPTConfig, {**PRESETS[name], **overrides})


# --------------------------------------------------------------------------- the base model


def build_block(config: GPTConfig) -> TransformerLayer:
    """One decoder block: masked self-attention and FFN inside pre- or post-LN residual wrappers."""
    residual = PreNormResidual if config.norm_position == "pre" else PostNormResidual

    def norm() -> nn.LayerNorm:
        return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)

    attn: MultiHeadAttention = self_attention(config.d_model, config.n_heads, dropout=config.attn_dropout,
                                              bias=config.bias, fused=True)
    ffn = FeedForward(config.d_model, config.inner_width, activation_module(config.activation),
                      bias=config.bias)
    return TransformerLayer(attn, residual(norm(), config.dropout), ffn, residual(norm(), config.dropout))


class GPT(nn.Module):
    """Token + position embeddings, n causal blocks, optional final LN: ids (B, T) -> states (B, T, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)   # W_e
        self.position_embedding = LearnedPositions(config.max_length, config.d_model)  # W_p
        self.dropout = Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(build_block(config) for _ in range(config.n_layers))
        self.final_norm = (nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
                           if config.final_norm else nn.Identity())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        normal_init(self, std)  # N(0, std) weights, zero biases, LayerNorm (1, 0)
        if self.config.scaled_residual_init:
            residual_std = std / math.sqrt(2 * self.config.n_layers)
            for block in self.blocks:
                nn.init.normal_(block.self_attn.out.weight, mean=0.0, std=residual_std)
                nn.init.normal_(block.feed_forward.fc_out.weight, mean=0.0, std=residual_std)

    def new_cache(self, max_length: int) -> KVCache:
        return KVCache(self.config.n_layers, max_length)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (states (B, T, C), None); a causal model has no pooled vector
        (GPT-1 classifies from the last real token's state; the classifier head chooses)."""
        return self(input_ids, attention_mask), None

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """input_ids (B, T); attention_mask (B, past + T) 1 for real tokens (left padding allowed);
        cache: keys/values of the ``past`` positions already seen, extended in place."""
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        if attention_mask is not None and attention_mask.shape != (B, past + T):
            raise UsageError(f"attention_mask has shape {tuple(attention_mask.shape)}, "
                             f"expected {(B, past + T)} (cached + new positions)")
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # no padding: take the mask-free fast path
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T), broadcast
            else:  # left padding: positions count real tokens only
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        if past + T > self.config.max_length:
            raise UsageError(f"sequence of {past + T} tokens is longer than the model's "
                             f"{self.config.max_length} positions")
        if attention_mask is None:
            mask, is_causal = None, T > 1
        else:
            mask = combine_masks(padding_mask(attention_mask),
                                 causal_mask(T, past + T, device=input_ids.device))  # (B, 1, T, S)
            is_causal = False
        x = self.dropout(self.token_embedding(input_ids) + self.position_embedding(position_ids))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, mask=mask, is_causal=is_causal, cache=cache.layers[i] if cache is not None else None)
        return self.final_norm(x)


# --------------------------------------------------------------------------- saving (shared by the heads)


class _SaveLoad(pretrained.PretrainedMixin):
    """save_pretrained / from_pretrained through :mod:`lmlab.io` (config.json + model.safetensors)."""

    config_class = GPTConfig


# --------------------------------------------------------------------------- heads


class GPTLanguageModel(_SaveLoad, nn.Module):
    """GPT with the LM head P(u) = softmax(h W_e^T) (tied) or its own output matrix."""

    family = "gpt"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.gpt = GPT(config)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=config.init_std)

    @property
    def output_weight(self) -> Tensor:
        return self.gpt.token_embedding.weight if self.lm_head is None else self.lm_head.weight

    @property
    def encoder(self) -> GPT:
        return self.gpt

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol on the body: (states (B, T, C), None)."""
        return self.gpt.encode(input_ids, attention_mask)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """Logits (B, T, V) for every position."""
        h = self.gpt(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache)
        return F.linear(h, self.output_weight)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6·N (non-embedding matmuls, forward + backward, with the tied
        output matrix counted once) + 12·n_layers·seq_len·d_model for the attention scores and
        their weighted sum (Kaplan et al., 2020; PaLM appendix B)."""
        c = self.config
        n_matmul = c.n_layers * (4 * c.d_model * c.d_model + 2 * c.d_model * c.inner_width)
        n_matmul += c.vocab_size * c.d_model  # the output projection
        return 6.0 * n_matmul + 12.0 * c.n_layers * seq_len * c.d_model

    def causal_lm_loss_sum(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The summed cross-entropy, fused (lmlab.protocols.FusedCausalLM: what the CLM objective calls)."""
        return self.loss(inputs, targets, reduction="sum")

    def loss(self, input_ids: Tensor, targets: Tensor, attention_mask: Tensor | None = None,
             reduction: Literal["mean", "sum"] = "mean") -> Tensor:
        """Cross-entropy of ``targets`` (B, T) given ``input_ids`` (B, T), -100 targets ignored: the
        mean over the kept targets or their sum. The output layer and the softmax are fused
        (:func:`lmlab.nn.softmax.linear_cross_entropy`): the (B, T, V) logits are never stored."""
        h = self.gpt(input_ids, attention_mask=attention_mask)  # (B, T, C)
        return linear_cross_entropy(h.reshape(-1, h.shape[-1]), self.output_weight, targets.reshape(-1),
                                    reduction=reduction)

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def sliding_window_log_probs(self, ids: Tensor, window: int | None = None, stride: int | None = None) -> Tensor:
        """log P(ids[t] | ids[<t]) for t >= 1 of one long sequence (n,), as (n - 1,) natural logs.

        A sequence longer than the model's positions is read in windows of ``window`` tokens moved
        ``stride`` tokens at a time; each window scores only the tokens no earlier window scored,
        so every token is predicted once, from at least ``window - stride`` tokens of context (the
        first window's from fewer). ``stride = window`` is the cheapest and the worst (no context at
        the window starts); smaller strides cost ``window / stride`` times more and approach the
        full-context value. Defaults: window = max_length, stride = window // 2.
        """
        window = window or self.config.max_length
        stride = stride or max(1, window // 2)
        if not 0 < stride <= window <= self.config.max_length:
            raise UsageError(f"need 0 < stride ({stride}) <= window ({window}) <= {self.config.max_length}")
        n = ids.shape[0]
        out = torch.empty(max(n - 1, 0), dtype=torch.float32, device=ids.device)
        scored = 1  # ids[0] has no context and is never predicted
        begin = 0
        while scored < n:
            end = min(begin + window, n)
            chunk = ids[begin:end][None]                                   # (1, W)
            log_p = torch.log_softmax(self(chunk).float(), dim=-1)[0, :-1]  # (W - 1, V): predicts chunk[1:]
            targets = chunk[0, 1:]
            token_log_p = log_p.gather(1, targets[:, None])[:, 0]          # (W - 1,)
            first_new = scored - begin - 1                                 # index into token_log_p
            out[scored - 1:end - 1] = token_log_p[first_new:]
            scored = end
            begin = max(0, min(begin + stride, n - window))
            if end == n:
                break
        return out

    @torch.no_grad()
    def score_sentences(self, sentences: list[list[int]], batch_size: int = 64) -> list[Tensor]:
        """Natural-log probabilities of each id of each sentence given ``<s>`` (bos_token_id) and the ids
        before it — the :class:`lmlab.eval.perplexity.SentenceScorer` protocol, so a word-level GPT is
        scored exactly like the n-grams. Longer sentences go through :meth:`sliding_window_log_probs`."""
        if self.config.bos_token_id is None:
            raise UsageError("scoring sentences needs the model's bos_token_id (the <s> id)")
        was_training = self.training
        self.eval()
        bos = self.config.bos_token_id
        results: list[Tensor | None] = [None] * len(sentences)
        short = [i for i, s in enumerate(sentences) if len(s) + 1 <= self.config.max_length]
        short.sort(key=lambda i: len(sentences[i]))  # similar lengths share a batch: less padding
        device = self.output_weight.device
        for start in range(0, len(short), batch_size):
            rows = short[start:start + batch_size]
            width = max(len(sentences[i]) for i in rows) + 1
            ids = torch.full((len(rows), width), bos, dtype=torch.long, device=device)
            for r, i in enumerate(rows):
                ids[r, 1:len(sentences[i]) + 1] = torch.tensor(sentences[i], dtype=torch.long)
            log_p = torch.log_softmax(self(ids[:, :-1]).float(), dim=-1)   # (B, W-1, V), right padding is harmless
            token_log_p = log_p.gather(2, ids[:, 1:, None])[:, :, 0]        # (B, W-1)
            for r, i in enumerate(rows):
                results[i] = token_log_p[r, :len(sentences[i])].cpu()
        for i, sentence in enumerate(sentences):
            if results[i] is None:
                ids = torch.tensor([bos, *sentence], dtype=torch.long, device=device)
                results[i] = self.sliding_window_log_probs(ids).cpu()
        self.train(was_training)
        return results  # type: ignore[return-value]

    # the protocol lmlab.tasks.generation drives
    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        return self.gpt.new_cache(max_length)

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor | None, cache: KVCache) -> Tensor:
        """Logits (B, V) of the token after ``input_ids`` (only the last position goes through the head)."""
        h = self.gpt(input_ids, attention_mask=attention_mask, cache=cache)
        return F.linear(h[:, -1], self.output_weight)

    @property
    def max_positions(self) -> int:
        return self.config.max_length


@dataclass
class GPTClassifierConfig:
    gpt: GPTConfig = field(default_factory=GPTConfig)
    num_labels: int = 2
    pooling: Literal["last", "mean"] = "last"   # last real token's state (GPT-1 §3.2) or the mean
    classifier_dropout: float = 0.1
    lm_coef: float = 0.0                        # λ of GPT-1 §3.2's auxiliary LM loss; 0 turns it off

    def validate(self) -> None:
        if self.num_labels < 2:
            raise ConfigError(f"gpt classifier: num_labels must be at least 2, got {self.num_labels}")
        if not self.lm_coef >= 0.0:
            raise ConfigError(f"gpt classifier: lm_coef must be >= 0, got {self.lm_coef}")


def pool(states: Tensor, attention_mask: Tensor | None, how: str) -> Tensor:
    """(B, T, C) -> (B, C): the last real token's state (left or right padding), or the mean over real tokens."""
    B, T, _C = states.shape
    if attention_mask is None:
        return states[:, -1] if how == "last" else states.mean(dim=1)
    mask = attention_mask.to(states.dtype)  # (B, T)
    if how == "last":
        last = (mask * torch.arange(1, T + 1, device=states.device, dtype=states.dtype)).argmax(dim=1)  # (B,)
        return states[torch.arange(B, device=states.device), last]
    return (states * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class GPTClassifier(_SaveLoad, nn.Module):
    """GPT-1 §3.2: P(y | x^1..x^m) = softmax(h_l^m W_y), h_l^m pooled from the final states.

    Fine-tuning loss (GPT-1 §3.2, written as losses to minimise, i.e. the negated log-likelihoods):

        L_3(C) = L_2(C) + λ · L_1(C)

    L_2: cross-entropy of the labels; L_1: the causal-LM loss on the same inputs (mean over the
    predicted tokens, padding ignored), through W_e — the token embedding, which is the tied output
    matrix of the pre-trained LM; λ = ``config.lm_coef`` (GPT-1 uses 0.5; 0, the default, is plain
    L_2). GPT-1: "including language modeling as an auxiliary objective to the fine-tuning helped
    learning by (a) improving generalization of the supervised model, and (b) accelerating convergence".
    """

    family = "gpt-classifier"
    config_class = GPTClassifierConfig

    def __init__(self, config: GPTClassifierConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.gpt = GPT(config.gpt)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.gpt.d_model, config.num_labels)  # W_y
        nn.init.normal_(self.classifier.weight, std=config.gpt.init_std)
        nn.init.zeros_(self.classifier.bias)

    @classmethod
    def from_language_model(cls, lm: GPTLanguageModel, num_labels: int, pooling: str = "last",
                            classifier_dropout: float = 0.1, lm_coef: float = 0.0) -> GPTClassifier:
        """Start fine-tuning from a pre-trained LM: same body weights, a fresh W_y.

        The auxiliary LM loss uses the body's W_e; an LM with an untied output matrix loses it here.
        """
        model = cls(GPTClassifierConfig(gpt=lm.config, num_labels=num_labels, pooling=pooling,
                                        classifier_dropout=classifier_dropout, lm_coef=lm_coef))
        model.gpt.load_state_dict(lm.gpt.state_dict())
        return model

    def _class_logits(self, states: Tensor, attention_mask: Tensor | None) -> Tensor:
        return self.classifier(self.dropout(pool(states, attention_mask, self.config.pooling)))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Class logits (B, num_labels)."""
        states = self.gpt(input_ids, attention_mask=attention_mask)  # (B, T, C)
        return self._class_logits(states, attention_mask)

    def lm_loss(self, states: Tensor, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """L_1: mean -log P(x_{t+1} | x_<=t) over the real tokens, from the states (B, T, C) of ``input_ids``."""
        targets = input_ids[:, 1:].clone()                                        # (B, T - 1): t predicts t+1
        if attention_mask is not None:  # a target is ignored where it, or the position predicting it, is padding
            targets[(attention_mask[:, 1:] == 0) | (attention_mask[:, :-1] == 0)] = -100
        h = states[:, :-1].reshape(-1, states.shape[-1])                          # (B (T - 1), C)
        return linear_cross_entropy(h, self.gpt.token_embedding.weight, targets.reshape(-1))

    def loss_terms(self, input_ids: Tensor, labels: Tensor,
                   attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """(class logits (B, K), L_2 (mean over the batch), L_1 or None when ``lm_coef`` is 0) in one pass."""
        states = self.gpt(input_ids, attention_mask=attention_mask)  # (B, T, C)
        logits = self._class_logits(states, attention_mask)
        l2 = F.cross_entropy(logits.float(), labels)
        l1 = self.lm_loss(states, input_ids, attention_mask) if self.config.lm_coef > 0 else None
        return logits, l2, l1

    def loss(self, input_ids: Tensor, labels: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """L_3 = L_2 + λ·L_1 (just L_2 when λ = 0)."""
        _, l2, l1 = self.loss_terms(input_ids, labels, attention_mask)
        return l2 if l1 is None else l2 + self.config.lm_coef * l1
