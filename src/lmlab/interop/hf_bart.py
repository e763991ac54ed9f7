"""Hugging Face BART folders in and out: ``BartForConditionalGeneration`` / ``BartForSequenceClassification``
<-> :mod:`lmlab.models.bart`, through one key map used in both directions.

A Hugging Face BART folder is ``config.json`` (``model_type: bart``, ``d_model``, ``encoder_layers``, ...)
plus ``model.safetensors``. The weights differ from lmlab's in names only:

| lmlab (under ``model.``) | Hugging Face (under ``model.``) |
|---|---|
| ``shared`` | ``shared`` (also ``encoder.embed_tokens``, ``decoder.embed_tokens``, ``lm_head``: tied copies) |
| ``{side}.positions.embedding`` | ``{side}.embed_positions`` (max_position_embeddings + 2 rows) |
| ``{side}.layernorm_embedding`` | ``{side}.layernorm_embedding`` |
| ``{side}.layers.{i}.self_attn.qkv.{q,k,v}`` / ``.out`` | ``{side}.layers.{i}.self_attn.{q,k,v}_proj`` / ``out_proj`` |
| ``{side}.layers.{i}.self_attn_residual.norm`` | ``self_attn_layer_norm`` |
| ``decoder.layers.{i}.cross_attn.qkv.{q,k,v}`` / ``.out`` | ``encoder_attn.{q,k,v}_proj`` / ``out_proj`` |
| ``decoder.layers.{i}.cross_attn_residual.norm`` | ``encoder_attn_layer_norm`` |
| ``{side}.layers.{i}.feed_forward.fc_in`` / ``fc_out`` | ``fc1`` / ``fc2`` |
| ``{side}.layers.{i}.feed_forward_residual.norm`` | ``final_layer_norm`` |
| ``final_logits_bias`` / ``classification_head.*`` | the same |

- :func:`load_hf` reads such a folder (the tied copies checked equal to ``shared`` when present; a
  folder with only ``pytorch_model.bin`` is refused, nothing is unpickled).
- :func:`save_hf` writes a folder ``transformers.BartForConditionalGeneration.from_pretrained`` (or
  ``BartForSequenceClassification``) loads.

The parity test (``tests/interop/test_hf_bart.py``) holds logits equal within 1e-5 both ways on a tiny
random model. Not here: mBART / PLBart / Marian (other ``model_type``s), a BART whose encoder and decoder
differ in width, heads or FFN size (refused with a message), sharded checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import config as cfg
from .. import io, pretrained
from ..errors import CheckpointError, ConfigError
from ..models.bart import BartConfig, BartForConditionalGeneration, BartForSequenceClassification

ACTIVATIONS_IN = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
ACTIVATIONS_OUT = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_new"}
TIED_COPIES = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")

_ATTN = [("qkv.q", "q_proj"), ("qkv.k", "k_proj"), ("qkv.v", "v_proj"), ("out", "out_proj")]


def _wb(pairs):
    return [(f"{a}.{p}", f"{b}.{p}") for a, b in pairs for p in ("weight", "bias")]


def key_map(config: BartConfig, classifier: bool = False) -> list[tuple[str, str]]:
    """(lmlab key, Hugging Face key) for every tensor of a BART model."""
    pairs = [("model.shared.weight", "model.shared.weight")]
    for side, n_layers in (("encoder", config.n_encoder_layers), ("decoder", config.n_decoder_layers)):
        pairs.append((f"model.{side}.positions.embedding.weight", f"model.{side}.embed_positions.weight"))
        pairs += _wb([(f"model.{side}.layernorm_embedding", f"model.{side}.layernorm_embedding")])
        for i in range(n_layers):
            ours, theirs = f"model.{side}.layers.{i}", f"model.{side}.layers.{i}"
            layer = [(f"self_attn.{a}", f"self_attn.{b}") for a, b in _ATTN]
            layer += [("self_attn_residual.norm", "self_attn_layer_norm"), ("feed_forward.fc_in", "fc1"),
                      ("feed_forward.fc_out", "fc2"), ("feed_forward_residual.norm", "final_layer_norm")]
            if side == "decoder":
                layer += [(f"cross_attn.{a}", f"encoder_attn.{b}") for a, b in _ATTN]
                layer += [("cross_attn_residual.norm", "encoder_attn_layer_norm")]
            pairs += _wb([(f"{ours}.{a}", f"{theirs}.{b}") for a, b in layer])
    if classifier:
        pairs += _wb([("classification_head.dense", "classification_head.dense"),
                      ("classification_head.out_proj", "classification_head.out_proj")])
    else:
        pairs.append(("final_logits_bias", "final_logits_bias"))
    return pairs


def config_from_hf(hf: dict, where: str = "config.json") -> BartConfig:
    """A BartConfig from a Hugging Face BART config dict (transformers 4 and 5 write the same keys)."""
    if hf.get("model_type") != "bart":
        raise ConfigError(f"{where}: model_type is {hf.get('model_type')!r}, expected 'bart'")
    for a, b in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if hf.get(a) != hf.get(b):
            raise ConfigError(f"{where}: {a}={hf.get(a)} differs from {b}={hf.get(b)}; lmlab's BART has one size")
    activation = hf.get("activation_function", "gelu")
    if activation not in ACTIVATIONS_IN:
        raise ConfigError(f"{where}: activation_function {activation!r} not supported; known: {', '.join(ACTIVATIONS_IN)}")
    labels = hf.get("id2label")
    try:
        values = {
            "vocab_size": hf["vocab_size"], "d_model": hf["d_model"], "n_heads": hf["encoder_attention_heads"],
            "n_encoder_layers": hf["encoder_layers"], "n_decoder_layers": hf["decoder_layers"],
            "d_ff": hf["encoder_ffn_dim"], "activation": ACTIVATIONS_IN[activation],
            "dropout": hf.get("dropout", 0.1), "attn_dropout": hf.get("attention_dropout", 0.0),
            "activation_dropout": hf.get("activation_dropout", 0.0),
            "max_length": hf["max_position_embeddings"], "scale_embedding": bool(hf.get("scale_embedding", False)),
            "init_std": hf.get("init_std", 0.02), "pad_token_id": hf.get("pad_token_id", 1),
            "bos_token_id": hf.get("bos_token_id", 0), "eos_token_id": hf.get("eos_token_id", 2),
            "decoder_start_token_id": hf.get("decoder_start_token_id", 2),
            "mask_token_id": hf.get("mask_token_id"),
            "num_labels": len(labels) if isinstance(labels, dict) and labels else hf.get("num_labels", 3),
            "classifier_dropout": hf.get("classifier_dropout") or 0.0,
        }
    except KeyError as err:
        raise ConfigError(f"{where}: missing BART config key {err.args[0]!r}") from None
    return cfg.from_dict(BartConfig, values, where=where)


def config_to_hf(config: BartConfig, classifier: bool = False) -> dict:
    """The Hugging Face config.json of a BartConfig."""
    out = {
        "architectures": ["BartForSequenceClassification" if classifier else "BartForConditionalGeneration"],
        "model_type": "bart", "vocab_size": config.vocab_size, "d_model": config.d_model,
        "encoder_layers": config.n_encoder_layers, "decoder_layers": config.n_decoder_layers,
        "encoder_attention_heads": config.n_heads, "decoder_attention_heads": config.n_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": ACTIVATIONS_OUT[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attn_dropout, "activation_dropout": config.activation_dropout,
        "max_position_embeddings": config.max_length, "scale_embedding": config.scale_embedding,
        "init_std": config.init_std, "pad_token_id": config.pad_token_id, "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id, "decoder_start_token_id": config.decoder_start_token_id,
        "forced_eos_token_id": config.eos_token_id, "classifier_dropout": config.classifier_dropout,
        "tie_word_embeddings": True, "is_encoder_decoder": True, "use_cache": True, "dtype": "float32",
    }
    if config.mask_token_id is not None:
        out["mask_token_id"] = config.mask_token_id
    if classifier:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(config.num_labels)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(config.num_labels)}
    return out


def _is_classifier(hf: dict, tensors: dict) -> bool:
    return any(k.startswith("classification_head.") for k in tensors)


def load_hf(folder: str | Path):
    """A Hugging Face BART folder as :class:`BartForConditionalGeneration` (or
    :class:`BartForSequenceClassification` when it holds a ``classification_head``)."""
    folder = Path(folder)
    hf = pretrained.read_model_config(folder)
    where = str(folder / pretrained.CONFIG_NAME)
    if not (folder / pretrained.WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{folder}: no {pretrained.WEIGHTS_NAME} (lmlab reads safetensors only, never a pickle)")
    config = config_from_hf(hf, where)
    tensors = io.load_tensors(folder / pretrained.WEIGHTS_NAME)
    classifier = _is_classifier(hf, tensors)
    if "model.shared.weight" not in tensors:  # some exports keep only a tied copy
        copy = next((k for k in TIED_COPIES if k in tensors), None)
        if copy is None:
            raise CheckpointError(f"{folder}: no model.shared.weight (nor a tied copy of it) in the BART checkpoint")
        tensors = {**tensors, "model.shared.weight": tensors[copy]}
    for name in TIED_COPIES:
        if name in tensors and not torch.equal(tensors[name], tensors["model.shared.weight"]):
            raise CheckpointError(f"{folder}: {name} differs from model.shared.weight (untied BART is not supported)")
    if not classifier and "final_logits_bias" not in tensors:
        tensors = {**tensors, "final_logits_bias": torch.zeros(1, config.vocab_size)}
    pairs = key_map(config, classifier)
    known = {theirs for _, theirs in pairs} | set(TIED_COPIES)
    extra = sorted(k for k in tensors if k not in known)
    if extra:
        raise CheckpointError(f"{folder}: unexpected weights in the BART checkpoint: {extra[:3]}")
    state = {}
    for ours, theirs in pairs:
        if theirs not in tensors:
            raise CheckpointError(f"{folder}: weight {theirs!r} missing from the BART checkpoint")
        state[ours] = tensors[theirs]
    model = (BartForSequenceClassification if classifier else BartForConditionalGeneration)(config)
    pretrained.load_state_strict(model, state, str(folder))
    return model


def save_hf(model, folder: str | Path, tokenizer_files: dict[str, bytes] | None = None) -> Path:
    """Write a BART model of lmlab as a Hugging Face folder (config.json + model.safetensors + tokenizer files)."""
    from safetensors.torch import save_file

    classifier = isinstance(model, BartForSequenceClassification)
    if not classifier and not isinstance(model, BartForConditionalGeneration):
        raise ConfigError(f"save_hf writes BART models, got {type(model).__name__}")
    state = model.state_dict()
    tensors = {theirs: state[ours].detach().contiguous().cpu() for ours, theirs in key_map(model.config, classifier)}
    folder = Path(folder)
    with io.atomic_dir(folder) as tmp:
        (tmp / pretrained.CONFIG_NAME).write_text(json.dumps(config_to_hf(model.config, classifier), indent=2) + "\n")
        save_file(tensors, str(tmp / pretrained.WEIGHTS_NAME), metadata={"format": "pt"})
        for name, data in (tokenizer_files or {}).items():
            (tmp / name).write_bytes(data)
    return folder
