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
from .errors import CheckpointError
from .io import atomic_dir, load_tensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_model_folder(folder: str | Path, family: str, config: dict, tensors: dict,
                      extra: dict[str, bytes] | None = None) -> Path:
    """Write a model folder (config.json + model.safetensors + extra files) atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps({"family": family, **config}, indent=2) + "\n")
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME))
        for name, data in (extra or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
    return folder


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
    ``config_class`` (its Config dataclass) and keeps its config in ``self.config``.
    """

    family: str = ""
    config_class: type | None = None

    def save_pretrained(self, folder: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write config.json (with ``family``), model.safetensors and any tokenizer files, atomically."""
        return save_model_folder(folder, self.family, to_dict(self.config), self.state_dict(), extra_files)

    @classmethod
    def from_pretrained(cls, folder: str | Path):
        """Rebuild the model from its folder; a folder of another family or a bad file is a CheckpointError."""
        data, tensors = load_model_folder(folder)
        family = data.pop("family", None)
        if family != cls.family:
            raise CheckpointError(f"{folder}: holds a {family!r} model, not {cls.family!r}")
        model = cls(from_dict(cls.config_class, data, where=f"{folder}/config.json"))
        load_state_strict(model, tensors, str(folder))
        return model
