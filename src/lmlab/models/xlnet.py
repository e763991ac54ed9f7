"""XLNet: a permutation language model with two-stream relative attention over Transformer-XL memory.

Paper: Yang et al. (2019), "XLNet: Generalized Autoregressive Pretraining for Language
Understanding" (§2.3 two-stream attention, §2.4 Transformer-XL ideas, §2.5 relative segments);
the backbone is Dai et al. (2019), "Transformer-XL". Reference code: zihangdai/xlnet ``modeling.py``.

Per layer m, with memory mem (the content states of the previous segment, M positions), keys and
values come from the content stream only: K = V = [mem; h^{m-1}] (B, M + T, H).

    content stream:  h_i^m = LN(h_i + Attn(Q = h_i,  KV = [mem; h], mask: may see itself))   then FFN
    query stream:    g_i^m = LN(g_i + Attn(Q = g_i,  KV = [mem; h], mask: may NOT see x_i)) then FFN
    g^0 = mask_emb (a learned vector: the query stream knows the position, never the token)

    score(i, j) = [ (q_i + u)·k_j  +  (q_i + v)·W_r R_{i-j}  +  (q_i + s)·e_{s_ij} ] / sqrt(d_head)
                     ac: content    bd: relative position      ef: relative segment (same / different)

R_d is the sinusoidal embedding [sin(d ω); cos(d ω)] of the relative distance d = (M + i) - j,
for d from M + T down to -T + 1 (bidirectional attention needs negative distances: XLNet's
``attn_type = "bi"``), clipped to ``clamp_len``. For the content stream (queries at every
position) the (T, M + 2T) table of (q_i + v)·W_r R is put into (T, M + T) by XLNet's
:func:`rel_shift` (reshape to (M + 2T, T), drop the first row, reshape, keep M + T columns); for
the query stream, which is computed only at the P predicted positions (not at all T, as the
reference code and Hugging Face do), :func:`rel_gather` picks the same entries by index.
e_0 / e_1 are learned per layer (``seg_embed``); memory positions count as segment 0, as in XLNet.

Heads: :class:`XLNetLMHeadModel` (the tied LM head ``logits = W_e h + b``, Hugging Face's
``XLNetLMHeadModel``): ``plm_logits`` reads the query stream at the predicted positions (the
pretraining loss, ``objectives/plm.py``), ``forward`` without targets reads the content stream at
every position. ``encode(ids, mask) -> (hidden, pooled)`` with pooled = the state of the last
real token (XLNet's ``summary_type = "last"``: its ``<sep> <cls>`` go at the end and padding on
the left; with right padding the last real token is used), for ``lmlab finetune``.

One difference from the reference code, on purpose: a query that may see no key at all (the first
target of an order with no context and no memory) gets a zero attention vector; XLNet's
``-1e30`` mask makes its softmax uniform over every key, its own token and the future included.

Not here: the backward-order ``bi_data`` half batch, ``attn_type = "uni"``, the SQuAD and
multiple-choice heads, incremental generation (XLNet recomputes everything per new token).
Hugging Face folders: :mod:`lmlab.interop.hf_xlnet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import config as cfg
from .. import pretrained
from ..errors import ConfigError, UsageError

MASKED = -1e30  # XLNet's additive mask value


@dataclass
class XLNetConfig:
    vocab_size: int = 32000
    d_model: int = 1024                 # H
    n_layers: int = 24                  # L
    n_heads: int = 16                   # d_head = H / n_heads
    d_ff: int = 4096
    activation: Literal["gelu", "relu"] = "gelu"
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    mem_len: int = 0                    # memory kept per layer (0: no memory)
    reuse_len: int = 0                  # only the first reuse_len positions of a segment are cached (0: all)
    clamp_len: int = -1                 # relative distances clipped to ±clamp_len (-1: never)
    pad_token_id: int = 5

    def validate(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"xlnet config: {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"xlnet config: d_model={self.d_model} not divisible by n_heads={self.n_heads}")
        if self.d_model % 2:
            raise ConfigError(f"xlnet config: d_model={self.d_model} must be even (sin and cos halves)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"xlnet config: dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ConfigError(f"xlnet config: activation must be gelu or relu, got {self.activation!r}")
        if self.mem_len < 0 or self.reuse_len < 0:
            raise ConfigError("xlnet config: mem_len and reuse_len must be >= 0")


PRESETS: dict[str, dict] = {
    "xlnet-large": {},
    "xlnet-base": {"d_model": 768, "n_layers": 12, "n_heads": 12, "d_ff": 3072},
    "xlnet-tiny": {"d_model": 128, "n_layers": 2, "n_heads": 2, "d_ff": 512},
}


def preset(name: str, **overrides) -> XLNetConfig:
    """An XLNetConfig from a preset name, with field overrides (an unknown field is a ConfigError)."""
    from ..errors import closest

    if name not in PRESETS:
        raise ConfigError(f"unknown xlnet preset {name!r}{closest(name, PRESETS)}; known: {', '.join(PRESETS)}")
    config = cfg.from_dict(XLNetConfig, {**PRESETS[name], **overrides}, where=f"xlnet preset {name}")
    config.validate()
    return config


# --------------------------------------------------------------------------- relative positions


def relative_positions(klen: int, qlen: int, d_model: int, clamp_len: int) -> Tensor:
    """R (klen + qlen, H): [sin(d ω); cos(d ω)] for d = klen, klen - 1, ..., -qlen + 1."""
    distances = torch.arange(klen, -qlen, -1.0)
    if clamp_len > 0:
        distances = distances.clamp(-clamp_len, clamp_len)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d_model, 2.0) / d_model))           # (H/2,)
    angles = distances[:, None] * inv_freq[None, :]                                  # (klen + qlen, H/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def rel_shift(x: Tensor, klen: int) -> Tensor:
    """XLNet's shift: x (B, n, T, klen + T) indexed by distance column -> (B, n, T, klen) by key.

    Column c of row i holds distance klen - c; key j of query i needs distance (klen - T) + i - j,
    i.e. column T + j - i. Reshape to (B, n, klen + T, T), drop the first row, reshape back to
    (B, n, T, klen + T - 1) and keep the first klen columns: that is exactly this re-indexing.
    """
    B, n, T, R = x.shape
    x = x.reshape(B, n, R, T)[:, :, 1:, :]                                           # (B, n, R - 1, T)
    return x.reshape(B, n, T, R - 1)[..., :klen]                                    # (B, n, T, klen)


def rel_gather(x: Tensor, query_positions: Tensor, klen: int) -> Tensor:
    """The same re-indexing for queries at chosen positions: x (B, n, P, klen + T) -> (B, n, P, klen);
    query m sits at position query_positions[b, m] (B, P) and reads column T + j - p_m."""
    B, n, P, R = x.shape
    T = R - klen
    index = T + torch.arange(klen, device=x.device)[None, None, :] - query_positions[:, :, None]  # (B, P, klen)
    return x.gather(3, index[:, None].expand(B, n, P, klen))


# --------------------------------------------------------------------------- the layer


class RelativeAttention(nn.Module):
    """Two-stream relative multi-head attention with one set of weights for both streams."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.r = nn.Linear(d_model, d_model, bias=False)                 # W_r, on R
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.r_w_bias = nn.Parameter(torch.zeros(n_heads, self.d_head))  # u
        self.r_r_bias = nn.Parameter(torch.zeros(n_heads, self.d_head))  # v
        self.r_s_bias = nn.Parameter(torch.zeros(n_heads, self.d_head))  # s
        self.seg_embed = nn.Parameter(torch.zeros(2, n_heads, self.d_head))  # e_same, e_different
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.scale = self.d_head ** -0.5

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(*x.shape[:-1], self.n_heads, self.d_head)          # (..., H) -> (..., n, d_head)

    def core(self, q: Tensor, k: Tensor, v: Tensor, k_r: Tensor, different: Tensor | None, mask: Tensor | None,
             query_positions: Tensor | None) -> Tensor:
        """q (B, Q, n, d), k/v (B, K, n, d), k_r (K + T, n, d), different (B, Q, K) bool, mask (B, Q, K)
        bool (True: blocked) -> attention vectors (B, Q, H). ``query_positions`` (B, Q): the query
        stream's positions (None: the content stream, queries at every position)."""
        klen = k.shape[1]
        ac = torch.einsum("bind,bjnd->bnij", q + self.r_w_bias, k)                    # (B, n, Q, K)
        bd = torch.einsum("bind,rnd->bnir", q + self.r_r_bias, k_r)                   # (B, n, Q, K + T)
        bd = rel_shift(bd, klen) if query_positions is None else rel_gather(bd, query_positions, klen)
        score = ac + bd
        if different is not None:
            ef = torch.einsum("bind,snd->bnis", q + self.r_s_bias, self.seg_embed)   # (B, n, Q, 2)
            score = score + torch.where(different[:, None], ef[..., 1:], ef[..., :1])
        score = score * self.scale
        if mask is not None:
            score = score.masked_fill(mask[:, None], MASKED)
        prob = self.dropout(torch.softmax(score, dim=-1))
        if mask is not None and query_positions is not None:
            prob = prob * (~mask.all(-1))[:, None, :, None]                           # nothing visible: no vector
        out = torch.einsum("bnij,bjnd->bind", prob, v)                                # (B, Q, n, d)
        return out.reshape(*out.shape[:2], -1)                                        # (B, Q, H)

    def post(self, residual: Tensor, vectors: Tensor) -> Tensor:
        return self.norm(residual + self.dropout(self.o(vectors)))

    def forward(self, h: Tensor, g: Tensor | None, memory: Tensor | None, pos_emb: Tensor,
                different_h: Tensor | None, different_g: Tensor | None, mask_h: Tensor | None,
                mask_g: Tensor | None, query_positions: Tensor | None) -> tuple[Tensor, Tensor | None]:
        keys_in = h if memory is None else torch.cat([memory, h], dim=1)             # (B, K, H)
        k, v = self._heads(self.k(keys_in)), self._heads(self.v(keys_in))           # (B, K, n, d)
        k_r = self._heads(self.r(pos_emb))                                           # (K + T, n, d)
        h_out = self.post(h, self.core(self._heads(self.q(h)), k, v, k_r, different_h, mask_h, None))
        if g is None:
            return h_out, None
        g_out = self.post(g, self.core(self._heads(self.q(g)), k, v, k_r, different_g, mask_g, query_positions))
        return h_out, g_out


class FeedForward(nn.Module):
    """LN(x + dropout(W_2 dropout(act(W_1 x + b_1)) + b_2)): post-LN, as XLNet."""

    def __init__(self, d_model: int, d_ff: int, activation: str, dropout: float, eps: float) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_ff)
        self.fc_out = nn.Linear(d_ff, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.activation = F.gelu if activation == "gelu" else F.relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.dropout(self.activation(self.fc_in(x)))
        return self.norm(x + self.dropout(self.fc_out(y)))


class XLNetLayer(nn.Module):
    def __init__(self, config: XLNetConfig) -> None:
        super().__init__()
        self.attention = RelativeAttention(config.d_model, config.n_heads, config.dropout, config.layer_norm_eps)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, config.activation, config.dropout,
                                        config.layer_norm_eps)

    def forward(self, h, g, memory, pos_emb, different_h, different_g, mask_h, mask_g, query_positions):
        h, g = self.attention(h, g, memory, pos_emb, different_h, different_g, mask_h, mask_g, query_positions)
        return self.feed_forward(h), (self.feed_forward(g) if g is not None else None)


# --------------------------------------------------------------------------- the model


@dataclass
class XLNetStates:
    content: Tensor                     # h (B, T, H), every position
    query: Tensor | None                # g (B, P, H) at the target positions, or None
    memory: list[Tensor] | None         # per layer (B, M', H): the next segment's memory, or None


class XLNet(nn.Module):
    """Embedding, L two-stream layers, memory. ``forward(...) -> XLNetStates``."""

    def __init__(self, config: XLNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.word_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.mask_emb = nn.Parameter(torch.zeros(1, 1, config.d_model))
        self.layers = nn.ModuleList(XLNetLayer(config) for _ in range(config.n_layers))
        self.dropout = nn.Dropout(config.dropout)

    def _cache(self, layer_input: Tensor, memory: Tensor | None) -> Tensor:
        """The memory for the next segment: [mem; h[:reuse_len]], last mem_len positions, detached."""
        c = self.config
        current = layer_input[:, : c.reuse_len] if c.reuse_len else layer_input
        joined = current if memory is None else torch.cat([memory, current], dim=1)
        return joined[:, -c.mem_len:].detach()

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                perm_mask: Tensor | None = None, target_positions: Tensor | None = None,
                memory: list[Tensor] | None = None, use_memory: bool = False) -> XLNetStates:
        """input_ids (B, T); segment_ids (B, T) (None: no segment term); attention_mask (B, T) 1 = real;
        perm_mask (B, T, T) bool, True = query i may not see key j; target_positions (B, P): run the
        query stream there; memory: per layer (B, M, H); use_memory: return the next memory."""
        B, T = input_ids.shape
        M = memory[0].shape[1] if memory else 0
        K = M + T
        device = input_ids.device
        blocked = None                                                                 # (B, T, K), True = blocked
        if attention_mask is not None or perm_mask is not None:
            blocked = torch.zeros(B, T, T, dtype=torch.bool, device=device)
            if attention_mask is not None:
                blocked = blocked | (attention_mask == 0)[:, None, :]                 # padding keys
            if perm_mask is not None:
                blocked = blocked | perm_mask.bool()
            blocked = torch.cat([torch.zeros(B, T, M, dtype=torch.bool, device=device), blocked], dim=2)
        mask_h = None
        if blocked is not None:                                                        # the content stream sees itself
            itself = torch.eye(T, dtype=torch.bool, device=device)
            mask_h = blocked & ~torch.cat([torch.zeros(T, M, dtype=torch.bool, device=device), itself], dim=1)
        different = None
        if segment_ids is not None:
            key_segments = torch.cat([torch.zeros(B, M, dtype=segment_ids.dtype, device=device), segment_ids], 1)
            different = segment_ids[:, :, None] != key_segments[:, None, :]            # (B, T, K)

        h = self.dropout(self.word_embedding(input_ids))                               # (B, T, H)
        g = mask_g = different_g = None
        if target_positions is not None:
            P = target_positions.shape[1]
            g = self.dropout(self.mask_emb.expand(B, P, -1))                           # (B, P, H)
            rows = target_positions[:, :, None].expand(B, P, K)
            mask_g = blocked.gather(1, rows) if blocked is not None else None          # (B, P, K)
            different_g = different.gather(1, rows) if different is not None else None
        pos_emb = self.dropout(relative_positions(K, T, self.config.d_model, self.config.clamp_len)
                               .to(device=device, dtype=h.dtype))                      # (K + T, H)
        new_memory = [] if use_memory and self.config.mem_len > 0 else None
        for index, layer in enumerate(self.layers):
            layer_memory = memory[index] if memory else None
            if new_memory is not None:
                new_memory.append(self._cache(h, layer_memory))
            h, g = layer(h, g, layer_memory, pos_emb, different, different_g, mask_h, mask_g, target_positions)
        return XLNetStates(self.dropout(h), self.dropout(g) if g is not None else None, new_memory)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder protocol: (hidden (B, T, H), pooled = the last real token's state (B, H));
        ``segment_ids`` (B, T) for the relative-segment term of a pair (None: no segment term)."""
        h = self(input_ids, segment_ids, attention_mask).content
        if attention_mask is None:
            return h, h[:, -1]
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (attention_mask.bool() * (positions + 1)).argmax(1)                   # (B,) last real position
        return h, h[torch.arange(h.shape[0], device=h.device), last]


def _init_weights(model: nn.Module, std: float) -> None:
    """N(0, std) for every weight matrix, embedding and attention bias vector; zero linear
    biases; LayerNorm (1, 0); the LM bias zero (as XLNet's initialiser)."""
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            nn.init.ones_(p)
        elif name.endswith("norm.bias") or name.endswith("fc_in.bias") or name.endswith("fc_out.bias") \
                or name == "lm_bias":
            nn.init.zeros_(p)
        else:
            nn.init.normal_(p, mean=0.0, std=std)


@dataclass
class XLNetLMOutput:
    logits: Tensor                      # (B, P, V) at the targets, or (B, T, V) at every position
    memory: list[Tensor] | None


class XLNetLMHeadModel(pretrained.PretrainedMixin, nn.Module):
    """XLNet + the tied LM head; the pretraining model of family "xlnet".

    ``plm_logits(ids, perm_mask, target_positions, ...)`` -> (B, P, V) from the query stream (what
    :class:`lmlab.objectives.plm.PLMObjective` trains); ``forward`` -> :class:`XLNetLMOutput`
    (query stream when ``target_positions`` is given, else the content stream at every position).
    """

    family = "xlnet"
    config_class = XLNetConfig

    def __init__(self, config: XLNetConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = XLNet(config)
        self.lm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        _init_weights(self, config.init_std)

    @property
    def encoder(self) -> XLNet:
        return self.transformer

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        return self.transformer.encode(input_ids, attention_mask, segment_ids)

    def lm_logits(self, states: Tensor) -> Tensor:
        """(..., H) -> (..., V): W_e^T states + b (tied to the input embedding)."""
        return F.linear(states, self.transformer.word_embedding.weight, self.lm_bias)

    def plm_logits(self, input_ids: Tensor, perm_mask: Tensor, target_positions: Tensor,
                   segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                   memory: list[Tensor] | None = None) -> Tensor:
        """The permutation-LM predictions (B, P, V) at ``target_positions`` (B, P)."""
        if perm_mask.shape[1:] != (input_ids.shape[1], input_ids.shape[1]):
            raise UsageError(f"perm_mask must be (B, T, T) for ids of length T={input_ids.shape[1]}, "
                             f"got {tuple(perm_mask.shape)}")
        states = self.transformer(input_ids, segment_ids, attention_mask, perm_mask, target_positions, memory)
        return self.lm_logits(states.query)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                perm_mask: Tensor | None = None, target_positions: Tensor | None = None,
                memory: list[Tensor] | None = None, use_memory: bool = False) -> XLNetLMOutput:
        states = self.transformer(input_ids, segment_ids, attention_mask, perm_mask, target_positions, memory,
                                  use_memory)
        return XLNetLMOutput(self.lm_logits(states.query if states.query is not None else states.content),
                             states.memory)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int, predict_fraction: float = 1 / 6) -> float:
        """Training FLOPs per token: 6 × (matmul parameters of the content stream + the query stream
        and LM head at ``predict_fraction`` of the positions) + the attention products."""
        c = self.config
        per_layer = 5 * c.d_model * c.d_model + 2 * c.d_model * c.d_ff           # q k v o r + FFN
        dense = c.n_layers * per_layer * (1 + predict_fraction) + predict_fraction * c.d_model * c.vocab_size
        attention = c.n_layers * (1 + predict_fraction) * 3 * seq_len * c.d_model  # ac, bd (2T wide), prob·v
        return 6.0 * dense + 6.0 * attention
