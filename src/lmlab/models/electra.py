"""ELECTRA: a small MLM generator and a discriminator trained for replaced-token detection.

Paper: Clark et al. (2020), "ELECTRA: Pre-training Text Encoders as Discriminators Rather Than
Generators", §2 and §3.2.

    m_i ~ unif{1, n} for 15% of positions,  x^masked = REPLACE(x, m, [MASK])
    generator:      p_G(x_t | x^masked) = softmax(e(x_t)^T h_G(x^masked)_t)      at t ∈ m
    x̂_i ~ p_G(x_i | x^masked) for i ∈ m,    x^corrupt = REPLACE(x, m, x̂)
    discriminator:  D(x^corrupt, t) = sigmoid(w^T h_D(x^corrupt)_t)
    L = L_MLM(x, θ_G) + λ L_Disc(x, θ_D),  λ = 50
    L_Disc = Σ_t -1(x^corrupt_t = x_t) log(1 - D(x^corrupt, t)) - 1(x^corrupt_t ≠ x_t) log D(x^corrupt, t)

Design points from the paper, all implemented here:
- the generator is smaller: width (hidden, FFN, heads) × ``generator_ratio`` (default 1/4, the
  paper's best, §3.2 "Smaller Generators"), same depth;
- generator and discriminator share the token and position (and segment) embeddings (§3.2
  "Weight Sharing"); the embeddings have their own size E, projected to each encoder's width;
- a sampled token that equals the original is labelled *original* (footnote 2 of §2);
- no gradient flows through the sampling step: x̂ is drawn under ``torch.no_grad`` from detached
  logits, so the discriminator loss cannot reach the generator (the paper trains it by MLM only).

The discriminator (:class:`ElectraDiscriminator`) is what gets fine-tuned and what Hugging Face's
``ElectraForPreTraining`` holds (:mod:`lmlab.interop.hf_bert`); the generator is a masked LM
(HF's ``ElectraForMaskedLM``), run alone by :meth:`ElectraForPreTraining.masked_lm_logits` (the
``fill-mask`` pipeline of an ELECTRA pretraining folder). The objective (masking, the
weighted loss) is ``objectives/rtd.py``. The blocks it shares with BERT unchanged come from
``nn/``: the embeddings (at size E), the post-LN encoder layer and the N(0, 0.02) initialiser.

One addition to the paper's recipe, an initialisation: the RTD output bias starts at
log(q / (1 - q)) with q = ``rtd_prior`` = 0.15, the rate at which tokens are replaced (the
"prior" bias initialisation of Lin et al. 2017, RetinaNet §4.1). With a zero bias every logit
starts at 0 (p = ½) while 85-86% of the labels are "original", and with Adam (every parameter
moves ~lr per step) the fastest way down that first loss is to move *all* parameters so that
every token state maps to one "original" vector: in 100 steps of a tiny model the token states
collapsed (their spread across examples fell to 0.06-0.09, vs 0.56 with the prior bias) and
such an encoder fine-tuned to the majority class (docs/bert_family.md, "ELECTRA and the majority
class"). Starting at the base rate leaves only the discriminative signal. ``rtd_prior = 0``
restores the zero bias (HF's initialisation); checkpoints are unaffected (the bias is a weight).

Not here: the adversarial generator the paper tried (§3.2), two-stage training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import pretrained
from ..errors import ConfigError
from ..nn.attention import padding_mask, post_ln_encoder_layer
from ..nn.embeddings import TokenPositionSegmentEmbeddings
from ..nn.feedforward import activation_module
from ..nn.init import normal_init


@dataclass
class ElectraConfig:
    vocab_size: int = 30522
    d_embedding: int = 128                 # E, shared by generator and discriminator
    d_model: int = 256                     # discriminator H (ELECTRA-Small)
    n_layers: int = 12
    n_heads: int = 4
    d_ff: int = 1024
    generator_ratio: float = 0.25          # generator width / discriminator width
    max_length: int = 512
    type_vocab_size: int = 2
    activation: Literal["relu", "gelu", "gelu_tanh"] = "gelu"
    dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    pad_token_id: int = 0
    rtd_weight: float = 50.0               # λ
    rtd_prior: float = 0.15                # q: the RTD output bias starts at log(q / (1 - q)); 0 = zero bias

    def validate(self) -> None:
        for name in ("vocab_size", "d_embedding", "d_model", "n_layers", "n_heads", "d_ff", "max_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"electra config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"electra config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        if not 0 <= self.rtd_prior < 1:
            raise ConfigError(f"electra config: rtd_prior must be in [0, 1), got {self.rtd_prior}")
        if not 0 < self.generator_ratio <= 1:
            raise ConfigError(f"electra config: generator_ratio must be in (0, 1], got {self.generator_ratio}")
        g_model, g_heads, _ = self.generator_sizes()
        if g_model % g_heads:
            raise ConfigError(f"electra config: generator width {g_model} not divisible by its {g_heads} heads")

    def generator_sizes(self) -> tuple[int, int, int]:
        """(d_model, n_heads, d_ff) of the generator: the discriminator's × generator_ratio."""
        d_model = max(1, round(self.d_model * self.generator_ratio))
        n_heads = max(1, round(self.n_heads * self.generator_ratio))
        return d_model, n_heads, max(1, round(self.d_ff * self.generator_ratio))


PRESETS: dict[str, dict] = {
    "electra-small": {},
    "electra-base": {"d_embedding": 768, "d_model": 768, "n_heads": 12, "d_ff": 3072},
    "electra-tiny": {"d_embedding": 64, "d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 512},
}


def electra_embeddings(config: ElectraConfig) -> TokenPositionSegmentEmbeddings:
    """LN(E_token[x] + E_position[t] + E_segment[s]) in E dimensions; shared by both networks."""
    return TokenPositionSegmentEmbeddings(config.vocab_size, config.d_embedding, config.max_length,
                                          config.type_vocab_size, config.pad_token_id, config.layer_norm_eps,
                                          config.dropout)


class ElectraEncoder(nn.Module):
    """Embedded input (B, T, E) -> optional projection E -> H -> L post-LN layers -> (B, T, H)."""

    def __init__(self, d_embedding: int, d_model: int, n_layers: int, n_heads: int, d_ff: int,
                 config: ElectraConfig) -> None:
        super().__init__()
        self.project = nn.Linear(d_embedding, d_model) if d_embedding != d_model else None
        self.layers = nn.ModuleList(
            post_ln_encoder_layer(d_model, n_heads, d_ff, config.activation, config.dropout, config.attn_dropout,
                                  config.layer_norm_eps) for _ in range(n_layers))

    def forward(self, h: Tensor, attention_mask: Tensor | None) -> Tensor:
        mask = padding_mask(attention_mask) if attention_mask is not None else None  # (B, 1, 1, T)
        if self.project is not None:
            h = self.project(h)  # (B, T, E) -> (B, T, H)
        for layer in self.layers:
            h = layer(h, mask=mask)
        return h


class ElectraDiscriminator(nn.Module):
    """Embeddings + encoder + RTD head: D(x, t) = sigmoid(w^T GELU(W h_t)). What gets fine-tuned."""

    family = "electra"  # the family it belongs to (saved folders hold the whole ElectraForPreTraining)

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = electra_embeddings(config)
        self.encoder = ElectraEncoder(config.d_embedding, config.d_model, config.n_layers, config.n_heads,
                                      config.d_ff, config)
        self.head_dense = nn.Linear(config.d_model, config.d_model)
        self.head_activation = activation_module(config.activation)
        self.head_out = nn.Linear(config.d_model, 1)
        normal_init(self, config.init_std)
        if config.rtd_prior > 0:  # prior-initialised bias: the first steps need not learn the base rate
            nn.init.constant_(self.head_out.bias, math.log(config.rtd_prior / (1 - config.rtd_prior)))

    def hidden(self, input_ids: Tensor, segment_ids: Tensor | None = None,
               attention_mask: Tensor | None = None) -> Tensor:
        return self.encoder(self.embeddings(input_ids, segment_ids), attention_mask)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (hidden (B, T, H), None): ELECTRA has no pooler; ``segment_ids``
        (B, T) 0 for text a, 1 for text b of a pair (None: one segment)."""
        return self.hidden(input_ids, segment_ids, attention_mask), None

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """-> (hidden (B, T, H), RTD logits (B, T))."""
        h = self.hidden(input_ids, segment_ids, attention_mask)
        return h, self.head_out(self.head_activation(self.head_dense(h))).squeeze(-1)


class ElectraGeneratorHead(nn.Module):
    """The generator's encoder and MLM head; it reads the *shared* embeddings given to it."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        d_model, n_heads, d_ff = config.generator_sizes()
        self.encoder = ElectraEncoder(config.d_embedding, d_model, config.n_layers, n_heads, d_ff, config)
        self.transform = nn.Linear(d_model, config.d_embedding)
        self.activation = activation_module(config.activation)
        self.norm = nn.LayerNorm(config.d_embedding, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, embedded: Tensor, attention_mask: Tensor | None, selected: Tensor | None,
                token_embedding: Tensor) -> Tensor:
        """embedded (B, T, E), selected (B, T) bool -> logits at the selected positions (N, V)
        (``selected`` None: at every position, (B, T, V))."""
        h = self.encoder(embedded, attention_mask)                            # (B, T, H_G)
        if selected is not None:
            h = h[selected]                                                   # (N, H_G)
        return F.linear(self.norm(self.activation(self.transform(h))), token_embedding, self.bias)


class ElectraOutput(NamedTuple):
    generator_logits: Tensor    # (N, V) at the masked positions
    rtd_logits: Tensor          # (B, T)
    rtd_labels: Tensor          # (B, T) 1 = replaced, 0 = original (a sample equal to the original is 0)
    corrupted_ids: Tensor       # (B, T) x^corrupt


class ElectraForPreTraining(pretrained.PretrainedMixin, nn.Module):
    """Generator + discriminator with shared embeddings; ``forward`` runs the whole ELECTRA step."""

    family = "electra"
    config_class = ElectraConfig

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.discriminator = ElectraDiscriminator(config)
        self.generator = ElectraGeneratorHead(config)
        normal_init(self.generator, config.init_std)

    @property
    def encoder(self) -> ElectraDiscriminator:
        return self.discriminator

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol, on the discriminator (what ELECTRA fine-tunes): (hidden, None)."""
        return self.discriminator.encode(input_ids, attention_mask, segment_ids)

    def masked_lm_logits(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                         selected: Tensor | None = None, segment_ids: Tensor | None = None) -> Tensor:
        """The generator as a masked LM (what HF's ``ElectraForMaskedLM`` is): input ids (B, T) with
        mask tokens -> p_G logits (N, V) at the ``selected`` (B, T) positions (None: (B, T, V))."""
        embeddings = self.discriminator.embeddings
        return self.generator(embeddings(input_ids, segment_ids), attention_mask, selected,
                              embeddings.token.weight)

    def forward(self, masked_ids: Tensor, original_ids: Tensor, selected: Tensor,
                segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                sampler: torch.Generator | None = None) -> ElectraOutput:
        generator_logits = self.masked_lm_logits(masked_ids, attention_mask, selected, segment_ids)   # (N, V)
        with torch.no_grad():  # x̂ ~ p_G: sampling is not differentiated (§2)
            probs = torch.softmax(generator_logits.detach().float(), dim=-1)
            sampled = torch.multinomial(probs, 1, generator=sampler).squeeze(1) if probs.numel() else \
                torch.zeros(0, dtype=torch.long, device=masked_ids.device)
            corrupted = original_ids.clone()
            corrupted[selected] = sampled
            rtd_labels = (corrupted != original_ids).float()  # sampled == original -> "original"
        _, rtd_logits = self.discriminator(corrupted, segment_ids, attention_mask)
        return ElectraOutput(generator_logits, rtd_logits, rtd_labels, corrupted)
