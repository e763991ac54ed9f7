"""Hugging Face checkpoints in and out: GPT-2 folders <-> :class:`lmlab.models.gpt.GPTLanguageModel`.

A Hugging Face GPT-2 folder is ``config.json`` (``model_type: gpt2``, ``n_embd``, ``n_layer``, ...)
plus ``model.safetensors``. Its weights differ from lmlab's in names only, and in one layout:
GPT-2's projections are ``Conv1D`` modules whose weight is stored (in, out), the transpose of
``nn.Linear``'s (out, in). The key map below is the whole conversion; the fused ``c_attn`` keeps its
[q; k; v] order, which is also lmlab's :class:`~lmlab.nn.attention.FusedQKV` order.

- :func:`load_gpt2` reads such a folder (weights with or without the ``transformer.`` prefix,
  the old ``attn.bias`` mask buffers ignored) into a GPTLanguageModel.
- :func:`save_gpt2` writes a GPTLanguageModel as a folder ``transformers.GPT2LMHeadModel.from_pretrained``
  loads, copying the tokenizer files given (``vocab.json``, ``merges.txt``, ``tokenizer.json``).
- :func:`is_hf_gpt2_folder` tells the two kinds of folder apart (for ``lmlab generate``).

The parity test (``tests/interop/test_hf_gpt2.py``) holds logits equal within 1e-5 both ways and
greedy generation token for token. Not here: GPT-2 variants with ``scale_attn_by_inverse_layer_idx``
or ``reorder_and_upcast_attn`` (refused with a message), other architectures, sharded checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import config as cfg
from .. import io, pretrained
from ..errors import CheckpointError, ConfigError
from ..models.gpt import GPTConfig, GPTLanguageModel

ACTIVATIONS_IN = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
ACTIVATIONS_OUT = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")

# lmlab name (per layer, after "gpt.blocks.{i}.") -> (HF name after "h.{i}.", transpose?)
LAYER_KEYS = {
    "self_attn_residual.norm.weight": ("ln_1.weight", False),
    "self_attn_residual.norm.bias": ("ln_1.bias", False),
    "self_attn.qkv.proj.weight": ("attn.c_attn.weight", True),
    "self_attn.qkv.proj.bias": ("attn.c_attn.bias", False),
    "self_attn.out.weight": ("attn.c_proj.weight", True),
    "self_attn.out.bias": ("attn.c_proj.bias", False),
    "feed_forward_residual.norm.weight": ("ln_2.weight", False),
    "feed_forward_residual.norm.bias": ("ln_2.bias", False),
    "feed_forward.fc_in.weight": ("mlp.c_fc.weight", True),
    "feed_forward.fc_in.bias": ("mlp.c_fc.bias", False),
    "feed_forward.fc_out.weight": ("mlp.c_proj.weight", True),
    "feed_forward.fc_out.bias": ("mlp.c_proj.bias", False),
}
TOP_KEYS = {
    "gpt.token_embedding.weight": "wte.weight",
    "gpt.position_embedding.embedding.weight": "wpe.weight",
    "gpt.final_norm.weight": "ln_f.weight",
    "gpt.final_norm.bias": "ln_f.bias",
}


def is_hf_gpt2_folder(folder: str | Path) -> bool:
    path = Path(folder) / pretrained.CONFIG_NAME
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == "gpt2"
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def config_from_hf(hf: dict, where: str = "config.json") -> GPTConfig:
    """A GPTConfig from a Hugging Face GPT-2 config dict."""
    if hf.get("model_type") != "gpt2":
        raise ConfigError(f"{where}: model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if hf.get(flag):
            raise ConfigError(f"{where}: {flag}=true is not supported by lmlab's GPT")
    if hf.get("scale_attn_weights", True) is False:
        raise ConfigError(f"{where}: scale_attn_weights=false is not supported by lmlab's GPT")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS_IN:
        raise ConfigError(f"{where}: activation_function {activation!r} not supported; "
                          f"known: {', '.join(ACTIVATIONS_IN)}")
    try:
        values = {
            "vocab_size": hf["vocab_size"], "max_length": hf["n_positions"], "d_model": hf["n_embd"],
            "n_layers": hf["n_layer"], "n_heads": hf["n_head"], "d_ff": hf.get("n_inner"),
            "norm_position": "pre", "final_norm": True, "activation": ACTIVATIONS_IN[activation],
            "dropout": hf.get("resid_pdrop", 0.1), "attn_dropout": hf.get("attn_pdrop", 0.1),
            "layer_norm_eps": hf.get("layer_norm_epsilon", 1e-5), "bias": True,
            "tie_embeddings": hf.get("tie_word_embeddings", True), "scaled_residual_init": True,
            "init_std": hf.get("initializer_range", 0.02), "pad_token_id": hf.get("pad_token_id"),
            "bos_token_id": hf.get("bos_token_id"), "eos_token_id": hf.get("eos_token_id"),
        }
    except KeyError as err:
        raise ConfigError(f"{where}: missing GPT-2 config key {err.args[0]!r}") from None
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):  # HF allows ids outside a toy vocab
        value = values[name]
        if value is not None and not (isinstance(value, int) and 0 <= value < values["vocab_size"]):
            values[name] = None
    return cfg.from_dict(GPTConfig, values, where=where)


def config_to_hf(config: GPTConfig) -> dict:
    """The Hugging Face GPT-2 config.json for a GPT-2-shaped GPTConfig (others are refused)."""
    problems = []
    if config.norm_position != "pre" or not config.final_norm:
        problems.append("GPT-2 needs pre-LN blocks and a final LN")
    if not config.bias:
        problems.append("GPT-2 has biases")
    if problems:
        raise ConfigError(f"cannot save as a Hugging Face GPT-2 folder: {'; '.join(problems)}")
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.max_length, "n_embd": config.d_model,
        "n_layer": config.n_layers, "n_head": config.n_heads, "n_inner": config.d_ff,
        "activation_function": ACTIVATIONS_OUT[config.activation],
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.attn_dropout,
        "layer_norm_epsilon": config.layer_norm_eps, "initializer_range": config.init_std,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id, "use_cache": True, "dtype": "float32",
    }


def state_dict_from_hf(tensors: dict, config: GPTConfig, where: str) -> dict:
    """HF GPT-2 tensors -> lmlab GPTLanguageModel state dict (names mapped, Conv1D weights transposed)."""
    hf = {}
    for name, value in tensors.items():
        short = name.removeprefix("transformer.")
        if short.endswith((".attn.bias", ".attn.masked_bias")) and value.dim() != 1:
            continue  # the causal-mask buffers older checkpoints carry
        hf[short] = value
    out, used = {}, set()

    def take(hf_name: str) -> torch.Tensor:
        if hf_name not in hf:
            raise CheckpointError(f"{where}: weight {hf_name!r} missing from the GPT-2 checkpoint")
        used.add(hf_name)
        return hf[hf_name]

    for ours, theirs in TOP_KEYS.items():
        out[ours] = take(theirs)
    for i in range(config.n_layers):
        for ours, (theirs, transpose) in LAYER_KEYS.items():
            value = take(f"h.{i}.{theirs}")
            out[f"gpt.blocks.{i}.{ours}"] = value.t().contiguous() if transpose else value
    if "lm_head.weight" in hf:
        used.add("lm_head.weight")
        if config.tie_embeddings:
            if not torch.equal(hf["lm_head.weight"], out["gpt.token_embedding.weight"]):
                raise CheckpointError(f"{where}: tie_word_embeddings is true but lm_head.weight differs from wte")
        else:
            out["lm_head.weight"] = hf["lm_head.weight"]
    elif not config.tie_embeddings:
        raise CheckpointError(f"{where}: untied GPT-2 checkpoint without lm_head.weight")
    extra = sorted(set(hf) - used)
    if extra:
        raise CheckpointError(f"{where}: unexpected weights in the GPT-2 checkpoint: {extra[:3]}")
    return out


def state_dict_to_hf(model: GPTLanguageModel) -> dict:
    """lmlab GPTLanguageModel -> HF GPT2LMHeadModel tensors (``transformer.`` prefix, Conv1D layout)."""
    state = model.state_dict()
    out = {}
    for ours, theirs in TOP_KEYS.items():
        out[f"transformer.{theirs}"] = state[ours]
    for i in range(model.config.n_layers):
        for ours, (theirs, transpose) in LAYER_KEYS.items():
            value = state[f"gpt.blocks.{i}.{ours}"]
            out[f"transformer.h.{i}.{theirs}"] = value.t().contiguous() if transpose else value
    if not model.config.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out


def load_gpt2(folder: str | Path) -> GPTLanguageModel:
    """A Hugging Face GPT-2 folder (config.json + model.safetensors) as an lmlab GPTLanguageModel."""
    folder = Path(folder)
    hf_config = pretrained.read_model_config(folder)
    config = config_from_hf(hf_config, where=str(folder / pretrained.CONFIG_NAME))
    tensors = io.load_tensors(folder / pretrained.WEIGHTS_NAME)
    model = GPTLanguageModel(config)
    pretrained.load_state_strict(model, state_dict_from_hf(tensors, config, str(folder)), str(folder))
    return model


def save_gpt2(model: GPTLanguageModel, folder: str | Path, tokenizer_folder: str | Path | None = None) -> Path:
    """Write ``model`` as a Hugging Face GPT-2 folder; copy tokenizer files from ``tokenizer_folder``."""
    return write_hf_folder(folder, config_to_hf(model.config), state_dict_to_hf(model), tokenizer_folder,
                           TOKENIZER_FILES)


def write_hf_folder(folder: str | Path, hf_config: dict, tensors: dict, tokenizer_folder: str | Path | None,
                    tokenizer_files: tuple[str, ...]) -> Path:
    """A Hugging Face folder, atomically: config.json, model.safetensors, and the ``tokenizer_files``
    found in ``tokenizer_folder`` (every family's ``save_*`` writes through this)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    folder = Path(folder)
    with io.atomic_dir(folder) as tmp:
        (tmp / pretrained.CONFIG_NAME).write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(tensors, str(tmp / pretrained.WEIGHTS_NAME), metadata={"format": "pt"})
        if tokenizer_folder is not None:
            for name in tokenizer_files:
                source = Path(tokenizer_folder) / name
                if source.is_file():
                    (tmp / name).write_bytes(source.read_bytes())
    return folder
