"""Hugging Face ``T5ForConditionalGeneration`` folders in and out of :class:`lmlab.models.t5.T5ForConditionalGeneration`.

A Hugging Face T5 folder is ``config.json`` (``model_type: t5``, ``d_model``, ``num_layers``, ...) and
``model.safetensors``. The weights differ from lmlab's in names only (both use ``nn.Linear``'s
(out, in) layout); the key map below is the whole conversion, used in both directions. HF keeps
each stack's relative-bias table in block 0 (``block.0.layer.0.SelfAttention.relative_attention_bias``);
lmlab keeps it on the stack (``encoder.relative_bias.table``) — the same tensor.

The two checkpoint styles, and the two config styles (the trap of transformers 5, where
``T5Config.__post_init__`` turns ``tie_word_embeddings`` into ``scale_decoder_outputs`` and forces
``tie_word_embeddings = True``):

- untied (v1.1 / Flan-T5) is decided by the presence of ``lm_head.weight`` in the weights, never by
  the config;
- the decoder-output scaling by d_model^-1/2 is ``scale_decoder_outputs`` when config.json has it,
  otherwise ``tie_word_embeddings`` (transformers 4 semantics; default true);
- :func:`save_t5` writes both keys, so either version of transformers reads the folder right.

Not here: sharded checkpoints, the encoder-only ``T5EncoderModel``, ``gated-relu``/``gated-silu``
FFNs (refused with a message), tokenizers (``spiece.model`` files are copied, not read).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import config as cfg
from .. import io, pretrained
from ..errors import CheckpointError, ConfigError
from ..models.t5 import T5Config, T5ForConditionalGeneration

TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# per block, after "{stack}.blocks.{i}." (lmlab) and "{stack}.block.{i}." (HF)
ATTENTION_KEYS = [(f"self_attn.{p}.weight", f"layer.0.SelfAttention.{p}.weight") for p in "qkvo"]
CROSS_KEYS = [(f"cross_attn.{p}.weight", f"layer.1.EncDecAttention.{p}.weight") for p in "qkvo"]
FFN_NAMES = {"relu": ("wi", "wo"), "gated-gelu": ("wi_0", "wi_1", "wo")}


def block_keys(config: T5Config, decoder: bool) -> list[tuple[str, str]]:
    """(lmlab name, HF name) pairs of one encoder or decoder block."""
    ffn_layer = 2 if decoder else 1
    keys = [*ATTENTION_KEYS, ("self_attn_residual.norm.weight", "layer.0.layer_norm.weight")]
    if decoder:
        keys += [*CROSS_KEYS, ("cross_attn_residual.norm.weight", "layer.1.layer_norm.weight")]
    keys += [(f"feed_forward.{n}.weight", f"layer.{ffn_layer}.DenseReluDense.{n}.weight")
             for n in FFN_NAMES[config.feed_forward]]
    keys.append(("feed_forward_residual.norm.weight", f"layer.{ffn_layer}.layer_norm.weight"))
    return keys


def key_map(config: T5Config) -> list[tuple[str, str]]:
    """Every (lmlab name, HF name) pair of a model of this config, lm_head included when untied."""
    keys = [("shared.weight", "shared.weight")]
    for stack, n, decoder in (("encoder", config.n_encoder_layers, False), ("decoder", config.n_decoder_layers, True)):
        keys.append((f"{stack}.relative_bias.table.weight",
                     f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"))
        for i in range(n):
            keys += [(f"{stack}.blocks.{i}.{ours}", f"{stack}.block.{i}.{theirs}")
                     for ours, theirs in block_keys(config, decoder)]
        keys.append((f"{stack}.final_norm.weight", f"{stack}.final_layer_norm.weight"))
    if not config.tie_embeddings:
        keys.append(("lm_head.weight", "lm_head.weight"))
    return keys


def is_hf_t5_folder(folder: str | Path) -> bool:
    path = Path(folder) / pretrained.CONFIG_NAME
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == "t5"
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def config_from_hf(hf: dict, untied: bool, where: str = "config.json") -> T5Config:
    """A T5Config from a Hugging Face T5 config dict; ``untied``: the weights have ``lm_head.weight``."""
    if hf.get("model_type") != "t5":
        raise ConfigError(f"{where}: model_type is {hf.get('model_type')!r}, expected 't5'")
    feed_forward = hf.get("feed_forward_proj", "relu")
    if feed_forward not in FFN_NAMES:
        raise ConfigError(f"{where}: feed_forward_proj {feed_forward!r} not supported; known: {', '.join(FFN_NAMES)}")
    if "scale_decoder_outputs" in hf:          # transformers 5
        scale = bool(hf["scale_decoder_outputs"])
    else:                                      # transformers 4: tied embeddings imply the rescaling
        scale = bool(hf.get("tie_word_embeddings", True))
    eos = hf.get("eos_token_id", 1)
    if isinstance(eos, list):
        eos = eos[0]
    try:
        values = {
            "vocab_size": hf["vocab_size"], "d_model": hf["d_model"], "d_kv": hf["d_kv"], "d_ff": hf["d_ff"],
            "n_heads": hf["num_heads"], "n_encoder_layers": hf["num_layers"],
            "n_decoder_layers": hf.get("num_decoder_layers") or hf["num_layers"],
            "feed_forward": feed_forward,
            "relative_buckets": hf.get("relative_attention_num_buckets", 32),
            "relative_max_distance": hf.get("relative_attention_max_distance", 128),
            "dropout": hf.get("dropout_rate", 0.1), "layer_norm_eps": hf.get("layer_norm_epsilon", 1e-6),
            "tie_embeddings": not untied, "scale_decoder_output": scale,
            "pad_token_id": hf.get("pad_token_id", 0) if hf.get("pad_token_id") is not None else 0,
            "eos_token_id": eos if eos is not None else 1,
            "decoder_start_token_id": hf.get("decoder_start_token_id") or 0,
        }
    except KeyError as err:
        raise ConfigError(f"{where}: missing T5 config key {err.args[0]!r}") from None
    return cfg.from_dict(T5Config, values, where=where)


def config_to_hf(config: T5Config) -> dict:
    """The Hugging Face config.json of a T5Config, readable by transformers 4 and 5 alike."""
    return {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "is_encoder_decoder": True,
        "vocab_size": config.vocab_size, "d_model": config.d_model, "d_kv": config.d_kv, "d_ff": config.d_ff,
        "num_heads": config.n_heads, "num_layers": config.n_encoder_layers,
        "num_decoder_layers": config.n_decoder_layers, "feed_forward_proj": config.feed_forward,
        "relative_attention_num_buckets": config.relative_buckets,
        "relative_attention_max_distance": config.relative_max_distance,
        "dropout_rate": config.dropout, "layer_norm_epsilon": config.layer_norm_eps, "initializer_factor": 1.0,
        # v4 reads tie_word_embeddings as "tied and scaled"; v5 reads scale_decoder_outputs and decides
        # tying from lm_head.weight. Untied-but-scaled has no v4 spelling: refused by save_t5.
        "tie_word_embeddings": config.tie_embeddings, "scale_decoder_outputs": config.scale_decoder_output,
        "pad_token_id": config.pad_token_id, "eos_token_id": config.eos_token_id,
        "decoder_start_token_id": config.decoder_start_token_id, "use_cache": True, "dtype": "float32",
    }


def state_dict_from_hf(tensors: dict, config: T5Config, where: str) -> dict:
    """HF T5 tensors -> lmlab state dict; the embedding aliases HF may store are checked and dropped."""
    out, used = {}, set()
    for ours, theirs in key_map(config):
        if theirs not in tensors:
            raise CheckpointError(f"{where}: weight {theirs!r} missing from the T5 checkpoint")
        out[ours] = tensors[theirs]
        used.add(theirs)
    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        if alias in tensors:
            if not torch.equal(tensors[alias], tensors["shared.weight"]):
                raise CheckpointError(f"{where}: {alias} differs from shared.weight (untied input embeddings "
                                      "are not supported)")
            used.add(alias)
    extra = sorted(set(tensors) - used)
    if extra:
        raise CheckpointError(f"{where}: unexpected weights in the T5 checkpoint: {extra[:3]}")
    return out


def state_dict_to_hf(model: T5ForConditionalGeneration) -> dict:
    state = model.state_dict()
    return {theirs: state[ours] for ours, theirs in key_map(model.config)}


def load_t5(folder: str | Path) -> T5ForConditionalGeneration:
    """A Hugging Face T5 folder (config.json + model.safetensors) as an lmlab T5ForConditionalGeneration."""
    folder = Path(folder)
    hf_config = pretrained.read_model_config(folder)
    tensors = io.load_tensors(folder / pretrained.WEIGHTS_NAME)
    config = config_from_hf(hf_config, untied="lm_head.weight" in tensors,
                            where=str(folder / pretrained.CONFIG_NAME))
    model = T5ForConditionalGeneration(config)
    pretrained.load_state_strict(model, state_dict_from_hf(tensors, config, str(folder)), str(folder))
    return model


def save_t5(model: T5ForConditionalGeneration, folder: str | Path, tokenizer_folder: str | Path | None = None) -> Path:
    """Write ``model`` as a Hugging Face T5 folder; copy tokenizer files from ``tokenizer_folder``."""
    from .hf import write_hf_folder

    config = model.config
    if not config.tie_embeddings and config.scale_decoder_output:
        raise ConfigError("cannot save as a Hugging Face T5 folder: an untied lm_head with the d_model^-1/2 "
                          "output scaling has no transformers 4 spelling")
    return write_hf_folder(folder, config_to_hf(config), state_dict_to_hf(model), tokenizer_folder, TOKENIZER_FILES)
