"""ELMo: a character-CNN token encoder under a two-layer bidirectional LSTM language model, and a
learned scalar mix of its layers as contextual word vectors.

Peters et al. (2018), "Deep contextualized word representations" (NAACL); the biLM is that of
Jozefowicz et al. (2016), "Exploring the limits of language modeling" (char-CNN inputs, LSTM with
projection), and the details below follow the original TensorFlow code (bilm-tf), so the
original weights load (:mod:`lmlab.interop.allennlp`) and give AllenNLP's numbers to 1e-6.

- Characters (:class:`CharacterIds`): each token is at most ``max_characters`` (50) ids: its
  UTF-8 bytes (at most 48) between begin-of-word 258 and end-of-word 259, padded with 260; the
  sentence markers ``<S>`` / ``</S>`` (and lmlab's ``<s>`` / ``</s>``) are the one-character
  words 256 / 257; then 1 is added to every id so that 0 is "no token" (its embedding is 0).
- Token encoder (:class:`CharCNN`): char embeddings ``(B, T, 50, d_c)``; for each filter width
  ``w`` a convolution over the characters, max over positions, then the activation; the
  concatenation goes through highway layers ``y = g * relu(W_t x + b_t) + (1 - g) * x`` with
  ``g = sigmoid(W_c x + b_c)`` (bilm-tf's convention), and a linear projection to ``P``.
- Each direction is a stack of :class:`ProjectedLSTMCell` layers (Sak et al. 2014):
  ``i, f, g, o`` gates from ``W x_t + U h_{t-1} + b``, ``c_t = clip(f c_{t-1} + i g, cell_clip)``,
  ``h_t = clip(W_p (o * tanh c_t), proj_clip)``; layer 2's output adds layer 2's input (the
  residual between LSTM layers 1 and 2 only: layer index >= 1). The forward and backward LMs
  have separate LSTM weights and share the token encoder and the softmax (``nn.softmax``).
- Layers as features: ``h_0 = [x; x]`` (the token layer, duplicated), ``h_j = [h_fwd_j; h_bwd_j]``;
  :class:`ScalarMix` gives ``ELMo = gamma * sum_j softmax(s)_j h_j`` (optional layer norm of each
  layer over its unmasked positions first, as AllenNLP), learned with the task head.

Inputs: :meth:`ElmoLM.encode` and :meth:`ElmoLM.bilm` take either character ids ``(B, T, 50)``
(any word: out-of-vocabulary, misspelt or Chinese) or word ids ``(B, T)`` of the model's output
vocabulary, which are spelt with the ``spelling`` buffer (a word id's 50 character ids, saved
with the weights). Training and ``score_sentences`` feed word ids, so a word outside the closed
vocabulary is read as the characters of ``<unk>`` (bilm-tf reads its real characters; this is
the price of sharing the word-level stream and counting rule of the other word LMs).

Stateful: ``bilm`` and ``lm_direction`` take and return the LSTM states ``(h, c)``, per
direction ``(layers, B, P)`` and ``(layers, B, cell)``; a padded position leaves a row's state as
it was, so a row's state after a batch is its state after its last real token (AllenNLP's
stateful encoder).

What this file does not do: the training batcher of bilm-tf (lmlab's BPTT stream is used),
char-CNN output caching for a fixed vocabulary, or the ELMo-with-task-dropout variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, UsageError
from ..nn.softmax import OutputLayer, SoftmaxConfig, build_output_layer, output_layer_from_state
from ..pretrained import PretrainedMixin, load_state_strict, load_word_lm, save_word_lm

FAMILY = "elmo"

# ----------------------------------------------------------------------------- characters

BOS_CHAR, EOS_CHAR, BOW_CHAR, EOW_CHAR, PAD_CHAR = 256, 257, 258, 259, 260  # before the +1 shift
SENTENCE_START = ("<S>", "<s>")
SENTENCE_END = ("</S>", "</s>")


class CharacterIds:
    """Words -> ELMo character ids, exactly as bilm-tf and AllenNLP number them (ids already + 1).

    Nothing to learn and no vocabulary: the "tokenizer" an ELMo folder needs is this rule and
    ``max_characters`` (saved in the model's config).
    """

    kind = "elmo-chars"

    def __init__(self, max_characters: int = 50):
        if max_characters < 3:
            raise ConfigError(f"max_characters must be >= 3 (begin, one byte, end), got {max_characters}")
        self.max_characters = max_characters

    def _marker(self, char: int) -> list[int]:
        ids = [PAD_CHAR] * self.max_characters
        ids[0], ids[1], ids[2] = BOW_CHAR, char, EOW_CHAR
        return [c + 1 for c in ids]

    def word(self, word: str) -> list[int]:
        if word in SENTENCE_START:
            return self._marker(BOS_CHAR)
        if word in SENTENCE_END:
            return self._marker(EOS_CHAR)
        data = list(word.encode("utf-8", "ignore")[: self.max_characters - 2])
        ids = [BOW_CHAR, *data, EOW_CHAR] + [PAD_CHAR] * (self.max_characters - 2 - len(data))
        return [c + 1 for c in ids]

    def words(self, words: Sequence[str]) -> Tensor:
        """(len(words), max_characters) long."""
        return torch.tensor([self.word(w) for w in words], dtype=torch.long).view(len(words), self.max_characters)

    def batch(self, sentences: Sequence[Sequence[str]], boundaries: bool = True) -> tuple[Tensor, Tensor]:
        """(chars (B, T, C), mask (B, T)) for whitespace-tokenised sentences, each wrapped in
        ``<S> .. </S>`` when ``boundaries``; padded tokens are all-zero ids."""
        rows = [(["<S>", *s, "</S>"] if boundaries else list(s)) for s in sentences]
        T = max((len(r) for r in rows), default=0)
        chars = torch.zeros(len(rows), T, self.max_characters, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.bool)
        for b, row in enumerate(rows):
            if row:
                chars[b, : len(row)] = self.words(row)
                mask[b, : len(row)] = True
        return chars, mask


# ----------------------------------------------------------------------------- config


@dataclass
class ElmoConfig:
    vocab_size: int = 0                 # output words of the LM (0: an encoder only, e.g. loaded weights)
    max_characters: int = 50
    n_characters: int = 262             # 256 bytes + 5 markers + the "no token" id 0
    char_embed_dim: int = 16
    filters: list[list[int]] = field(default_factory=lambda: [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256],
                                                              [6, 512], [7, 1024]])  # [width, count]
    n_highway: int = 2
    activation: Literal["relu", "tanh"] = "relu"
    projection_dim: int = 512           # P: token vectors and every LSTM layer's output
    cell_dim: int = 4096                # LSTM memory cells
    n_layers: int = 2
    cell_clip: float = 3.0              # 0: no clipping
    proj_clip: float = 3.0
    skip_connections: bool = True       # residual around every LSTM layer but the first
    dropout: float = 0.1                # on each LSTM layer's input and on the top output, training only
    bos_id: int = 1                     # word ids of <s> and </s> in the output vocabulary
    eos_id: int = 2
    mix_layers: list[int] = field(default_factory=list)  # scalar mix over these layers (0 = token); [] = all
    mix_layer_norm: bool = False
    softmax: SoftmaxConfig = field(default_factory=SoftmaxConfig)

    @property
    def d_model(self) -> int:
        """The width of ``encode``'s output (``[h_fwd; h_bwd]``), what task heads size themselves by."""
        return 2 * self.projection_dim

    def validate(self) -> None:
        if self.vocab_size < 0 or self.vocab_size == 1:
            raise ConfigError(f"model.vocab_size must be 0 (no LM head) or >= 2, got {self.vocab_size}")
        if not self.filters or any(len(f) != 2 or f[0] < 1 or f[1] < 1 for f in self.filters):
            raise ConfigError(f"model.filters must be a list of [width >= 1, count >= 1], got {self.filters}")
        if max(f[0] for f in self.filters) > self.max_characters:
            raise ConfigError(f"model.filters: a width exceeds max_characters={self.max_characters}")
        for name in ("char_embed_dim", "projection_dim", "cell_dim", "n_layers", "max_characters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_characters < 262:
            raise ConfigError(f"model.n_characters must be >= 262 (bytes, markers, padding), got {self.n_characters}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.cell_clip < 0 or self.proj_clip < 0:
            raise ConfigError("model.cell_clip and model.proj_clip must be >= 0 (0: no clipping)")
        bad = [j for j in self.mix_layers if not 0 <= j <= self.n_layers]
        if bad or len(set(self.mix_layers)) != len(self.mix_layers):
            raise ConfigError(f"model.mix_layers: layers are 0 (tokens) .. {self.n_layers}, each once; "
                              f"got {self.mix_layers}")


PRESETS = {
    # the released "original" ELMo (Peters et al. 2018): 93.6M parameters in the biLM
    "elmo-original": {"char_embed_dim": 16, "projection_dim": 512, "cell_dim": 4096, "n_highway": 2},
    # AllenNLP's "small" release
    "elmo-small": {"char_embed_dim": 16, "projection_dim": 128, "cell_dim": 1024, "n_highway": 1,
                   "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]},
    "elmo-tiny": {"char_embed_dim": 8, "projection_dim": 32, "cell_dim": 64, "n_highway": 1,
                  "filters": [[1, 16], [2, 16], [3, 32], [4, 32]]},
}


# ----------------------------------------------------------------------------- the token encoder


class Highway(nn.Module):
    """``y = g * relu(W_t x + b_t) + (1 - g) * x``, ``g = sigmoid(W_c x + b_c)`` (bilm-tf's names)."""

    def __init__(self, dim: int):
        super().__init__()
        self.carry = nn.Linear(dim, dim)
        self.transform = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.carry(x))
        return g * F.relu(self.transform(x)) + (1.0 - g) * x


class CharCNN(nn.Module):
    """Character ids (N, C) -> token vectors (N, P): embed, convolve, max-pool, highway, project."""

    def __init__(self, config: ElmoConfig):
        super().__init__()
        self.char_embed = nn.Embedding(config.n_characters, config.char_embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(config.char_embed_dim, n, w) for w, n in config.filters)
        width = sum(n for _, n in config.filters)
        self.highways = nn.ModuleList(Highway(width) for _ in range(config.n_highway))
        self.projection = nn.Linear(width, config.projection_dim)
        self.activation = torch.tanh if config.activation == "tanh" else F.relu

    def forward(self, chars: Tensor) -> Tensor:
        e = self.char_embed(chars).transpose(1, 2)  # (N, C, d_c) -> (N, d_c, C) for Conv1d
        pooled = [self.activation(conv(e).max(dim=-1).values) for conv in self.convs]  # each (N, n_w)
        x = torch.cat(pooled, dim=-1)  # (N, sum n_w)
        for highway in self.highways:
            x = highway(x)
        return self.projection(x)


# ----------------------------------------------------------------------------- the LSTM


class ProjectedLSTMCell(nn.Module):
    """One LSTM layer with a projected, clipped output (gates in the order i, f, g, o)."""

    def __init__(self, input_dim: int, cell_dim: int, projection_dim: int, cell_clip: float, proj_clip: float):
        super().__init__()
        self.cell_dim = cell_dim
        self.input_linear = nn.Linear(input_dim, 4 * cell_dim, bias=False)
        self.state_linear = nn.Linear(projection_dim, 4 * cell_dim)  # carries the gates' bias
        self.projection = nn.Linear(cell_dim, projection_dim, bias=False)
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip

    def forward(self, x: Tensor, mask: Tensor, state: tuple[Tensor, Tensor], reverse: bool = False,
                reset: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` (B, T, I), ``mask`` (B, T) bool -> outputs (B, T, P) (0 where masked) and the last (h, c).

        ``reverse`` runs t = T-1 .. 0; ``reset`` (B, T) zeroes a row's state just before step t."""
        B, T, _ = x.shape
        h, c = state  # (B, P), (B, cell)
        xw = self.input_linear(x)  # (B, T, 4 cell): the input half of every step in one matmul
        keep = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        full = bool(mask.all())
        fresh = None if reset is None else (~reset).unsqueeze(-1).to(x.dtype)
        outputs = [x.new_zeros(0)] * T
        for t in range(T - 1, -1, -1) if reverse else range(T):
            if fresh is not None:
                h, c = h * fresh[:, t], c * fresh[:, t]
            i, f, g, o = (xw[:, t] + self.state_linear(h)).chunk(4, dim=-1)  # each (B, cell)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if self.cell_clip:
                c_new = c_new.clamp(-self.cell_clip, self.cell_clip)
            h_new = self.projection(torch.sigmoid(o) * torch.tanh(c_new))
            if self.proj_clip:
                h_new = h_new.clamp(-self.proj_clip, self.proj_clip)
            if full:  # no padding (training blocks): no blend needed
                h, c = h_new, c_new
                outputs[t] = h_new
                continue
            m = keep[:, t]
            h = m * h_new + (1 - m) * h
            c = m * c_new + (1 - m) * c
            outputs[t] = h_new * m
        return torch.stack(outputs, dim=1), (h, c)


class LSTMStack(nn.Module):
    """One direction's LM: ``n_layers`` projected LSTMs, residual around layer index >= 1."""

    def __init__(self, config: ElmoConfig):
        super().__init__()
        P = config.projection_dim
        self.layers = nn.ModuleList(ProjectedLSTMCell(P, config.cell_dim, P, config.cell_clip, config.proj_clip)
                                    for _ in range(config.n_layers))
        self.skip = config.skip_connections
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor, state: tuple[Tensor, Tensor], reverse: bool = False,
                reset: Tensor | None = None) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
        """(each layer's output (B, T, P), the new state ((L, B, P), (L, B, cell)))."""
        outputs, hs, cs = [], [], []
        for j, layer in enumerate(self.layers):
            out, (h, c) = layer(self.drop(x), mask, (state[0][j], state[1][j]), reverse, reset)
            if self.skip and j >= 1:
                out = out + x
            outputs.append(out)
            hs.append(h)
            cs.append(c)
            x = out
        return outputs, (torch.stack(hs), torch.stack(cs))


# ----------------------------------------------------------------------------- the scalar mix


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(s)_j h_j`` (Peters et al. 2018, eq. 1); ``s`` starts at 0 (equal weights)."""

    def __init__(self, n_layers: int, layer_norm: bool = False):
        super().__init__()
        self.scalars = nn.Parameter(torch.zeros(n_layers))
        self.gamma = nn.Parameter(torch.ones(()))
        self.layer_norm = layer_norm

    def forward(self, layers: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
        if len(layers) != self.scalars.numel():
            raise UsageError(f"scalar mix of {self.scalars.numel()} layers given {len(layers)}")
        weights = torch.softmax(self.scalars, dim=0)
        total = 0.0
        for w, h in zip(weights, layers):
            total = total + w * (self._normed(h, mask) if self.layer_norm else h)
        return self.gamma * total

    @staticmethod
    def _normed(h: Tensor, mask: Tensor | None) -> Tensor:
        """Layer norm with mean and variance over all unmasked positions and features (AllenNLP)."""
        m = torch.ones(h.shape[:-1], dtype=h.dtype, device=h.device) if mask is None else mask.to(h.dtype)
        m = m.unsqueeze(-1)  # (B, T, 1)
        n = m.sum() * h.shape[-1]
        mean = (h * m).sum() / n
        var = (((h - mean) * m) ** 2).sum() / n
        return (h - mean) / torch.sqrt(var + 1e-12)


# ----------------------------------------------------------------------------- the biLM


State = tuple[Tensor, Tensor]  # per direction: h (L, B, P), c (L, B, cell)


class ElmoLM(PretrainedMixin, nn.Module):
    """Char-CNN -> forward and backward LSTM LMs -> one shared output layer; ``encode`` mixes the layers."""

    family = FAMILY
    config_class = ElmoConfig

    def __init__(self, config: ElmoConfig, output: OutputLayer | None = None, vocab: Sequence[str] | None = None):
        super().__init__()
        config.validate()
        self.config = config
        self.chars = CharacterIds(config.max_characters)
        self.token_encoder = CharCNN(config)
        self.forward_lm = LSTMStack(config)
        self.backward_lm = LSTMStack(config)
        self.drop = nn.Dropout(config.dropout)
        n_mix = len(config.mix_layers) or config.n_layers + 1
        self.mix = ScalarMix(n_mix, config.mix_layer_norm)
        V = config.vocab_size
        if V and output is None:
            output = build_output_layer(config.softmax, config.projection_dim, [str(i) for i in range(V)],
                                        torch.ones(V, dtype=torch.long))
        self.output = output
        spelling = torch.zeros(V, config.max_characters, dtype=torch.long)
        if vocab is not None:
            if len(vocab) != V:
                raise ConfigError(f"vocabulary of {len(vocab)} words for a model of {V}")
            spelling = self.chars.words(list(vocab)) if V else spelling
        self.register_buffer("spelling", spelling)  # (V, C): each output word's character ids

    @classmethod
    def _from_state(cls, config: ElmoConfig, tensors: dict, where: str) -> ElmoLM:
        output = None
        if config.vocab_size:
            output = output_layer_from_state(config.softmax, config.projection_dim, config.vocab_size, tensors,
                                             "output.")
        model = cls(config, output)
        load_state_strict(model, tensors, where)
        return model

    # ------------------------------------------------------------------ pieces

    def initial_state(self, batch_size: int) -> State:
        cfg, w = self.config, self.token_encoder.projection.weight
        return (w.new_zeros(cfg.n_layers, batch_size, cfg.projection_dim),
                w.new_zeros(cfg.n_layers, batch_size, cfg.cell_dim))

    def characters(self, ids: Tensor) -> Tensor:
        """(B, T) word ids of the output vocabulary -> (B, T, C) character ids; (B, T, C) passes through."""
        if ids.ndim == 3:
            return ids
        if ids.ndim != 2:
            raise UsageError(f"ELMo input must be word ids (B, T) or character ids (B, T, C), got {tuple(ids.shape)}")
        if not self.config.vocab_size:
            raise UsageError("this ELMo has no word vocabulary: give it character ids (B, T, C)")
        return self.spelling[ids]

    def token_embeddings(self, chars: Tensor) -> Tensor:
        """(B, T, C) character ids -> (B, T, P) context-independent token vectors (0 where no token)."""
        B, T, C = chars.shape
        x = self.token_encoder(chars.reshape(B * T, C)).view(B, T, -1)  # (B*T, P) -> (B, T, P)
        return x * (chars > 0).any(-1, keepdim=True).to(x.dtype)

    def lm_direction(self, backward: bool, ids: Tensor, state: State | None = None, reset: Tensor | None = None
                     ) -> tuple[Tensor, State]:
        """One LM over a block already in its reading order (training: the backward LM reads the
        reversed stream left to right) -> top outputs (B, T, P) after dropout, and the new state."""
        chars = self.characters(ids)
        mask = (chars > 0).any(-1)
        x = self.token_embeddings(chars)
        state = self.initial_state(x.shape[0]) if state is None else state
        lm = self.backward_lm if backward else self.forward_lm
        outputs, state = lm(x, mask, state, reverse=False, reset=reset)
        return self.drop(outputs[-1]), state

    def bilm(self, ids: Tensor, mask: Tensor | None = None, state: tuple[State, State] | None = None
             ) -> tuple[list[Tensor], Tensor, tuple[State, State]]:
        """Both LMs over the same sentences -> (layers, mask, state).

        ``layers[0]`` = ``[x; x]`` (B, T, 2P), ``layers[j]`` = ``[h_fwd_j; h_bwd_j]``; the backward
        LM runs right to left from each row's last real token."""
        chars = self.characters(ids)
        mask = (chars > 0).any(-1) if mask is None else mask.bool() & (chars > 0).any(-1)
        x = self.token_embeddings(chars)
        x = x * mask.unsqueeze(-1).to(x.dtype)
        B = x.shape[0]
        f_state, b_state = state if state is not None else (self.initial_state(B), self.initial_state(B))
        fwd, f_state = self.forward_lm(x, mask, f_state)
        bwd, b_state = self.backward_lm(x, mask, b_state, reverse=True)
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat([f, b], dim=-1) for f, b in zip(fwd, bwd)]
        return layers, mask, (f_state, b_state)

    def encode(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, None]:
        """The encoder protocol: the scalar mix of the biLM's layers (B, T, 2P), each sentence
        from a zero state; ``ids`` word ids (B, T) or character ids (B, T, C)."""
        layers, mask, _ = self.bilm(ids, mask)
        if self.config.mix_layers:
            layers = [layers[j] for j in self.config.mix_layers]
        return self.mix(layers, mask) * mask.unsqueeze(-1).to(layers[0].dtype), None

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def score_both(self, sentences: list[list[int]], batch_size: int = 64) -> tuple[list[Tensor], list[Tensor]]:
        """Per sentence ``w_1 .. w_n </s>`` (ids): the forward LM's log P(w_1..w_n, </s>) and the
        backward LM's log P(w_1..w_n, <s>) (each word from its right context), each from a zero state."""
        if self.output is None:
            note = getattr(self, "softmax_note", "") or ("its weights have no softmax (softmax/W, softmax/b) and no "
                                                          "vocabulary file was given")
            raise UsageError(f"this ELMo has no output layer (vocab_size = 0) and cannot score words: {note}")
        was_training = self.training
        self.eval()
        device = self.spelling.device
        bos = self.config.bos_id
        fwd: list[Tensor | None] = [None] * len(sentences)
        bwd: list[Tensor | None] = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            T = max(len(sentences[i]) for i in idx) + 1
            ids = torch.full((len(idx), T), bos, dtype=torch.long)
            mask = torch.zeros(len(idx), T, dtype=torch.bool)
            for row, i in enumerate(idx):
                s = torch.as_tensor(sentences[i], dtype=torch.long)
                ids[row, 1:len(s) + 1] = s  # <s> w_1 .. w_n </s>
                mask[row, :len(s) + 1] = True
            layers, _, _ = self.bilm(ids.to(device), mask.to(device))
            P = self.config.projection_dim
            h_f, h_b = layers[-1][..., :P], layers[-1][..., P:]  # (B, T, P) each
            ids = ids.to(device)
            for row, i in enumerate(idx):
                n = len(sentences[i])  # events per direction: w_1 .. w_n </s> forward, <s> w_1 .. w_n backward
                # position p of the forward LM has read ids[0..p] and predicts ids[p+1]
                fwd[i] = self.output.log_prob(h_f[row, :n], ids[row, 1:n + 1]).float().cpu()
                # position p of the backward LM has read ids[p..n] and predicts ids[p-1]
                b_lp = self.output.log_prob(h_b[row, 1:n + 1], ids[row, :n]).float().cpu()
                bwd[i] = torch.cat([b_lp[1:], b_lp[:1]])  # (w_1 .. w_n, <s>): aligned with the forward events
        self.train(was_training)
        return fwd, bwd  # type: ignore[return-value]

    def score_sentences(self, sentences: list[list[int]], batch_size: int = 64) -> list[Tensor]:
        """The shared scoring protocol: the mean of the forward and backward log-probabilities of
        each event (so exp of the mean loss is the geometric mean of the two perplexities, the
        number bilm-tf reports). :meth:`score_both` has the two directions apart."""
        fwd, bwd = self.score_both(sentences, batch_size)
        return [(f + b) / 2 for f, b in zip(fwd, bwd)]


# ----------------------------------------------------------------------------- building, saving, loading


def build(config: ElmoConfig, vocab: list[str], counts) -> ElmoLM:
    """An ELMo LM over ``vocab`` whose output layer is built from the training counts."""
    config.vocab_size = len(vocab)
    for special in ("<s>", "</s>"):
        if special not in vocab:
            raise ConfigError(f"the vocabulary has no {special} token")
    config.bos_id, config.eos_id = list(vocab).index("<s>"), list(vocab).index("</s>")
    config.validate()
    output = build_output_layer(config.softmax, config.projection_dim, vocab, counts)
    return ElmoLM(config, output, vocab)


def save(model: ElmoLM, folder, vocab: list[str], data: dict | None = None):
    """config.json + model.safetensors (the spelling table inside) + the vocabulary as a word tokenizer."""
    return save_word_lm(model, folder, vocab, data)


def load(folder) -> tuple[ElmoLM, list[str]]:
    return load_word_lm(ElmoLM, folder)
