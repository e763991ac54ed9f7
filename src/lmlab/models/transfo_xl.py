"""Transformer-XL (Dai et al. 2019, "Transformer-XL: Attentive Language Models Beyond a
Fixed-Length Context"), with adaptive input (Baevski & Auli 2019) and the adaptive softmax
(Grave et al. 2017) as the reference code (kimiyoung/transformer-xl, ``mem_transformer.py``) has them.

- **Segment recurrence.** A segment of ``T`` tokens is processed with a memory of the ``M`` most
  recent earlier positions of every layer's *input* (the embedding output included: ``n_layer``
  tensors), detached, so a query at layer ``l`` attends to ``[mem_l ; h_l]`` (``K = M + T`` keys)
  under the causal mask ``j <= M + i``. ``same_length`` also hides the keys further back than
  ``mem_len``, so every query sees the same number of keys. The memory kept after a segment is
  the last ``mem_len`` positions of ``[mem_l ; h_l]``.
- **Relative positions.** With ``R`` the sinusoid of the distances ``K-1 .. 0`` (sin and cos
  *concatenated*, clamped at ``clamp_len``), ``u = r_w_bias`` and ``v = r_r_bias`` (per layer):
  ``score_ij = (q_i + u) . k_j + (q_i + v) . W_r R_{i-j}`` (the paper's AC + BD), scaled by
  ``1/sqrt(d_head)``. BD is computed for every (query, distance) pair and moved into
  (query, key) layout by :func:`rel_shift`.
- **Adaptive input / output.** :class:`AdaptiveEmbedding` cuts the frequency-sorted vocabulary
  at ``cutoffs``, cluster ``i`` embedded in ``d_embed / div_val^i`` dimensions and projected to
  ``d_model``, times ``sqrt(d_model)``; the output is :class:`lmlab.nn.softmax.AdaptiveSoftmax`
  with its word vectors (``tie_weights``) and the tail projections (``tie_projs``) shared with
  the input, exact ``log_prob`` everywhere.
- Post-LN by default (``pre_lnorm``), ReLU feed-forward, dropout on embeddings, positions,
  attention output and feed-forward (``dropatt`` on the attention probabilities).

The parameter names are those of Hugging Face v4's ``TransfoXLLMHeadModel`` (kimiyoung's
names), so converted checkpoints load key for key (:mod:`lmlab.interop.hf_transfo_xl`).

Documents in a training stream: ``forward(..., reset)`` starts a new document at the flagged
positions; the memory carries a document number per position and a query only attends to keys
of its own document (the reference code ignores document boundaries; so does scoring a plain
stream here, where nothing is flagged).

What this file does not do: the absolute-position variants (``attn_type`` 1-3), untied-across-
layers-only biases (``untie_r=False``), sampled softmax, fp16 tricks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, UsageError
from ..nn.softmax import AdaptiveSoftmax, check_cutoffs
from ..pretrained import PretrainedMixin, load_state_strict

FAMILY = "transfo-xl"


@dataclass
class TransfoXLConfig:
    vocab_size: int = 0                 # 0: set from the data's vocabulary
    cutoffs: list[int] = field(default_factory=list)  # adaptive input/softmax; [] = one plain softmax
    div_val: int = 1
    d_model: int = 410
    d_embed: int = 410
    n_head: int = 10
    d_head: int = 41
    d_inner: int = 2100
    n_layer: int = 16
    pre_lnorm: bool = False
    mem_len: int = 150                  # positions of memory kept per layer (training and default evaluation)
    clamp_len: int = -1                 # distances above are clamped; <= 0: off
    same_length: bool = False
    tie_weights: bool = True            # output word vectors = adaptive input embeddings
    tie_projs: bool = True              # tail-cluster output projections = input projections
    dropout: float = 0.1
    dropatt: float = 0.0
    layer_norm_epsilon: float = 1e-5
    init_std: float = 0.02
    proj_init_std: float = 0.01
    max_length: int = 1024              # generation cap (there are no absolute positions)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def validate(self) -> None:
        if self.vocab_size == 1 or self.vocab_size < 0:
            raise ConfigError(f"model.vocab_size must be >= 2, got {self.vocab_size}")
        for name in ("d_model", "d_embed", "n_head", "d_head", "d_inner", "n_layer", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % 2:
            raise ConfigError(f"model.d_model must be even (sin and cos halves), got {self.d_model}")
        if self.mem_len < 0:
            raise ConfigError(f"model.mem_len must be >= 0, got {self.mem_len}")
        for name in ("dropout", "dropatt"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.vocab_size:
            check_cutoffs(self.cutoffs, self.vocab_size, self.div_val, self.d_embed, "model")


PRESETS: dict[str, dict] = {
    # Hugging Face v4 "transfo-xl-wt103" (the TF SOTA WT103 model); evaluated with mem 1600, clamp 1000
    "transfo-xl-wt103": {"vocab_size": 267735, "cutoffs": [20000, 40000, 200000], "div_val": 4, "d_model": 1024,
                         "d_embed": 1024, "n_head": 16, "d_head": 64, "d_inner": 4096, "n_layer": 18,
                         "mem_len": 1600, "clamp_len": 1000, "same_length": True, "dropout": 0.1},
    # kimiyoung run_wt103_base.sh: 16 x 410, 10 heads x 41, train tgt = mem = 150
    "wt103-base": {"vocab_size": 267735, "cutoffs": [20000, 40000, 200000], "div_val": 1, "d_model": 410,
                   "d_embed": 410, "n_head": 10, "d_head": 41, "d_inner": 2100, "n_layer": 16, "mem_len": 150},
    # what configs/transfo_xl.toml trains on a laptop CPU
    "xl-tiny": {"d_model": 128, "d_embed": 128, "n_head": 4, "d_head": 32, "d_inner": 512, "n_layer": 4,
                "mem_len": 64, "dropout": 0.1},
}

def tied_pairs(config: TransfoXLConfig) -> list[tuple[str, str]]:
    """(input parameter, output parameter that is the same tensor), as HF v4's ``tie_weights`` ties them:
    every output word matrix to its input one; with ``tie_projs`` every tail cluster's projection
    (not the head's: ``proj_share_all_but_first``) to the input projection of that cluster."""
    n_parts = len(config.cutoffs) + 1
    n_out_layers = 1 if config.div_val == 1 else n_parts
    n_out_projs = n_parts if (config.div_val > 1 or config.d_model != config.d_embed) else 0
    pairs = []
    if config.tie_weights:
        pairs += [(f"transformer.word_emb.emb_layers.{i}.weight", f"crit.out_layers.{i}.weight")
                  for i in range(n_out_layers)]
    if config.tie_projs:
        for i in range(1, n_out_projs):
            source = 0 if config.div_val == 1 else i
            pairs.append((f"transformer.word_emb.emb_projs.{source}", f"crit.out_projs.{i}"))
    return pairs


State = tuple[Tensor, ...]  # (doc (B, M) long, mem_0 .. mem_{n_layer-1} each (B, M, d_model))


def rel_shift(x: Tensor) -> Tensor:
    """(..., T, K) scores indexed by (query i, distance slot p) -> (..., T, K) indexed by (query i, key j).

    Slot ``p`` holds distance ``K-1-p``; query ``i`` sits at key position ``K-T+i``, so key ``j`` is at
    distance ``K-T+i-j``, i.e. out[i, j] = x[i, j + T-1-i] wherever ``j <= K-T+i`` (the rest is
    masked anyway). Done without indexing: pad a zero column in front, read the (T, K+1) block as
    (K+1, T), drop its first row and read the rest back as (T, K).
    """
    *lead, T, K = x.shape
    padded = F.pad(x, (1, 0))                           # (..., T, K+1)
    padded = padded.reshape(*lead, K + 1, T)            # (..., K+1, T)
    return padded[..., 1:, :].reshape(*lead, T, K)      # (..., T, K)


class PositionalEmbedding(nn.Module):
    """``R_p = [sin(p w) ; cos(p w)]`` with ``w_k = 1 / 10000^(2k / d)``, concatenated (not interleaved)."""

    def __init__(self, d_model: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0.0, d_model, 2.0) / d_model))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        angles = torch.outer(positions, self.inv_freq)   # (K, d/2)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (K, d)


class AdaptiveEmbedding(nn.Module):
    """Baevski & Auli's adaptive input: cluster ``i`` of the vocabulary in ``d_embed / div_val^i``
    dimensions, projected to ``d_model`` (``emb_projs.i``), then scaled by ``sqrt(d_model)``."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.cutoff_ends = [0, *config.cutoffs, config.vocab_size]
        self.div_val = config.div_val
        self.d_model = config.d_model
        self.emb_scale = config.d_model ** 0.5
        self.emb_layers = nn.ModuleList()
        self.emb_projs = nn.ParameterList()
        if config.div_val == 1:
            self.emb_layers.append(nn.Embedding(config.vocab_size, config.d_embed))
            if config.d_model != config.d_embed:
                self.emb_projs.append(nn.Parameter(torch.randn(config.d_model, config.d_embed) * config.proj_init_std))
        else:
            for i, (lo, hi) in enumerate(zip(self.cutoff_ends, self.cutoff_ends[1:])):
                d_i = config.d_embed // config.div_val ** i
                self.emb_layers.append(nn.Embedding(hi - lo, d_i))
                self.emb_projs.append(nn.Parameter(torch.randn(config.d_model, d_i) * config.proj_init_std))

    def forward(self, ids: Tensor) -> Tensor:
        if self.div_val == 1:
            e = self.emb_layers[0](ids)                                   # (B, T, d_embed)
            if len(self.emb_projs):
                e = F.linear(e, self.emb_projs[0])                        # (B, T, d_model)
            return e * self.emb_scale
        flat = ids.reshape(-1)                                            # (B T,)
        out = self.emb_projs[0].new_zeros(flat.numel(), self.d_model)     # (B T, d_model)
        for i, (lo, hi) in enumerate(zip(self.cutoff_ends, self.cutoff_ends[1:])):
            rows = ((flat >= lo) & (flat < hi)).nonzero()[:, 0]
            if rows.numel() == 0:
                continue
            e_i = F.linear(self.emb_layers[i](flat[rows] - lo), self.emb_projs[i])  # (n_i, d_model)
            out = out.index_copy(0, rows, e_i)
        return out.reshape(*ids.shape, self.d_model) * self.emb_scale    # (B, T, d_model)


class RelPartialLearnableMultiHeadAttn(nn.Module):
    """Relative multi-head attention over ``[memory ; segment]`` with the ``u``, ``v`` biases, then
    the residual and the layer norm (post-LN, or pre-LN on the input with ``pre_lnorm``)."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        n, d = config.n_head, config.d_head
        self.n_head, self.d_head, self.pre_lnorm = n, d, config.pre_lnorm
        self.qkv_net = nn.Linear(config.d_model, 3 * n * d, bias=False)
        self.r_net = nn.Linear(config.d_model, n * d, bias=False)
        self.o_net = nn.Linear(n * d, config.d_model, bias=False)
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.r_w_bias = nn.Parameter(torch.zeros(n, d))   # u: content bias
        self.r_r_bias = nn.Parameter(torch.zeros(n, d))   # v: position bias
        self.drop = nn.Dropout(config.dropout)
        self.dropatt = nn.Dropout(config.dropatt)
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, h: Tensor, r: Tensor, mem: Tensor, blocked: Tensor) -> Tensor:
        """h (B, T, C), r (K, C) sinusoids of distances K-1..0, mem (B, M, C), blocked (B|1, T, K) bool."""
        B, T, _ = h.shape
        n, d = self.n_head, self.d_head
        cat = torch.cat([mem, h], dim=1)                                   # (B, K, C)
        K = cat.shape[1]
        w_heads = self.qkv_net(self.layer_norm(cat) if self.pre_lnorm else cat)
        q, k, v = w_heads.chunk(3, dim=-1)                                 # 3 x (B, K, n d)
        q = q[:, -T:].reshape(B, T, n, d)                                  # queries: the segment only
        k = k.reshape(B, K, n, d)
        v = v.reshape(B, K, n, d)
        r_k = self.r_net(r).reshape(K, n, d)                               # W_r R: (K, n, d)
        AC = torch.einsum("bind,bjnd->bnij", q + self.r_w_bias, k)         # (B, n, T, K)
        BD = rel_shift(torch.einsum("bind,jnd->bnij", q + self.r_r_bias, r_k))  # (B, n, T, K)
        score = (AC + BD) * self.scale
        score = score.masked_fill(blocked[:, None], float("-inf"))
        prob = self.dropatt(torch.softmax(score, dim=-1))
        out = torch.einsum("bnij,bjnd->bind", prob, v).reshape(B, T, n * d)  # (B, T, n d)
        out = self.drop(self.o_net(out))
        return h + out if self.pre_lnorm else self.layer_norm(h + out)


class PositionwiseFF(nn.Module):
    """``LN(x + W_2 ReLU(W_1 x))`` (post-LN) or ``x + W_2 ReLU(W_1 LN(x))`` (pre-LN).

    ``CoreNet`` keeps the reference code's layout (Linear, ReLU, Dropout, Linear, Dropout: the
    weights are ``CoreNet.0`` and ``CoreNet.3``)."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.pre_lnorm = config.pre_lnorm
        self.CoreNet = nn.Sequential(
            nn.Linear(config.d_model, config.d_inner), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.d_inner, config.d_model), nn.Dropout(config.dropout))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, x: Tensor) -> Tensor:
        if self.pre_lnorm:
            return x + self.CoreNet(self.layer_norm(x))
        return self.layer_norm(x + self.CoreNet(x))


class RelPartialLearnableDecoderLayer(nn.Module):
    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.dec_attn = RelPartialLearnableMultiHeadAttn(config)
        self.pos_ff = PositionwiseFF(config)

    def forward(self, h: Tensor, r: Tensor, mem: Tensor, blocked: Tensor) -> Tensor:
        return self.pos_ff(self.dec_attn(h, r, mem, blocked))


class TransfoXLModel(nn.Module):
    """Adaptive input -> ``n_layer`` relative-attention layers with memory -> hidden states."""

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        self.config = config
        self.word_emb = AdaptiveEmbedding(config)
        self.pos_emb = PositionalEmbedding(config.d_model)
        self.layers = nn.ModuleList(RelPartialLearnableDecoderLayer(config) for _ in range(config.n_layer))
        self.drop = nn.Dropout(config.dropout)

    def empty_state(self, batch_size: int) -> State:
        p = self.pos_emb.inv_freq
        mem = torch.zeros(batch_size, 0, self.config.d_model, device=p.device, dtype=self.layers[0].dec_attn.r_w_bias.dtype)
        doc = torch.zeros(batch_size, 0, dtype=torch.long, device=p.device)
        return (doc, *([mem] * self.config.n_layer))

    def attention_mask(self, doc: Tensor, M: int, T: int, mem_len: int) -> Tensor:
        """(B, T, K) bool, True = hidden: the future, keys of another document, and with
        ``same_length`` the keys more than ``mem_len`` back (kimiyoung's ``dec_attn_mask``)."""
        K = M + T
        ones = torch.ones(T, K, dtype=torch.bool, device=doc.device)
        blocked = torch.triu(ones, diagonal=1 + M)                        # j > M + i: the future
        if self.config.same_length and mem_len > 0:
            mask_len = K - mem_len
            shift = T - mask_len if mask_len > 0 else T
            blocked = blocked | torch.tril(ones, diagonal=-shift)
        other_doc = doc[:, M:, None] != doc[:, None, :]                   # (B, T, K)
        return blocked[None] | other_doc

    def forward(self, ids: Tensor, state: State | None = None, reset: Tensor | None = None,
                mem_len: int | None = None) -> tuple[Tensor, State]:
        """ids (B, T) -> hidden states (B, T, d_model) and the memory for the next segment.

        ``reset`` (B, T) bool starts a new document at the flagged positions; ``mem_len`` overrides
        the configured memory length (evaluation with a longer memory than training)."""
        B, T = ids.shape
        mem_len = self.config.mem_len if mem_len is None else mem_len
        mem_doc, *mems = self.empty_state(B) if state is None else state
        if len(mems) != self.config.n_layer or mem_doc.shape[0] != B:
            raise UsageError(f"Transformer-XL memory holds {len(mems)} layers x {mem_doc.shape[0]} rows; "
                             f"the model has {self.config.n_layer} layers and the batch {B} rows")
        M = mem_doc.shape[1]
        seg_doc = torch.zeros(B, T, dtype=torch.long, device=ids.device)
        if reset is not None:
            seg_doc = torch.cumsum(reset.long(), dim=1)                   # +1 at every new document
        doc = torch.cat([mem_doc, seg_doc], dim=1)                        # (B, K): memory docs are <= 0
        blocked = self.attention_mask(doc, M, T, mem_len)
        positions = torch.arange(M + T - 1, -1, -1.0, device=ids.device)  # distances K-1 .. 0
        if self.config.clamp_len > 0:
            positions = positions.clamp(max=self.config.clamp_len)
        r = self.drop(self.pos_emb(positions).to(mems[0].dtype))         # (K, d_model)
        h = self.drop(self.word_emb(ids))
        inputs = []
        for layer, mem in zip(self.layers, mems):
            inputs.append(h)
            h = layer(h, r, mem, blocked)
        h = self.drop(h)
        keep = min(mem_len, M + T)
        new_doc = (doc - seg_doc[:, -1:])[:, M + T - keep:]              # renumbered: the last document is 0
        new_mems = [torch.cat([mem, x], dim=1)[:, M + T - keep:].detach() for mem, x in zip(mems, inputs)]
        return h, (new_doc, *new_mems)


class XLMemoryCache:
    """The memory as a generation cache (:mod:`lmlab.tasks.generation`): beam search reorders it."""

    def __init__(self, max_length: int):
        self.max_length = max_length
        self.state: State | None = None

    def reorder(self, index: Tensor) -> None:
        if self.state is not None:
            self.state = tuple(t.index_select(0, index) for t in self.state)


class TransfoXLLMHeadModel(PretrainedMixin, nn.Module):
    """Transformer-XL with the adaptive softmax on top (``crit``), tied to the adaptive input."""

    family = FAMILY
    config_class = TransfoXLConfig

    def __init__(self, config: TransfoXLConfig):
        super().__init__()
        config.validate()
        if config.vocab_size < 2:
            raise ConfigError("model.vocab_size is not set (build the model with its vocabulary)")
        self.config = config
        self.transformer = TransfoXLModel(config)
        self.crit = AdaptiveSoftmax(config.vocab_size, config.d_embed, config.d_model, config.cutoffs,
                                    config.div_val, config.init_std, config.proj_init_std)
        self._init_weights()
        for source, target in self.tied_pairs():
            self._set(target, self.get_parameter(source))

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.endswith("layer_norm.weight"):
                nn.init.ones_(p)
            elif "projs." in name:
                nn.init.normal_(p, std=self.config.proj_init_std)
            elif name.endswith("bias") and p.ndim == 1:
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, std=self.config.init_std)

    def tied_pairs(self) -> list[tuple[str, str]]:
        return tied_pairs(self.config)

    def _set(self, name: str, param: nn.Parameter) -> None:
        owner, _, attr = name.rpartition(".")
        setattr(self.get_submodule(owner), attr, param)

    def _state_for_saving(self) -> dict:
        state = self.state_dict()
        for _, target in self.tied_pairs():
            state.pop(target)  # saved once, under the input's name
        return state

    @classmethod
    def _from_state(cls, config: TransfoXLConfig, tensors: dict, where: str) -> TransfoXLLMHeadModel:
        model = cls(config)
        tensors = dict(tensors)
        for source, target in model.tied_pairs():
            if source not in tensors:
                raise CheckpointError(f"{where}: tied weights without {source!r}")
            tensors.setdefault(target, tensors[source])
        load_state_strict(model, tensors, where)
        return model

    @property
    def output(self) -> AdaptiveSoftmax:
        """The output layer (the name :class:`lmlab.objectives.bptt.BPTTObjective` uses)."""
        return self.crit

    def forward(self, ids: Tensor, state: State | None = None, reset: Tensor | None = None,
                mem_len: int | None = None) -> tuple[Tensor, State]:
        """ids (B, T) -> hidden states (B, T, d_model), new memory; ``crit`` turns states into log-probs."""
        return self.transformer(ids, state, reset, mem_len)

    def log_probs(self, ids: Tensor, state: State | None = None, mem_len: int | None = None
                  ) -> tuple[Tensor, State]:
        """(B, T, V) exact log-probabilities of the next token (HF's ``prediction_scores``), new memory."""
        h, state = self(ids, state, None, mem_len)
        B, T, C = h.shape
        return self.crit.log_probs(h.reshape(B * T, C)).reshape(B, T, -1), state

    @torch.no_grad()
    def score_sentences(self, sentences: list[list[int]], batch_size: int = 64) -> list[Tensor]:
        """Natural-log probabilities of ``w_1 .. w_n </s>``, each sentence from an empty memory with
        ``<s>`` first: the conditioning every word-level LM in lmlab is compared on."""
        if self.config.bos_token_id is None:
            raise UsageError("scoring sentences needs the model's bos_token_id (the <s> id)")
        was_training = self.training
        self.eval()
        device = self.crit.out_layers[0].weight.device
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        result: list[Tensor | None] = [None] * len(sentences)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(sentences[i]) for i in rows) + 1
            ids = torch.full((len(rows), width), self.config.bos_token_id, dtype=torch.long)
            mask = torch.zeros(len(rows), width - 1, dtype=torch.bool)
            for r, i in enumerate(rows):
                ids[r, 1:len(sentences[i]) + 1] = torch.as_tensor(sentences[i], dtype=torch.long)
                mask[r, :len(sentences[i])] = True
            h, _ = self(ids[:, :-1].to(device))                            # right padding: never attended to
            lp = self.crit.log_prob(h[mask.to(device)], ids[:, 1:][mask].to(device)).float().cpu()
            for i, piece in zip(rows, torch.split(lp, mask.sum(1).tolist())):
                result[i] = piece
        self.train(was_training)
        return result  # type: ignore[return-value]

    @torch.no_grad()
    def stream_log_probs(self, ids: Tensor, segment_len: int, mem_len: int) -> Tensor:
        """log P(ids[t] | ids[<t]) for t >= 1 of a (B, N) stream, segment by segment with a memory of
        ``mem_len`` (the paper's evaluation; memory longer than in training is allowed): (B, N-1)."""
        was_training = self.training
        self.eval()
        state = None
        out = []
        x, y = ids[:, :-1], ids[:, 1:]
        for start in range(0, x.shape[1], segment_len):
            h, state = self(x[:, start:start + segment_len], state, None, mem_len)
            B, T, C = h.shape
            target = y[:, start:start + T].reshape(-1)
            out.append(self.crit.log_prob(h.reshape(B * T, C), target).reshape(B, T))
        self.train(was_training)
        return torch.cat(out, dim=1)

    # the protocol lmlab.tasks.generation drives: the memory is the cache
    def new_cache(self, batch_size: int, max_length: int) -> XLMemoryCache:
        return XLMemoryCache(max_length)

    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor | None,
                          cache: XLMemoryCache | None) -> Tensor:
        """(B, V) log-probabilities of the next token. With a cache only the new tokens are run, on
        top of the memory of everything before (kept whole up to ``max_length``, so the result is the
        same as recomputing the prefix)."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise UsageError("Transformer-XL generation takes unpadded prompts (one length per batch)")
        mem_len = self.config.max_length if cache is None else cache.max_length
        h, state = self(input_ids, None if cache is None else cache.state, None, mem_len)
        if cache is not None:
            cache.state = state
        return self.crit.log_probs(h[:, -1])

    @property
    def max_positions(self) -> int:
        return self.config.max_length


def build(config: TransfoXLConfig, vocab: list[str]) -> TransfoXLLMHeadModel:
    """A model for a closed word vocabulary sorted by frequency (the specials first): <s> and </s> ids set."""
    config.vocab_size = len(vocab)
    for token in ("<s>", "</s>"):
        if token not in vocab:
            raise ConfigError(f"the vocabulary has no {token} token")
    config.bos_token_id = list(vocab).index("<s>")
    config.eos_token_id = list(vocab).index("</s>")
    return TransfoXLLMHeadModel(config)
