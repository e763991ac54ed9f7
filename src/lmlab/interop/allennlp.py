"""The original ELMo weights in and out: bilm-tf's ``options.json`` + ``weights.hdf5`` (the files
AllenNLP and the ELMo releases ship) <-> :class:`lmlab.models.elmo.ElmoLM`.

The hdf5 layout (bilm-tf ``dump_weights``) and what changes on the way in (the way out undoes it):

| hdf5 dataset | lmlab parameter | conversion |
|---|---|---|
| ``char_embed`` (261, d) | ``token_encoder.char_embed.weight`` (262, d) | a zero row 0 ("no token") prepended |
| ``CNN/W_cnn_i`` (1, w, d, n), ``b_cnn_i`` | ``token_encoder.convs.i`` (n, d, w) | squeeze, axes reversed |
| ``CNN_high_i/{W,b}_{carry,transform}`` | ``token_encoder.highways.i.{carry,transform}`` | TF (in, out) transposed; the same convention ``g * f(x) + (1 - g) * x`` with ``g`` from the carry weights, so no sign flip (AllenNLP writes ``g * x + (1 - g) * f(x)`` and negates the carry instead) |
| ``CNN_proj/{W_proj,b_proj}`` | ``token_encoder.projection`` | transposed |
| ``RNN_{0,1}/RNN/MultiRNNCell/Cell{j}/LSTMCell/W_0`` (I + P, 4 cell) | ``{forward,backward}_lm.layers.j.{input,state}_linear`` | transposed, split into input and recurrent columns, gates reordered from TF's i, g, f, o to i, f, g, o |
| ``.../B`` (4 cell) | ``...state_linear.bias`` | reordered, and 1.0 added to the forget gate (TF adds it at run time instead of storing it) |
| ``.../W_P_0`` (cell, P) | ``...projection.weight`` | transposed |

``RNN_0`` is the forward LM, ``RNN_1`` the backward one. The released files (and AllenNLP's
fixture) hold no softmax, so such a model is an encoder (``vocab_size = 0``: ``encode``, ``bilm``,
``token_embeddings``); asked to score, it says what is missing. When the hdf5 file does carry the
softmax (``softmax/W`` (V, P), ``softmax/b`` (V), the names of bilm-tf's training graph, which its
``dump_weights`` leaves out) and a vocabulary file is given (bilm-tf's: one word a line, with
``<S>``, ``</S>``, ``<UNK>``), the model loads as a full-softmax LM over that vocabulary, with
``<S> </S> <UNK>`` renamed to lmlab's ``<s> </s> <unk>`` (their character spellings kept) and
scores like any ELMo; writing it back writes the softmax too. ``h5py`` is the optional extra ``elmo``;
lmlab's own folders stay safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, UsageError
from ..io import atomic_write_bytes
from ..models.elmo import ElmoConfig, ElmoLM


def _h5py():
    try:
        import h5py
    except ImportError:
        raise UsageError("reading or writing ELMo hdf5 weights needs h5py: pip install 'lmlab[elmo]'") from None
    return h5py


# ----------------------------------------------------------------------------- options.json <-> config


def config_from_options(options: dict, where: str = "options.json") -> ElmoConfig:
    try:
        cnn, lstm = options["char_cnn"], options["lstm"]
        config = ElmoConfig(
            vocab_size=0, max_characters=int(cnn["max_characters_per_token"]),
            n_characters=max(262, int(cnn.get("n_characters", 262))),
            char_embed_dim=int(cnn["embedding"]["dim"]), filters=[[int(w), int(n)] for w, n in cnn["filters"]],
            n_highway=int(cnn["n_highway"]), activation=cnn.get("activation", "relu"),
            projection_dim=int(lstm.get("projection_dim", lstm["dim"])), cell_dim=int(lstm["dim"]),
            n_layers=int(lstm["n_layers"]), cell_clip=float(lstm.get("cell_clip") or 0.0),
            proj_clip=float(lstm.get("proj_clip") or 0.0),
            skip_connections=bool(lstm.get("use_skip_connections", False)), dropout=0.0)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: not a bilm-tf options file (missing or bad {err})") from None
    if config.activation not in ("relu", "tanh"):
        raise ConfigError(f"{where}: char_cnn.activation must be relu or tanh, got {config.activation!r}")
    config.validate()
    return config


def options_from_config(config: ElmoConfig) -> dict:
    return {"lstm": {"cell_clip": config.cell_clip, "use_skip_connections": config.skip_connections,
                     "n_layers": config.n_layers, "proj_clip": config.proj_clip,
                     "projection_dim": config.projection_dim, "dim": config.cell_dim},
            "char_cnn": {"embedding": {"dim": config.char_embed_dim}, "filters": config.filters,
                         "n_highway": config.n_highway, "n_characters": 262,
                         "max_characters_per_token": config.max_characters, "activation": config.activation}}


# ----------------------------------------------------------------------------- the gate order


def _tf_to_torch_gates(w: np.ndarray, cell: int) -> np.ndarray:
    """Rows (or entries) in TF's order i, g (memory), f, o -> lmlab's i, f, g, o."""
    i, g, f, o = (w[k * cell:(k + 1) * cell] for k in range(4))
    return np.concatenate([i, f, g, o], axis=0)


def _torch_to_tf_gates(w: np.ndarray, cell: int) -> np.ndarray:
    i, f, g, o = (w[k * cell:(k + 1) * cell] for k in range(4))
    return np.concatenate([i, g, f, o], axis=0)


def _lstm_name(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


# ----------------------------------------------------------------------------- in


SOFTMAX_W, SOFTMAX_B = "softmax/W", "softmax/b"
BILM_TF_SPECIALS = {"<S>": "<s>", "</S>": "</s>", "<UNK>": "<unk>"}


def read_vocabulary(path: str | Path) -> list[str]:
    """bilm-tf's vocabulary file: one word a line, in softmax row order."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ELMo vocabulary file not found: {path}")
    try:
        words = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text ({err})") from None
    missing = [w for w in ("<S>", "</S>", "<UNK>") if w not in words]
    if missing:
        raise CheckpointError(f"{path}: not a bilm-tf vocabulary (no {', '.join(missing)})")
    return words


def has_softmax(weight_file: str | Path) -> bool:
    """Whether a bilm-tf hdf5 file carries the softmax (``softmax/W`` and ``softmax/b``)."""
    h5py = _h5py()
    try:
        with h5py.File(weight_file, "r") as fin:
            return SOFTMAX_W in fin and SOFTMAX_B in fin
    except OSError as err:
        raise CheckpointError(f"{weight_file}: not an hdf5 file ({err})") from None


def load_allennlp(options_file: str | Path, weight_file: str | Path, vocab_file: str | Path | None = None) -> ElmoLM:
    """An :class:`ElmoLM` (eval mode) from bilm-tf's options.json and weights.hdf5: an encoder only,
    or, when the hdf5 file has the softmax and ``vocab_file`` is given, an LM that scores."""
    h5py = _h5py()
    options_file, weight_file = Path(options_file), Path(weight_file)
    vocab = read_vocabulary(vocab_file) if vocab_file is not None else None
    for path in (options_file, weight_file):
        if not path.is_file():
            raise CheckpointError(f"ELMo file not found: {path}")
    try:
        options = json.loads(options_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{options_file}: not valid JSON ({err})") from None
    config = config_from_options(options, str(options_file))
    try:
        fin = h5py.File(weight_file, "r")
    except OSError as err:
        raise CheckpointError(f"{weight_file}: not an hdf5 file ({err})") from None
    with fin:
        def read(name: str) -> np.ndarray:
            if name not in fin:
                raise CheckpointError(f"{weight_file}: no dataset {name!r} (not bilm-tf weights for {options_file.name})")
            return np.asarray(fin[name][...], dtype=np.float32)

        char_embed = read("char_embed")
        config.n_characters = char_embed.shape[0] + 1
        state: dict[str, np.ndarray] = {}
        has_softmax = SOFTMAX_W in fin and SOFTMAX_B in fin
        if vocab is not None and not has_softmax:
            raise CheckpointError(f"{weight_file}: no softmax ({SOFTMAX_W}, {SOFTMAX_B}) to score "
                                  f"{Path(vocab_file).name}'s words with (released ELMo weights have none)")
        if vocab is not None:
            W, b = read(SOFTMAX_W), read(SOFTMAX_B)
            if W.shape != (len(vocab), config.projection_dim) or b.shape != (len(vocab),):
                raise CheckpointError(f"{weight_file}: softmax of shape {W.shape} for {len(vocab)} words of "
                                      f"{Path(vocab_file).name} and projection_dim {config.projection_dim}")
            names = [BILM_TF_SPECIALS.get(w, w) for w in vocab]
            config.vocab_size = len(names)
            config.bos_id, config.eos_id = names.index("<s>"), names.index("</s>")
            model = ElmoLM(config, vocab=names)
            model.spelling[names.index("<unk>")] = model.chars.words(["<UNK>"])[0]  # bilm-tf spells it so
            state["output.word_weight"], state["output.word_bias"] = W, b
            state["spelling"] = model.spelling.numpy()
        else:
            model = ElmoLM(config)
        if has_softmax and vocab is None:
            model.softmax_note = f"{weight_file} has a softmax: give its vocabulary file to score"
        state["token_encoder.char_embed.weight"] = np.concatenate(
            [np.zeros((1, char_embed.shape[1]), np.float32), char_embed])
        for i in range(len(config.filters)):
            state[f"token_encoder.convs.{i}.weight"] = read(f"CNN/W_cnn_{i}").squeeze(0).transpose(2, 1, 0)
            state[f"token_encoder.convs.{i}.bias"] = read(f"CNN/b_cnn_{i}")
        for i in range(config.n_highway):
            for part in ("carry", "transform"):
                state[f"token_encoder.highways.{i}.{part}.weight"] = read(f"CNN_high_{i}/W_{part}").T
                state[f"token_encoder.highways.{i}.{part}.bias"] = read(f"CNN_high_{i}/b_{part}")
        state["token_encoder.projection.weight"] = read("CNN_proj/W_proj").T
        state["token_encoder.projection.bias"] = read("CNN_proj/b_proj")
        C, P = config.cell_dim, config.projection_dim
        for d, lm in enumerate(("forward_lm", "backward_lm")):
            for j in range(config.n_layers):
                name = _lstm_name(d, j)
                w = _tf_to_torch_gates(read(f"{name}/W_0").T, C)  # (4C, I + P), gates i, f, g, o
                bias = read(f"{name}/B").copy()
                bias[2 * C:3 * C] += 1.0  # TF's forget bias, added at run time
                prefix = f"{lm}.layers.{j}"
                state[f"{prefix}.input_linear.weight"] = w[:, : w.shape[1] - P]
                state[f"{prefix}.state_linear.weight"] = w[:, w.shape[1] - P:]
                state[f"{prefix}.state_linear.bias"] = _tf_to_torch_gates(bias, C)
                state[f"{prefix}.projection.weight"] = read(f"{name}/W_P_0").T
    own = model.state_dict()
    for key, value in state.items():
        if tuple(own[key].shape) != value.shape:
            raise CheckpointError(f"{weight_file}: {key} has shape {value.shape}, {options_file.name} implies "
                                  f"{tuple(own[key].shape)}")
        own[key] = torch.from_numpy(np.ascontiguousarray(value))
    model.load_state_dict(own, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------- out


def save_allennlp(model: ElmoLM, folder: str | Path) -> tuple[Path, Path]:
    """Write ``folder/options.json`` and ``folder/weights.hdf5`` in bilm-tf's layout (the biLM, and
    a full softmax as ``softmax/W``, ``softmax/b`` when the model has one; its vocabulary is the
    caller's to write). Returns the two paths."""
    h5py = _h5py()
    config = model.config
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    C = config.cell_dim
    datasets = {"char_embed": s["token_encoder.char_embed.weight"][1:]}
    for i in range(len(config.filters)):
        datasets[f"CNN/W_cnn_{i}"] = s[f"token_encoder.convs.{i}.weight"].transpose(2, 1, 0)[None]
        datasets[f"CNN/b_cnn_{i}"] = s[f"token_encoder.convs.{i}.bias"]
    for i in range(config.n_highway):
        for part in ("carry", "transform"):
            datasets[f"CNN_high_{i}/W_{part}"] = s[f"token_encoder.highways.{i}.{part}.weight"].T
            datasets[f"CNN_high_{i}/b_{part}"] = s[f"token_encoder.highways.{i}.{part}.bias"]
    if model.output is not None:
        if "output.word_bias" not in s or config.softmax.kind != "full":
            raise UsageError(f"bilm-tf's format holds a full softmax only, not softmax.kind={config.softmax.kind!r}")
        datasets[SOFTMAX_W], datasets[SOFTMAX_B] = s["output.word_weight"], s["output.word_bias"]
    datasets["CNN_proj/W_proj"] = s["token_encoder.projection.weight"].T
    datasets["CNN_proj/b_proj"] = s["token_encoder.projection.bias"]
    for d, lm in enumerate(("forward_lm", "backward_lm")):
        for j in range(config.n_layers):
            prefix, name = f"{lm}.layers.{j}", _lstm_name(d, j)
            w = np.concatenate([s[f"{prefix}.input_linear.weight"], s[f"{prefix}.state_linear.weight"]], axis=1)
            datasets[f"{name}/W_0"] = _torch_to_tf_gates(w, C).T  # (I + P, 4C)
            bias = _torch_to_tf_gates(s[f"{prefix}.state_linear.bias"], C).copy()
            bias[2 * C:3 * C] -= 1.0
            datasets[f"{name}/B"] = bias
            datasets[f"{name}/W_P_0"] = s[f"{prefix}.projection.weight"].T
    weights = folder / "weights.hdf5"
    tmp = weights.with_name(weights.name + ".tmp")
    with h5py.File(tmp, "w") as fout:
        for name, value in datasets.items():
            fout.create_dataset(name, data=np.ascontiguousarray(value, dtype=np.float32))
    tmp.replace(weights)
    options = folder / "options.json"
    atomic_write_bytes(options, (json.dumps(options_from_config(config), indent=2) + "\n").encode("utf-8"))
    return options, weights
