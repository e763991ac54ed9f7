"""Hugging Face ``XLNetLMHeadModel`` folders in and out of :class:`lmlab.models.xlnet.XLNetLMHeadModel`.

A folder is ``config.json`` (``model_type = "xlnet"``) + ``model.safetensors``; a folder with
only ``pytorch_model.bin`` (a pickle) is refused. The key map is one table of
(lmlab key, Hugging Face key, layout), used in both directions. Hugging Face keeps each attention
projection as a raw ``(d_model, n_head, d_head)`` parameter; lmlab uses ``nn.Linear`` (weight
``(out, in)``), so the table says how each one is laid out:

- ``in``:  q, k, v, r map H -> (n, d_head):  lmlab ``(n·d_head, H)`` = HF ``(H, n, d_head)`` reshaped to (H, n·d_head), transposed;
- ``out``: o maps (n, d_head) -> H:          lmlab ``(H, n·d_head)`` = HF ``(H, n, d_head)`` reshaped;
- ``same``: everything else, as it is.

The LM head's weight is tied to the word embedding in both (HF ``lm_loss.weight`` is not read;
it is written, equal to the embedding, so that the folder also loads with ties disabled).
Refused on the way in: ``attn_type = "uni"``, ``bi_data``, ``untie_r = false`` and
``same_length`` (none of which lmlab implements), an activation other than gelu or relu.
This module needs ``safetensors`` only; ``transformers`` is used by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from ..errors import FormatError, UsageError
from ..io import atomic_dir
from .hf_bert import _read_hf_folder

_LAYER = [  # (lmlab suffix under transformer.layers.{i}, HF suffix under transformer.layer.{i}, layout)
    ("attention.q.weight", "rel_attn.q", "in"),
    ("attention.k.weight", "rel_attn.k", "in"),
    ("attention.v.weight", "rel_attn.v", "in"),
    ("attention.r.weight", "rel_attn.r", "in"),
    ("attention.o.weight", "rel_attn.o", "out"),
    ("attention.r_w_bias", "rel_attn.r_w_bias", "same"),
    ("attention.r_r_bias", "rel_attn.r_r_bias", "same"),
    ("attention.r_s_bias", "rel_attn.r_s_bias", "same"),
    ("attention.seg_embed", "rel_attn.seg_embed", "same"),
    ("attention.norm.weight", "rel_attn.layer_norm.weight", "same"),
    ("attention.norm.bias", "rel_attn.layer_norm.bias", "same"),
    ("feed_forward.fc_in.weight", "ff.layer_1.weight", "same"),
    ("feed_forward.fc_in.bias", "ff.layer_1.bias", "same"),
    ("feed_forward.fc_out.weight", "ff.layer_2.weight", "same"),
    ("feed_forward.fc_out.bias", "ff.layer_2.bias", "same"),
    ("feed_forward.norm.weight", "ff.layer_norm.weight", "same"),
    ("feed_forward.norm.bias", "ff.layer_norm.bias", "same"),
]


def xlnet_key_map(n_layers: int) -> list[tuple[str, str, str]]:
    """(lmlab key, HF key, layout) for every tensor of an ``XLNetLMHeadModel``."""
    table = [("transformer.word_embedding.weight", "transformer.word_embedding.weight", "same"),
             ("transformer.mask_emb", "transformer.mask_emb", "same"),
             ("lm_bias", "lm_loss.bias", "same")]
    for i in range(n_layers):
        table += [(f"transformer.layers.{i}.{a}", f"transformer.layer.{i}.{b}", kind) for a, b, kind in _LAYER]
    return table


def _to_lmlab(tensor: Tensor, layout: str) -> Tensor:
    if layout == "same":
        return tensor
    H = tensor.shape[0]
    flat = tensor.reshape(H, -1)                         # (H, n, d_head) -> (H, n·d_head)
    return flat.t().contiguous() if layout == "in" else flat.contiguous()


def _to_hf(tensor: Tensor, layout: str, n_heads: int) -> Tensor:
    if layout == "same":
        return tensor
    H = tensor.shape[1] if layout == "in" else tensor.shape[0]
    flat = tensor.t() if layout == "in" else tensor      # (H, n·d_head)
    return flat.reshape(H, n_heads, -1).contiguous()     # (H, n, d_head)


def _config_from_hf(hf: dict):
    from ..models.xlnet import XLNetConfig

    refusals = [(hf.get("attn_type", "bi") != "bi", f"attn_type={hf.get('attn_type')!r} (lmlab has 'bi')"),
                (bool(hf.get("bi_data", False)), "bi_data=true"),
                (not hf.get("untie_r", True), "untie_r=false"),
                (bool(hf.get("same_length", False)), "same_length=true")]
    for refused, what in refusals:
        if refused:
            raise FormatError(f"config.json: XLNet with {what} is not supported")
    activation = hf.get("ff_activation", "gelu")
    if activation not in ("gelu", "relu"):
        raise FormatError(f"config.json: ff_activation {activation!r} is not supported (gelu, relu)")
    config = XLNetConfig(
        vocab_size=hf["vocab_size"], d_model=hf["d_model"], n_layers=hf["n_layer"], n_heads=hf["n_head"],
        d_ff=hf["d_inner"], activation=activation, dropout=hf.get("dropout", 0.1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12), init_std=hf.get("initializer_range", 0.02),
        mem_len=int(hf.get("mem_len") or 0), reuse_len=int(hf.get("reuse_len") or 0),
        clamp_len=int(hf.get("clamp_len", -1)), pad_token_id=int(hf.get("pad_token_id", 5) or 0))
    config.validate()
    if hf.get("d_head", config.d_model // config.n_heads) != config.d_model // config.n_heads:
        raise FormatError(f"config.json: d_head={hf['d_head']} is not d_model / n_head")
    return config


def load_hf(folder: str | Path):
    """An lmlab ``XLNetLMHeadModel`` from a Hugging Face XLNet folder (safetensors only)."""
    from ..models.xlnet import XLNetLMHeadModel

    hf, tensors = _read_hf_folder(folder)
    if hf.get("model_type") != "xlnet":
        raise FormatError(f"{folder}: model_type {hf.get('model_type')!r} is not 'xlnet'")
    config = _config_from_hf(hf)
    model = XLNetLMHeadModel(config)
    state = model.state_dict()
    for ours, theirs, layout in xlnet_key_map(config.n_layers):
        if theirs not in tensors:
            if theirs == "lm_loss.bias":  # XLNetModel (no head): the LM bias stays zero
                continue
            raise FormatError(f"{folder}/model.safetensors: missing {theirs}")
        value = _to_lmlab(tensors[theirs], layout)
        if value.shape != state[ours].shape:
            raise FormatError(f"{folder}/model.safetensors: {theirs} has shape {tuple(tensors[theirs].shape)}, "
                              f"expected one that gives {tuple(state[ours].shape)}")
        state[ours] = value.to(state[ours].dtype)
    model.load_state_dict(state)
    return model.eval()


def hf_config(model) -> dict:
    """The Hugging Face ``config.json`` of an lmlab XLNet."""
    c = model.config
    return {"model_type": "xlnet", "architectures": ["XLNetLMHeadModel"], "vocab_size": c.vocab_size,
            "d_model": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads, "d_head": c.d_model // c.n_heads,
            "d_inner": c.d_ff, "ff_activation": c.activation, "untie_r": True, "attn_type": "bi",
            "initializer_range": c.init_std, "layer_norm_eps": c.layer_norm_eps, "dropout": c.dropout,
            "mem_len": c.mem_len or None, "reuse_len": c.reuse_len or None, "bi_data": False,
            "clamp_len": c.clamp_len, "same_length": False, "use_mems_eval": True, "use_mems_train": False,
            "pad_token_id": c.pad_token_id, "tie_word_embeddings": True, "torch_dtype": "float32"}


def save_hf(model, folder: str | Path, tokenizer_files: dict[str, bytes] | None = None) -> Path:
    """Write an lmlab ``XLNetLMHeadModel`` as a Hugging Face folder, atomically."""
    from safetensors.torch import save_file

    if getattr(model, "family", None) != "xlnet":
        raise UsageError(f"save_hf here writes XLNet models, got {type(model).__name__}")
    state = model.state_dict()
    tensors = {theirs: _to_hf(state[ours], layout, model.config.n_heads)
               for ours, theirs, layout in xlnet_key_map(model.config.n_layers)}
    tensors["lm_loss.weight"] = state["transformer.word_embedding.weight"]
    tensors = {k: v.detach().clone().contiguous().cpu() for k, v in tensors.items()}
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_config(model), indent=2) + "\n")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name, data in (tokenizer_files or {}).items():
            (tmp / name).write_bytes(data)
    return folder


__all__ = ["hf_config", "load_hf", "save_hf", "xlnet_key_map"]
