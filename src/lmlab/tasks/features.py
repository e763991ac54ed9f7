"""Static word vectors (word2vec, fastText, GloVe) as the features of a text classifier.

The feature-based baseline the seeds set beside fine-tuning: each word of a text is looked up in
a fixed table of pretrained vectors (Mikolov et al. 2013; Bojanowski et al. 2017; Pennington et
al. 2014), and a classifier is trained on top — on their average (``pooling = "mean"``, the
"averaged word vectors" baseline) or on the sequence of vectors (``head = "bilstm"``, per token).

:class:`StaticVectors` is an encoder in the registry's sense (family ``static-vectors``, the
``encode`` capability): ``encode(ids, mask) -> (vectors (B, T, d), None)``, so the one
:class:`lmlab.tasks.classification.SequenceClassifier` trains on it unchanged. Its ``text_format``
is ``words``: the text's words alone, words missing from the table dropped (rather than averaged
in as zeros). :func:`from_vector_file` reads any file :class:`lmlab.embeddings.vectors.Vectors`
reads (word2vec text or binary, GloVe's header-less text) and returns the encoder and the matching
word tokenizer (the table's words plus ``<unk> <s> </s> <pad>``, whose vectors are zero).

The table is frozen by default (features); ``trainable = true`` in its config fine-tunes it.

:class:`ElmoFeatures` (family ``elmo-features``) is the same idea for ELMo (Peters et al. 2018,
§3.3): a frozen biLM (:class:`lmlab.models.elmo.ElmoLM`, no softmax) whose layers feed a learned
scalar mix, optionally followed by a trainable BiLSTM (the NER set-up of the paper), behind the
encoder protocol. Its input ids are those of a word tokenizer built for the task by
:func:`elmo_features`: the ELMo's own vocabulary plus every token of the task's texts; the
``spelling`` buffer holds each id's ELMo character ids, so every word of the task, in any script,
is read by its real characters. A word absent from that table (new text at prediction time) is
read as ``<unk>`` (dropped by the ``words`` text format of classification). ``boundaries``: each
row is wrapped in ``<S> .. </S>`` (classification rows are bare words); off for tagging, whose
rows are framed by the tokenizer's ``<s> .. </s>`` already (spelt as the same sentence markers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, UsageError
from ..pretrained import PretrainedMixin


@dataclass
class StaticVectorsConfig:
    vocab_size: int = 4
    d_model: int = 100           # the vectors' dimension
    trainable: bool = False
    source: str = ""             # the vector file it was read from (a record, not read again)

    def validate(self) -> None:
        if self.vocab_size < 1 or self.d_model < 1:
            raise ConfigError(f"static vectors: vocab_size and d_model must be >= 1, got {self.vocab_size}, "
                              f"{self.d_model}")


class StaticVectors(PretrainedMixin, nn.Module):
    """A fixed table of word vectors behind the encoder protocol."""

    family = "static-vectors"
    config_class = StaticVectorsConfig
    text_format = "words"

    def __init__(self, config: StaticVectorsConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.vectors = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.vectors.weight, std=0.1)  # a fresh table; from_vector_file overwrites it
        self.vectors.weight.requires_grad_(config.trainable)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(the words' vectors (B, T, d), None): no context, no pooled vector."""
        return self.vectors(input_ids), None


def from_vector_file(path: str | Path, lowercase: bool = True, trainable: bool = False):
    """(StaticVectors, WordTokenizer) of a word2vec / fastText / GloVe vector file."""
    from ..data.tokenizers import WordTokenizer
    from ..data.tokenizers.word import SPECIALS
    from ..embeddings.vectors import Vectors

    table = Vectors.load(path)
    words = [w for w in table.words if w not in SPECIALS]
    if lowercase:  # the first (most frequent) spelling of a word wins
        seen, kept = set(), []
        for w in words:
            if w.lower() not in seen:
                seen.add(w.lower())
                kept.append(w)
        words = kept
    tokens = [*SPECIALS, *(w.lower() if lowercase else w for w in words)]
    tokenizer = WordTokenizer(tokens, lowercase=lowercase)
    model = StaticVectors(StaticVectorsConfig(vocab_size=len(tokens), d_model=table.dim, trainable=trainable,
                                              source=str(path)))
    matrix = np.zeros((len(tokens), table.dim), dtype=np.float32)
    matrix[len(SPECIALS):] = table.vectors[[table.row(w) for w in words]]
    with torch.no_grad():
        model.vectors.weight.copy_(torch.from_numpy(matrix))
    return model, tokenizer


# ----------------------------------------------------------------------------- ELMo as features


@dataclass
class ElmoFeaturesConfig:
    vocab_size: int = 4          # input words: the task tokenizer's ids (spelt in the ``spelling`` buffer)
    elmo: dict = field(default_factory=dict)  # the biLM's ElmoConfig fields (its softmax is not kept)
    layers: list[int] = field(default_factory=list)  # the layers mixed: 0 = char-CNN tokens .. L; [] = all
    layer_norm: bool = False
    boundaries: bool = True      # wrap each row in <S> .. </S> (off when the rows carry <s> .. </s>)
    lstm_hidden: int = 0         # > 0: a trainable BiLSTM of this size per direction over the mix
    lowercase: bool = True       # how the task tokenizer reads text (lmlab's ELMo: lowercased words)
    source: str = ""             # the ELMo folder it was built from (a record, not read again)

    def bilm_config(self):
        from .. import config as config_io
        from ..models.elmo import ElmoConfig

        fields = {**self.elmo, "vocab_size": 0, "mix_layers": list(self.layers), "mix_layer_norm": self.layer_norm,
                  "dropout": 0.0}
        return config_io.from_dict(ElmoConfig, fields, where="config.json: elmo")

    @property
    def d_model(self) -> int:
        if self.lstm_hidden:
            return 2 * self.lstm_hidden
        return 2 * int(self.elmo.get("projection_dim", 512))

    def validate(self) -> None:
        if self.vocab_size < 1:
            raise ConfigError(f"elmo features: vocab_size must be >= 1, got {self.vocab_size}")
        if self.lstm_hidden < 0:
            raise ConfigError(f"elmo features: lstm_hidden must be >= 0, got {self.lstm_hidden}")
        self.bilm_config().validate()


class ElmoFeatures(PretrainedMixin, nn.Module):
    """A frozen ELMo biLM -> trainable scalar mix (-> trainable BiLSTM) behind the encoder protocol."""

    family = "elmo-features"
    config_class = ElmoFeaturesConfig
    text_format = "words"

    def __init__(self, config: ElmoFeaturesConfig) -> None:
        from ..models.elmo import ElmoLM

        super().__init__()
        config.validate()
        self.config = config
        self.elmo = ElmoLM(config.bilm_config())
        for name, p in self.elmo.named_parameters():
            p.requires_grad_(name.startswith("mix."))  # the biLM is frozen; the mix learns
        C = self.elmo.config.max_characters
        self.register_buffer("spelling", torch.zeros(config.vocab_size, C, dtype=torch.int16))  # (V, C)
        self.lstm = nn.LSTM(self.elmo.config.d_model, config.lstm_hidden, batch_first=True, bidirectional=True) \
            if config.lstm_hidden else None

    def train(self, mode: bool = True) -> ElmoFeatures:
        super().train(mode)
        self.elmo.eval()  # features as pretrained: no dropout in the biLM
        return self

    def set_spelling(self, tokens: list[str]) -> None:
        if len(tokens) != self.config.vocab_size:
            raise ConfigError(f"elmo features: {len(tokens)} words for a table of {self.config.vocab_size}")
        self.spelling.copy_(self.elmo.chars.words(tokens).to(torch.int16))

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, None]:
        """(B, T) word ids -> (the mix, or the BiLSTM over it, (B, T, d_model), None)."""
        if input_ids.ndim != 2:
            raise UsageError(f"elmo features take word ids (B, T), got {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        chars = self.spelling[input_ids].long() * mask.unsqueeze(-1)  # (B, T, C), 0 = no token
        if self.config.boundaries:  # (B, T + 2, C): <S> w_1 .. w_n </S>
            C = chars.shape[-1]
            marks = self.elmo.chars.words(["<S>", "</S>"]).to(chars.device)  # (2, C)
            wrapped = torch.zeros(B, T + 2, C, dtype=chars.dtype, device=chars.device)
            wrapped[:, 1:T + 1] = chars
            lengths = mask.long().sum(1)
            wrapped[:, 0] = marks[0]
            wrapped[torch.arange(B), lengths + 1] = marks[1]
            chars = wrapped
        with torch.no_grad():
            layers, inner, _ = self.elmo.bilm(chars)
        if self.config.layers:
            layers = [layers[j] for j in self.config.layers]
        h = self.elmo.mix(layers, inner)  # (B, T(+2), 2P)
        if self.config.boundaries:
            h = h[:, 1:T + 1]
        h = h * mask.unsqueeze(-1).to(h.dtype)
        if self.lstm is not None:
            lengths = mask.long().sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, 2 hidden)
        return h, None


def parse_layers(text: str, n_layers: int) -> list[int]:
    """``--layers``: "" or "all" (the mix of every layer), "top" (the last LSTM layer), or a comma list
    of layer numbers, 0 = the char-CNN token layer .. ``n_layers``."""
    text = text.strip().lower()
    if text in ("", "all", "mix"):
        return []
    if text == "top":
        return [n_layers]
    try:
        picked = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--layers must be all, top or layer numbers 0..{n_layers} (0,1,2), got {text!r}") from None
    if any(not 0 <= j <= n_layers for j in picked) or len(set(picked)) != len(picked):
        raise UsageError(f"--layers: layers are 0 (char-CNN tokens) .. {n_layers}, each once; got {text!r}")
    return picked


def elmo_features(elmo_model, texts: list[str], lowercase: bool, vocab: list[str] | None = None, layers: str = "",
                  lstm_hidden: int = 0, boundaries: bool = True, source: str = ""):
    """(ElmoFeatures, WordTokenizer) for a task: the tokenizer knows the ELMo's ``vocab`` (if any)
    and every token of ``texts``; the features hold the biLM's weights (not its softmax)."""
    from .. import config as config_io
    from ..data.tokenizers import WordTokenizer
    from ..data.tokenizers.word import SPECIALS, word_tokenize

    seen = dict.fromkeys(SPECIALS)
    for w in vocab or ():
        seen.setdefault(w.lower() if lowercase else w)
    for text in texts:
        for w in word_tokenize(text, lowercase):
            seen.setdefault(w)
    tokens = list(seen)
    tokenizer = WordTokenizer(tokens, lowercase=lowercase)
    elmo_fields = {k: v for k, v in config_io.to_dict(elmo_model.config).items()
                   if k not in ("vocab_size", "mix_layers", "mix_layer_norm", "dropout", "softmax", "bos_id", "eos_id")}
    config = ElmoFeaturesConfig(vocab_size=len(tokens), elmo=elmo_fields,
                                layers=parse_layers(layers, elmo_model.config.n_layers),
                                boundaries=boundaries, lstm_hidden=lstm_hidden, lowercase=lowercase, source=source)
    model = ElmoFeatures(config)
    own = model.elmo.state_dict()
    theirs = elmo_model.state_dict()
    for key in own:
        if key.startswith(("token_encoder.", "forward_lm.", "backward_lm.")):
            own[key] = theirs[key].detach().clone()
    model.elmo.load_state_dict(own, strict=True)
    model.set_spelling(tokens)
    return model, tokenizer
