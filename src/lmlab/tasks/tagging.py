"""Token tagging (named-entity recognition): a label per word from any encoder, optionally through a CRF.

Devlin et al. (2019) §5.3 tag with one linear layer on each token's final state; Lample et al.
(2016), "Neural Architectures for Named Entity Recognition", put a linear-chain CRF
(Lafferty et al., 2001) on top so that the label sequence is scored jointly:

    s(x, y) = start[y_1] + Σ_i E[i, y_i] + Σ_{i>1} A[y_{i-1}, y_i] + end[y_n]
    log P(y | x) = s(x, y) - log Z(x),     log Z(x) = logsumexp over all label sequences y'

``log Z`` comes from the forward algorithm and the best sequence from Viterbi, both O(n L²)
(tested against enumerating all L^n sequences on small cases).

Schemes: ``bio`` (IOB2: B- opens an entity, I- continues it) and ``bioes`` (also E- closes a
multi-word entity and S- is a one-word entity); :func:`to_bioes` / :func:`to_bio` convert.

Sub-word alignment (``alignment``): the encoder sees sub-word pieces, the labels belong to words.

- ``"first"`` (BERT §5.3): a word's label is trained and read on its first piece; the other
  pieces are not scored. With the CRF the chain runs over the words' first pieces only.
- ``"all"``: every piece is trained, with the word's label spread over its pieces (B-X on the
  first piece and I-X on the rest; in BIOES S-X becomes B-X … E-X and E-X becomes I-X … E-X).
  The CRF chain runs over every piece. A word's predicted label is read from its first piece
  (in BIOES, a first B-/I- with a last E- of one type reads as S-/E-, undoing the spread).

Text is split into words for prediction by :func:`split_words`: each CJK character is one word
(as the Chinese NER sets are labelled per character), other runs of letters and digits are one
word, and every other non-space character is a word of its own; offsets index the original text.

Not here: character-level models, nested entities, CRF marginals (a span's ``score`` in the
pipeline is the mean soft-max probability of its words' labels under the per-token head).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DataError, UsageError, closest
from ..eval import metrics
from ..objectives.classify import IGNORE
from ..pretrained import PretrainedMixin
from ..protocols import LossOutput

SCHEMES = metrics.SCHEMES
ALIGNMENTS = ("first", "all")


# --------------------------------------------------------------------------- schemes


def _check_labels(labels: list[str], scheme: str) -> None:
    allowed = {"bio": "BI", "bioes": "BIES"}[scheme]
    for label in labels:
        prefix, _, kind = label.partition("-")
        if label != "O" and not (len(prefix) == 1 and prefix in allowed and kind):
            raise ConfigError(f"label {label!r} is not a {scheme.upper()} label (O, {', '.join(allowed)}-TYPE)")


def to_bioes(labels: list[str]) -> list[str]:
    """BIO -> BIOES: a one-word entity is S-, the last word of a longer one E- (entities as conlleval reads them)."""
    out = ["O"] * len(labels)
    for start, end, kind in metrics.entity_spans(labels, "bio", "default"):
        if end - start == 1:
            out[start] = f"S-{kind}"
        else:
            out[start], out[end - 1] = f"B-{kind}", f"E-{kind}"
            out[start + 1:end - 1] = [f"I-{kind}"] * (end - start - 2)
    return out


def to_bio(labels: list[str]) -> list[str]:
    """BIOES (or any conlleval-readable sequence) -> BIO."""
    out = ["O"] * len(labels)
    for start, end, kind in metrics.entity_spans(labels, "bioes", "default"):
        out[start] = f"B-{kind}"
        out[start + 1:end] = [f"I-{kind}"] * (end - start - 1)
    return out


def convert(labels: list[str], scheme: str) -> list[str]:
    return to_bioes(labels) if scheme == "bioes" else to_bio(labels)


def labels_for(kinds: list[str], scheme: str) -> list[str]:
    """The label names of entity ``kinds`` in ``scheme``, "O" first."""
    prefixes = "BI" if scheme == "bio" else "BIES"
    return ["O", *(f"{p}-{k}" for k in kinds for p in prefixes)]


def spread(label: str, n_pieces: int, scheme: str) -> list[str]:
    """A word's label over its ``n_pieces`` pieces (``alignment="all"``)."""
    if label == "O" or n_pieces == 1:
        return [label] * n_pieces
    prefix, kind = label[0], label[2:]
    first = "B" if prefix in "BS" else "I"
    last = "E" if (scheme == "bioes" and prefix in "ES") else "I"
    return [f"{first}-{kind}", *[f"I-{kind}"] * (n_pieces - 2), f"{last}-{kind}"]


def collapse(first: str, last: str, scheme: str) -> str:
    """A word's label from its first and last pieces' labels (the inverse of :func:`spread`)."""
    if scheme == "bioes" and first[:2] in ("B-", "I-") and last == f"E-{first[2:]}":
        return ("S-" if first[0] == "B" else "E-") + first[2:]
    return first


# --------------------------------------------------------------------------- the CRF


class LinearChainCRF(nn.Module):
    """A linear-chain CRF over emission scores: transition scores A[from, to], start and end scores.

    Every method takes emissions (B, n, L) and a mask (B, n) that is a prefix (the first
    ``length`` positions of each row are real); a row of length 0 scores 0.
    """

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.transitions = nn.Parameter(torch.empty(num_labels, num_labels).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:  # -> (B,)
        """s(x, y) of the label sequences ``tags`` (B, n)."""
        B, n, _ = emissions.shape
        mask = mask.to(emissions.dtype)
        lengths = mask.sum(1).long()
        tags = tags.clamp(min=0) * mask.long()
        emitted = emissions.gather(2, tags[:, :, None]).squeeze(2)                    # (B, n)
        total = (emitted * mask).sum(1) + self.start[tags[:, 0]]
        if n > 1:
            moves = self.transitions[tags[:, :-1], tags[:, 1:]]                         # (B, n - 1)
            total = total + (moves * mask[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)           # (B,)
        total = total + self.end[last]
        return torch.where(lengths > 0, total, torch.zeros_like(total))

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:  # -> (B,)
        """log Z(x) by the forward algorithm: α_i(y) = logsumexp_y' α_{i-1}(y') + A[y', y] + E[i, y]."""
        mask = mask.bool()
        alpha = self.start[None] + emissions[:, 0]                                      # (B, L)
        for i in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + self.transitions[None] + emissions[:, i, None, :], dim=1)
            alpha = torch.where(mask[:, i, None], step, alpha)
        log_z = torch.logsumexp(alpha + self.end[None], dim=1)
        return torch.where(mask[:, 0], log_z, torch.zeros_like(log_z))

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:  # -> (B,)
        """-log P(tags | x) of each row."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def viterbi(self, emissions: Tensor, mask: Tensor) -> tuple[list[list[int]], Tensor]:
        """(the best label sequence of each row, cut to its length; its score s(x, y*) (B,))."""
        mask = mask.bool()
        B, n, L = emissions.shape
        delta = self.start[None] + emissions[:, 0]                                      # (B, L)
        back = []
        for i in range(1, n):
            candidates = delta[:, :, None] + self.transitions[None]                     # (B, L from, L to)
            best, arg = candidates.max(dim=1)                                           # (B, L)
            step = best + emissions[:, i]
            keep = mask[:, i, None]
            delta = torch.where(keep, step, delta)
            # positions past a row's end point to themselves, so backtracking passes through them
            back.append(torch.where(keep, arg, torch.arange(L).expand(B, L)))
        final = delta + self.end[None]
        score, last = final.max(dim=1)
        lengths = mask.sum(1).tolist()
        paths = []
        for b in range(B):
            label = int(last[b])
            path = [label]
            for i in range(n - 2, -1, -1):
                label = int(back[i][b, label])
                path.append(label)
            path.reverse()
            paths.append(path[: lengths[b]])
        return paths, torch.where(mask[:, 0], score, torch.zeros_like(score))


def pack(values: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """The entries of ``values`` (B, T, ...) at the True ``positions`` (B, T), moved to the front of
    each row in order: (packed (B, n, ...), mask (B, n)), n the most positions in a row."""
    counts = positions.sum(1)
    n = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~positions).to(torch.int8), dim=1, stable=True)[:, :n]       # (B, n)
    index = order.reshape(*order.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return values.gather(1, index), torch.arange(n)[None] < counts[:, None]


# --------------------------------------------------------------------------- the model


@dataclass
class TaggerConfig:
    """A tagger's folder: its encoder (family and Config fields, weights in the folder), its labels,
    how labels meet pieces (``scheme``, ``alignment``) and whether a CRF scores the sequence.

    ``max_len`` counts the two frame tokens ([CLS] ... [SEP] or their family's equivalents).
    ``pooling`` is unused by tagging; it is kept so folders written by ``lmlab.tasks.classification``
    (lmlab 0.3's tagger) still load.
    """

    encoder_family: str = "bert"
    encoder: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    dropout: float = 0.1
    max_len: int = 128
    task: str = ""
    scheme: str = "bio"
    alignment: str = "first"
    crf: bool = False
    # unused by tagging; kept so folders written by lmlab.tasks.classification's TokenClassifier
    # (lmlab 0.3's tagger, which saves a ClassifierConfig) still load
    pooling: str = "cls"
    text_format: str = "cls-sep"
    freeze: bool = False
    layer: int = -1
    head: str = "linear"
    head_hidden: int = 128
    lm_coef: float = 0.0

    def validate(self) -> None:
        if len(self.labels) < 2:
            raise ConfigError(f"a tagger needs at least 2 labels, got {len(self.labels)}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.alignment not in ALIGNMENTS:
            raise ConfigError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")
        if self.max_len < 4:
            raise ConfigError(f"max_len={self.max_len} is too short")
        _check_labels(self.labels, self.scheme)

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _fresh_encoder(config: TaggerConfig) -> nn.Module:
    from .. import config as config_io
    from .. import registry
    from .classification import encoder_of

    row = registry.get(config.encoder_family)
    row.require("encode", "a tagger")
    encoder_config = config_io.from_dict(row.config_class(), config.encoder, where="config.json: encoder")
    return encoder_of(row.model_class()(encoder_config))


class EncoderHead(PretrainedMixin, nn.Module):
    """What the heads on a pretrained encoder share (the tagger here, the pair classifier of
    :mod:`.pairs`, the span scorer of :mod:`.qa`): the config, checked and kept; the encoder, given
    (fine-tuning) or built fresh from the config's family (what loading does); :meth:`on`, a new head
    on a pretrained model's encoder; :meth:`encoded`, the encoder protocol's states of a batch."""

    config_class: type

    def __init__(self, config, encoder: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = encoder if encoder is not None else _fresh_encoder(config)

    @classmethod
    def on(cls, pretrained_model: nn.Module, **fields):
        """A new head on ``pretrained_model``'s encoder (fine-tuning starts here); ``fields``: the rest of the config."""
        from .. import config as config_io
        from .classification import encoder_of

        config = cls.config_class(encoder_family=pretrained_model.family,
                                  encoder=config_io.to_dict(pretrained_model.config), **fields)
        return cls(config, encoder_of(pretrained_model))

    def encoded(self, input_ids: Tensor, attention_mask: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """(hidden (B, T, H), pooled (B, H) or None, the attention mask: all ones when None was given);
        segment ids from the config's ``segment_sep`` for the encoders that read them."""
        from .classification import encode

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden, pooled = encode(self.encoder, input_ids, attention_mask, getattr(self.config, "segment_sep", -1))
        return hidden, pooled, attention_mask


class TokenClassifier(EncoderHead):
    """encoder + dropout + linear on every token -> emissions (B, T, L), optionally a CRF over them;
    a folder of family "tagger". ``TokenClassifier(config, encoder)`` puts the head on a pretrained
    encoder; ``TokenClassifier(config)`` builds a fresh one of the config's family (loading)."""

    family = "tagger"
    config_class = TaggerConfig

    def __init__(self, config: TaggerConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config, encoder)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(self.encoder.config.d_model, config.num_labels)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)
        self.crf = LinearChainCRF(config.num_labels) if config.crf else None

    @classmethod
    def on(cls, pretrained_model: nn.Module, labels: list[str], scheme: str = "bio", alignment: str = "first",
           crf: bool = False, dropout: float = 0.1, max_len: int = 128, task: str = "") -> TokenClassifier:
        """A new tagging head on ``pretrained_model``'s encoder (fine-tuning starts here)."""
        return super().on(pretrained_model, labels=list(labels), dropout=dropout, max_len=max_len, task=task,
                          scheme=scheme, alignment=alignment, crf=crf)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:  # -> (B, T, L)
        hidden, _, _ = self.encoded(input_ids, attention_mask)
        return self.out(self.dropout(hidden))

    def loss_sum(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(Σ loss, emissions): cross-entropy of each scored piece, or the CRF's -log P(y | x) of each
        row's chain of scored pieces (labels IGNORE elsewhere)."""
        emissions = self(input_ids, attention_mask)
        if self.crf is None:
            loss = F.cross_entropy(emissions.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                                   reduction="sum")
            return loss, emissions
        scored = labels != IGNORE
        chain, mask = pack(emissions.float(), scored)                                  # (B, n, L), (B, n)
        tags, _ = pack(labels, scored)
        return self.crf.nll(chain, tags, mask).sum(), emissions

    @torch.no_grad()
    def decode(self, input_ids: Tensor, attention_mask: Tensor, chain: Tensor) -> list[list[tuple[int, float]]]:
        """(label id, probability) at each True position of ``chain`` (B, T), in order: Viterbi's path with
        the CRF, each position's argmax without; the probability is the per-token soft-max's."""
        emissions = self(input_ids, attention_mask).float()
        packed, mask = pack(emissions, chain)
        probs = packed.softmax(-1)
        if self.crf is None:
            best = packed.argmax(-1)
            paths = [best[b, : int(mask[b].sum())].tolist() for b in range(best.shape[0])]
        else:
            paths, _ = self.crf.viterbi(packed, mask)
        return [[(label, float(probs[b, i, label])) for i, label in enumerate(path)] for b, path in enumerate(paths)]


class TaggingObjective:
    """The tagger's loss on rows (B, 3T): T ids, T labels (IGNORE where unscored), T attention mask;
    divided by the number of scored pieces (the Trainer logs ``acc``, per-token argmax accuracy)."""

    def prepare(self, ids: Tensor, generator: torch.Generator | None = None) -> dict:
        ids = ids.long()
        T = ids.shape[1] // 3
        return {"input_ids": ids[:, :T], "labels": ids[:, T:2 * T], "attention_mask": ids[:, 2 * T:]}

    def loss(self, model: TokenClassifier, batch: dict) -> LossOutput:
        labels = batch["labels"]
        loss, emissions = model.loss_sum(batch["input_ids"], batch["attention_mask"], labels)
        scored = labels != IGNORE
        correct = ((emissions.argmax(-1) == labels) & scored).sum()
        return LossOutput(loss, int(scored.sum()), metrics={"acc": correct.detach()})


# --------------------------------------------------------------------------- words <-> pieces


_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\w\s]")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of each word of ``text`` (see the module docstring); offsets index ``text``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def frame_ids(tokenizer) -> dict:
    """The ids that frame a sequence: cls (or bos), sep (or eos), pad (or sep) and unk (or None)."""
    ids = tokenizer.special_ids()
    cls, sep = ids.get("cls", ids.get("bos")), ids.get("sep", ids.get("eos"))
    if cls is None or sep is None:
        raise ConfigError(f"the {tokenizer.kind} tokenizer has no [CLS]/[SEP] (or bos/eos) tokens to frame a "
                          f"sequence (it has {', '.join(sorted(ids)) or 'none'})")
    return {"cls": cls, "sep": sep, "pad": ids.get("pad", sep), "unk": ids.get("unk")}


def word_pieces(tokenizer, words: list[str], frame: dict) -> list[list[int]]:
    """Each word's piece ids (a word that encodes to nothing becomes [UNK], or [CLS] without one)."""
    fallback = frame["unk"] if frame["unk"] is not None else frame["cls"]
    return [pieces or [fallback] for pieces in tokenizer.encode_batch(list(words))]


def chunks(pieces: list[list[int]], budget: int) -> list[tuple[int, int]]:
    """[first, last) word ranges, in order, each with at most ``budget`` pieces (a longer word alone is cut)."""
    out, first, used = [], 0, 0
    for i, p in enumerate(pieces):
        if used and used + len(p) > budget:
            out.append((first, i))
            first, used = i, 0
        used += len(p)
    if pieces:
        out.append((first, len(pieces)))
    return out


@dataclass
class Window:
    """One encoder input: ids, the label (or IGNORE) of each position, which position starts which word."""

    ids: list[int]
    labels: list[int]
    chain: list[bool]          # the positions the head is read at (word starts, or every piece with "all")
    word_at: list[int]         # the word index a position starts, -1 elsewhere
    words: range


def windows(pieces: list[list[int]], labels: list[str] | None, config: TaggerConfig, frame: dict) -> list[Window]:
    """The framed encoder inputs of one sentence: its words in consecutive chunks of at most max_len - 2 pieces."""
    ids_of = {name: i for i, name in enumerate(config.labels)}
    out = []
    for first, last in chunks(pieces, config.max_len - 2):
        ids, tags, chain, word_at = [frame["cls"]], [IGNORE], [False], [-1]
        for w in range(first, last):
            p = pieces[w][: config.max_len - 2 - (len(ids) - 1)]
            if labels is None:
                piece_labels = [IGNORE] * len(p)
            elif config.alignment == "first":
                piece_labels = [ids_of[labels[w]]] + [IGNORE] * (len(p) - 1)
            else:
                piece_labels = [ids_of[x] for x in spread(labels[w], len(p), config.scheme)]
            ids += p
            tags += piece_labels
            chain += [True] + [config.alignment == "all"] * (len(p) - 1)
            word_at += [w] + [-1] * (len(p) - 1)
        ids.append(frame["sep"])
        tags.append(IGNORE)
        chain.append(False)
        word_at.append(-1)
        out.append(Window(ids, tags, chain, word_at, range(first, last)))
    return out


def window_rows(batch: list[Window], max_len: int, pad: int) -> Tensor:
    """(N, 3 max_len): ids, labels, attention mask (the :class:`TaggingObjective` layout)."""
    rows = torch.zeros((len(batch), 3 * max_len), dtype=torch.long)
    rows[:, :max_len] = pad
    rows[:, max_len:2 * max_len] = IGNORE
    for i, w in enumerate(batch):
        n = len(w.ids)
        rows[i, :n] = torch.tensor(w.ids)
        rows[i, max_len:max_len + n] = torch.tensor(w.labels)
        rows[i, 2 * max_len:2 * max_len + n] = 1
    return rows


def tag_words(model: TokenClassifier, tokenizer, sentences: list[list[str]], batch_size: int = 32,
              frame: dict | None = None) -> list[list[tuple[str, float]]]:
    """(label, probability) of every word of every sentence (long sentences run as several windows)."""
    config = model.config
    frame = frame or frame_ids(tokenizer)
    per_sentence = [windows(word_pieces(tokenizer, words, frame), None, config, frame) if words else []
                    for words in sentences]
    flat = [(s, w) for s, ws in enumerate(per_sentence) for w in ws]
    flat.sort(key=lambda item: len(item[1].ids))  # similar lengths together: less padding
    out: list[list] = [[("O", 0.0)] * len(words) for words in sentences]
    model.eval()
    with torch.no_grad():
        for first in range(0, len(flat), batch_size):
            group = flat[first:first + batch_size]
            T = max(len(w.ids) for _, w in group)
            ids = torch.full((len(group), T), frame["pad"], dtype=torch.long)
            mask = torch.zeros_like(ids)
            chain = torch.zeros_like(ids, dtype=torch.bool)
            for i, (_, w) in enumerate(group):
                ids[i, :len(w.ids)] = torch.tensor(w.ids)
                mask[i, :len(w.ids)] = 1
                chain[i, :len(w.ids)] = torch.tensor(w.chain)
            decoded = model.decode(ids, mask, chain)
            for (s, w), path in zip(group, decoded):
                positions = [k for k, c in enumerate(w.chain) if c]
                by_position = dict(zip(positions, path))
                for k, word in enumerate(w.word_at):
                    if word < 0:
                        continue
                    label, prob = by_position[k]
                    name = config.labels[label]
                    if config.alignment == "all":  # the word's last piece: the position before the next word
                        end = next((j for j in range(k + 1, len(w.word_at)) if w.word_at[j] >= 0 or not w.chain[j]),
                                   len(w.word_at)) - 1
                        name = collapse(name, config.labels[by_position[end][0]], config.scheme)
                    out[s][word] = (name, prob)
    return out


# --------------------------------------------------------------------------- the pipeline


class TokenClassificationPipeline:
    """Entities in raw text: ``pipe("Empire State Building ...")`` -> ``[{"entity_group", "score", "word",
    "start", "end"}, ...]`` (the keys of Hugging Face's token-classification pipeline with
    ``aggregation_strategy="simple"``); a list of texts gives a list of such lists.

    ``score`` is the mean probability of the entity's word labels; ``start``/``end`` are character
    offsets into the text (``text[start:end] == word``)."""

    def __init__(self, model: TokenClassifier, tokenizer) -> None:
        if not isinstance(getattr(model, "config", None), TaggerConfig):
            raise UsageError(f"a token-classification pipeline needs a tagger, not a {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.frame = frame_ids(tokenizer)

    def __call__(self, inputs: str | list[str], batch_size: int = 32) -> list:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise UsageError(f"input {i} is a {type(text).__name__}, not a string")
        split = [split_words(text) for text in texts]
        tagged = tag_words(self.model, self.tokenizer, [[w for w, _, _ in words] for words in split],
                           batch_size, self.frame)
        results = []
        for text, words, labels in zip(texts, split, tagged):
            names = [name for name, _ in labels]
            entities = []
            for first, last, kind in metrics.entity_spans(names, self.model.config.scheme, "default"):
                start, end = words[first][1], words[last - 1][2]
                score = sum(prob for _, prob in labels[first:last]) / (last - first)
                entities.append({"entity_group": kind, "score": score, "word": text[start:end],
                                 "start": start, "end": end})
            results.append(entities)
        return results[0] if isinstance(inputs, str) else results


# --------------------------------------------------------------------------- fine-tuning


BUILTIN = ("msra-ner", "wnut16", "peoples-daily-ner")


@dataclass
class TaggingData:
    """Sentences as (words, labels) in ``scheme``: train, valid and test, and the entity types."""

    kinds: list[str]
    train: list[tuple[list[str], list[str]]]
    valid: list[tuple[list[str], list[str]]]
    test: list[tuple[list[str], list[str]]]
    scheme: str = "bio"
    name: str = ""

    def in_scheme(self, scheme: str) -> TaggingData:
        if scheme == self.scheme:
            return self
        move = lambda part: [(words, convert(labels, scheme)) for words, labels in part]
        return TaggingData(self.kinds, move(self.train), move(self.valid), move(self.test), scheme, self.name)


def builtin_data(name: str) -> TaggingData:
    """A built-in NER set (:mod:`lmlab.data.ner`) as :class:`TaggingData` in its own scheme."""
    from ..data import ner

    if name not in BUILTIN:
        raise UsageError(f"unknown tagging set {name!r}{closest(name, BUILTIN)}; choose one of {', '.join(BUILTIN)}")
    sets = {"msra-ner": ner.msra, "wnut16": ner.wnut16, "peoples-daily-ner": ner.peoples_daily}[name]()
    pairs = lambda part: [(s.words, s.labels) for s in part]
    return TaggingData(sets.kinds, pairs(sets.train), pairs(sets.valid), pairs(sets.test), sets.scheme, name)


@dataclass
class TaggingSpec:
    """How to fine-tune a tagger (``lmlab finetune MODEL msra-ner`` and friends)."""

    steps: int = 300
    batch_size: int = 32
    max_len: int = 128
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    scheme: str = "bio"
    alignment: str = "first"
    crf: bool = False
    max_train: int = 0          # 0: every training sentence
    max_test: int = 0           # 0: every test sentence
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_len < 4:
            raise UsageError(f"max_len={self.max_len} is too short")
        if self.scheme not in SCHEMES:
            raise UsageError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.alignment not in ALIGNMENTS:
            raise UsageError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")


def sample(items: list, n: int, seed: int) -> list:
    """``n`` of ``items`` chosen with ``seed``, in their order (all when ``n`` is 0 or too large)."""
    if not n or n >= len(items):
        return items
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:n]
    return [items[i] for i in sorted(order.tolist())]


def save_head(model: nn.Module, tokenizer, base: str | Path, scores: dict, folder: str | Path) -> Path:
    """A fine-tuned head's folder: the model, its tokenizer's files, the base folder and the numeric scores."""
    numbers = {k: v for k, v in scores.items() if isinstance(v, int | float)}
    return model.save_pretrained(folder, extra_files=tokenizer.files(), metadata={"base": str(base), "scores": numbers})


def fit_head(model: nn.Module, objective, rows: Tensor, spec, out_dir: str | Path):
    """Train ``model`` on ``rows`` with the one Trainer as every task head here is trained: AdamW,
    linear decay after ``spec.warmup_fraction`` warm-up, weight decay 0.01, fp32 on the CPU."""
    from ..data.stream import Rows
    from ..train import TrainConfig, Trainer

    config = TrainConfig.quiet(seed=spec.seed, max_steps=spec.steps, lr=spec.lr, schedule="linear",
                               warmup_steps=max(1, int(spec.warmup_fraction * spec.steps)), weight_decay=0.01,
                               threads=spec.threads, device="cpu", precision="fp32", checkpoint_every=0)
    return Trainer(model, objective, Rows(rows, min(spec.batch_size, len(rows)), seed=spec.seed),
                   config, Path(out_dir)).fit()


def evaluate_tagger(model: TokenClassifier, tokenizer, sentences: list[tuple[list[str], list[str]]],
                    batch_size: int = 64) -> dict:
    """Entity P/R/F1 (default and strict modes, the model's scheme) and token accuracy on gold sentences."""
    scheme = model.config.scheme
    gold = [convert(labels, scheme) for _, labels in sentences]
    predicted = [[name for name, _ in row] for row in tag_words(model, tokenizer, [w for w, _ in sentences],
                                                                 batch_size)]
    default = metrics.entity_scores(gold, predicted, scheme, "default")
    strict = metrics.entity_scores(gold, predicted, scheme, "strict")
    flat_g = list(itertools.chain.from_iterable(gold))
    flat_p = list(itertools.chain.from_iterable(predicted))
    return {"entity_f1": default.f1, "entity_precision": default.precision, "entity_recall": default.recall,
            "entity_f1_strict": strict.f1, "token_accuracy": metrics.accuracy(flat_g, flat_p),
            "per_type_f1": {k: v["f1"] for k, v in default.per_type.items()}}


def finetune_tagger(pretrained: nn.Module, tokenizer, data: TaggingData, spec: TaggingSpec,
                    out_dir: str | Path) -> tuple[TokenClassifier, dict]:
    """Fine-tune a tagging head on ``pretrained``'s encoder (in place); (the tagger, its test scores)."""
    spec.validate()
    start = time.monotonic()
    torch.manual_seed(spec.seed)
    data = data.in_scheme(spec.scheme)
    train = sample(data.train, spec.max_train, spec.seed)
    test = sample(data.test, spec.max_test, spec.seed + 1)
    if not train or not test:
        raise DataError(f"tagging set {data.name!r} has an empty train or test split")
    model = TokenClassifier.on(pretrained, labels_for(data.kinds, spec.scheme), spec.scheme, spec.alignment,
                               spec.crf, spec.dropout, spec.max_len, data.name)
    frame = frame_ids(tokenizer)
    train_windows = [w for words, labels in train
                     for w in windows(word_pieces(tokenizer, words, frame), labels, model.config, frame)]
    rows = window_rows(train_windows, spec.max_len, frame["pad"])
    result = fit_head(model, TaggingObjective(), rows, spec, out_dir)
    scores = {"task": data.name, "n_train": len(train), "n_test": len(test), "train_loss": result.loss,
              "scheme": spec.scheme, "alignment": spec.alignment, "crf": spec.crf,
              **evaluate_tagger(model, tokenizer, test), "seconds": time.monotonic() - start}
    return model, scores


def finetune_tagging(model_dir: str | Path, data: str | TaggingData, spec: TaggingSpec,
                     out_dir: str | Path) -> dict:
    """Load a saved encoder folder, fine-tune a tagger on ``data`` (a built-in set's name or
    :class:`TaggingData`), save it to ``out_dir/model`` (reloads with ``lmlab.load``, tokenizer
    included) and return the test scores."""
    from ..data.tokenizers import load_tokenizer
    from ..pretrained import load

    data = builtin_data(data) if isinstance(data, str) else data
    if not (Path(model_dir) / "tokenizer_config.json").is_file() and not (Path(model_dir) / "tokenizer.json").is_file():
        raise DataError(f"{model_dir}: no tokenizer files next to the model (needed to encode the words)")
    pretrained = load(model_dir)
    tokenizer = load_tokenizer(model_dir)
    out_dir = Path(out_dir)
    model, scores = finetune_tagger(pretrained, tokenizer, data, spec, out_dir / "train")
    save_head(model, tokenizer, model_dir, scores, out_dir / "model")
    return scores
