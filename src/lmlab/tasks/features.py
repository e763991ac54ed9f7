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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError
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
