"""The one saved-model folder every family writes and reads (DESIGN.md, "Layout").

A saved model is a folder, as on the Hugging Face hub::

    config.json          the family name and its Config dataclass, as JSON
    model.safetensors    the weights (never a pickle)
    tokenizer files      whatever the tokenizer's own ``save`` writes

:class:`PretrainedMixin` is the only base class families share. Folders are
written atomically through :func:`lmlab.io.atomic_dir`; every way a folder can
be wrong on reading is a one-line :class:`~lmlab.errors.CheckpointError`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import from_dict, to_dict
from .errors import CheckpointError, ConfigError
from .io import atomic_dir, load_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_model_folder(folder: str | Path, family: str, config: dict, tensors: dict,
                      extra: dict[str, bytes] | None = None, metadata: dict | None = None) -> Path:
    """Write a model folder atomically: config.json ``{"family", "config", **metadata}``,
    model.safetensors and ``extra`` files (the tokenizer's own files)."""
    folder = Path(folder)
    meta = dict(metadata or {})
    clash = {"family", "config"} & set(meta)
    if clash:
        raise ValueError(f"metadata may not set {sorted(clash)}")
    with atomic_dir(folder) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps({"family": family, "config": config, **meta}, indent=2) + "\n")
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME))
        for name, data in (extra or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
    return folder


def split_config(raw: dict, where: str) -> tuple[str | None, dict, dict]:
    """(family, config fields, metadata) of a config.json.

    The format is ``{"family": ..., "config": {...}}`` plus optional metadata keys. Folders
    written before lmlab 0.3 kept the fields at the top level (``{"family": ..., **fields}``);
    they are read the same way, so they still load.
    """
    raw = dict(raw)
    family = raw.pop("family", None)
    if isinstance(raw.get("config"), dict):
        return family, raw.pop("config"), raw
    if "config" in raw:
        raise CheckpointError(f"{where}: 'config' must be a JSON object")
    return family, raw, {}


def read_model_config(folder: str | Path) -> dict:
    """config.json of a model folder, with one-line errors for every way it can be wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (not a saved model folder)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return config


def load_model_folder(folder: str | Path) -> tuple[dict, dict]:
    """(config dict, tensors) of a model folder; every failure is a CheckpointError."""
    config = read_model_config(folder)
    tensors = load_tensors(Path(folder) / WEIGHTS_NAME)
    return config, tensors


def word_vocabulary_files(vocab: list[str]) -> dict[str, bytes]:
    """A word LM's closed vocabulary as the files a saved word tokenizer writes
    (``lmlab.data.tokenizers.WordTokenizer``: vocab.txt + tokenizer_config.json), so the folder's
    tokenizer loads with ``lmlab.data.tokenizers.load_tokenizer(folder)``."""
    config = {"type": "word", "lowercase": True, "extra_specials": []}
    return {"vocab.txt": ("\n".join(vocab) + "\n").encode("utf-8"),
            "tokenizer_config.json": (json.dumps(config, indent=2) + "\n").encode("utf-8")}


def read_vocabulary_file(path: str | Path) -> list[str]:
    """The tokens of a vocabulary file saved with a model: one per line, UTF-8 (a one-line error if not)."""
    path = Path(path)
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: invalid UTF-8 at byte {err.start}") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


def read_word_vocabulary(folder: str | Path, size: int) -> list[str]:
    """The vocabulary of a saved word LM: its vocab.txt, or (folders of lmlab 0.2) config.json's "vocab"."""
    folder = Path(folder)
    path = folder / "vocab.txt"
    if path.is_file():
        vocab = read_vocabulary_file(path)
    else:
        vocab = read_model_config(folder).get("vocab")
    if not isinstance(vocab, list) or len(vocab) != size:
        raise CheckpointError(f"{folder}: vocabulary missing or not {size} words (vocab.txt)")
    return vocab


def save_word_lm(model, folder: str | Path, vocab: list[str], data: dict | None = None) -> Path:
    """A word LM's folder: config.json (family, config, the data it was trained on as metadata),
    model.safetensors and the closed vocabulary as a word tokenizer's files."""
    if len(vocab) != model.config.vocab_size:
        raise ConfigError(f"vocabulary of {len(vocab)} words for a model of {model.config.vocab_size}")
    return model.save_pretrained(folder, extra_files=word_vocabulary_files(vocab), metadata={"data": data or {}})


def load_word_lm(cls, folder: str | Path):
    """(model, vocabulary) of a word LM's folder (folders of lmlab 0.2 too: vocabulary inside config.json)."""
    model = cls.from_pretrained(folder)
    return model, read_word_vocabulary(folder, model.config.vocab_size)


def load_state_strict(module, tensors: dict, where: str) -> None:
    """Load ``tensors`` into a torch module; any missing, extra or mis-shaped key is an error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{where}: weights do not match the config ({'; '.join(parts)})")
    for key, value in tensors.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{where}: weight {key!r} has shape {tuple(value.shape)}, config expects {tuple(own[key].shape)}"
            )
    module.load_state_dict(tensors, strict=True)


class PretrainedMixin:
    """The one base model families share (DESIGN.md): ``save_pretrained`` / ``from_pretrained``.

    A family's model class sets ``family`` (the name written into config.json) and
    ``config_class`` (its Config dataclass) and keeps its config in ``self.config``. Two hooks
    cover the families whose weights are not simply ``cls(config)``'s state dict:
    ``_state_for_saving()`` (e.g. a tied matrix saved once) and ``_from_state(config, tensors)``
    (e.g. an output layer rebuilt from saved buffers).
    """

    family: str = ""
    config_class: type | None = None

    def _state_for_saving(self) -> dict:
        return self.state_dict()

    @classmethod
    def _from_state(cls, config, tensors: dict, where: str):
        model = cls(config)
        load_state_strict(model, tensors, where)
        return model

    def save_pretrained(self, folder: str | Path, extra_files: dict[str, bytes] | None = None,
                        metadata: dict | None = None) -> Path:
        """Write config.json, model.safetensors and any tokenizer files, atomically."""
        return save_model_folder(folder, self.family, to_dict(self.config), self._state_for_saving(),
                                 extra_files, metadata)

    @classmethod
    def from_pretrained(cls, folder: str | Path):
        """Rebuild the model from its folder; a folder of another family or a bad file is a CheckpointError."""
        raw, tensors = load_model_folder(folder)
        family, fields, _ = split_config(raw, f"{folder}/{CONFIG_NAME}")
        if family != cls.family:
            raise CheckpointError(f"{folder}: holds a {family!r} model, not {cls.family!r}")
        config = from_dict(cls.config_class, fields, where=f"{folder}/{CONFIG_NAME}")
        return cls._from_state(config, tensors, str(folder))


def load(path: str | Path):
    """Any saved model, by what the path holds: an lmlab model folder (through the registry row
    named by its config.json), an ARPA file (an n-gram model), an adapted n-gram model's JSON
    file (``lmlab ngram adapt``) or a Hugging Face folder of a
    family the registry has a reader for (``model_type`` gpt2, bert, roberta, albert, electra)."""
    from . import registry

    path = Path(path)
    if path.is_file() and path.name.endswith((".arpa", ".arpa.gz", ".lmbin")):
        return registry.get("ngram").load(path)
    if path.is_file() and path.suffix == ".json":  # an adapted n-gram model (lmlab ngram adapt)
        return registry.get("adaptive").load(path)
    raw = read_model_config(path)
    family, _, _ = split_config(raw, f"{path}/{CONFIG_NAME}")
    if family is None:
        row = registry.for_hf_model_type(raw.get("model_type"))
        if row is None:
            raise CheckpointError(f"{path}/{CONFIG_NAME}: no \"family\" key (not an lmlab model folder) and no "
                                  f"model_type lmlab reads")
        return row.load_hf(path)
    if family not in registry.FAMILIES and str(family).endswith("-classifier") and "base" in raw:
        raise CheckpointError(f"{path}: a classifier fine-tuned by lmlab 0.2 (family {family!r}), which did not record "
                              f"its encoder's config or pooling and cannot be rebuilt; run lmlab finetune "
                              f"{raw['base']} {raw.get('task', 'TASK')} again to get a folder that loads")
    return registry.get(family).load(path)
