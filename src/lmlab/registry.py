"""An explicit table of model families: name -> where its Config, Model and presets live.

No import magic: each family is one row, written by hand, loaded only when asked
for (so ``import lmlab`` stays light and a family with an optional dependency does
not break the others). A row is ``"module:ConfigClass"``, ``"module:ModelClass"``
and ``"module:PRESETS"`` (a dict name -> dict of config values).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import ConfigError, closest


@dataclass(frozen=True)
class Family:
    name: str
    config: str
    model: str
    presets: str | None = None

    def _load(self, spec: str):
        module_name, attr = spec.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def config_class(self):
        return self._load(self.config)

    def model_class(self):
        return self._load(self.model)

    def preset_table(self) -> dict:
        return self._load(self.presets) if self.presets else {}


# One row per family (see DESIGN.md, "Layout"). Training recipes (data + objective) are
# in the builder table of lmlab.cli.train; this table says where each model lives.
FAMILIES: dict[str, Family] = {
    row.name: row for row in [
        Family("nnlm", "lmlab.models.nnlm:NNLMConfig", "lmlab.models.nnlm:NNLM"),
        Family("rnnlm", "lmlab.models.rnnlm:RNNLMConfig", "lmlab.models.rnnlm:RNNLM"),
        Family("transformer", "lmlab.models.transformer:TransformerConfig", "lmlab.models.transformer:Transformer",
               "lmlab.models.transformer:PRESETS"),
        Family("gpt", "lmlab.models.gpt:GPTConfig", "lmlab.models.gpt:GPTLanguageModel", "lmlab.models.gpt:PRESETS"),
        Family("gpt-classifier", "lmlab.models.gpt:GPTClassifierConfig", "lmlab.models.gpt:GPTClassifier"),
        Family("bert", "lmlab.models.bert:BertConfig", "lmlab.models.bert:BertForPreTraining",
               "lmlab.models.bert:PRESETS"),
        Family("albert", "lmlab.models.albert:AlbertConfig", "lmlab.models.albert:AlbertForPreTraining",
               "lmlab.models.albert:PRESETS"),
        Family("electra", "lmlab.models.electra:ElectraConfig", "lmlab.models.electra:ElectraForPreTraining",
               "lmlab.models.electra:PRESETS"),
    ]
}


def register(family: Family) -> None:
    FAMILIES[family.name] = family


def get(name: str) -> Family:
    if name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES)) or "none yet"
        raise ConfigError(f"unknown model family {name!r}{closest(name, FAMILIES)}; known: {known}")
    return FAMILIES[name]
