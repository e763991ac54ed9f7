"""Fine-tuning pretrained encoders: sequence classification, with metrics.

Devlin et al. (2019) §4: a task adds one output layer to the pretrained encoder and every
parameter is fine-tuned. Sequence classification reads one vector per text (BERT, ALBERT: the
pooled [CLS] state ``tanh(W_p h_[CLS])``; ELECTRA has no pooler, so — as its paper's code does —
a dense + GELU layer on h_[CLS]; GPT-1 §3.2: the state of the last token, the "extract" token
``</s>`` appended to the text; or the mean of the real tokens' states). Token classification
(NER tagging, BERT §5.3) is :mod:`lmlab.tasks.tagging`.

    P(c | x) = softmax(W_c dropout(pooled))              L_2 = -Σ log P(c_gold | x)
    GPT-1 §3.2, with the auxiliary LM loss:              L_3 = L_2 + λ L_1      (``lm_coef`` = λ)

The head works through the encoder protocol only (``encode(ids, mask) -> (hidden, pooled | None)``,
every registry family with the ``encode`` capability), so a new family fine-tunes unchanged. How a
text becomes ids is the ``text_format``: ``cls-sep`` (``[CLS] a [SEP] (b [SEP])``, the bidirectional
encoders), ``eos`` (``a </s> (b </s>)``, causal LMs: a family that can generate but not fill masks)
or ``words`` (the words alone, unknown words dropped: static word vectors, :mod:`lmlab.tasks.features`);
a model class may name its own with a ``text_format`` attribute.

Feature-based use (Peters et al. 2018; BERT §5.3, "feature-based approach"): ``freeze = true``
keeps the encoder's weights fixed (and in eval mode) and trains only the head — a linear layer
on the pooled vector, or a small BiLSTM over the token states (``head = "bilstm"``). ``layer``
picks which layer's states the head reads (-1: the last, through ``encode``; k >= 1: the output
of the k-th Transformer layer, -2: the one before the last, ...), read with forward hooks on the
encoder's list of layers (a ``ModuleList`` named ``layers``, ``blocks`` or ``ffn_blocks``).

Tasks (real data, nothing synthetic):

| task | data | classes | split |
|---|---|---|---|
| ``rotten-tomatoes`` | review snippets | fresh / rotten | the corpus's split by movie (no movie in two splits) |
| ``wiki-topics`` | ``wiki-vital`` lead sections | the 11 topics | only documents of the *pretraining test split* are used, re-split 80/20 by id — so no fine-tuning or test document was seen in pretraining; valid is 10% of that train part |
| a CSV / TSV / JSONL file | the user's | read from the file | ``--split-field`` or a seeded 80/10/10 split (:mod:`lmlab.tasks.data`) |

Metrics: accuracy and macro-F1 (F1 of every class that occurs in the gold or predicted labels,
averaged with equal weight). The tagging sets (``peoples-daily-ner``, ``msra-ner``, ``wnut16``) and
their entity F1 are :mod:`lmlab.tasks.tagging`.

:func:`finetune` (``lmlab finetune MODEL_DIR DATA``) loads a saved lmlab model folder of any family
with the ``encode`` capability (with its tokenizer), trains with the one Trainer (linear warm-up
and decay, AdamW or Adam, evaluation on the validation split with early stopping, the Trainer's
exact resume), restores the weights with the best validation loss, scores the test split and
saves a folder that ``lmlab.load`` rebuilds. A pair (``--text-pair-field``) is ``[CLS] a [SEP] b [SEP]``
and the encoders with segment embeddings (BERT, SpanBERT, ALBERT, ELECTRA; XLNet's relative segments)
read segment 0 for a and 1 for b (:func:`segment_ids`); RoBERTa (one segment type) and the causal
LMs (``a </s> b </s>``) see the separators only. Not here: QA heads (:mod:`lmlab.tasks.qa`).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.corpus import split_fraction
from ..errors import CheckpointError, DataError, UsageError, closest
from ..objectives.classify import IGNORE, ClassifyObjective
from ..pretrained import PretrainedMixin, load_state_strict

TASKS = ("rotten-tomatoes", "wiki-topics")


# --------------------------------------------------------------------------- heads


def encoder_of(model: nn.Module) -> nn.Module:
    """The encoder inside a pretraining model (its ``encoder``), or the model itself when it is one.

    An encoder is anything with ``encode(input_ids, attention_mask) -> (hidden, pooled | None)``
    (the protocol every registry family with the ``encode`` capability implements)."""
    inner = getattr(model, "encoder", None)
    if inner is not None and hasattr(inner, "encode"):
        return inner
    if hasattr(model, "encode"):
        return model
    raise UsageError(f"cannot fine-tune a {type(model).__name__}: it has no encode(input_ids, attention_mask)")


def takes_segments(encoder: nn.Module) -> bool:
    """Whether ``encoder.encode`` reads segment ids: it has a ``segment_ids`` parameter and more than one
    segment type (BERT, SpanBERT, ALBERT, ELECTRA, XLNet; not RoBERTa's one type, GPT, ELMo, word vectors)."""
    return ("segment_ids" in inspect.signature(encoder.encode).parameters
            and getattr(encoder.config, "type_vocab_size", 2) > 1)


def segment_ids(input_ids: Tensor, attention_mask: Tensor | None, sep: int) -> Tensor:  # -> (B, T)
    """BERT §3's segments of ``[CLS] a [SEP] b [SEP]``: 0 up to and including the first ``sep``, 1 after
    it (Hugging Face's ``token_type_ids``); 0 on padding. A single text is all 0."""
    is_sep = (input_ids == sep).long()
    segments = ((is_sep.cumsum(1) - is_sep) > 0).long()                     # separators before t
    return segments if attention_mask is None else segments * attention_mask.long()


def encode(encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor | None,
           sep: int = -1) -> tuple[Tensor, Tensor | None]:
    """(hidden (B, T, H), pooled (B, H) or None when the encoder has no pooler). ``sep`` >= 0: the
    separator id that ends text a; an encoder that reads segments gets :func:`segment_ids` from it."""
    if sep >= 0 and takes_segments(encoder):
        return encoder.encode(input_ids, attention_mask, segment_ids(input_ids, attention_mask, sep))
    return encoder.encode(input_ids, attention_mask)


POOLINGS = ("cls", "mean", "last")
TEXT_FORMATS = ("cls-sep", "eos", "words")
HEADS = ("linear", "bilstm")
LAYER_LISTS = ("layers", "blocks", "ffn_blocks")


def default_text_format(family: str) -> str:
    """How ``family``'s inputs are written: its model class's ``text_format``, else ``eos`` for a
    causal LM (it can generate, not fill masks), else ``cls-sep``."""
    from .. import registry

    row = registry.get(family)
    declared = getattr(row.model_class(), "text_format", None)
    if declared:
        return declared
    if "generate" in row.capabilities and "fill-mask" not in row.capabilities:
        return "eos"
    return "cls-sep"


def default_pooling(text_format: str) -> str:
    return {"eos": "last", "words": "mean"}.get(text_format, "cls")


@dataclass
class ClassifierConfig:
    """A fine-tuned head's folder: the base family and its config, the labels and how it reads text.

    ``encoder_family`` is a registry row with the ``encode`` capability and ``encoder`` its Config's
    fields: together they rebuild the encoder the head was fine-tuned on (its weights are in the
    folder). ``labels`` are the class (or BIO tag) names in id order; ``max_len`` counts the special
    tokens; ``task`` is where the labels came from (a built-in task or a file); ``text_format`` how a
    text becomes ids (module docstring). ``freeze``, ``layer``, ``head``, ``head_hidden``: the
    feature-based mode; ``lm_coef``: λ of GPT-1's auxiliary LM loss (0: off; > 0 keeps the whole LM,
    output matrix included, in the folder). ``segment_sep``: the separator id ending text a, from which
    an encoder with segments reads segment ids (:func:`segment_ids`; -1, folders before it: none).
    """

    encoder_family: str = "bert"
    encoder: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    pooling: str = "cls"          # "cls" (pooled [CLS]), "mean" (of the token states), "last" (last real token)
    dropout: float = 0.1
    max_len: int = 128
    task: str = ""
    text_format: str = "cls-sep"
    freeze: bool = False
    layer: int = -1
    head: str = "linear"
    head_hidden: int = 128
    lm_coef: float = 0.0
    segment_sep: int = -1

    def validate(self) -> None:
        if len(self.labels) < 2:
            raise UsageError(f"a classifier needs at least 2 labels, got {len(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise UsageError("a classifier's labels must be distinct")
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.text_format not in TEXT_FORMATS:
            raise UsageError(f"text_format must be one of {', '.join(TEXT_FORMATS)}, got {self.text_format!r}")
        if self.head not in HEADS:
            raise UsageError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.layer == 0:
            raise UsageError("layer must be -1 (the last), k >= 1 (the k-th layer) or -k (k-th from the end), not 0")
        if self.head_hidden < 1:
            raise UsageError(f"head_hidden must be >= 1, got {self.head_hidden}")
        if not self.lm_coef >= 0.0:
            raise UsageError(f"lm_coef must be >= 0, got {self.lm_coef}")
        if self.lm_coef > 0 and (self.freeze or self.layer != -1):
            raise UsageError("lm_coef (GPT-1's auxiliary LM loss) fine-tunes the whole LM: not with freeze or layer")
        if self.max_len < 3:
            raise UsageError(f"max_len={self.max_len} is too short")

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _encoder_from(config: ClassifierConfig) -> nn.Module:
    """A fresh encoder of ``config.encoder_family`` with ``config.encoder``'s sizes (weights come later);
    the whole model when the auxiliary LM loss needs its output matrix."""
    from .. import config as config_io
    from .. import registry

    row = registry.get(config.encoder_family)
    row.require("encode", "a fine-tuned classifier")
    encoder_config = config_io.from_dict(row.config_class(), config.encoder, where="config.json: encoder")
    model = row.model_class()(encoder_config)
    return model if config.lm_coef > 0 else encoder_of(model)


def head_config(pretrained_model: nn.Module, labels: list[str], **fields) -> ClassifierConfig:
    """The ClassifierConfig of a head on ``pretrained_model`` (a registry family's model)."""
    from .. import config as config_io

    return ClassifierConfig(encoder_family=pretrained_model.family, encoder=config_io.to_dict(pretrained_model.config),
                            labels=list(labels), **fields)


def layer_list(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's Transformer layers (the first ``ModuleList`` named as in :data:`LAYER_LISTS`)."""
    for name, module in encoder.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in LAYER_LISTS:
            return module
    raise UsageError(f"layer choice: a {type(encoder).__name__} has no list of layers named "
                     f"{', '.join(LAYER_LISTS)}; use layer = -1")


class LayerTap:
    """``with LayerTap(layers) as tap: encoder.encode(...)``: ``tap.outputs`` = each layer's output,
    in call order (a layer shared across depth, as ALBERT's, is recorded once per call)."""

    def __init__(self, layers: nn.ModuleList) -> None:
        self.layers = layers
        self.outputs: list[Tensor] = []
        self.handles: list = []

    def _record(self, module, inputs, output) -> None:
        self.outputs.append(output[0] if isinstance(output, tuple) else output)

    def __enter__(self) -> LayerTap:
        self.handles = [layer.register_forward_hook(self._record) for layer in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def last_token(states: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T, H) -> (B, H): the state of each row's last real token (right padding)."""
    last = attention_mask.long().sum(1).clamp(min=1) - 1                           # (B,)
    return states[torch.arange(states.shape[0], device=states.device), last]


def masked_mean(states: Tensor, attention_mask: Tensor) -> Tensor:
    weights = attention_mask.to(states.dtype)[:, :, None]                          # (B, T, 1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)               # (B, H)


class SequenceClassifier(PretrainedMixin, nn.Module):
    """encoder + dropout + linear on a sequence vector; a folder of family "classifier".

    ``pooling="cls"`` (BERT's): the pooled [CLS] state (a dense + GELU layer on h_[CLS] for
    ELECTRA, which has no pooler). ``pooling="mean"``: the mean of the real tokens' states (as in
    Sentence-BERT) — more robust for small models whose [CLS] state barely varies with the input.
    ``pooling="last"`` (GPT-1's): the last real token's state. ``head="bilstm"``: a one-layer
    BiLSTM over the token states, its two final states concatenated (pooling is not used).
    ``SequenceClassifier(config, encoder)`` puts the head on a pretrained encoder;
    ``SequenceClassifier(config)`` builds a fresh one of the config's family (what loading does).
    """

    family = "classifier"
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = encoder if encoder is not None else _encoder_from(config)
        if config.lm_coef > 0 and not isinstance(getattr(self.encoder, "output_weight", None), Tensor):
            raise UsageError(f"lm_coef needs a causal LM with an output matrix (the gpt family), not "
                             f"{config.encoder_family!r}")
        d = self.encoder.config.d_model
        self.pooling = config.pooling
        # the encoder's own layer list, held in a tuple so it is not registered (saved) twice
        self._tapped = (layer_list(self.encoder),) if config.layer != -1 else ()
        reads_cls = config.head == "linear" and config.pooling == "cls"
        needs_dense = not hasattr(self.encoder, "pooler") or config.layer != -1
        self.cls_dense = nn.Linear(d, d) if reads_cls and needs_dense else None
        self.lstm = nn.LSTM(d, config.head_hidden, batch_first=True, bidirectional=True) \
            if config.head == "bilstm" else None
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * config.head_hidden if self.lstm is not None else d, config.num_labels)
        for layer in (self.cls_dense, self.out):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        if config.freeze:
            self.encoder.requires_grad_(False)

    @classmethod
    def on(cls, pretrained_model: nn.Module, labels: list[str], **fields) -> SequenceClassifier:
        """A new head on ``pretrained_model``'s encoder (fine-tuning starts here)."""
        config = head_config(pretrained_model, labels, **fields)
        return cls(config, pretrained_model if config.lm_coef > 0 else encoder_of(pretrained_model))

    @classmethod
    def _from_state(cls, config: ClassifierConfig, tensors: dict, where: str):
        model = cls(config)
        if model.cls_dense is None:  # folders of lmlab 0.3 kept an unused [CLS] dense layer for mean pooling
            tensors = {k: v for k, v in tensors.items() if not k.startswith("cls_dense.")}
        load_state_strict(model, tensors, where)
        return model

    def train(self, mode: bool = True) -> SequenceClassifier:
        super().train(mode)
        if self.config.freeze:  # features come from the encoder as pretrained: no dropout there
            self.encoder.eval()
        return self

    @property
    def max_positions(self) -> int | None:
        return getattr(self.encoder.config, "max_length", None)

    def features(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """(token states (B, T, H) of the chosen layer, the pooled vector or None)."""
        # no padding in the batch (as after sorting by length): no mask, the encoders' mask-free fast path
        mask = None if bool(attention_mask.all()) else attention_mask
        sep = self.config.segment_sep
        if not self._tapped:
            return encode(self.encoder, input_ids, mask, sep)
        with LayerTap(self._tapped[0]) as tap:
            encode(self.encoder, input_ids, mask, sep)
        n = len(tap.outputs)
        k = self.config.layer
        if not (1 <= k <= n or -n <= k <= -1):
            raise UsageError(f"layer {k}: the encoder has {n} layers")
        return tap.outputs[k - 1 if k > 0 else k], None

    def _vector(self, hidden: Tensor, pooled: Tensor | None, attention_mask: Tensor) -> Tensor:
        if self.lstm is not None:
            lengths = attention_mask.long().sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)                                     # h_n (2, B, hidden)
            return torch.cat([h_n[0], h_n[1]], dim=-1)                          # (B, 2 hidden)
        if self.pooling == "mean":
            return masked_mean(hidden, attention_mask)
        if self.pooling == "last":
            return last_token(hidden, attention_mask)
        if pooled is None or self.cls_dense is not None:
            return F.gelu(self.cls_dense(self.dropout(hidden[:, 0])))
        return pooled

    def logits_and_states(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """(class logits (B, C), the token states (B, T, H) the head read)."""
        if self.config.freeze:
            with torch.no_grad():
                hidden, pooled = self.features(input_ids, attention_mask)
        else:
            hidden, pooled = self.features(input_ids, attention_mask)
        return self.out(self.dropout(self._vector(hidden, pooled, attention_mask))), hidden

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:  # -> (B, C)
        return self.logits_and_states(input_ids, attention_mask)[0]

    def loss_terms(self, input_ids: Tensor, labels: Tensor,
                   attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(logits (B, C), L_2 (mean over the rows), L_1 or None when ``lm_coef`` is 0): what
        :class:`lmlab.objectives.classify.ClassifyObjective` trains on (L_2 + λ L_1)."""
        logits, hidden = self.logits_and_states(input_ids, attention_mask)
        l2 = F.cross_entropy(logits.float(), labels)
        if self.config.lm_coef == 0:
            return logits, l2, None
        from ..nn.softmax import linear_cross_entropy

        targets = input_ids[:, 1:].clone()                                  # (B, T - 1): t predicts t + 1
        targets[(attention_mask[:, 1:] == 0) | (attention_mask[:, :-1] == 0)] = IGNORE
        h = hidden[:, :-1].reshape(-1, hidden.shape[-1])                    # (B (T - 1), H)
        return logits, l2, linear_cross_entropy(h, self.encoder.output_weight, targets.reshape(-1))


# --------------------------------------------------------------------------- objectives


# ClassifyObjective (lmlab.objectives.classify) is the one fine-tuning objective: sequence rows
# (B, T + 1) here, token rows (B, 2T) with per_token=True for tagging.


# --------------------------------------------------------------------------- metrics


def ranked_labels(probs, labels: list[str], top_k: int | None) -> list:
    """Per input, ``{"label", "score"}`` of the best label (``top_k`` = 1) or a list of the ``top_k`` best."""
    k = len(labels) if top_k is None else min(top_k, len(labels))
    out = []
    for p in probs:
        scores, classes = p.topk(k)
        ranked = [{"label": labels[int(c)], "score": float(s)} for s, c in zip(scores, classes)]
        out.append(ranked[0] if top_k == 1 else ranked)
    return out


def accuracy(gold: list[int], predicted: list[int]) -> float:
    if len(gold) != len(predicted) or not gold:
        raise UsageError(f"accuracy needs two equal, non-empty label lists ({len(gold)} vs {len(predicted)})")
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: list[int], predicted: list[int]) -> float:
    """Mean over classes (in gold or predicted) of F1 = 2PR / (P + R) (0 where undefined)."""
    classes = sorted(set(gold) | set(predicted))
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- text -> ids


@dataclass(frozen=True)
class TextFormat:
    """Special ids around a text (and a second text): ``start a between b end``, padded with ``pad``."""

    kind: str
    pad: int
    start: tuple[int, ...] = ()
    between: tuple[int, ...] = ()
    end: tuple[int, ...] = ()
    drop: int | None = None  # an id left out of the texts (``words``: unknown words)


def text_format(tokenizer, kind: str) -> TextFormat:
    """The :class:`TextFormat` of ``kind`` with ``tokenizer``'s special ids (a one-line error if one is missing)."""
    ids = tokenizer.special_ids()
    needs = {"cls-sep": ("pad", "cls", "sep"), "eos": ("pad", "eos"), "words": ("pad",)}[kind]
    missing = [role for role in needs if ids.get(role) is None]
    if missing:
        raise UsageError(f"text format {kind!r} needs the tokenizer's {', '.join(missing)} token "
                         f"(the {getattr(tokenizer, 'kind', '?')} tokenizer has {', '.join(sorted(ids)) or 'none'})")
    if kind == "cls-sep":
        return TextFormat(kind, ids["pad"], (ids["cls"],), (ids["sep"],), (ids["sep"],))
    if kind == "eos":
        return TextFormat(kind, ids["pad"], (), (ids["eos"],), (ids["eos"],))
    return TextFormat(kind, ids["pad"], drop=ids.get("unk"))


def encode_texts(tokenizer, fmt: TextFormat, texts: list[str], pairs: list[str | None] | None,
                 max_len: int) -> list[list[int]]:
    """Each text (and its pair) as ids in ``fmt``, at most ``max_len`` ids (the longer text is cut first)."""
    pieces = tokenizer.encode_batch(list(texts))
    pair_pieces = tokenizer.encode_batch([p or "" for p in pairs]) if pairs is not None and any(pairs) else None
    out = []
    for i, a in enumerate(pieces):
        b = pair_pieces[i] if pair_pieces is not None and pairs[i] else None
        if fmt.drop is not None:
            a = [t for t in a if t != fmt.drop] or a[:1]
            b = None if b is None else ([t for t in b if t != fmt.drop] or b[:1])
        budget = max_len - len(fmt.start) - len(fmt.end) - (len(fmt.between) if b is not None else 0)
        if b is None:
            out.append([*fmt.start, *a[:max(budget, 1)], *fmt.end])
            continue
        while len(a) + len(b) > max(budget, 2):  # longest first, as BERT's run_classifier truncates
            if len(a) >= len(b):
                a = a[:-1]
            else:
                b = b[:-1]
        out.append([*fmt.start, *a, *fmt.between, *b, *fmt.end])
    return out


def id_rows(ids: list[list[int]], labels: list[int], pad: int, width: int) -> Tensor:
    """``ids [pad]... label`` rows, (N, width + 1): the layout :class:`ClassifyObjective` reads."""
    rows = torch.full((len(ids), width + 1), pad, dtype=torch.long)
    for i, (row, label) in enumerate(zip(ids, labels)):
        rows[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        rows[i, -1] = label
    return rows


def sequence_rows(examples, tokenizer, specials: dict, max_len: int) -> Tensor:
    """``[CLS] tokens [SEP] [PAD]... label`` rows, (N, max_len + 1)."""
    ids = tokenizer.encode_batch([text for text, _ in examples])
    rows = torch.full((len(examples), max_len + 1), specials["pad"], dtype=torch.long)
    for i, (tokens, (_, label)) in enumerate(zip(ids, examples)):
        body = [specials["cls"], *tokens[: max_len - 2], specials["sep"]]
        rows[i, : len(body)] = torch.tensor(body)
        rows[i, -1] = label
    return rows


def classifier_rows(model: SequenceClassifier, tokenizer, examples, labels: list[int]) -> Tensor:
    """The (N, max_len + 1) rows of ``examples`` (:class:`lmlab.tasks.data.Example`) for ``model``."""
    fmt = text_format(tokenizer, model.config.text_format)
    ids = encode_texts(tokenizer, fmt, [e.text for e in examples], [e.pair for e in examples], model.config.max_len)
    return id_rows(ids, labels, fmt.pad, model.config.max_len)


# --------------------------------------------------------------------------- task data


@dataclass
class FinetuneSpec:
    """What ``lmlab finetune`` trains: the data, the head and the loop (see the module docstring)."""

    task: str = "rotten-tomatoes"   # a built-in task (TASKS) or a CSV / TSV / JSONL file
    text_field: str = "text"
    label_field: str = "label"
    text_pair_field: str = ""
    split_field: str = ""
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    steps: int = 300
    epochs: float = 0.0             # > 0: ceil(epochs * train examples / batch_size) steps instead of ``steps``
    batch_size: int = 32
    max_len: int = 128
    lr: float = 1e-4
    optimizer: str = "adamw"        # adamw | adam (Kingma & Ba: AdamW with weight decay 0)
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    max_train: int = 0              # 0: every training example
    pooling: str = ""               # "": the family's (cls, or last for causal LMs, mean for word vectors)
    lm_coef: float = 0.0            # λ of GPT-1's auxiliary LM loss (gpt only)
    freeze: bool = False            # feature-based: train the head only
    layer: int = -1
    head: str = "linear"            # linear | bilstm
    head_hidden: int = 128
    eval_every: int = 0             # validation every N steps, best weights kept; 0: none (the final weights
                                    # are tested, as before validation existed); -1: ten times over the run
    patience: int = 0               # stop after this many evaluations without a better validation loss (0: never)
    checkpoint_every: int = 0       # 0: only at the end (and on Ctrl-C)
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        from .data import is_data_file

        if self.task not in TASKS and not is_data_file(self.task):
            raise UsageError(f"unknown task {self.task!r}{closest(self.task, TASKS)}; choose one of "
                             f"{', '.join(TASKS)} or a .csv / .tsv / .jsonl file")
        for name in ("steps", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < -1:
            raise UsageError(f"eval_every must be >= 0, or -1 (ten times per run), got {self.eval_every}")
        for name in ("patience", "checkpoint_every", "max_train", "threads"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_len < 4:
            raise UsageError(f"max_len={self.max_len} is too short")
        if not (self.epochs >= 0 and math.isfinite(self.epochs)):
            raise UsageError(f"epochs must be >= 0, got {self.epochs}")
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise UsageError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction}")
        if self.optimizer not in ("adamw", "adam"):
            raise UsageError(f"optimizer must be adamw or adam, got {self.optimizer!r}")
        if self.pooling and self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.head not in HEADS:
            raise UsageError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")


def sequence_task(task: str) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """(class names, train [(text, class)], test [(text, class)]) of a sequence task."""
    from ..data import sources

    if task == "rotten-tomatoes":
        splits = sources.load("rotten-tomatoes").split()
        names = ["rotten", "fresh"]
        pick = lambda docs: [(d.text, names.index(d.meta["label"])) for d in docs if d.meta.get("label") in names]
        return names, pick(splits.train), pick(splits.test)
    if task == "wiki-topics":
        test_docs = [d for d in sources.load("wiki-vital").split().test if d.meta.get("topic")]
        names = sorted({d.meta["topic"] for d in test_docs})
        train, test = [], []
        for d in test_docs:  # the pretraining test split only, re-split by id
            (train if split_fraction(d.id, seed=1) < 0.8 else test).append((d.text, names.index(d.meta["topic"])))
        return names, train, test
    raise UsageError(f"{task!r} is not a sequence classification task")


def task_data(spec: FinetuneSpec):
    """The :class:`lmlab.tasks.data.LabelledData` of ``spec.task``: a built-in task or the user's file."""
    from .data import DataSpec, Example, LabelledData, carve_valid, read_labelled

    if spec.task == "rotten-tomatoes":
        from ..data import sources

        splits = sources.load("rotten-tomatoes").split()
        names = ["rotten", "fresh"]
        pick = lambda docs: [Example(d.text, d.meta["label"]) for d in docs if d.meta.get("label") in names]
        return LabelledData(names, pick(splits.train), pick(splits.valid), pick(splits.test),
                            {"kind": "builtin", "task": spec.task})
    if spec.task == "wiki-topics":
        names, train, test = sequence_task(spec.task)
        train_ex, valid_ex = carve_valid([Example(t, names[y]) for t, y in train], 0.1, seed=1)
        return LabelledData(names, train_ex, valid_ex, [Example(t, names[y]) for t, y in test],
                            {"kind": "builtin", "task": spec.task})
    if spec.task in TASKS:
        raise UsageError(f"{spec.task!r} is a tagging task, not a sequence classification task")
    return read_labelled(DataSpec(path=spec.task, text_field=spec.text_field, label_field=spec.label_field,
                                  text_pair_field=spec.text_pair_field, split_field=spec.split_field,
                                  valid_fraction=spec.valid_fraction, test_fraction=spec.test_fraction,
                                  seed=spec.seed))


def data_from_source(source: dict):
    """The LabelledData a fine-tuned folder was trained on (its config.json's ``data``), read again."""
    from .data import DataSpec, read_labelled

    if source.get("kind") == "builtin":
        return task_data(FinetuneSpec(task=source["task"]))
    if source.get("kind") == "file":
        fields = {k: v for k, v in source.items() if k != "kind"}
        from .. import config as config_io

        return read_labelled(config_io.from_dict(DataSpec, fields, where="config.json: data"))
    raise CheckpointError("the model folder does not record the data it was fine-tuned on (config.json: data)")


def sequence_scores(gold: list[int], predicted: list[int]) -> dict:
    """Accuracy, macro-F1 and the accuracy of always answering the most frequent gold class."""
    majority = max(set(gold), key=gold.count)
    return {"accuracy": accuracy(gold, predicted), "macro_f1": macro_f1(gold, predicted),
            "majority_baseline": accuracy(gold, [majority] * len(gold))}


# --------------------------------------------------------------------------- the loop


def _predict(model: nn.Module, rows: Tensor, objective, batch_size: int) -> tuple[list, list]:
    model.eval()
    gold, predicted = [], []
    with torch.no_grad():
        for first in range(0, rows.shape[0], batch_size):
            batch = objective.prepare(rows[first:first + batch_size], torch.Generator())
            logits = model(batch["input_ids"], batch["attention_mask"])
            gold.append(batch["labels"])
            predicted.append(logits.argmax(-1))
    return gold, predicted


def evaluate_rows(model: SequenceClassifier, rows: Tensor, pad: int, batch_size: int = 128) -> dict:
    """Test scores of ``model`` on (N, T + 1) rows (the last column the gold class)."""
    gold, predicted = _predict(model, rows, ClassifyObjective(pad), batch_size)
    return sequence_scores(torch.cat(gold).tolist(), torch.cat(predicted).tolist())


def planned_steps(spec: FinetuneSpec, n_train: int) -> int:
    """``spec.steps``, or ``ceil(epochs * n_train / batch_size)`` when ``spec.epochs`` is set."""
    if spec.epochs > 0:
        return max(1, math.ceil(spec.epochs * n_train / min(spec.batch_size, n_train)))
    return spec.steps


def run_identity(spec: FinetuneSpec) -> dict:
    """The spec's fields that decide the trained weights: a resume must agree on all of them."""
    from .. import config as config_io

    return {k: v for k, v in config_io.to_dict(spec).items()
            if k not in ("threads", "checkpoint_every", "eval_every", "patience")}


def finetune_model(pretrained: nn.Module, tokenizer, specials: dict | None, spec: FinetuneSpec, out_dir: Path,
                   data=None, resume: bool = False) -> dict:
    """Fine-tune a head on ``pretrained`` (its encoder, in place) on ``spec.task`` (or ``data``, a
    :class:`lmlab.tasks.data.LabelledData`); the weights of the best validation loss are kept;
    returns the test scores and the model under ``"head"``. ``resume``: continue the run whose
    checkpoints are in ``out_dir`` (the Trainer's exact resume)."""
    from ..data.stream import Rows
    from ..io import load_tensors
    from ..train import TrainConfig, Trainer

    spec.validate()
    start = time.monotonic()
    torch.manual_seed(spec.seed)
    data = data if data is not None else task_data(spec)
    fmt_kind = default_text_format(pretrained.family)
    positions = getattr(encoder_of(pretrained).config, "max_length", None) or spec.max_len
    fmt = text_format(tokenizer, fmt_kind)
    model = SequenceClassifier.on(pretrained, data.labels, dropout=spec.dropout,
                                  pooling=spec.pooling or default_pooling(fmt_kind),
                                  max_len=min(spec.max_len, positions), task=str(data.source.get("task") or
                                                                                 data.source.get("path", "")),
                                  text_format=fmt_kind, freeze=spec.freeze, layer=spec.layer, head=spec.head,
                                  head_hidden=spec.head_hidden, lm_coef=spec.lm_coef,
                                  segment_sep=fmt.between[0] if fmt.kind == "cls-sep" else -1)
    train = data.train
    if spec.max_train and spec.max_train < len(train):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(spec.seed))[: spec.max_train]
        train = [train[i] for i in order.tolist()]
    if not data.test:
        raise DataError(f"{spec.task}: the test split is empty (set a split field or a test fraction)")
    pad = fmt.pad
    train_rows = classifier_rows(model, tokenizer, train, data.ids(train))
    use_valid = bool(data.valid) and spec.eval_every != 0
    valid_rows = classifier_rows(model, tokenizer, data.valid, data.ids(data.valid)) if use_valid else None
    test_rows = classifier_rows(model, tokenizer, data.test, data.ids(data.test))
    steps = planned_steps(spec, len(train))
    eval_every = (max(1, steps // 10) if spec.eval_every == -1 else spec.eval_every) if use_valid else 0
    config = TrainConfig.quiet(seed=spec.seed, max_steps=steps, lr=spec.lr, optimizer="adamw",
                               weight_decay=0.0 if spec.optimizer == "adam" else spec.weight_decay,
                               schedule="linear", warmup_steps=max(1, int(spec.warmup_fraction * steps)),
                               schedule_steps=steps, eval_every=eval_every, patience=spec.patience,
                               save_best=valid_rows is not None, checkpoint_every=spec.checkpoint_every,
                               threads=spec.threads, device="cpu", precision="fp32")
    objective = ClassifyObjective(pad)
    eval_source = Rows(valid_rows, min(128, len(valid_rows))) if valid_rows is not None else None
    trainer = Trainer(model, objective, Rows(train_rows, min(spec.batch_size, len(train_rows)), seed=spec.seed),
                      config, out_dir, eval_source=eval_source, run_config={"finetune": run_identity(spec)})
    result = trainer.fit(resume=resume)
    best = Path(out_dir) / "best" / "model.safetensors"
    best_step = result.step
    if valid_rows is not None and best.is_file():  # the weights of the lowest validation loss
        model.load_state_dict(load_tensors(best))
        import json

        best_step = json.loads((best.parent / "best.json").read_text()).get("step", result.step)
    scores = {"task": spec.task, "n_train": len(train), "n_valid": len(data.valid), "n_test": len(data.test),
              "train_loss": result.loss, "steps": result.step, "best_step": best_step,
              "stopped_early": result.stopped_early, "classes": data.labels}
    if valid_rows is not None:
        scores["valid_accuracy"] = evaluate_rows(model, valid_rows, pad)["accuracy"]
    scores.update(evaluate_rows(model, test_rows, pad))
    scores["seconds"] = time.monotonic() - start
    scores["head"] = model
    scores["data"] = data.source
    return scores


def folder_family(folder: str | Path) -> str:
    """The registry family of a saved folder: its config.json's ``family``, or the row that reads
    its Hugging Face ``model_type``."""
    from .. import registry
    from ..pretrained import CONFIG_NAME, read_model_config, split_config

    raw = read_model_config(folder)
    family, _, _ = split_config(raw, f"{folder}/{CONFIG_NAME}")
    if family is None:
        row = registry.for_hf_model_type(raw.get("model_type"))
        if row is None:
            raise CheckpointError(f"{folder}/{CONFIG_NAME}: not an lmlab model folder nor a Hugging Face folder "
                                  f"lmlab reads")
        family = row.name
    return family


def load_pretrained(folder: str | Path):
    """(model, tokenizer, special ids or None) of a saved model folder of a family with the encode
    capability (an lmlab folder, or a Hugging Face folder of a family lmlab reads)."""
    from .. import registry
    from ..data.tokenizers import load_tokenizer
    from ..data.tokenizers.subword import special_ids
    from ..errors import ConfigError
    from ..pretrained import load

    family = folder_family(folder)
    registry.get(family).require("encode", "lmlab finetune")
    folder = Path(folder)
    if not ((folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()):
        raise CheckpointError(f"{folder}: no tokenizer files next to the model (needed to encode the task's text)")
    model = load(folder)
    tokenizer = load_tokenizer(folder)
    try:
        specials = special_ids(tokenizer)
    except ConfigError:  # causal LMs and word vectors have no [CLS] / [SEP]: their text format does not need them
        specials = None
    return model, tokenizer, specials


def save_classifier(head: nn.Module, tokenizer, folder: Path, base: str, scores: dict) -> Path:
    """The fine-tuned folder: config.json (the head's config, plus ``base``, ``base_family``,
    ``tokenizer``, ``data`` (how to read the test split again) and the numeric ``scores``), weights, tokenizer."""
    numeric = {k: v for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    metadata = {"base": base, "base_family": head.config.encoder_family, "tokenizer": getattr(tokenizer, "kind", ""),
                "data": scores.get("data", {}), "scores": numeric}
    return head.save_pretrained(folder, extra_files=tokenizer.files(), metadata=metadata)


def finetune(model_dir: str | Path, spec: FinetuneSpec, out_dir: str | Path, resume: bool = False) -> dict:
    """Load a saved model folder, fine-tune on ``spec.task``, save the head in ``out_dir/model`` (it
    reloads with ``lmlab.load``, tokenizer included), return the scores."""
    model, tokenizer, specials = load_pretrained(model_dir)
    out_dir = Path(out_dir)
    scores = finetune_model(model, tokenizer, specials, spec, out_dir / "train", resume=resume)
    save_classifier(scores.pop("head"), tokenizer, out_dir / "model", str(model_dir), scores)
    return scores


def evaluate_folder(folder: str | Path, split: str = "test", batch_size: int = 128) -> dict:
    """Scores of a fine-tuned classifier folder on a split of the data it recorded (``lmlab eval classify``;
    a text-to-text classifier, an encoder-decoder writing label words, is scored by
    :func:`lmlab.tasks.seq2seq.evaluate_text_to_text` instead)."""
    from ..data.tokenizers import load_tokenizer
    from ..pretrained import CONFIG_NAME, load, read_model_config, split_config

    family, _, metadata = split_config(read_model_config(folder), f"{folder}/{CONFIG_NAME}")
    if family != "classifier":
        raise CheckpointError(f"{folder}: a {family!r} model, not a fine-tuned classifier (lmlab finetune's output)")
    model = load(folder)
    tokenizer = load_tokenizer(folder)
    data = data_from_source(metadata.get("data") or {})
    examples = {"train": data.train, "valid": data.valid, "test": data.test}.get(split)
    if examples is None:
        raise UsageError(f"split must be train, valid or test, got {split!r}")
    if not examples:
        raise DataError(f"{folder}: the {split} split of its data is empty")
    index = {name: i for i, name in enumerate(model.config.labels)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise DataError(f"{folder}: label {unknown[0]!r} in the {split} split is not one of the model's labels")
    rows = classifier_rows(model, tokenizer, examples, [index[e.label] for e in examples])
    scores = evaluate_rows(model, rows, text_format(tokenizer, model.config.text_format).pad, batch_size)
    return {"split": split, "n": len(examples), **scores, "recorded": metadata.get("scores", {})}


def predict(model: SequenceClassifier, tokenizer, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
    """(label, probability) of each text under a fine-tuned classifier (``lmlab.load`` of its folder);
    ``lmlab.pipeline("text-classification", folder)`` is the batched, sorted form with dicts."""
    fmt = text_format(tokenizer, model.config.text_format)
    ids = encode_texts(tokenizer, fmt, list(texts), None, model.config.max_len)
    rows = id_rows(ids, [0] * len(ids), fmt.pad, model.config.max_len)
    objective = ClassifyObjective(fmt.pad)
    model.eval()
    out = []
    with torch.no_grad():
        for first in range(0, rows.shape[0], batch_size):
            batch = objective.prepare(rows[first:first + batch_size], torch.Generator())
            probs = torch.softmax(model(batch["input_ids"], batch["attention_mask"]).float(), dim=-1)
            best = probs.argmax(-1)
            out += [(model.config.labels[int(b)], float(probs[i, b])) for i, b in enumerate(best)]
    return out
